"""Pictures that show an idea at work (``visionlab show``): attention maps, positional similarity, patches, and the
animated GIFs of a run over training (a GAN's fixed-noise grids, a fit's selected pixels and error map).

Each function takes plain arrays (the computation is done where its data lives: attention rollout in
``components/attention.py``, a run's maps in ``trainer/pictures.py``) and writes one small PNG with matplotlib's
Agg back end, atomically (``util.plots._save``).

Shape legend: H, W image height and width, C channels, L tokens, h heads, P patch size.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from visionlab.util.io import atomic_write
from visionlab.util.plots import _save, _show, plt

DPI_SMALL = 80  # README pictures stay small (~100 KB)


def _upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (gh, gw) map of patch values -> (H, W), each patch's value over its P x P pixels (nearest)."""
    gh, gw = grid.shape
    return np.kron(grid, np.ones((size[0] // gh, size[1] // gw)))


def attention_figure(path: str | os.PathLike, image: np.ndarray, heads: np.ndarray, rollout: np.ndarray, *,
                     title: str = "") -> Path:
    """The image, what [CLS] attends to in each head of the last block, and the rollout through all blocks.

    ``image`` (H, W, C) in [0, 1]; ``heads`` (h, gh, gw) and ``rollout`` (gh, gw): [CLS]'s attention to each patch.
    """
    size = image.shape[:2]
    panels = [("input", None)] + [(f"head {i}", m) for i, m in enumerate(heads)] + [("rollout", rollout)]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 2.0), squeeze=False)
    for ax, (name, grid) in zip(axes[0], panels):
        _show(ax, image, name)
        if grid is not None:
            ax.imshow(_upsample(grid, size), cmap="inferno", alpha=0.6, vmin=0, vmax=max(grid.max(), 1e-8))
    if title:
        fig.suptitle(title, fontsize=9)
    return _save_small(fig, path)


def similarity_figure(path: str | os.PathLike, similarity: np.ndarray, grid: tuple[int, int], *,
                      title: str = "") -> Path:
    """ViT Fig. 7 (centre): for each patch position (row r, column c), a small (gh, gw) tile of the cosine
    similarity of its positional embedding with every position's. ``similarity``: (L, L) with L = gh gw."""
    gh, gw = grid
    fig, axes = plt.subplots(gh, gw, figsize=(0.55 * gw + 0.8, 0.55 * gh + 0.4), squeeze=False)
    im = None
    for k, ax in enumerate(axes.flat):
        im = ax.imshow(similarity[k].reshape(gh, gw), cmap="viridis", vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    for c in range(gw):
        axes[-1, c].set_xlabel(str(c + 1), fontsize=7)
    for r in range(gh):
        axes[r, 0].set_ylabel(str(r + 1), fontsize=7)
    fig.colorbar(im, ax=axes, fraction=0.04, pad=0.02, label="cosine similarity")
    fig.suptitle(title or "positional embedding similarity", fontsize=9)
    return _save_small(fig, path)


def patches_figure(path: str | os.PathLike, image: np.ndarray, patch_size: int, *, title: str = "") -> Path:
    """The image cut into P x P patches (grid lines) with each patch's token index (row-major, as the patch
    embedding flattens them), and the patches as the sequence the transformer reads."""
    h, w = image.shape[:2]
    gh, gw = h // patch_size, w // patch_size
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.4), gridspec_kw={"width_ratios": [1, 1.3]})
    _show(left, image, f"{gh} x {gw} patches of {patch_size} x {patch_size}")
    for k in range(1, gh):
        left.axhline(k * patch_size - 0.5, color="white", lw=0.8)
    for k in range(1, gw):
        left.axvline(k * patch_size - 0.5, color="white", lw=0.8)
    font = max(4, min(9, int(60 / max(gh, gw))))
    for r in range(gh):
        for c in range(gw):
            left.text((c + 0.5) * patch_size - 0.5, (r + 0.5) * patch_size - 0.5, str(r * gw + c), ha="center",
                      va="center", fontsize=font, color="yellow")
    tokens = [image[r * patch_size:(r + 1) * patch_size, c * patch_size:(c + 1) * patch_size]
              for r in range(gh) for c in range(gw)]
    columns = min(len(tokens), 16)
    _show(right, _tile(tokens, columns), f"tokens 0 .. {len(tokens) - 1}, row by row")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save_small(fig, path)


