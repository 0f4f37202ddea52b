"""Embeddings: turning pictures, videos, positions and time steps into vectors a transformer can read.

A transformer reads a sequence of L tokens of width D, a tensor (B, L, D). Pictures and videos become that sequence
like this (ViT, Dosovitskiy et al. 2021; ViViT, Arnab et al. 2021):

- **Patches** (:class:`PatchEmbed`): cut a (C, H, W) image into P x P patches, flatten each into a C P^2 vector and
  project it linearly to D. A convolution with kernel = stride = P does both at once::

      (B, C, H, W) -conv-> (B, D, H/P, W/P) -flatten-> (B, D, L) -transpose-> (B, L, D),   L = (H/P)(W/P)

  e.g. (1, 3, 224, 224) -> (1, 768, 14, 14) -> (1, 768, 196) -> (1, 196, 768).
- **Tubelets** (:class:`TubeletEmbed`): the same in space-time with a Conv3d of kernel = stride = (t, h, w);
  (1, 3, 16, 224, 224) -> (1, 768, 8, 14, 14) -> (1, 768, 1568) -> (1, 1568, 768). A tubelet kernel can start from
  an image model's 2-D kernel E: "central frame" puts E at the middle time index and zeros elsewhere, "inflation"
  repeats E over time and divides by t; either way a video of identical frames embeds exactly as the image does.
- **Uniform frame sampling** (:class:`FrameEmbed`): pick frames evenly over the clip (:func:`uniform_frame_sampling`)
  and cut each one into 2-D patches with the image model's own patch embedding.
- **[CLS]** (:class:`ClassToken`): a learned vector prepended to the sequence, (B, L, D) -> (B, 1 + L, D); its
  output after the encoder summarises the whole input for classification.
- **Positions**: attention is blind to order, so a position vector is added to each token. Learned
  (:class:`LearnedPositionalEmbedding`, one vector per grid cell, resized by interpolation for another input size)
  or fixed 2-D sine-cosine (:func:`sincos_2d`, MAE / DiT): half the channels encode the column x, half the row y,
  each as ``[sin(x w_i), cos(x w_i)]`` with ``w_i = 1 / 10000^(i / (D/4))``, i = 0 .. D/4 - 1.
- **Time steps** (:func:`timestep_embedding`, diffusion): ``[cos(t f_i), sin(t f_i)]``,
  ``f_i = max_period^(-i / (D/2))`` (the Transformer's sinusoids applied to the noise level t).

Shape legend: B batch, C channels, T frames, H, W height and width, P patch size, L tokens, D embedding dim.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from visionlab.util.errors import ConfigError, DataError

TUBELET_INITS = ("random", "central-frame", "inflate")


def _tuple(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, Sequence) else (value,) * n


def _check_input(x: torch.Tensor, ndim: int, channels: int, layout: str) -> None:
    if x.dim() != ndim:
        raise DataError(f"expected a {ndim}-D input {layout}, got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise DataError(f"expected {channels} channels in {layout}, got {x.shape[1]} (input shape {tuple(x.shape)})")


def _grid(sizes: Sequence[int], patch: Sequence[int], names: str) -> tuple[int, ...]:
    """Number of patches along each axis; every size must be a multiple of its patch size."""
    for n, s, p in zip(names.split(), sizes, patch):
        if s % p:
            raise DataError(f"input {n} = {s} is not divisible by the patch size {p}; resize or crop to a multiple")
    return tuple(s // p for s, p in zip(sizes, patch))


class PatchEmbed(nn.Module):
    """Image -> patch tokens: Conv2d (kernel = stride = P), flatten, transpose."""

    def __init__(self, *, in_channels: int = 3, dim: int = 768, patch_size: int | tuple[int, int] = 16):
        super().__init__()
        self.in_channels, self.patch_size = in_channels, _tuple(patch_size, 2)
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.flatten = nn.Flatten(2)  # (B, D, H/P, W/P) -> (B, D, L)
        self.transpose = Rearrange("b d l -> b l d")  # (B, D, L) -> (B, L, D)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Patches along (H, W): (H/P, W/P)."""
        return _grid((height, width), self.patch_size, "height width")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, D), L = (H/P)(W/P)."""
        _check_input(x, 4, self.in_channels, "(B, C, H, W)")
        self.grid_size(*x.shape[-2:])
        return self.transpose(self.flatten(self.proj(x)))  # (B, D, H/P, W/P) -> (B, D, L) -> (B, L, D)


class TubeletEmbed(nn.Module):
    """Video -> tubelet tokens: Conv3d (kernel = stride = (t, h, w)), flatten, transpose."""

    def __init__(self, *, in_channels: int = 3, dim: int = 768, tubelet_size: tuple[int, int, int] = (2, 16, 16)):
        super().__init__()
        self.in_channels, self.tubelet_size = in_channels, _tuple(tubelet_size, 3)
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=self.tubelet_size, stride=self.tubelet_size)
        self.flatten = nn.Flatten(2)  # (B, D, T/t, H/h, W/w) -> (B, D, L)
        self.transpose = Rearrange("b d l -> b l d")  # (B, D, L) -> (B, L, D)

    def grid_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Tubelets along (T, H, W): (T/t, H/h, W/w)."""
        return _grid((frames, height, width), self.tubelet_size, "frames height width")

    @torch.no_grad()
    def init_from_2d(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                     mode: str = "central-frame") -> None:
        """Initialise from an image model's patch kernel (D, C, h, w): "central-frame", "inflate" or "random"."""
        if mode not in TUBELET_INITS:
            raise ConfigError(f"tubelet init must be one of {TUBELET_INITS}, got {mode!r}")
        if mode == "random":
            self.proj.reset_parameters()
            return
        t = self.tubelet_size[0]
        expected = self.proj.weight.shape[:2] + self.proj.weight.shape[3:]
        if tuple(weight.shape) != tuple(expected):
            raise ConfigError(f"2-D kernel must have shape {tuple(expected)}, got {tuple(weight.shape)}")
        if mode == "central-frame":  # ViViT Sec. 3.4: E at the middle time index floor(t/2), zeros elsewhere
            self.proj.weight.zero_()
            self.proj.weight[:, :, t // 2] = weight
        else:  # "filter inflation" (Carreira & Zisserman 2017): E repeated over time, divided by t
            self.proj.weight.copy_(weight.unsqueeze(2).expand_as(self.proj.weight) / t)
        if bias is not None:
            self.proj.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, L, D), L = (T/t)(H/h)(W/w), time-major."""
        _check_input(x, 5, self.in_channels, "(B, C, T, H, W)")
        self.grid_size(*x.shape[-3:])
        return self.transpose(self.flatten(self.proj(x)))  # (B, D, T/t, H/h, W/w) -> (B, D, L) -> (B, L, D)


def uniform_frame_sampling(video: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Pick ``num_frames`` frames evenly spread over a clip: (B, C, T, H, W) -> (B, C, num_frames, H, W)."""
    total = video.shape[2]
    if not 1 <= num_frames <= total:
        raise DataError(f"cannot sample {num_frames} frames from a clip of {total}")
    index = ((torch.arange(num_frames) + 0.5) * total / num_frames).long()  # the middle of T/n equal segments
    return video[:, :, index.to(video.device)]


