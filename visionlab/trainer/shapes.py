"""``visionlab shapes``: each step's tensor shape through a ViT or ViViT, recorded by forward hooks on PyTorch's meta
device (``util.shapes``), in the words of the notes' shape walk-through."""

from __future__ import annotations

import torch

from visionlab.models.vit import ViT, vit_config
from visionlab.models.vivit import ViViT, vivit_config
from visionlab.opt import ShapesConfig
from visionlab.util.errors import ConfigError
from visionlab.util.shapes import format_steps, trace_shapes


# What each hooked module does, in the words of the notes' shape walk-through.
SHAPE_STEPS = {
    "patch_embed.proj": "patch embedding: conv, kernel = stride = patch size, D output channels",
    "patch_embed.flatten": "flatten the patch grid: L = number of patches",
    "patch_embed.transpose": "transpose to tokens (B, L, D)",
    "cls_token": "prepend the [CLS] token: L + 1",
    "pos_embed": "+ positional embedding (same shape)",
    "encoder.blocks": "transformer block",
    "encoder.norm": "LayerNorm",
    "spatial_pool": "one vector per time index (its [CLS])",
    "temporal_cls_token": "prepend the temporal [CLS]",
    "temporal_pos_embed": "+ temporal positional embedding",
    "temporal_encoder.blocks": "temporal transformer block",
    "temporal_encoder.norm": "LayerNorm",
    "pool": "pool: the [CLS] token (token 0) or the mean of the tokens",
    "head": "linear head -> class scores",
}


def shapes_table(o: ShapesConfig) -> str:
    """The table of ``visionlab shapes``: each step's output shape through the ViT or ViViT that ``o`` describes,
    traced on PyTorch's meta device (instant at any size)."""
    o.validate()
    channels, image_size, frames = o.channels, o.image_size, o.frames
    sizes = {} if o.num_classes is None else {"num_classes": o.num_classes}
    if o.model == "vit":
        config = vit_config(o.preset, image_size=image_size, in_channels=channels,
                            **({"patch_size": o.patch_size} if o.patch_size is not None else {}), **sizes)
        with torch.device("meta"):
            network = ViT(config=config)
        inputs = torch.empty(1, channels, image_size, image_size, device="meta")  # (B, C, H, W)
    elif o.model == "vivit":
        tubelet = o.tubelet
        t, p = (tubelet[0], tubelet[1]) if tubelet else (2, o.patch_size if o.patch_size is not None else 16)
        if tubelet and tubelet[1] != tubelet[2]:
            raise ConfigError(f"tubelets have square patches: got h = {tubelet[1]}, w = {tubelet[2]}")
        config = vivit_config(o.preset, model=o.vivit_model, image_size=image_size, num_frames=frames,
                              tubelet_time=t, patch_size=p, in_channels=channels, **sizes)
        with torch.device("meta"):
            network = ViViT(config=config)
        inputs = torch.empty(1, channels, frames, image_size, image_size, device="meta")  # (B, C, T, H, W)
    else:
        raise ConfigError(f"shapes knows vit and vivit, not {o.model!r}")
    steps = trace_shapes(network, inputs, list(SHAPE_STEPS))
    return format_steps(steps, SHAPE_STEPS)
