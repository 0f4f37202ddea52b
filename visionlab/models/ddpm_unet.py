"""DDPM's time-conditioned U-Net (Ho et al. 2020, App. B; a PixelCNN++ / Wide-ResNet backbone); the segmentation
U-Net is in :mod:`.unet`.

The network predicts the noise eps in x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, so the output has the input's
shape (2C channels with a learned variance). Every residual block receives the time step::

    temb = MLP(sinusoids(t))                                        (B, 4 ch)     + label embedding if conditional
    h    = Conv3x3(SiLU(GroupNorm(x))) + Linear(SiLU(temb))[:, :, None, None]
    h    = Conv3x3(Dropout(SiLU(GroupNorm(h))))                     zero-initialised: the block starts as identity
    out  = shortcut(x) + h                                          shortcut: 1x1 conv where the channels change

Levels run at ch * ch_mult[i] channels with ``num_res_blocks`` blocks each (``num_res_blocks + 1`` on the way up,
one per skip), a strided 3x3 convolution between levels going down and nearest-neighbour x2 + 3x3 convolution going
up; single-head self-attention (GroupNorm, then softmax(QK^T / sqrt(C)) V over the H W positions) follows the blocks
of the levels whose resolution is in ``attention_resolutions``, and the middle has block - attention - block.
As in DDPM's code, the last convolution of every block, attention's output projection and the output convolution
start at zero: a fresh network outputs 0, the first backward pass reaches only the output convolution, and from the
third (after two optimiser steps) every parameter gets a gradient (``zero_init=False`` turns this off).

Shape legend: B batch, C channels, H, W height and width, L = H W tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from visionlab.components.attention import MultiHeadAttention
from visionlab.components.embeddings import LabelEmbedding, TimestepEmbedder
from visionlab.components.initialization import xavier_uniform_init
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.presets import from_preset


def _check_image(x: torch.Tensor, channels: int, multiple: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise DataError(f"expected images (B, {channels}, H, W), got shape {tuple(x.shape)}")
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise DataError(f"image size {tuple(x.shape[-2:])} must be a multiple of {multiple} (one halving per level)")


@dataclass
class DiffusionUNetConfig:
    """DDPM's U-Net; the defaults are its CIFAR-10 model (35,746,307 parameters)."""

    image_size: int = 32  # H = W the attention resolutions refer to; other multiples of 2^(levels-1) also run
    in_channels: int = 3  # C of the images
    base_channels: int = 128  # ch: width of the first level
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)  # level i has ch * channel_mult[i] channels, at H / 2^i
    num_res_blocks: int = 2  # residual blocks per level going down (one more per level going up)
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes with self-attention after each block
    dropout: float = 0.1  # inside each residual block, before its second convolution
    norm_groups: int = 32  # GroupNorm groups; every width must be divisible by it
    num_classes: int = 0  # > 0: class-conditional (label embedding with a null class, for guidance)
    class_dropout: float = 0.1  # probability that a training label is replaced by the null class
    learn_sigma: bool = False  # True: 2C output channels, the second C for the variance (Nichol & Dhariwal)
    time_embed_mult: int = 4  # the time embedding has time_embed_mult * ch dims (512 for ch = 128)
    zero_init: bool = True  # zero the last conv of each block, attention's output and the output conv (DDPM code)

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)
        self.attention_resolutions = tuple(self.attention_resolutions)
        if min(self.image_size, self.in_channels, self.base_channels, self.num_res_blocks, self.norm_groups,
               self.time_embed_mult, len(self.channel_mult), *self.channel_mult) < 1 or self.num_classes < 0:
            raise ConfigError(f"U-Net sizes must be positive (num_classes >= 0), got {self}")
        if self.image_size % 2 ** (len(self.channel_mult) - 1):
            raise ConfigError(f"image_size {self.image_size} is not divisible by 2^{len(self.channel_mult) - 1}")
        for m in self.channel_mult:
            if self.base_channels * m % self.norm_groups:
                raise ConfigError(f"width {self.base_channels * m} is not divisible by norm_groups {self.norm_groups}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)


DIFFUSION_UNET_PRESETS: dict[str, dict] = {
    "cifar10": dict(),  # DDPM on CIFAR-10, 32 x 32: 35,746,307 parameters
    # DDPM on CelebA-HQ / LSUN at 256 x 256 ("114M" in the paper)
    "celebahq256": dict(image_size=256, channel_mult=(1, 1, 2, 2, 4, 4), dropout=0.0),
    # CPU-sized: 16 x 16 grey digits (class-conditional, for guidance), and 32 x 32 colour images
    "digits": dict(image_size=16, in_channels=1, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                   attention_resolutions=(8,), norm_groups=8, num_classes=10),
    "tiny32": dict(image_size=32, base_channels=16, channel_mult=(1, 2, 4), num_res_blocks=1,
                   attention_resolutions=(8,), norm_groups=8),
}


DEFAULT_PRESET = "digits"  # DiffusionUNet() and diffusion_unet_config(): the command line's default data's (digits)


def diffusion_unet_config(preset: str = DEFAULT_PRESET, **overrides) -> DiffusionUNetConfig:
    """A preset's config with some fields changed, e.g. ``diffusion_unet_config("cifar10", num_classes=10)``."""
    return from_preset(DiffusionUNetConfig, DIFFUSION_UNET_PRESETS, preset, "diffusion U-Net", **overrides)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """DDPM residual block: GN-SiLU-conv, + projected time embedding, GN-SiLU-dropout-conv, + shortcut."""

    def __init__(self, in_channels: int, out_channels: int, *, temb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = _norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.temb_proj = nn.Sequential(nn.SiLU(), nn.Linear(temb_dim, out_channels))
        self.norm2 = _norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W), temb (B, T) -> (B, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.temb_proj(temb)[:, :, None, None]  # the time step, broadcast over H, W
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))  # (B, C_out, H, W)
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H W positions of a feature map, with a residual connection."""

    def __init__(self, channels: int, *, groups: int):
        super().__init__()
        self.norm = _norm(channels, groups)
        self.attn = MultiHeadAttention(channels, num_heads=1)  # q, k, v: 1x1 convs == Linear per position

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        h, w = x.shape[-2:]
        tokens = rearrange(self.norm(x), "b c h w -> b (h w) c")  # (B, L, C)
        out = self.attn(tokens)  # softmax(Q K^T / sqrt(C)) V, then the output projection: (B, L, C)
        return x + rearrange(out, "b (h w) c -> b c h w", h=h, w=w)  # (B, C, H, W)


class Downsample(nn.Module):
    """3x3 convolution with stride 2: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Level(nn.Module):
    """One resolution of the DDPM U-Net: residual blocks, each followed by attention where asked."""

    def __init__(self, channels_in: list[int], out_channels: int, *, attention: bool, temb_dim: int, dropout: float,
                 groups: int):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(c, out_channels, temb_dim=temb_dim, dropout=dropout, groups=groups)
                                    for c in channels_in)
        self.attns = nn.ModuleList((AttentionBlock(out_channels, groups=groups) if attention else nn.Identity())
                                   for _ in channels_in)