class FrameEmbed(nn.Module):
    """Uniform frame sampling's embedding: each frame cut into 2-D patches by one shared :class:`PatchEmbed`."""

    def __init__(self, *, in_channels: int = 3, dim: int = 768, patch_size: int | tuple[int, int] = 16):
        super().__init__()
        self.in_channels = in_channels
        self.patch = PatchEmbed(in_channels=in_channels, dim=dim, patch_size=patch_size)

    def grid_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Patches along (T, H, W): (T, H/P, W/P)."""
        return (frames,) + self.patch.grid_size(height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, L, D), L = T (H/P)(W/P), time-major."""
        _check_input(x, 5, self.in_channels, "(B, C, T, H, W)")
        b = x.shape[0]
        x = rearrange(x, "b c t h w -> (b t) c h w")  # (B T, C, H, W)
        x = self.patch(x)  # (B T, N, D), N = (H/P)(W/P)
        return rearrange(x, "(b t) n d -> b (t n) d", b=b)  # (B, L, D)


class ClassToken(nn.Module):
    """Prepend a learned [CLS] token: (B, L, D) -> (B, 1 + L, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.token = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.normal_(self.token, std=1e-6)  # as timm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, 1 + L, D); the [CLS] is token 0."""
        cls = self.token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        return torch.cat([cls, x], dim=1)  # (B, 1 + L, D)


