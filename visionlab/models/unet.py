"""The segmentation U-Net of Ronneberger et al. (2015); DDPM's time-conditioned U-Net is in :mod:`.ddpm_unet`.

A contracting path of ``depth`` levels, each two 3x3 convolutions (+ BatchNorm + ReLU) and a 2x2 max-pool that halves
H, W and doubles the channels (64 -> 128 -> 256 -> 512 -> 1024), then an expanding path that up-samples (2x2
transposed convolution, or bilinear interpolation), concatenates the encoder's feature map of the same level (the skip
connection: fine detail the bottleneck lost) and applies two more convolutions. A 1x1 convolution maps the last 64
channels to one logit per class and pixel::

    x (B, C, H, W) -> 64 @ H -> 128 @ H/2 -> 256 @ H/4 -> 512 @ H/8 -> 1024 @ H/16
                   <- 64 @ H <- 128 @ H/2 <- 256 @ H/4 <- 512 @ H/8 <-+  each step: up, concat skip, 2 convs
    logits (B, num_classes, H, W)

With padded convolutions (the common PyTorch form, milesial/Pytorch-UNet) the output has the input's size. The
original uses unpadded ("valid") convolutions, ReLU without normalisation and crops the skip connection to fit:
572 x 572 in, 388 x 388 out (preset ``"original"``). With bilinear up-sampling the bottleneck and every decoder level
have half the channels (17.3M instead of 31.0M parameters).

Shape legend: B batch, C channels, H, W height and width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from visionlab.util.errors import ConfigError, DataError
from visionlab.util.presets import from_preset

UPSAMPLING = ("transpose", "bilinear")


@dataclass
class UNetConfig:
    """Segmentation U-Net; the defaults are the common PyTorch form (milesial) for RGB input and 2 classes."""

    in_channels: int = 3  # C of the input image
    num_classes: int = 2  # output channels: one logit per class and pixel
    base_channels: int = 64  # channels of the first level; doubled at every level down
    depth: int = 4  # number of 2x2 poolings (4: 64 -> 1024 channels, H -> H/16)
    upsampling: str = "transpose"  # "transpose": 2x2 transposed conv; "bilinear": interpolation, halved decoder
    padding: bool = True  # True: 3x3 convs keep the size; False: "valid" convs as the paper (572 -> 388)
    batch_norm: bool = True  # True: conv (no bias) - BatchNorm - ReLU; False: conv (bias) - ReLU as the paper

    def __post_init__(self):
        if min(self.in_channels, self.num_classes, self.base_channels, self.depth) < 1:
            raise ConfigError(f"U-Net sizes must be positive, got {self}")
        if self.upsampling not in UPSAMPLING:
            raise ConfigError(f"upsampling must be one of {UPSAMPLING}, got {self.upsampling!r}")


UNET_PRESETS: dict[str, dict] = {
    "milesial": dict(),  # 3 -> 2 channels, transposed convs: 31,037,698 parameters
    "bilinear": dict(upsampling="bilinear"),  # 17,263,042 parameters
    "original": dict(in_channels=1, padding=False, batch_norm=False),  # Ronneberger: 31,030,658; 572 -> 388
    "tiny": dict(base_channels=8, depth=2),  # CPU-sized, for the built-in shapes data
    "small": dict(base_channels=16, depth=3),  # the command line's default (visionlab train unet)
}
DEFAULT_PRESET = "small"  # UNet() and unet_config()


def unet_config(preset: str = DEFAULT_PRESET, **overrides) -> UNetConfig:
    """A preset's config with some fields changed, e.g. ``unet_config("milesial", num_classes=5)``."""
    return from_preset(UNetConfig, UNET_PRESETS, preset, "U-Net", **overrides)


