"""The pictures of ``visionlab show``: each reads what it shows (a finished run, a built-in image or clip), computes
with the pieces that hold the idea (``components.attention.attention_rollout``, ``GaussianDiffusion.forward_strip``,
the samplers' DDIM step) and draws with ``util/pictures.py``. Each returns ``{"picture": path, ...numbers}`` so
that tests and notebooks can check what was drawn.

Shape legend: B batch, C channels, T frames, H, W, L tokens, h heads, D embedding dim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from visionlab.components.attention import attention_rollout, position_similarity
from visionlab.components.features import HogFeatures, oriented_keypoints
from visionlab.data.classification import classification_data
from visionlab.data.images import load_image
from visionlab.models.diffusion import GaussianDiffusion
from visionlab.models.vit import ViT
from visionlab.trainer.classify import load_classifier, model_input, run_data
from visionlab.trainer.diffuse import load_diffusion_run
from visionlab.trainer.generative import generative_data, to_unit
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.plots import overlay_figure
from visionlab.util.pictures import (attention_figure, keypoints_figure, patches_figure, similarity_figure,
                                     strip_figure, tubelets_figure)


def _hwc(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, C) for drawing."""
    return rearrange(x.detach().cpu().float(), "c h w -> h w c").numpy()


def _vit_run(run: str | Path, device: str) -> tuple[ViT, dict]:
    model, info = load_classifier(run, device=device)
    if not isinstance(model, ViT):
        raise DataError(f"{run} holds a {info['model']} model; attention and position pictures read a ViT run")
    return model, info


@torch.no_grad()
def attention_picture(run: str | Path, out: str | Path, *, index: int = 0, device: str = "cpu") -> dict:
    """[CLS]'s attention to every patch in each head of the last block, and the attention rollout through all the
    blocks, for test image ``index`` of a ViT run (``pool="cls"``). Returns the picture, the maps (h, L, L) of the
    last block and the rollout (L, L)."""
    model, info = _vit_run(run, device)
    if model.num_prefix_tokens != 1:
        raise DataError(f"{run} pools the mean of its tokens (no [CLS]): there is no [CLS] attention to show")
    data, _ = run_data(Path(run), info)
    if not 0 <= index < len(data.test_x):
        raise ConfigError(f"--index must be in [0, {len(data.test_x)}), got {index}")
    x = data.test_x[index:index + 1]  # (1, C, H, W) in [0, 1]
    device_of = next(model.parameters()).device
    logits, maps = model(model_input(x).to(device_of), return_attention=True)  # maps: depth x (1, h, L, L)
    grid = model.patch_embed.grid_size(*x.shape[-2:])  # (gh, gw)
    last = maps[-1][0].cpu()  # (h, L, L)
    rollout = attention_rollout(maps)[0].cpu()  # (L, L)
    heads = rearrange(last[:, 0, 1:], "h (gh gw) -> h gh gw", gh=grid[0])  # [CLS]'s row, patches only
    rolled = rearrange(rollout[0, 1:], "(gh gw) -> gh gw", gh=grid[0])
    predicted = info["class_names"][int(logits.argmax())]
    true = data.class_names[int(data.test_y[index])]
    path = attention_figure(out, _hwc(x[0]), heads.numpy(), rolled.numpy(),
                            title=f"{Path(run).name}: true {true}, predicted {predicted}")
    return {"picture": str(path), "last_block": last, "rollout": rollout, "predicted": predicted, "true": true}


@torch.no_grad()
def positions_picture(run: str | Path, out: str | Path, *, device: str = "cpu") -> dict:
    """The cosine similarity of a ViT run's learned positional embeddings, one tile per patch position (ViT
    Fig. 7). Returns the picture and the (L, L) similarity."""
    model, _ = _vit_run(run, device)
    embed = model.pos_embed
    if not hasattr(embed, "weight"):
        raise DataError(f"{run} uses fixed sine-cosine positions (pos=sincos): nothing was learned to show")
    pos = embed.weight[0, embed.num_prefix_tokens:].cpu()  # (L, D), the grid positions only
    similarity = position_similarity(pos)  # (L, L)
    path = similarity_figure(out, similarity.numpy(), embed.grid_size, title=f"{Path(run).name}: position "
                             f"embedding similarity")
    return {"picture": str(path), "similarity": similarity}