_AXES = {1: "t", 2: "h w", 3: "t h w"}
_MODES = {1: "linear", 2: "bicubic", 3: "trilinear"}


class LearnedPositionalEmbedding(nn.Module):
    """One learned vector per token of a 1-, 2- or 3-D grid (plus prefix tokens such as [CLS]), added to x."""

    def __init__(self, *, grid_size: Sequence[int], dim: int, num_prefix_tokens: int = 1):
        super().__init__()
        self.grid_size, self.num_prefix_tokens = tuple(grid_size), num_prefix_tokens
        if len(self.grid_size) not in _AXES:
            raise ConfigError(f"grid_size must have 1, 2 or 3 axes, got {self.grid_size}")
        self.weight = nn.Parameter(torch.empty(1, num_prefix_tokens + math.prod(self.grid_size), dim))
        nn.init.trunc_normal_(self.weight, std=0.02)  # ViT / timm: trunc-normal std 0.02, cut at +-2

    def interpolate(self, grid_size: Sequence[int]) -> torch.Tensor:
        """The embedding resized to another grid: (1, prefix + prod(grid), D); prefix tokens are kept as they are."""
        grid_size = tuple(grid_size)
        if grid_size == self.grid_size:
            return self.weight
        if len(grid_size) != len(self.grid_size):
            raise DataError(f"positional embedding has a {len(self.grid_size)}-D grid, asked for {grid_size}")
        prefix, pos = self.weight[:, :self.num_prefix_tokens], self.weight[:, self.num_prefix_tokens:]
        axes = _AXES[len(grid_size)]
        pos = rearrange(pos, f"1 ({axes}) d -> 1 d {axes}", **dict(zip(axes.split(), self.grid_size)))  # (1, D, *g)
        pos = F.interpolate(pos, size=grid_size, mode=_MODES[len(grid_size)], align_corners=False)  # (1, D, *g')
        pos = rearrange(pos, f"1 d {axes} -> 1 ({axes}) d")  # (1, prod(g'), D)
        return torch.cat([prefix, pos], dim=1)  # (1, prefix + prod(g'), D)

    def forward(self, x: torch.Tensor, grid_size: Sequence[int] | None = None) -> torch.Tensor:
        """x (B, L, D) + embedding for ``grid_size`` (default: the built one) -> (B, L, D)."""
        pos = self.interpolate(self.grid_size if grid_size is None else grid_size)  # (1, L, D)
        if pos.shape[1] != x.shape[1]:
            raise DataError(f"positional embedding has {pos.shape[1]} tokens, input has {x.shape[1]}")
        return x + pos  # (B, L, D)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Positions (N,) -> (N, dim): [sin(p w_i), cos(p w_i)], w_i = 1 / 10000^(i / (dim/2))."""
    if dim % 2:
        raise ConfigError(f"sin-cos embedding dim must be even, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # (dim/2,)
    angles = positions.double()[:, None] * omega[None]  # (N, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()  # (N, dim)


def sincos_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding (MAE / DiT): (grid_h grid_w, dim), rows of the grid one after another.

    The first dim/2 channels encode the column x, the last dim/2 the row y.
    """
    if dim % 4:
        raise ConfigError(f"2-D sin-cos embedding dim must be divisible by 4, got {dim}")
    ys, xs = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")  # (h, w) each
    return torch.cat([sincos_1d(dim // 2, xs.flatten()), sincos_1d(dim // 2, ys.flatten())], dim=1)  # (h w, dim)


class SinCosPositionalEmbedding(nn.Module):
    """Fixed 2-D sin-cos positions for any grid, zeros for the prefix tokens; no parameters."""

    def __init__(self, *, grid_size: Sequence[int], dim: int, num_prefix_tokens: int = 1):
        super().__init__()
        self.grid_size, self.dim, self.num_prefix_tokens = tuple(grid_size), dim, num_prefix_tokens
        sincos_2d(dim, 1, 1)  # fail early on a bad dim

    def forward(self, x: torch.Tensor, grid_size: Sequence[int] | None = None) -> torch.Tensor:
        """x (B, L, D) + sin-cos embedding for ``grid_size`` -> (B, L, D)."""
        grid_h, grid_w = self.grid_size if grid_size is None else grid_size
        pos = sincos_2d(self.dim, grid_h, grid_w).to(device=x.device, dtype=x.dtype)  # (h w, D)
        pos = F.pad(pos, (0, 0, self.num_prefix_tokens, 0))[None]  # (1, prefix + h w, D)
        if pos.shape[1] != x.shape[1]:
            raise DataError(f"positional embedding has {pos.shape[1]} tokens, input has {x.shape[1]}")
        return x + pos  # (B, L, D)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) time steps (B,) -> (B, dim): [cos(t f_i), sin(t f_i)]."""
    t = torch.as_tensor(t).reshape(-1).float()  # (B,)
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t[:, None] * freqs[None]  # (B, dim/2): f_i = max_period^(-i / (dim/2))
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, 2 (dim/2))
    return F.pad(emb, (0, dim % 2))  # (B, dim): an odd dim gets one zero channel