class DoubleConv(nn.Sequential):
    """(3x3 conv -> [BatchNorm] -> ReLU) twice; the middle width defaults to the output width."""

    def __init__(self, in_channels: int, out_channels: int, *, mid_channels: int | None = None,
                 padding: bool = True, batch_norm: bool = True):
        mid = mid_channels or out_channels
        layers = []
        for c_in, c_out in ((in_channels, mid), (mid, out_channels)):
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=int(padding), bias=not batch_norm))
            layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def _match(up: torch.Tensor, skip: torch.Tensor, *, padding: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring the up-sampled map and the skip connection to one size.

    Padded convs: pad ``up`` by the odd pixel a pooling dropped. Valid convs: crop the skip to its centre (Fig. 1).
    """
    dh, dw = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
    if padding:
        return F.pad(up, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)), skip
    top, left = dh // 2, dw // 2
    return up, skip[..., top:top + up.shape[-2], left:left + up.shape[-1]]


class Up(nn.Module):
    """Decoder level: up-sample x2, concatenate the skip connection, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, *, upsampling: str = "transpose", padding: bool = True,
                 batch_norm: bool = True):
        super().__init__()
        if upsampling == "bilinear":  # the input already has in_channels / 2 channels, like the skip
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            mid = in_channels // 2
        else:  # 2x2 "up-convolution" that halves the channels (paper)
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            mid = None
        self.padding = padding
        self.conv = DoubleConv(in_channels, out_channels, mid_channels=mid, padding=padding, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """x (B, C_in or C_in/2, h, w), skip (B, C_in/2, ~2h, ~2w) -> (B, C_out, ~2h, ~2w)."""
        x, skip = _match(self.up(x), skip, padding=self.padding)  # (B, C_in/2, H, W) each
        return self.conv(torch.cat([skip, x], dim=1))  # (B, C_in, H, W) -> (B, C_out, H, W)


class UNet(nn.Module):
    """Segmentation U-Net: DoubleConv encoder with max-pooling, decoder with skip connections, 1x1 head.

    ``UNet()`` is the command line's default, the preset small (16 channels, 3 poolings); the common PyTorch one by
    name: ``UNet.from_preset("milesial")``.

    >>> model = UNet.from_preset("tiny")
    >>> model(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 2, 32, 32])
    """

    def __init__(self, *, config: UNetConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = replace(config or unet_config(), **overrides)
        kw = dict(padding=cfg.padding, batch_norm=cfg.batch_norm)
        factor = 2 if cfg.upsampling == "bilinear" else 1  # bilinear: the bottleneck and decoder have half width
        ch = [cfg.base_channels * 2 ** i for i in range(cfg.depth + 1)]  # 64, 128, 256, 512, 1024
        self.inc = DoubleConv(cfg.in_channels, ch[0], **kw)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(ch[i], ch[i + 1] // (factor if i + 1 == cfg.depth else 1),
                                                      **kw))
            for i in range(cfg.depth))
        self.ups = nn.ModuleList(
            Up(ch[i], ch[i - 1] // (factor if i > 1 else 1), upsampling=cfg.upsampling, **kw)
            for i in range(cfg.depth, 0, -1))
        self.head = nn.Conv2d(ch[0], cfg.num_classes, kernel_size=1)

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides) -> "UNet":
        """``UNet.from_preset("bilinear", num_classes=3)``; presets: see :data:`UNET_PRESETS`."""
        return cls(config=unet_config(preset, **overrides))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (H, W) for an input (H, W): the same with padding; 572 -> 388 for the unpadded original."""
        if self.config.padding:
            return height, width
        sizes = []
        for s in (height, width):
            for _ in range(self.config.depth):
                s = (s - 4) // 2  # two valid 3x3 convs, then pool
            s -= 4  # bottleneck
            for _ in range(self.config.depth):
                s = 2 * s - 4  # up-convolution, then two valid 3x3 convs
            sizes.append(s)
        return tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, num_classes, H', W'); H' = H with padding (see :meth:`output_size`)."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise DataError(f"expected images (B, {self.config.in_channels}, H, W), got shape {tuple(x.shape)}")
        if min(self.output_size(*x.shape[-2:])) < 1 or min(x.shape[-2:]) < 2 ** self.config.depth:
            raise DataError(f"image size {tuple(x.shape[-2:])} is too small for {self.config.depth} poolings")
        skips = [self.inc(x)]  # (B, 64, H, W)
        for down in self.downs:
            skips.append(down(skips[-1]))  # (B, 2 C, H/2, W/2) per level
        h = skips.pop()  # bottleneck (B, 1024, H/16, W/16)
        for up in self.ups:
            h = up(h, skips.pop())  # (B, C/2, 2 H, 2 W) per level
        return self.head(h)  # (B, num_classes, H, W)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
