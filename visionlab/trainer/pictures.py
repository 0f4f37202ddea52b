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
from visionlab.models.vivit import ViViT
from visionlab.opt.show import PICTURES, ShowConfig
from visionlab.trainer.classify import load_classifier, model_input, run_data
from visionlab.trainer.diffuse import load_diffusion_run
from visionlab.trainer.generative import generative_data, grid_labels, progress_gif, sample_progress, to_unit
from visionlab.trainer.selection import selection_picture
from visionlab.util.device import set_threads
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import read_json
from visionlab.util.plots import overlay_figure
from visionlab.util.pictures import (attention_figure, keypoints_figure, patches_figure, progress_figure,
                                     similarity_figure, strip_figure, tubelets_figure, video_attention_figure)


def _hwc(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, C) for drawing."""
    return rearrange(x.detach().cpu().float(), "c h w -> h w c").numpy()


def _vit_run(run: str | Path, device: str, *, video: bool = False) -> tuple[ViT | ViViT, dict]:
    model, info = load_classifier(run, device=device)
    if not isinstance(model, (ViT, ViViT) if video else ViT):
        raise DataError(f"{run} holds a {info['model']} model; this picture reads a ViT run"
                        + (" or a ViViT run" if video else ""))
    return model, info


@torch.no_grad()
def attention_picture(run: str | Path, out: str | Path, *, index: int = 0, device: str = "cpu") -> dict:
    """[CLS]'s attention to every patch in each head of the last block, and the attention rollout through all the
    blocks, for test image ``index`` of a ViT run (``pool="cls"``); a ViViT run: :func:`video_attention_picture`.
    Returns the picture, the maps (h, L, L) of the last block and the rollout (L, L)."""
    model, info = _vit_run(run, device, video=True)
    if model.num_prefix_tokens != 1:
        raise DataError(f"{run} pools the mean of its tokens (no [CLS]): there is no [CLS] attention to show")
    data, _ = run_data(Path(run), info)
    if not 0 <= index < len(data.test_x):
        raise ConfigError(f"--index must be in [0, {len(data.test_x)}), got {index}")
    if isinstance(model, ViViT):
        return video_attention_picture(model, info, data, run, out, index=index)
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


def video_attention_picture(model: ViViT, info: dict, data, run: str | Path, out: str | Path, *,
                            index: int) -> dict:
    """A ViViT run's attention for test clip ``index``, one row per time index (a group of t frames). Model 2
    (factorised encoder): each time index's spatial [CLS] over its patches (each head of the last spatial block,
    and the rollout through the spatial blocks), and the temporal [CLS] over the time indices. Models 1 and 4: the
    one [CLS] over all n_t n tubelets, cut per time index. Model 3 has no token that attends across both (its
    spatial and temporal steps attend within groups), so there is no one map to show.

    Returns the picture and, model 2: ``spatial_last`` (n_t, h, 1 + n, 1 + n), ``spatial_rollout`` (n_t, 1 + n,
    1 + n), ``temporal_last`` (h, 1 + n_t, 1 + n_t), ``temporal_rollout``; models 1 and 4: ``last_block`` (h, L, L)
    and ``rollout`` (L, L), L = 1 + n_t n; every row sums to 1."""
    if model.model == 3:
        raise DataError(f"{run} is ViViT model 3 (factorised self-attention): no token attends over space and time "
                        f"together, so there is no [CLS] map to show; models 1, 2 and 4 have one")
    x = data.test_x[index:index + 1]  # (1, C, T, H, W) in [0, 1]
    device_of = next(model.parameters()).device
    logits, maps = model(model_input(x).to(device_of), return_attention=True)
    n_t, gh, gw = model.patch_embed.grid_size(*x.shape[-3:])
    t = x.shape[2] // n_t  # frames per tubelet
    frames = rearrange(x[0, :, ::t], "c t h w -> t h w c").numpy()  # the first frame of each time index
    result, temporal = {}, None
    if model.model == 2:
        spatial = [m.cpu() for m in maps["spatial"]]  # depth x (n_t, h, 1 + n, 1 + n): the time indices as a batch
        rollout = attention_rollout(spatial)  # (n_t, 1 + n, 1 + n)
        heads = rearrange(spatial[-1][:, :, 0, 1:], "t h (gh gw) -> t h gh gw", gh=gh)  # each [CLS]'s row
        rolled = rearrange(rollout[:, 0, 1:], "t (gh gw) -> t gh gw", gh=gh)
        result.update(spatial_last=spatial[-1], spatial_rollout=rollout)
        if maps.get("temporal"):
            temporal_maps = [m[0].cpu() for m in maps["temporal"]]  # depth x (h, 1 + n_t, 1 + n_t)
            temporal_rollout = attention_rollout([m[None] for m in temporal_maps])[0]  # (1 + n_t, 1 + n_t)
            temporal = (temporal_maps[-1][:, 0, 1:].numpy(), temporal_rollout[0, 1:].numpy())  # (h, n_t), (n_t,)
            result.update(temporal_last=temporal_maps[-1], temporal_rollout=temporal_rollout)
    else:
        joint = [m.cpu() for m in maps["spatiotemporal"]]  # depth x (1, h, L, L), L = 1 + n_t n
        rollout = attention_rollout(joint)[0]  # (L, L)
        heads = rearrange(joint[-1][0, :, 0, 1:], "h (t gh gw) -> t h gh gw", t=n_t, gh=gh)
        rolled = rearrange(rollout[0, 1:], "(t gh gw) -> t gh gw", t=n_t, gh=gh)
        result.update(last_block=joint[-1][0], rollout=rollout)
    predicted = info["class_names"][int(logits.argmax())]
    true = data.class_names[int(data.test_y[index])]
    path = video_attention_figure(out, frames, heads.numpy(), rolled.numpy(), temporal=temporal,
                                  title=f"{Path(run).name} (ViViT model {model.model}): true {true}, "
                                        f"predicted {predicted}")
    return {"picture": str(path), "predicted": predicted, "true": true, **result}


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


def gan_progress_picture(run: str | Path, out: str | Path, *, columns: int = 2) -> dict:
    """The grids a GAN run drew from the same fixed noise along training, one row per grid, and ``RUN/samples.gif``
    (the whole grids, one frame each): the same z, sharpening into digits. A row shows the grid's first ``columns``
    noises, each as a line of the grid's rows (a conditional grid: one row per class, so a line reads 0 1 ... 9).
    Returns the picture, the GIF and the steps shown."""
    frames = sample_progress(run)
    gif = progress_gif(run)
    info = read_json(Path(run) / "model.json")
    rows = len(grid_labels(len(info["class_names"]))) // 8 if info.get("conditional") else 8  # as sample_grid draws
    tile = frames[0][1].shape[0] // rows  # square tiles, 8 to a row; a conditional grid has its labels on the left
    lines = [rearrange(grid[:rows * tile, -8 * tile:], "(r y) (k x) c -> k y r x c", y=tile, x=tile)[:columns]
             for _, grid in frames]  # (columns, tile, rows, tile, C): noise k's images side by side
    lines = [rearrange(line, "k y r x c -> (k y) (r x) c") for line in lines]  # (columns tile, rows tile, C)
    path = progress_figure(out, lines, [f"step {step}" for step, _ in frames],
                           title=f"{Path(run).name}: samples from fixed noise along training")
    return {"picture": str(path), "gif": str(gif), "steps": [step for step, _ in frames]}


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


def show(o: ShowConfig) -> dict:
    """``visionlab show KIND SOURCE``: the picture of ``o.kind``, written to ``o.output`` (default show-KIND.png
    here, or in the run folder for the pictures of a run)."""
    o.validate()
    set_threads(o.threads)
    source = o.source or PICTURES[o.kind][1]
    run_folder = o.kind in ("attention", "positions", "reverse", "gan-progress", "selection")
    out = o.output or str((Path(source) if run_folder else Path(".")) / f"show-{o.kind}.png")
    device = "cpu" if o.device == "auto" else o.device  # one picture: the CPU is quick and always there
    calls = {
        "attention": lambda: attention_picture(source, out, index=o.index, device=device),
        "positions": lambda: positions_picture(source, out, device=device),
        "patches": lambda: patches_picture(source, out, patch_size=o.patch_size, size=o.size or 256),
        "tubelets": lambda: tubelets_picture(source, out, tubelet=o.tubelet, frames=o.frames, size=o.size or 32,
                                             index=o.index),
        "forward": lambda: forward_picture(source, out, timesteps=o.timesteps, schedule=o.schedule, show=o.show,
                                           index=o.index),
        "reverse": lambda: reverse_picture(source, out, num=o.num, steps=o.steps, show=o.show, seed=o.seed,
                                           device=device),
        "keypoints": lambda: keypoints_picture(source, out, size=o.size or 256),
        "hog": lambda: hog_picture(source, out, size=o.size or 128),
        "gan-progress": lambda: gan_progress_picture(source, out),
        "selection": lambda: selection_picture(source, out, shown=o.show),
    }
    return calls[o.kind]()