def patches_picture(image: str, out: str | Path, *, patch_size: int = 32, size: int = 256) -> dict:
    """An image (file or built-in name, resized to ``size``) cut into P x P patches with their token index."""
    if patch_size < 1 or size % patch_size:
        raise ConfigError(f"--patch-size must divide --size ({size}), got {patch_size}")
    pixels = load_image(image, size=size, announce_upscale=True).values.numpy()  # (H, W, C) in [0, 1]
    path = patches_figure(out, pixels, patch_size, title=f"{Path(image).stem}: {(size // patch_size) ** 2} tokens")
    return {"picture": str(path), "tokens": (size // patch_size) ** 2}


def tubelets_picture(data: str, out: str | Path, *, tubelet: tuple[int, int, int] = (2, 8, 8), frames: int = 4,
                     size: int = 32, index: int = 0) -> dict:
    """A clip of ``data`` (default moving-digits) cut into tubelets of t frames x h x w pixels."""
    t, ph, pw = tubelet
    if frames % t or size % ph or size % pw:
        raise ConfigError(f"the tubelet {tubelet} must divide the clip (frames {frames}, {size} x {size})")
    clips = classification_data(data, video=True, image_size=size, frames=frames)
    clip = rearrange(clips.test_x[index] if index < len(clips.test_x) else clips.test_x[0],
                     "c t h w -> t h w c").numpy()  # (T, H, W, C)
    path = tubelets_figure(out, clip, tubelet)
    return {"picture": str(path), "tokens": (frames // t) * (size // ph) * (size // pw)}


def forward_picture(data: str, out: str | Path, *, timesteps: int = 1000, schedule: str = "linear",
                    show: int = 8, index: int = 0) -> dict:
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for ``show`` values of t from 0 to T - 1 (one fixed eps),
    on test image ``index`` of ``data``. Returns the picture, the t's and each x_t's distance to x_0."""
    images = generative_data(data).test_x
    x0 = images[index % len(images)] * 2 - 1  # (C, H, W) in [-1, 1]
    diffusion = GaussianDiffusion(timesteps=timesteps, schedule=schedule)
    ts = (np.linspace(0, 1, show) ** 2 * (timesteps - 1)).round().astype(int).tolist()  # dense early: noise rises fast
    strip = diffusion.forward_strip(x0, ts)  # (K, C, H, W)
    distance = (strip - x0).flatten(1).norm(dim=1)  # (K,): grows with t
    path = strip_figure(out, [("x_t", [_hwc(to_unit(x)) for x in strip])], [f"t={t}" for t in ts],
                        title=f"forward process q(x_t | x_0), {schedule} schedule, T = {timesteps}")
    return {"picture": str(path), "timesteps": ts, "distance": distance.tolist()}


@torch.no_grad()
def reverse_picture(run: str | Path, out: str | Path, *, num: int = 3, steps: int = 20, show: int = 6,
                    seed: int = 0, device: str = "cpu") -> dict:
    """The reverse trajectory x_T ... x_0 of ``num`` samples of a diffusion run (DDIM, ``steps`` jumps), and the
    predicted x0 at each of ``show`` shown steps: one row of x_t and one of x0_hat per sample."""
    model, diffusion, info, _ = load_diffusion_run(run, device=device)
    shape = (num, *info["sample_shape"])  # (B, C, H, W)
    y = torch.arange(num, device=device) % len(info["class_names"]) if info.get("conditional") else None
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)  # x_T
    ts = diffusion.ddim_timesteps(steps)
    shown = set(np.linspace(0, len(ts) - 1, show).round().astype(int).tolist())
    trajectory, predicted, labels = [], [], []
    for k, (t, t_prev) in enumerate(zip(ts, ts[1:] + [-1])):
        tt = torch.full((num,), t, dtype=torch.long, device=device)  # (B,)
        output = model(x, tt) if y is None else model(x, tt, y)
        if k in shown:
            trajectory.append(x.clone())
        x, x0 = diffusion.ddim_step(output, x, t, t_prev)
        if k in shown:
            predicted.append(x0.clone())
            labels.append(f"t={t}")
    trajectory.append(x)
    predicted.append(x)
    labels.append("x_0")
    rows = []
    for b in range(num):
        rows.append((f"x_t #{b}", [_hwc(to_unit(step[b]).clamp(0, 1)) for step in trajectory]))
        rows.append((f"x0_hat #{b}", [_hwc(to_unit(step[b]).clamp(0, 1)) for step in predicted]))
    path = strip_figure(out, rows, labels, title=f"{Path(run).name}: DDIM reverse trajectory ({steps} steps)")
    return {"picture": str(path), "timesteps": labels}


def _grey(image: str, size: int) -> np.ndarray:
    pixels = load_image(image, size=size, announce_upscale=True).values.numpy()  # (H, W, C) in [0, 1]
    return pixels.mean(-1)  # (H, W)


def keypoints_picture(image: str, out: str | Path, *, size: int = 256) -> dict:
    """SIFT and SURF keypoints on one grey image: circles of their scale, a radius along their orientation.
    Returns the picture and the number of keypoints each detector found (and drew)."""
    grey = _grey(image, size)
    detections = [(name.upper(), *oriented_keypoints(grey, name)) for name in ("sift", "surf")]
    path = keypoints_figure(out, grey, detections, title=f"{Path(image).stem}: scale and orientation")
    return {"picture": str(path), "counts": {name.lower(): len(xy) for name, xy, _, _ in detections}}


def hog_picture(image: str, out: str | Path, *, size: int = 128) -> dict:
    """HOG (Dalal & Triggs 2005): the image and each cell's histogram of gradient orientations."""
    extractor = HogFeatures(min_side=size)
    grey = _grey(image, size)
    vector, picture = extractor.describe(grey, visualize=True)
    path = overlay_figure(out, [{"image": grey, "title": Path(image).stem, "overlay": picture,
                                 "overlay_title": "HOG cells"}])
    return {"picture": str(path), "features": len(vector)}