def tubelets_figure(path: str | os.PathLike, clip: np.ndarray, tubelet: tuple[int, int, int], *,
                    title: str = "") -> Path:
    """A clip (T, H, W, C) cut into tubelets of t frames x h x w pixels: one row per group of t frames, each
    tubelet outlined in its own colour and numbered with its token index (time, then rows, then columns)."""
    t, ph, pw = tubelet
    frames, h, w = clip.shape[:3]
    nt, gh, gw = frames // t, h // ph, w // pw
    fig, axes = plt.subplots(nt, t, figsize=(1.6 * t, 1.6 * nt + 0.3), squeeze=False)
    colours = plt.get_cmap("tab20")
    for f in range(nt * t):
        ax = axes[f // t, f % t]
        _show(ax, clip[f], f"frame {f}", vmin=0, vmax=1)
        for r in range(gh):
            for c in range(gw):
                index = (f // t) * gh * gw + r * gw + c
                ax.add_patch(plt.Rectangle((c * pw - 0.5, r * ph - 0.5), pw, ph, fill=False, lw=1.0,
                                           color=colours(index % 20)))
                if f % t == 0:
                    ax.text(c * pw + 0.5, r * ph + 1.5, str(index), fontsize=6, color="yellow", va="top")
    fig.suptitle(title or f"tubelets of {t} x {ph} x {pw}: {nt * gh * gw} tokens", fontsize=9)
    return _save_small(fig, path)


def strip_figure(path: str | os.PathLike, rows: Sequence[tuple[str, Sequence[np.ndarray]]],
                 labels: Sequence[str], *, title: str = "", panel: float = 1.1) -> Path:
    """Rows of images (H, W, C) in [0, 1] under shared column labels, e.g. x_t for growing t, or a reverse
    trajectory and its predicted x0 at each shown step; ``panel``: inches per image (a GAN's grids need more)."""
    columns = len(labels)
    fig, axes = plt.subplots(len(rows), columns, figsize=(panel * columns + 0.6, (panel + 0.05) * len(rows) + 0.3),
                             squeeze=False)
    for i, (name, images) in enumerate(rows):
        for j, image in enumerate(images):
            _show(axes[i, j], np.clip(image, 0, 1), labels[j] if i == 0 else "", vmin=0, vmax=1)
        axes[i, 0].text(-0.1, 0.5, name, transform=axes[i, 0].transAxes, ha="right", va="center", fontsize=8)
    for ax in axes[0]:
        ax.title.set_fontsize(8)
    if title:  # just above the column labels (0.3 inches over the top row), however few or many rows
        fig.suptitle(title, fontsize=9, y=axes[0, 0].get_position().y1 + 0.3 / fig.get_figheight(), va="bottom")
    return _save_small(fig, path)


def keypoints_figure(path: str | os.PathLike, image: np.ndarray, detections: Sequence[tuple[str, np.ndarray,
                     np.ndarray, np.ndarray]], *, title: str = "") -> Path:
    """One panel per detector on the same grey image (H, W): each keypoint a circle of its scale with a radius
    drawn along its orientation. ``detections``: (name, xy (K, 2), radius (K,), angle (K,) radians)."""
    fig, axes = plt.subplots(1, len(detections), figsize=(3.6 * len(detections), 3.8), squeeze=False)
    for ax, (name, xy, radius, angle) in zip(axes[0], detections):
        _show(ax, image, f"{name}: {len(xy)} keypoints")
        for (x, y), r, a in zip(xy, radius, angle):
            ax.add_patch(plt.Circle((x, y), r, fill=False, color="yellow", linewidth=0.6))
            ax.plot([x, x + r * np.cos(a)], [y, y + r * np.sin(a)], color="red", linewidth=0.6)
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)  # circles at the border stay inside the panel
    if title:
        fig.suptitle(title, fontsize=9)
    return _save_small(fig, path)


def video_attention_figure(path: str | os.PathLike, frames: np.ndarray, heads: np.ndarray, rollout: np.ndarray, *,
                           temporal: tuple[np.ndarray, np.ndarray] | None = None, title: str = "") -> Path:
    """A ViViT's attention, one row per time index: its first frame, [CLS]'s attention to each patch in each head
    of the last (spatial) block, and the rollout; ``temporal`` (model 2): the temporal [CLS]'s attention to each
    time index, per head (h, n_t) and rolled out (n_t,), as a last row of bars.

    ``frames`` (n_t, H, W, C) in [0, 1]; ``heads`` (n_t, h, gh, gw); ``rollout`` (n_t, gh, gw). Each column shares
    one colour scale, so that rows (time indices) can be compared.
    """
    n_t, num_heads = heads.shape[:2]
    size = frames.shape[1:3]
    columns = num_heads + 2
    rows = n_t + (temporal is not None)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.3 * rows + 0.3), squeeze=False)
    for t in range(n_t):
        panels = [("frame", None)] + [(f"head {i}", heads[t, i]) for i in range(num_heads)] + [("rollout",
                                                                                              rollout[t])]
        for c, (name, grid) in enumerate(panels):
            ax = axes[t, c]
            _show(ax, frames[t], name if t == 0 else "", vmin=0, vmax=1)
            if grid is not None:
                top = heads[:, c - 1].max() if c <= num_heads else rollout.max()  # the column's scale
                ax.imshow(_upsample(grid, size), cmap="inferno", alpha=0.6, vmin=0, vmax=max(top, 1e-8))
            ax.title.set_fontsize(8)
        axes[t, 0].text(-0.1, 0.5, f"time {t}", transform=axes[t, 0].transAxes, ha="right", va="center",
                        fontsize=8)
    if temporal is not None:
        per_head, rolled = temporal
        axes[-1, 0].axis("off")
        axes[-1, 0].text(1.0, 0.5, "temporal\n[CLS]", transform=axes[-1, 0].transAxes, ha="right", va="center",
                         fontsize=8)
        for c, values in enumerate(list(per_head) + [rolled], start=1):
            ax = axes[-1, c]
            ax.bar(range(n_t), values, color="tab:orange")
            ax.set_ylim(0, 1)
            ax.set_xticks(range(n_t))
            ax.tick_params(labelsize=6)
            ax.set_yticks([0, 1] if c == 1 else [])
            ax.set_xlabel("time index", fontsize=6, labelpad=1)
    if title:  # just above the column labels
        fig.suptitle(title, fontsize=9, y=axes[0, 0].get_position().y1 + 0.3 / fig.get_figheight(), va="bottom")
    return _save_small(fig, path)


