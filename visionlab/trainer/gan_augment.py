"""The gan-augment experiment (``visionlab experiment gan-augment``): does a class-conditional GAN's output help a
classifier trained on a small share of the data? A small CNN is trained on 5 % / 10 % of the digits alone, with classic
augmentation (random affine maps), and with GAN samples added; several seeds; one table of means and spreads.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from visionlab.components.augment import random_affine
from visionlab.data.classification import ClassificationData
from visionlab.models.cnn import CNNConfig, SmallCNN
from visionlab.opt import GanConfig
from visionlab.trainer.adversarial import TASK, build_adversarial, generate
from visionlab.trainer.generative import generative_data, to_unit
from visionlab.util.device import pick_device, set_threads
from visionlab.util.errors import ConfigError
from visionlab.util.io import append_jsonl, read_json, read_jsonl, slug, to_jsonable, write_json, write_text

# ---------------------------------------------------------------------------------------------------------------------
# the gan-augment experiment: GAN-made images as extra training data for a classifier
# ---------------------------------------------------------------------------------------------------------------------

AUGMENT_ROWS = ("real only", "real + classic augmentation", "real + GAN samples")


def stratified_subset(labels: torch.Tensor, fraction: float, *, seed: int) -> torch.Tensor:
    """Indices of ``fraction`` of the examples, the same share of every class (at least 2 per class), seeded."""
    g = torch.Generator().manual_seed(seed)
    picked = []
    for k in torch.unique(labels).tolist():
        members = torch.nonzero(labels == k).flatten()
        take = max(2, round(fraction * len(members)))
        picked.append(members[torch.randperm(len(members), generator=g)[:take]])
    return torch.cat(picked).sort().values


def train_classifier(x: torch.Tensor, y: torch.Tensor, *, num_classes: int, steps: int, batch_size: int = 64,
                     lr: float = 2e-3, augment: bool = False, extra_x: torch.Tensor | None = None,
                     extra_y: torch.Tensor | None = None, extra_share: float = 0.5, seed: int = 0,
                     device: torch.device | str = "cpu") -> SmallCNN:
    """The reference CNN trained for ``steps`` steps on images x (N, C, H, W) in [0, 1]; each batch draws
    ``extra_share`` of its images from (extra_x, extra_y) when given (e.g. GAN samples); ``augment``: random affine
    maps. AdamW with a one-cycle schedule and label smoothing 0.05, as the reference classifier."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(config=CNNConfig(in_channels=x.shape[1], num_classes=num_classes)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    n_extra = round(extra_share * batch_size) if extra_x is not None else 0
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(x), (batch_size - n_extra,), generator=g)
        xb, yb = x[index], y[index]
        if n_extra:
            extra = torch.randint(0, len(extra_x), (n_extra,), generator=g)
            xb, yb = torch.cat([xb, extra_x[extra]]), torch.cat([yb, extra_y[extra]])
        if augment:
            xb = random_affine(xb, g, translate=0.08, rotate=8, scale=0.08, shear=4)
        loss = F.cross_entropy(model(xb.to(device) * 2 - 1), yb.to(device), label_smoothing=0.05)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


@torch.no_grad()
def classifier_accuracy(model: SmallCNN, data: ClassificationData, *, device: torch.device | str = "cpu") -> float:
    """Share of the test split classified right."""
    logits = torch.cat([model(x.to(device) * 2 - 1).cpu() for x in data.test_x.split(512)])
    return (logits.argmax(dim=1) == data.test_y).double().mean().item()


