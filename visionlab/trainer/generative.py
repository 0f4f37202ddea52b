"""What the generative trainers share (diffusion in ``trainer/diffuse.py``, GANs in ``trainer/adversarial.py``).

- **Data.** Images (N, C, H, W) in [0, 1] with labels, resized to the run's size (digits: 8 -> 16); the networks
  work on x = 2 p - 1 in [-1, 1] (:func:`to_model`), their outputs go back with p = (x + 1) / 2 (:func:`to_unit`).
- **Labels.** A grid has one row per class (:func:`grid_labels`); ``visionlab sample`` reads the classes asked for
  as indices or names (:func:`parse_labels`).
- **Pictures.** :func:`image_grid` lays out a batch with a white frame, enlarged so that 16 x 16 digits can be seen;
  :func:`labelled_grid` puts one class per row and writes the class names beside the rows.
  :func:`sample_progress` reads the grids a run drew from fixed noise along training, :func:`progress_gif` animates
  them (``samples.gif``).
- **Runs.** :class:`GenerativeTrainer` draws a grid every ``sample_every`` steps and writes the part of
  ``model.json`` that describes the data; :func:`ema_weights` reads the average out of a checkpoint;
  :class:`GenerativeRun` and :class:`Drawing` are what a family hands to ``trainer/generative_runs.py``, which
  samples and judges finished runs of every family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image

from visionlab.data.classification import ClassificationData, classification_data
from visionlab.trainer.base import Trainer
from visionlab.util.distributed import Dist
from visionlab.util.io import read_json
from visionlab.util.errors import DataError
from visionlab.util.pictures import with_row_labels
from visionlab.util.pictures import write_gif


# ---------------------------------------------------------------------------------------------------------------------
# data and pixels
# ---------------------------------------------------------------------------------------------------------------------

def default_image_size(data: str) -> int:
    """16 for scikit-learn's 8 x 8 digits (upsampled), 32 for everything else."""
    return 16 if data == "digits" else 32


def generative_data(name: str, *, image_size: int | None = None, seed: int = 0,
                    test_size: float = 0.25) -> ClassificationData:
    """Images (N, C, H, W) in [0, 1] with labels, resized bilinearly to ``image_size`` (digits: 8 -> 16)."""
    data = classification_data(name, image_size=image_size or default_image_size(name), seed=seed,
                               test_size=test_size)
    if data.train_x.ndim != 4:
        raise DataError(f"{name}: the generative models here train on images (N, C, H, W), got "
                        f"{tuple(data.train_x.shape)}")
    return data


def run_data(info: dict) -> ClassificationData:
    """The data (and split) a generative run was trained on, from its ``model.json`` record."""
    return generative_data(info["data"], image_size=info["image_size"], seed=info.get("seed", 0),
                           test_size=info.get("test_size", 0.25))


def to_model(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> [-1, 1], the range the generative models work in."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clipped."""
    return ((x + 1) / 2).clamp(0, 1)


def image_grid(images: torch.Tensor, *, columns: int = 8, pad: int = 1, min_size: int = 256) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] -> one picture (H', W', C) with a white frame, enlarged (nearest) to at least
    ``min_size`` pixels across so that 16 x 16 digits can be seen."""
    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = torch.ones(rows * columns, c, h + 2 * pad, w + 2 * pad)
    canvas[:n, :, pad:pad + h, pad:pad + w] = images.float().cpu()
    grid = rearrange(canvas, "(r k) c h w -> c (r h) (k w)", r=rows, k=columns)  # (C, H', W')
    scale = max(1, math.ceil(min_size / grid.shape[-1]))
    grid = F.interpolate(grid[None], scale_factor=scale, mode="nearest")[0]
    return grid.permute(1, 2, 0)  # (H', W', C)


def labelled_grid(images: torch.Tensor, labels: torch.Tensor, class_names: list[str], *, columns: int = 8,
                  pad: int = 1, min_size: int = 256) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] of the classes ``labels`` (N,) -> one picture (H', W' + margin, C) with one
    class per row (grouped in the order the classes first appear; a class with more than ``columns`` images takes
    several rows) and each row's class name written in a margin on the left: which row is which class."""
    order = list(dict.fromkeys(labels.tolist()))  # classes in order of first appearance
    rows = [(k, chunk) for k in order for chunk in images[labels == k].split(columns)]
    canvas = torch.ones(len(rows) * columns, *images.shape[1:])  # an empty place is white, like the frame
    for i, (_, chunk) in enumerate(rows):
        canvas[i * columns:i * columns + len(chunk)] = chunk.float().cpu()
    grid = image_grid(canvas, columns=columns, pad=pad, min_size=min_size).numpy()  # (H', W', C)
    return torch.from_numpy(with_row_labels(grid, [str(class_names[k]) for k, _ in rows]))
def sample_progress(run: str | Path) -> list[tuple[int, np.ndarray]]:
    """The grids a run drew from its fixed noise along training, in step order: ``[(step, (H', W', C) in [0, 1])]``,
    from ``samples/step-N.png`` (every ``sample_every`` steps) and the final ``samples.png`` (at the run's last
    step, from ``summary.json``)."""
    run = Path(run)
    files = [(int(f.stem.split("-")[1]), f) for f in sorted((run / "samples").glob("step-*.png"))]
    if (run / "samples.png").is_file():
        summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
        files.append((int(summary.get("step", files[-1][0] + 1 if files else 0)), run / "samples.png"))
    if not files:
        raise DataError(f"{run} has no sample grids (samples/step-*.png, samples.png): not a finished GAN or "
                        f"diffusion run?")
    return [(step, np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255) for step, f in files]