def progress_figure(path: str | os.PathLike, images: Sequence[np.ndarray], labels: Sequence[str], *,
                    title: str = "", width: float = 6.0) -> Path:
    """Equal-sized images (H, W, C) in [0, 1] stacked top to bottom, each row named on the left (e.g. the same
    samples at growing training steps), ``width`` inches across."""
    h, w = images[0].shape[:2]
    stack = _tile(list(images), 1, pad=max(2, h // 20))  # (K h + gaps, w, C)
    fig, ax = plt.subplots(figsize=(width, width * stack.shape[0] / w + 0.3))
    ax.imshow(np.clip(stack, 0, 1), interpolation="nearest")
    ax.set_yticks([(k + 0.5) * (stack.shape[0] + max(2, h // 20)) / len(images) for k in range(len(images))],
                  labels, fontsize=8)
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=9)
    return _save_small(fig, path)


def mask_overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The pixels a selector trains on as a stencil over the image (H, W, C) in [0, 1]: selected pixels (``mask``
    (H, W) True) tinted yellow, the others darkened, so that both the choice and the picture can be read."""
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    tint = np.array([1.0, 0.85, 0.0])
    return np.where(mask[..., None], 0.45 * rgb + 0.55 * tint, 0.3 * rgb)  # (H, W, 3)


def error_colours(error: np.ndarray, vmax: float, *, vmin: float = 1e-3) -> np.ndarray:
    """An error map (H, W) -> (H, W, 3) in [0, 1]: the inferno colour map over log10 of the error on the fixed
    scale [vmin, vmax], so that frames over training are comparable and small errors still show their structure."""
    top = max(vmax, vmin * 10)
    level = (np.log10(np.clip(error, vmin, top)) - np.log10(vmin)) / (np.log10(top) - np.log10(vmin))
    return plt.get_cmap("inferno")(level)[..., :3]


def write_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], *, captions: Sequence[str] | None = None,
              duration: int = 400, min_size: int = 192) -> Path:
    """Frames (H, W, 3) or (H, W) in [0, 1] -> an animated GIF that loops, each frame ``duration`` ms, enlarged
    (nearest) to at least ``min_size`` pixels across, with its caption in a white band on top. The caption also
    keeps Pillow from merging two equal consecutive frames into one: the GIF has one frame per entry."""
    scale = max(1, math.ceil(min_size / frames[0].shape[1]))
    band = 14 if captions else 0
    pictures = []
    for k, frame in enumerate(frames):
        pixels = np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)
        picture = Image.fromarray(pixels).convert("RGB")
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
        canvas = Image.new("RGB", (picture.width, picture.height + band), "white")
        canvas.paste(picture, (0, band))
        if captions:
            ImageDraw.Draw(canvas).text((3, 1), captions[k], fill="black")
        pictures.append(canvas)
    return atomic_write(path, lambda tmp: pictures[0].save(tmp, format="GIF", save_all=True,
                                                           append_images=pictures[1:], duration=duration, loop=0))


def _tile(images: Sequence[np.ndarray], columns: int, pad: int = 1) -> np.ndarray:
    """Equal-sized (h, w[, C]) images in a grid of ``columns``, separated by ``pad`` white pixels."""
    h, w = images[0].shape[:2]
    rows = math.ceil(len(images) / columns)
    shape = (rows * (h + pad) - pad, columns * (w + pad) - pad) + images[0].shape[2:]
    out = np.ones(shape, dtype=np.float64) * (1.0 if np.max(images[0]) <= 1 else 255)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = image
    return out


def _save_small(fig, path: str | os.PathLike) -> Path:
    return _save(fig, path, dpi=DPI_SMALL)


def with_row_labels(picture: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """A picture (H, W, C) in [0, 1] made of ``len(labels)`` equal rows (a sample grid) -> (H, W + margin, C) with
    each row's label written in black, centred on its row, in a white margin on the left."""
    height, width, channels = picture.shape
    row = height / len(labels)
    try:
        font = ImageFont.load_default(size=max(10, min(24, int(row * 0.45))))
    except TypeError:  # Pillow < 10.1: one small bitmap font
        font = ImageFont.load_default()
    sizes = [font.getbbox(text) for text in labels]  # (left, top, right, bottom)
    gap = max(4, int(row * 0.2))
    margin = max(right - left for left, _, right, _ in sizes) + 2 * gap
    mode = "L" if channels == 1 else "RGB"
    canvas = Image.new(mode, (margin + width, height), 255 if mode == "L" else (255, 255, 255))
    pixels = np.round(np.clip(picture[:, :, :3] if channels >= 3 else picture[:, :, 0], 0, 1) * 255).astype(np.uint8)
    canvas.paste(Image.fromarray(pixels, mode), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (text, (left, top, right, bottom)) in enumerate(zip(labels, sizes)):
        y = (i + 0.5) * row - (top + bottom) / 2
        draw.text((margin - gap - (right - left) - left, y), text, fill=0 if mode == "L" else (0, 0, 0), font=font)
    out = np.asarray(canvas, dtype=np.float32) / 255.0
    return out[:, :, None] if mode == "L" else out
