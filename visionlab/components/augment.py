"""Data augmentation on batches of tensors: random affine maps (shift, rotation, shear, zoom), seeded.

Used by the classifier trainer, the reference classifier that judges generated images, and the gan-augment
experiment. Shape legend: B batch, C channels, T frames, H, W height and width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, generator: torch.Generator, *, translate: float = 0.1, rotate: float = 10.0,
                  scale: float = 0.1, shear: float = 5.0) -> torch.Tensor:
    """A random affine map per example: shift up to ``translate`` of the size, rotate and shear up to ``rotate`` /
    ``shear`` degrees, zoom by up to +-``scale``; zeros (black) fill in. A video's frames move together. No flips:
    a mirrored digit is another symbol."""
    b = x.shape[0]
    flat = x.reshape(b, -1, *x.shape[-2:])  # (B, C [* T], H, W)
    u = lambda: torch.rand(b, generator=generator) * 2 - 1  # noqa: E731  uniform in [-1, 1]
    angle, skew, zoom = u() * math.radians(rotate), u() * math.radians(shear), 1 + u() * scale
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(skew)
    theta = torch.zeros(b, 2, 3)  # output -> input sampling map, in grid units of [-1, 1]
    theta[:, 0, 0], theta[:, 0, 1] = cos / zoom, (-sin + tan * cos) / zoom
    theta[:, 1, 0], theta[:, 1, 1] = sin / zoom, (cos + tan * sin) / zoom
    theta[:, 0, 2], theta[:, 1, 2] = u() * 2 * translate, u() * 2 * translate
    grid = F.affine_grid(theta.to(x), list(flat.shape), align_corners=False)
    return F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False).reshape(x.shape)