def gan_augment(*, settings: dict, fractions: tuple[float, ...] | None = None, seeds: tuple[int, ...] | None = None,
                gan_steps: int | None = None, out: str | Path = "runs", name: str = "gan-augment",
                device: str = "auto", threads: int | None = None, quiet: bool = False) -> dict:
    """Train the reference CNN on a small stratified fraction of the training split three ways (real images only;
    with classic affine augmentation; with images of a class-conditional GAN trained on the same fraction), for
    every fraction and seed, and write one table of test accuracy (mean and standard deviation over the seeds) into
    ``OUT/experiment/NAME``. ``settings``: ``manager.GAN_AUGMENT``. Finished cells (``cells.jsonl``) are skipped when
    the same call is made again; an interrupted GAN is trained again from its start."""
    set_threads(threads)
    torch_device = pick_device(device)
    fractions = tuple(fractions or settings["fractions"])
    seeds = tuple(seeds if seeds is not None else settings["seeds"])
    if not fractions or not seeds or not all(0 < f <= 1 for f in fractions):
        raise ConfigError(f"gan-augment needs fractions in (0, 1] and at least one seed, got {fractions} and {seeds}")
    gan_options = {**settings["gan"], **({"steps": gan_steps} if gan_steps else {})}
    folder = Path(out) / "experiment" / slug(name)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"experiment": "gan-augment", "settings": settings, "fractions": list(fractions), "seeds": list(seeds),
              "gan": gan_options}
    if (folder / "experiment.json").is_file() and read_json(folder / "experiment.json") != \
            json_round_trip(record):
        raise ConfigError(f"{folder} holds gan-augment with other settings; rerun with the same ones to continue "
                          f"it, or pass --name NEW for a new table")
    write_json(folder / "experiment.json", record)
    data = generative_data(settings["data"], seed=0)  # one split for all cells: the seeds vary subset and weights
    k = len(data.class_names)
    done = {r["key"]: r for r in read_jsonl(folder / "cells.jsonl")}
    classifier = dict(num_classes=k, steps=settings["classifier_steps"], batch_size=settings["classifier_batch"],
                      lr=settings["classifier_lr"], device=torch_device)
    total = len(fractions) * len(seeds)
    for i, (fraction, seed) in enumerate(((f, s) for f in fractions for s in seeds), 1):
        key = f"f{fraction:g}-seed{seed}"
        if key in done:
            continue
        start = time.perf_counter()
        index = stratified_subset(data.train_y, fraction, seed=seed)
        x, y = data.train_x[index], data.train_y[index]
        if not quiet:
            print(f"[{i}/{total}] {fraction:.0%} of the training split ({len(index)} images), seed {seed}", flush=True)
        subset = ClassificationData(x, y, data.test_x, data.test_y, data.class_names, f"{data.name}-{key}")
        run_dir = folder / TASK / key
        if run_dir.exists():
            shutil.rmtree(run_dir)  # stopped before the cell was recorded: train its GAN again
        run_dir.mkdir(parents=True)
        config = GanConfig(**{**gan_options, "data": settings["data"], "conditional": True, "seed": seed,
                              "device": str(torch_device), "out": str(folder), "name": key, "quiet": True,
                              "sample_every": 0, "fid_samples": 0, "checkpoint_every": None})
        trainer = build_adversarial(config, run_dir=run_dir, data=subset)
        gan_summary = trainer.train()
        if gan_summary["status"] != "finished":
            return {"status": gan_summary["status"], "folder": str(folder), "cells_done": len(done), "cells": total}
        per_class = settings["synthetic_per_class"]
        fake_y = torch.arange(k).repeat_interleave(per_class)
        fake_x = to_unit(generate(trainer.eval_generator, len(fake_y), labels=fake_y, device=torch_device,
                                  generator=torch.Generator().manual_seed(seed + 99)))
        accuracy = {
            AUGMENT_ROWS[0]: classifier_accuracy(train_classifier(x, y, seed=seed, **classifier), data,
                                           device=torch_device),
            AUGMENT_ROWS[1]: classifier_accuracy(train_classifier(x, y, augment=True, seed=seed, **classifier), data,
                                           device=torch_device),
            AUGMENT_ROWS[2]: classifier_accuracy(train_classifier(x, y, extra_x=fake_x, extra_y=fake_y,
                                                            extra_share=settings["synthetic_share"], seed=seed,
                                                            **classifier), data, device=torch_device)}
        result = {"key": key, "fraction": fraction, "seed": seed, "train_images": len(index), "accuracy": accuracy,
                  "gan_run": str(run_dir), "gan_warnings": gan_summary["metrics"]["warnings"],
                  "gan_diversity": gan_summary["metrics"]["diversity"], "seconds": time.perf_counter() - start}
        append_jsonl(folder / "cells.jsonl", result)
        done[key] = result
        if not quiet:
            print("    " + ", ".join(f"{row}: {a:.2%}" for row, a in accuracy.items()), flush=True)
    summary = augment_table([done[f"f{f:g}-seed{s}"] for f in fractions for s in seeds], fractions)
    write_json(folder / "table.json", summary)
    write_text(folder / "table.md", summary["markdown"])
    return {"status": "finished", "folder": str(folder), "cells_done": total, "cells": total, **summary}


def json_round_trip(obj):
    """``obj`` as it reads back from JSON (tuples become lists), to compare with a stored record."""
    return json.loads(json.dumps(to_jsonable(obj)))


def augment_table(cells: list[dict], fractions: tuple[float, ...]) -> dict:
    """Rows (real only / + augmentation / + GAN) x columns (fractions): mean +- standard deviation over the seeds."""
    rows = []
    for row in AUGMENT_ROWS:
        entry = {"row": row, "columns": {}}
        for f in fractions:
            values = [c["accuracy"][row] for c in cells if c["fraction"] == f]
            entry["columns"][f"{f:g}"] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                                          "seeds": len(values), "values": values}
        rows.append(entry)
    images = {f"{f:g}": next(c["train_images"] for c in cells if c["fraction"] == f) for f in fractions}
    head = "| training data | " + " | ".join(f"{f:.0%} ({images[f'{f:g}']} images)" for f in fractions) + " |"
    lines = [head, "|---" * (len(fractions) + 1) + "|"]
    for e in rows:
        lines.append(f"| {e['row']} | " + " | ".join(
            f"{c['mean']:.2%} ± {c['std']:.2%}" for c in e["columns"].values()) + " |")
    seeds = rows[0]["columns"][f"{fractions[0]:g}"]["seeds"]
    markdown = "\n".join(lines) + f"\n\nTest accuracy on the full test split, mean ± standard deviation over " \
                                  f"{seeds} seed(s).\n"
    return {"kind": "gan-augment", "rows": rows, "markdown": markdown}