def progress_gif(run: str | Path, *, step: int | None = None, duration: int = 600) -> Path:
    """``RUN/samples.gif``: one frame per grid of :func:`sample_progress` (the last one labelled ``step``, the
    run's final step, when the summary is not written yet), captioned with its step."""
    frames = sample_progress(run)
    if step is not None:
        frames[-1] = (step, frames[-1][1])
    return write_gif(Path(run) / "samples.gif", [f for _, f in frames], captions=[f"step {s}" for s, _ in frames],
                     duration=duration)


# ---------------------------------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------------------------------

def grid_labels(num_classes: int, *, per_class: int = 8, max_classes: int = 16) -> torch.Tensor:
    """Labels of a grid: one row of ``per_class`` images per class: (min(K, max_classes) * per_class,)."""
    return torch.arange(min(num_classes, max_classes)).repeat_interleave(per_class)


def parse_labels(labels, info: dict, num: int, *, unconditional: str) -> torch.Tensor | None:
    """Requested classes -> (num,) labels, the list repeated to fill ``num``; None: every class in turn.

    ``labels``: None, a string ("3", "0,1,2", class names) or a sequence of indices / names. A run trained without
    labels takes none: then the family's message ``unconditional`` says how it was trained.
    """
    names = list(info["class_names"])
    if not info.get("conditional"):
        if labels is not None and labels != "":
            raise DataError(unconditional)
        return None
    if labels is None or labels == "":
        return torch.arange(num) % len(names)
    items = [s.strip() for s in labels.split(",") if s.strip()] if isinstance(labels, str) else list(labels)
    if not items:
        raise DataError("no labels given")
    values = []
    for item in items:
        if isinstance(item, str) and item in names:
            values.append(names.index(item))
            continue
        try:
            k = int(item)
        except (TypeError, ValueError):
            raise DataError(f"unknown class {item!r}; the model knows {', '.join(names)}") from None
        if not 0 <= k < len(names):
            raise DataError(f"label {k} is out of range: the model knows classes 0 .. {len(names) - 1} "
                            f"({', '.join(names)})")
        values.append(k)
    return torch.tensor(values, dtype=torch.long).repeat(math.ceil(num / len(values)))[:num]


# ---------------------------------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------------------------------

class GenerativeTrainer(Trainer):
    """A trainer of images from ``data``: ``config.steps`` steps, a sample grid every ``config.sample_every``."""

    def __init__(self, *, config, data: ClassificationData, run_dir: Path, device: torch.device,
                 dist: Dist = Dist()):
        super().__init__(config=config, run_dir=run_dir, device=device, total_steps=config.steps,
                         eval_every=config.eval_every, checkpoint_every=config.checkpoint_every or config.steps,
                         quiet=config.quiet, dist=dist)
        self.data = data
        self.callbacks.append(GenerativeTrainer._grid_callback)

    def sample_grid(self, path: Path) -> Path:
        """Write a grid of the (EMA) model's images from a fixed seed to ``path``."""
        raise NotImplementedError

    @staticmethod
    def _grid_callback(trainer: "GenerativeTrainer") -> None:
        every = trainer.config.sample_every
        if every and trainer.step % every == 0 and trainer.step < trainer.total_steps:
            path = trainer.run_dir / "samples" / f"step-{trainer.step:07d}.png"
            trainer.picture("samples", trainer.sample_grid(path))

    def data_record(self, conditional: bool) -> dict:
        """The part of ``model.json`` that says what the run draws: its data, split, image shape and classes."""
        return {"sample_shape": list(self.data.sample_shape), "class_names": list(self.data.class_names),
                "conditional": conditional, "data": self.config.data, "image_size": self.data.sample_shape[-1],
                "seed": self.config.seed, "test_size": self.config.test_size}

    def size_metrics(self, network: torch.nn.Module) -> dict:
        """Steps, timings, parameter and example counts of ``metrics.json``."""
        return {"steps": self.step, "train_seconds": self.train_seconds,
                "seconds_per_step": self.train_seconds / max(self.step, 1),
                "parameters": sum(p.numel() for p in network.parameters()),
                "train_examples": len(self.data.train_y)}


def ema_weights(state: dict, key: str) -> dict:
    """The network weights of a checkpoint: its EMA's, else ``state[key]``. ``AveragedModel`` keeps the network
    under ``module.`` and a counter beside it."""
    if state.get("ema") is not None:
        return {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    return state[key]


@dataclass
class GenerativeRun:
    """A generative run loaded to draw from, whatever its family."""

    model: torch.nn.Module  # the network that draws (EMA weights, eval mode)
    info: dict  # its model.json record
    folder: Path  # its run folder
    process: object = None  # what the family draws with besides the network (a GaussianDiffusion); None: none


@dataclass
class Drawing:
    """How to draw ``num`` images from a loaded run with the options asked for (checked by its family)."""

    labels: torch.Tensor | None  # (N,) the classes asked for; None: unconditional
    draw: Callable[[int, int, bool], torch.Tensor]  # (seed, batch_size, progress) -> (N, C, H, W) in [0, 1]
    record: dict  # the options to report, e.g. {"sampler": "ddim", "steps": 50, "eta": 0.0, "guidance": 1.0}
    tag: str  # how file names of these images begin: "ddim-50-g1", "gan"
