"""A small convolutional classifier: the reference network in whose feature space generated images are judged.

FID (Heusel et al. 2017) compares two sets of images through the features of a classifier, Inception-v3 trained on
ImageNet in the paper. For 16 x 16 digits or 32 x 32 texture patches that network (and its download) is the wrong
tool; visionlab trains this CNN on the same data instead, and uses its penultimate layer as the feature space::

    x (B, C, H, W) -> [conv3x3 - BatchNorm - ReLU] x 2 -> max-pool 2x2      per stage, widths 32 -> 64 -> 128
                   -> global average pool (B, 128) -> Linear - ReLU -> features (B, feature_dim)
                   -> Dropout -> Linear -> logits (B, num_classes)

``forward_features`` gives the features, ``forward_head`` the class scores from them (the timm split).
Shape legend: B batch, C channels, H, W height and width, D feature dim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from visionlab.util.errors import ConfigError, DataError


@dataclass
class CNNConfig:
    """A VGG-style classifier sized for small images; every stage halves H and W."""

    in_channels: int = 1  # C of the images
    num_classes: int = 10  # classes of the head
    widths: tuple[int, ...] = (32, 64, 128)  # channels of each stage (two 3x3 convolutions, then a 2x2 max-pool)
    feature_dim: int = 128  # D: width of the penultimate layer, the feature space of FID
    dropout: float = 0.2  # before the head, while training

    def __post_init__(self):
        self.widths = tuple(self.widths)
        if min(self.in_channels, self.num_classes, self.feature_dim, len(self.widths), *self.widths) < 1:
            raise ConfigError(f"CNN sizes must be positive, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


def conv_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """(conv3x3 - BatchNorm - ReLU) x 2, then a 2x2 max-pool: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""
    layers = []
    for c_in in (in_channels, out_channels):
        layers += [nn.Conv2d(c_in, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class SmallCNN(nn.Module):
    """Conv stages -> global average pool -> feature layer -> linear head.

    >>> model = SmallCNN(in_channels=1, num_classes=10)
    >>> model.forward_features(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 128])
    """

    def __init__(self, *, config: CNNConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = replace(config or CNNConfig(), **overrides)
        widths = (cfg.in_channels, *cfg.widths)
        self.stages = nn.Sequential(*(conv_stage(a, b) for a, b in zip(widths, widths[1:])))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(cfg.widths[-1], cfg.feature_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> features (B, D)."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise DataError(f"expected images (B, {self.config.in_channels}, H, W), got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 2 ** len(self.config.widths):
            raise DataError(f"images of {tuple(x.shape[-2:])} are too small for {len(self.config.widths)} poolings")
        h = self.stages(x)  # (B, widths[-1], H / 2^stages, W / 2^stages)
        return self.features(self.pool(h))  # (B, widths[-1], 1, 1) -> (B, D)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, D) -> logits (B, num_classes)."""
        return self.head(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, num_classes)."""
        return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
