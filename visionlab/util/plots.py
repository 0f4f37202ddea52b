"""Figures of a run, drawn with matplotlib's Agg back end (no screen needed) and written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

if not os.environ.get("MPLBACKEND"):  # a back end chosen by the user or a Jupyter kernel is kept
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the back end)
import numpy as np  # noqa: E402

from visionlab.util.io import atomic_write  # noqa: E402


def _save(fig, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi,
                                               bbox_inches="tight"))
    plt.close(fig)
    return path


def _show(ax, image: np.ndarray, title: str, **kwargs) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 2:  # grey + alpha: show the grey
        image = image[..., 0]
    cmap = kwargs.pop("cmap", "gray" if image.ndim == 2 else None)
    im = ax.imshow(image, cmap=cmap, **kwargs)
    ax.set_title(title)
    ax.axis("off")
    return im


def comparison_figure(path: str | os.PathLike, original: np.ndarray, reconstruction: np.ndarray, *,
                      title: str = "") -> Path:
    """original | reconstruction | absolute error map (mean over channels), each (H, W, C) in [0, 1]."""
    error = np.abs(np.asarray(original, dtype=np.float64) - np.asarray(reconstruction, dtype=np.float64)).mean(-1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    _show(axes[0], original, "original")
    _show(axes[1], reconstruction, "reconstruction")
    im = _show(axes[2], error, "|error| (mean over channels)", cmap="inferno", vmin=0, vmax=max(error.max(), 1e-6))
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def waveform_figure(path: str | os.PathLike, original: np.ndarray, reconstruction: np.ndarray, *,
                    sample_rate: int, title: str = "") -> Path:
    """Two sounds (T, C) in [0, 1], first channel: the whole waveforms above, a 20 ms stretch from the middle below
    (where the fit's detail shows), and the error."""
    a, b = np.asarray(original)[:, 0], np.asarray(reconstruction)[:, 0]
    t = np.arange(len(a)) / sample_rate
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5))
    axes[0].plot(t, a, lw=0.5, label="original")
    axes[0].plot(t, b, lw=0.5, alpha=0.7, label="reconstruction")
    axes[0].plot(t, a - b + 0.5, lw=0.5, alpha=0.7, label="error + 0.5")
    middle, span = len(a) // 2, max(2, int(0.01 * sample_rate))
    part = slice(max(0, middle - span), middle + span)
    axes[1].plot(t[part], a[part], marker=".", ms=2, lw=0.8, label="original")
    axes[1].plot(t[part], b[part], lw=0.8, label="reconstruction")
    for ax in axes:
        ax.set_xlabel("time (s)")
        ax.legend(loc="upper right", fontsize=8)
    axes[0].set_title(title)
    return _save(fig, path)


def curve_figure(path: str | os.PathLike, curves: dict[str, tuple[Sequence[float], Sequence[float]]], *,
                 xlabel: str, ylabel: str, title: str = "") -> Path:
    """One line per named (x, y) curve, e.g. PSNR against training seconds for several samplers."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker=".", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def confusion_figure(path: str | os.PathLike, matrix: np.ndarray, class_names: Sequence[str], *,
                     title: str = "") -> Path:
    """A confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def overlay_figure(path: str | os.PathLike, panels: Sequence[dict], *, title: str = "") -> Path:
    """A row of images, each ``{"image": (H, W), "title": str}`` with optional ``"circles": (K, 3)`` rows of
    (x, y, radius) drawn on top (keypoints) or ``"overlay": (H, W)`` shown beside it (e.g. a HOG picture)."""
    columns = sum(2 if "overlay" in p else 1 for p in panels)
    fig, axes = plt.subplots(1, columns, figsize=(2.4 * columns, 2.8), squeeze=False)
    axes = iter(axes[0])
    for panel in panels:
        ax = next(axes)
        _show(ax, panel["image"], panel.get("title", ""))
        for x, y, r in panel.get("circles", ()):
            ax.add_patch(plt.Circle((x, y), r, fill=False, color="yellow", linewidth=0.8))
        if "overlay" in panel:
            _show(next(axes), panel["overlay"], panel.get("overlay_title", ""), cmap="magma")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