class TimestepEmbedder(nn.Module):
    """Diffusion time step -> conditioning vector: sinusoids (:func:`timestep_embedding`) -> Linear -> SiLU -> Linear.

    DDPM's U-Net: 128 frequencies -> 512 -> 512 (Ho et al. 2020, App. B); DiT: 256 -> D -> D (Peebles & Xie 2023).
    """

    def __init__(self, *, dim: int, frequency_dim: int = 256, hidden_dim: int | None = None,
                 max_period: float = 10000):
        super().__init__()
        hidden_dim = hidden_dim or dim
        self.frequency_dim, self.max_period = frequency_dim, max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Time steps (B,) (integers or fractions) -> (B, dim)."""
        freq = timestep_embedding(t, self.frequency_dim, self.max_period)  # (B, frequency_dim)
        return self.mlp(freq.to(self.mlp[0].weight.dtype))  # (B, dim)


class LabelEmbedding(nn.Module):
    """Class label -> vector, with one extra "null" row (index ``num_classes``) for classifier-free guidance.

    While training, each label is replaced by the null class with probability ``dropout`` (Ho & Salimans 2022), so
    the one network learns both p(x | y) and p(x); at sampling time ``y = num_classes`` asks for the unconditional
    output. The table has ``num_classes + 1`` rows even when ``dropout`` is 0, so guidance is always possible.
    """

    def __init__(self, *, num_classes: int, dim: int, dropout: float = 0.1):
        super().__init__()
        if num_classes < 1 or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"label embedding needs num_classes >= 1 and 0 <= dropout < 1, got "
                              f"{num_classes} and {dropout}")
        self.num_classes, self.dropout = num_classes, dropout
        self.table = nn.Embedding(num_classes + 1, dim)  # row num_classes: the null class

    @property
    def null_class(self) -> int:
        return self.num_classes

    def drop(self, y: torch.Tensor, *, force_drop: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Labels with some replaced by the null class: at random in training, or where ``force_drop`` is True."""
        if force_drop is None:
            if not (self.training and self.dropout > 0):
                return y
            force_drop = torch.rand(y.shape, generator=generator, device=y.device) < self.dropout
        return torch.where(force_drop.to(y.device), torch.full_like(y, self.num_classes), y)

    def forward(self, y: torch.Tensor, *, force_drop: torch.Tensor | None = None) -> torch.Tensor:
        """Labels (B,) in [0, num_classes] (num_classes = null) -> (B, dim)."""
        if y.dtype.is_floating_point or y.dim() != 1:
            raise DataError(f"labels must be a 1-D integer tensor (B,), got {y.dtype} of shape {tuple(y.shape)}")
        if not y.is_meta and ((y < 0) | (y > self.num_classes)).any():
            raise DataError(f"labels must lie in [0, {self.num_classes}] ({self.num_classes} = null class), got "
                            f"{y.min().item()} .. {y.max().item()}")
        return self.table(self.drop(y, force_drop=force_drop))  # (B, dim)
