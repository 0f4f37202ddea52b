"""Which pixels a selector trains on, over a fit (``visionlab fit IMAGE --record-selection K``).

Every K-th step, before that step's forward pass, the fit records the selector's choice as a mask over the image
(the indices a selector returns, or every pixel for ``full``) and the error map |f(x) - y| of the network the choice
was made against (the de-transformed prediction, mean over channels, in [0, 1]). Each record is one small file,
``selection/step-N.npz`` (mask (H, W) bool, error (H, W) float16, the step's ratio r_t), so that a resumed run keeps
the frames recorded before it stopped. At the end the frames become ``selection.gif`` (the mask as a yellow stencil
over the image), ``errors.gif`` (the error map on one fixed, logarithmic colour scale) and ``selection.png`` (a few
frames of both, the README's picture); :func:`selection_picture` redraws them from the folder (``visionlab show
selection RUN``).

A fit without the option does none of this: one ``if`` per step. The recording's own time (one full forward pass
per record) is left out of the run's training seconds, so the PSNR-against-time curve stays comparable.

Shapes: H, W image height and width, C channels, N = H W pixels, n selected pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from visionlab.util.errors import DataError
from visionlab.util.pictures import error_colours, mask_overlay, strip_figure, write_gif

FOLDER = "selection"
SHOWN = 6  # frames in selection.png


class SelectionRecorder:
    """Keeps every K-th step's selection mask and error map of an image fit in ``run_dir/selection/``."""

    def __init__(self, *, every: int, run_dir: Path, image: torch.Tensor):
        self.every = every
        self.folder = Path(run_dir) / FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shape = tuple(image.shape[:2])  # (H, W)
        self.original = image.detach().cpu().float()  # (H, W, C) in [0, 1]
        np.save(self.folder / "image.npy", np.round(self.original.numpy() * 255).astype(np.uint8))

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def record(self, step: int, indices: torch.Tensor | None, recon: torch.Tensor, ratio: float) -> None:
        """Write step ``step``'s mask (from ``indices`` (n,), None: all) and error (from ``recon`` (H, W, C))."""
        mask = torch.ones(self.shape[0] * self.shape[1], dtype=torch.bool)  # (N,)
        if indices is not None:
            mask.zero_()
            mask[indices.cpu()] = True
        error = (recon.detach().cpu().float() - self.original).abs().mean(-1)  # (H, W)
        np.savez_compressed(self.folder / f"step-{step:07d}.npz", mask=mask.reshape(self.shape).numpy(),
                            error=error.numpy().astype(np.float16), ratio=np.float32(ratio), step=np.int64(step))


def read_selection(run: str | Path) -> tuple[np.ndarray, list[dict]]:
    """The image (H, W, C) in [0, 1] and the frames ``[{"step", "ratio", "mask", "error"}, ...]`` of a run fitted
    with ``--record-selection``, in step order."""
    folder = Path(run) / FOLDER
    files = sorted(folder.glob("step-*.npz"))
    if not (folder / "image.npy").is_file() or not files:
        raise DataError(f"{run} has no recorded selection ({FOLDER}/step-*.npz): fit with --record-selection K")
    image = np.load(folder / "image.npy").astype(np.float32) / 255  # (H, W, C)
    frames = []
    for f in files:
        with np.load(f) as z:
            frames.append({"step": int(z["step"]), "ratio": float(z["ratio"]), "mask": z["mask"],
                           "error": z["error"].astype(np.float32)})
    return image, frames


def selection_picture(run: str | Path, out: str | Path | None = None, *, shown: int = SHOWN) -> dict:
    """``selection.gif``, ``errors.gif`` (every recorded frame) and the strip ``out`` (default
    ``RUN/selection.png``: ``shown`` frames, masks above error maps) of a run fitted with ``--record-selection``.
    Returns their paths, the steps recorded and each frame's selected fraction and mean error."""
    run = Path(run)
    image, frames = read_selection(run)
    # One log scale for all frames: from the last frame's small errors to the first frame's large ones.
    vmax = float(np.quantile(frames[0]["error"], 0.99))
    vmin = float(np.clip(np.quantile(frames[-1]["error"], 0.05), 1e-5, vmax / 100))
    captions = [f"step {f['step']}: {f['mask'].mean():.0%}" for f in frames]
    masks = [mask_overlay(image, f["mask"]) for f in frames]
    errors = [error_colours(f["error"], vmax, vmin=vmin) for f in frames]
    gif = write_gif(run / "selection.gif", masks, captions=captions)
    errors_gif = write_gif(run / "errors.gif", errors, captions=[f"step {f['step']}: |error|" for f in frames])
    picked = sorted(set(np.linspace(0, len(frames) - 1, min(shown, len(frames))).round().astype(int).tolist()))
    labels = [f"step {frames[k]['step']}: {frames[k]['mask'].mean():.0%}" for k in picked]
    path = strip_figure(out or run / "selection.png", [("selected", [masks[k] for k in picked]),
                                                       ("|error|", [errors[k] for k in picked])], labels,
                        title=f"{run.name}: pixels trained on (yellow), |error| (log scale {vmin:.1e} .. {vmax:.2f})",
                        panel=1.4)
    return {"picture": str(path), "gif": str(gif), "errors_gif": str(errors_gif),
            "steps": [f["step"] for f in frames], "fractions": [float(f["mask"].mean()) for f in frames],
            "ratios": [f["ratio"] for f in frames], "mean_error": [float(f["error"].mean()) for f in frames]}