class DiffusionUNet(nn.Module):
    """DDPM's time-conditioned U-Net: eps_theta(x_t, t[, y]) with the input's shape (2C channels if learn_sigma).

    ``DiffusionUNet()`` is the command line's default for its default data, the preset digits; DDPM's CIFAR-10 model
    by name: ``DiffusionUNet.from_preset("cifar10")``.

    >>> model = DiffusionUNet.from_preset("tiny32")
    >>> model(torch.zeros(2, 3, 32, 32), torch.tensor([0, 999])).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(self, *, config: DiffusionUNetConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = replace(config or diffusion_unet_config(), **overrides)
        ch, groups, temb_dim = cfg.base_channels, cfg.norm_groups, cfg.base_channels * cfg.time_embed_mult
        kw = dict(temb_dim=temb_dim, dropout=cfg.dropout, groups=groups)
        self.time_embed = TimestepEmbedder(dim=temb_dim, frequency_dim=ch, hidden_dim=temb_dim)  # (B, 4 ch)
        self.label_embed = (LabelEmbedding(num_classes=cfg.num_classes, dim=temb_dim, dropout=cfg.class_dropout)
                            if cfg.num_classes else None)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        widths = [ch * m for m in cfg.channel_mult]
        skip_channels, c, size = [ch], ch, cfg.image_size  # channels of every map kept for the way up
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, w in enumerate(widths):
            ins = [c] + [w] * (cfg.num_res_blocks - 1)
            self.down.append(Level(ins, w, attention=size in cfg.attention_resolutions, **kw))
            c = w
            skip_channels += [w] * cfg.num_res_blocks
            if i < len(widths) - 1:
                self.downsample.append(Downsample(c))
                skip_channels.append(c)
                size //= 2
        self.mid = nn.ModuleList([ResBlock(c, c, **kw), AttentionBlock(c, groups=groups), ResBlock(c, c, **kw)])

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            ins = []
            for _ in range(cfg.num_res_blocks + 1):
                ins.append(c + skip_channels.pop())
                c = w
            self.up.append(Level(ins, w, attention=size in cfg.attention_resolutions, **kw))
            if i > 0:
                self.upsample.append(Upsample(c))
                size *= 2
        self.norm_out = _norm(c, groups)
        self.conv_out = nn.Conv2d(c, cfg.out_channels, 3, padding=1)
        self.initialize_weights()

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides) -> "DiffusionUNet":
        """``DiffusionUNet.from_preset("digits")``; presets: see :data:`DIFFUSION_UNET_PRESETS`."""
        return cls(config=diffusion_unet_config(preset, **overrides))

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """DDPM's init: Xavier-uniform (TF's fan-avg default), biases 0; zeros at the ends of the residual paths."""
        xavier_uniform_init(self, kinds=(nn.Conv2d, nn.Linear))
        if self.label_embed is not None:
            nn.init.normal_(self.label_embed.table.weight, std=0.02)
        if self.config.zero_init:  # every block and attention starts as the identity, the output as 0
            for m in self.modules():
                last = (m.conv2 if isinstance(m, ResBlock) else m.attn.proj if isinstance(m, AttentionBlock)
                        else None)
                if last is not None:
                    nn.init.zeros_(last.weight)
                    nn.init.zeros_(last.bias)
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)

    @property
    def null_class(self) -> int | None:
        """The label that asks for the unconditional output (``num_classes``), None if unconditional."""
        return self.config.num_classes if self.config.num_classes else None

    def embed(self, t: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Time steps (B,) or a scalar, labels (B,) or None -> conditioning vector (B, 4 ch)."""
        t = torch.as_tensor(t, device=self.conv_in.weight.device).reshape(-1).expand(batch)  # (B,)
        temb = self.time_embed(t)  # (B, 4 ch)
        if self.label_embed is not None:
            if y is None:  # no label: the null class, i.e. the unconditional model
                y = torch.full((batch,), self.config.num_classes, dtype=torch.long, device=temb.device)
            temb = temb + self.label_embed(y)
        return temb

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B, C, H, W), t (B,), labels y (B,) or None -> eps prediction (B, C, H, W) ((B, 2C, H, W) with sigma)."""
        _check_image(x, self.config.in_channels, 2 ** (len(self.config.channel_mult) - 1))
        temb = self.embed(t, y, x.shape[0])  # (B, 4 ch)
        h = self.conv_in(x)  # (B, ch, H, W)
        skips = [h]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attns):
                h = attn(block(h, temb))  # (B, ch mult_i, H / 2^i, W / 2^i)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # (B, ch mult_i, H / 2^(i+1), W / 2^(i+1))
                skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb)), temb)  # block - attention - block, lowest resolution
        for i, level in enumerate(self.up):
            for block, attn in zip(level.blocks, level.attns):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), temb))  # concat the skip: (B, C + C_skip, ...)
            if i < len(self.upsample):
                h = self.upsample[i](h)  # (B, C, 2 H, 2 W)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C_out, H, W)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
