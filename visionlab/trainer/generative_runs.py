"""Sampling and judging finished generative runs, whatever their family (``visionlab sample``, ``evaluate-samples``).

A run folder (or its ``checkpoint.pt``) says which task trained it; :data:`FAMILIES` maps that task to the two
functions of its family's trainer module that this file needs:

- ``load(run, *, device, sampler, steps, eta, guidance) -> GenerativeRun``: the network (EMA weights, eval mode), its
  ``model.json`` record and folder; it refuses sampler options that mean nothing to the family (a GAN has no steps);
- ``generator(loaded, *, labels, num, sampler, steps, eta, guidance, device) -> Drawing``: checks the labels and the
  options against the loaded model and returns how to draw ``num`` images, what to report and how to name the files.

Everything else is the same for every family and lives here or below: writing the images (.npy, (N, C, H, W) float32
in [0, 1]), their labels and a grid; reading a samples file back; FID and the rest in the reference classifier's
feature space (``trainer/reference.py``). A new family (say flow matching, in ``trainer/flow.py``, its trainer on
``trainer/generative.py``'s :class:`~visionlab.trainer.generative.GenerativeTrainer`) writes its ``open_run`` and
``drawing`` there and adds one entry to :data:`FAMILIES` below: ``"flow": Family(load=flow.open_run,
generator=flow.drawing)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from visionlab.data.images import save_image
from visionlab.data.video import load_npy
from visionlab.trainer import adversarial, diffuse
from visionlab.trainer.generative import Drawing, GenerativeRun, image_grid, labelled_grid, run_data
from visionlab.trainer.reference import judge_drawing, judge_images
from visionlab.util.checkpoint import CHECKPOINT_NAME, load_state
from visionlab.util.device import pick_device
from visionlab.util.errors import DataError
from visionlab.util.failures import check_run_writable, check_writable
from visionlab.util.io import read_json, write_json


@dataclass(frozen=True)
class Family:
    """What sampling and judging need of one generative family: two functions of its trainer module."""

    load: Callable[..., GenerativeRun]  # (run, *, device, sampler, steps, eta, guidance) -> the loaded run
    generator: Callable[..., Drawing]  # (loaded, *, labels, num, sampler, steps, eta, guidance, device) -> drawing


# The generative families, by the task their runs record (model.json's and checkpoint.pt's "task").
FAMILIES: dict[str, Family] = {
    "diffuse": Family(load=diffuse.open_run, generator=diffuse.drawing),
    "adversarial": Family(load=adversarial.open_run, generator=adversarial.drawing),
}
# A run of no family, or one that cannot be read, goes to diffusion's loader, whose errors say what the run is and how
# to train one (``visionlab sample`` began as diffusion's command).
FALLBACK = "diffuse"


def run_task(run: str | Path) -> str | None:
    """The task that trained ``run`` (a run folder or a checkpoint); None where that cannot be read."""
    path = Path(run)
    try:
        if path.is_dir() and (path / "model.json").is_file():
            return read_json(path / "model.json").get("task")
        checkpoint = path / CHECKPOINT_NAME if path.is_dir() else path
        return load_state(checkpoint).get("task") if checkpoint.is_file() else None
    except (DataError, ValueError, OSError):
        return None


def family_of(run: str | Path) -> Family:
    """The family of ``run`` (see :data:`FAMILIES` and :data:`FALLBACK`)."""
    return FAMILIES.get(run_task(run), FAMILIES[FALLBACK])


def sample_run(run: str | Path, *, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
               guidance: float = 1.0, labels=None, num: int = 64, seed: int = 0, batch_size: int = 256,
               out: str | Path | None = None, device: str = "auto", progress: bool = False) -> dict:
    """Generate ``num`` images with a generative run's EMA weights; write a grid (.png), the images (.npy, (N, C, H,
    W) float32 in [0, 1]) and, for a conditional model, the labels (``.labels.npy``). Returns where, and how long it
    took. Diffusion runs take the sampler options (DDPM or DDIM, steps, eta, classifier-free guidance); GAN runs
    refuse them."""
    family = family_of(run)
    torch_device = pick_device(device)
    options = dict(sampler=sampler, steps=steps, eta=eta, guidance=guidance)
    loaded = family.load(run, device=torch_device, **options)
    if out:  # before anything is sampled
        check_writable(Path(out).parent)
    else:
        check_run_writable(loaded.folder)
    drawing = family.generator(loaded, labels=labels, num=num, device=torch_device, **options)
    start = time.perf_counter()
    images = drawing.draw(seed, batch_size, progress)  # (N, C, H, W) in [0, 1]
    seconds = time.perf_counter() - start
    stem = Path(out) if out else loaded.folder / "samples" / f"{drawing.tag}-seed{seed}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    files = {"images": stem.with_name(stem.name + ".npy"), "grid": stem.with_name(stem.name + ".png"),
             "labels": None if drawing.labels is None else stem.with_name(stem.name + ".labels.npy")}
    np.save(files["images"], images.numpy().astype(np.float32))
    if drawing.labels is not None:
        np.save(files["labels"], drawing.labels.numpy())
    columns = min(16, max(8, num // 8))
    save_image(files["grid"], image_grid(images[:256], columns=columns) if drawing.labels is None else
               labelled_grid(images[:256], drawing.labels[:256], list(loaded.info["class_names"]), columns=columns))
    return {**{k: None if v is None else str(v) for k, v in files.items()}, "num": num, **drawing.record,
            "seed": seed, "seconds": seconds, "model": loaded.info["model"], "run": str(loaded.folder)}


def read_samples(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (N, C, H, W) in [0, 1] of a ``.npy`` that :func:`sample_run` wrote, and its labels (N,) if their
    ``.labels.npy`` is beside it; a DataError naming the file for anything else."""
    if not path.is_file():
        raise DataError(f"no such samples file: {path}")
    values = load_npy(path)  # a .npy only (no pickles), or a DataError naming the file
    if values.ndim != 4 or 0 in values.shape or not np.issubdtype(values.dtype, np.number) \
            or not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise DataError(f"{path}: expected images (N, C, H, W), N > 0, finite and in [0, 1], as 'visionlab "
                        f"sample' writes them; got {values.dtype} of shape {values.shape}")
    images = torch.from_numpy(values.astype(np.float32))
    label_file = path.with_name(path.name[:-len(".npy")] + ".labels.npy") if path.name.endswith(".npy") else None
    if label_file is None or not label_file.is_file():
        return images, None
    y = load_npy(label_file)
    if y.shape != (len(images),) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{label_file}: expected {len(images)} integer labels, got {y.dtype} of shape {y.shape}")
    return images, torch.from_numpy(y.astype(np.int64))


def evaluate_samples(run: str | Path, *, samples: str | Path | None = None, num: int = 500, sampler: str = "ddim",
                     steps: int | None = None, eta: float = 0.0, guidance: float = 1.0, labels=None, seed: int = 0,
                     batch_size: int = 256, reference_epochs: int = 30, device: str = "auto",
                     quiet: bool = True) -> dict:
    """FID (and its floor), confidence and class accuracy of a generative run's samples: the images of ``samples``
    (a ``.npy`` written by :func:`sample_run`, with its ``.labels.npy`` if there is one), or ``num`` new ones.
    Writes ``evaluation-samples-TAG.json`` into the run folder and returns the metrics. The protocol is
    ``trainer/reference.py``'s."""
    family = family_of(run)
    torch_device = pick_device(device)
    options = dict(sampler=sampler, steps=steps, eta=eta, guidance=guidance)
    loaded = family.load(run, device=torch_device, **options)
    check_run_writable(loaded.folder)  # its report goes there: find out before the samples are drawn
    data = run_data(loaded.info)
    judging = dict(seed=seed, reference_epochs=reference_epochs, device=torch_device, quiet=quiet)
    if samples is not None:
        path = Path(samples)
        images, y = read_samples(path)
        metrics = judge_images(lambda: images, data, labels=y, **judging)
        metrics.pop("sampling_seconds")  # nothing was drawn
        metrics = {**metrics, "samples_file": str(path)}
        tag = path.name.removesuffix(".npy")
    else:
        drawing = family.generator(loaded, labels=labels, num=num, device=torch_device, **options)
        metrics = judge_drawing(drawing, data, batch_size=batch_size, **judging)
        tag = f"{drawing.tag}-n{num}-seed{seed}"
    metrics["run"] = str(loaded.folder)
    write_json(loaded.folder / f"evaluation-samples-{tag}.json", metrics)
    return metrics
