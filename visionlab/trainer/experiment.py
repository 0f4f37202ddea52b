"""Experiments: many runs, one table (``visionlab experiment NAME``).

An experiment is a list of cells, each one run of a task (fit, classify, features) with its own config; ``manager.py``
says which cells make which paper table. The cells run one after the other, each in its own run folder under
``OUT/experiment/NAME/``, and every finished cell appends its result to ``cells.jsonl`` there. Running the same
command again (or ``--resume``) skips the finished cells, continues an interrupted one from its checkpoint, and runs
the rest, so a long table survives Ctrl-C or a lost machine. The table is written as ``table.md`` and ``table.json``.

Table kinds:
- ``fit``: one row per strategy, the mean over the images of PSNR / SSIM at chosen steps, and the training time
  (the EVOS and Sym-Power papers' Table 1);
- ``classify``: one row per model, with accuracy, time and parameters (ViT beside HOG + SVM, the ViViT models).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionlab.trainer import classify, features, fit
from visionlab.util.checkpoint import load_state
from visionlab.util.errors import ConfigError
from visionlab.util.io import append_jsonl, read_json, read_jsonl, read_yaml, slug, write_json, write_text, write_yaml
from visionlab.util.version import __version__


@dataclass
class Cell:
    """One run of an experiment: which row of the table it belongs to, on which item (image), with which config."""

    row: str  # the table row, e.g. "EVOS, step-wise"
    item: str  # what the row averages over, e.g. an image name ("" when there is one run per row)
    task: str  # fit, classify or features
    config: Any  # the task's config dataclass

    @property
    def key(self) -> str:
        return slug(f"{self.row}-{self.item}" if self.item else self.row)


def run_experiment(name: str, cells: list[Cell], *, out: str | Path, table: dict, options: dict,
                   quiet: bool = False, task: str = "experiment", shard: tuple[int, int] | None = None) -> dict:
    """Run every unfinished cell, then write the table into ``out/task/name``. ``table`` describes it (kind:
    fit, items or classify; columns); ``options`` are the experiment's own options, kept in ``experiment.yaml`` so
    that a rerun with other options is refused rather than mixed into the same table.

    ``shard`` = (K, N): run only cells K, K + N, K + 2N, ... (1-based), so that N processes split the table with no
    coordination but the folder (each appends its finished cells to ``cells.jsonl``, one line at a time); the
    table is written by whichever run finds every cell finished, and a run without ``shard`` gathers it (running
    what is still missing)."""
    _check_inputs(cells)
    folder = Path(out) / task / slug(name)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"experiment": name, "options": options, "cells": [c.key for c in cells], "version": __version__}
    # A record whose table has nothing yet (no finished cell, no checkpoint: e.g. the first cell's image was
    # unreadable) binds nothing: a corrected command may take the folder over.
    started = (folder / "cells.jsonl").is_file() or any(folder.rglob("checkpoint.pt"))
    if (folder / "experiment.yaml").is_file() and started:
        earlier = read_yaml(folder / "experiment.yaml")
        # More cells with the same options (an image of a folder fit that was skipped, then mended): the table grows.
        if earlier.get("options") != options or not set(earlier.get("cells") or ()) <= set(record["cells"]):
            raise ConfigError(f"{folder} holds experiment {name} with other options ({earlier.get('options')}); "
                              f"rerun with the same options to continue it, or pass --name NEW for a new table")
        if earlier.get("cells") != record["cells"]:
            write_yaml(folder / "experiment.yaml", record)
    else:
        write_yaml(folder / "experiment.yaml", record)
    done = {r["key"]: r for r in read_jsonl(folder / "cells.jsonl")} if (folder / "cells.jsonl").is_file() else {}
    for i, cell in enumerate(cells, 1):
        if cell.key in done or (shard is not None and (i - 1) % shard[1] != shard[0] - 1):
            continue
        # One line per run even when quiet (quiet hides the runs' own progress bars): a table may take hours.
        print(f"[{i}/{len(cells)}] {cell.row}" + (f" on {cell.item}" if cell.item else ""), flush=True)
        result = _run_cell(cell, folder, quiet=quiet)
        if result["status"] != "finished":  # Ctrl-C: the cell's checkpoint is kept; the next call continues it
            return {"status": result["status"], "folder": str(folder), "cells_done": len(done),
                    "cells": len(cells)}
        done[cell.key] = result
        append_jsonl(folder / "cells.jsonl", result)
    if shard is not None:  # the other shards' cells may have finished meanwhile
        done = {r["key"]: r for r in read_jsonl(folder / "cells.jsonl")} if (folder / "cells.jsonl").is_file() else {}
        if any(c.key not in done for c in cells):
            print(f"shard {shard[0]}/{shard[1]} done: {len(done)} of {len(cells)} cells finished; when every shard "
                  f"is, rerun without --shard to write the table", flush=True)
            return {"status": "shard finished", "folder": str(folder), "cells_done": len(done), "cells": len(cells)}
    rows = [done[c.key] for c in cells]
    if table["kind"] == "fit":
        summary = fit_table(rows, columns=table["columns"], reference=table.get("reference"))
    elif table["kind"] == "items":
        summary = items_table(rows, skipped=table.get("skipped") or {})
    else:
        summary = classify_table(rows)
    write_json(folder / "table.json", summary)
    write_text(folder / "table.md", summary["markdown"])
    return {"status": "finished", "folder": str(folder), "cells_done": len(cells), "cells": len(cells), **summary}


def _check_inputs(cells: list[Cell]) -> None:
    """Read every signal the fits will need before any of them starts: a damaged file is reported at once, not
    after hours of other cells (and leaves nothing behind)."""
    seen = set()
    for cell in cells:
        if cell.task == "fit":
            key = (cell.config.image, cell.config.kind, cell.config.size, cell.config.crop, cell.config.seconds,
                   cell.config.frames)
            if key not in seen:
                seen.add(key)
                fit.load_fit_signal(cell.config)


def _run_cell(cell: Cell, folder: Path, *, quiet: bool) -> dict:
    """Run (or continue) one cell in ``folder/<task>/<key>`` and return its result line."""
    tasks = {"fit": fit.fit, "classify": classify.train, "features": features.run_features}
    run_dir = folder / cell.task / cell.key
    config = dataclasses.replace(cell.config, out=str(folder), name=cell.key, quiet=quiet)
    resume = None
    if run_dir.is_dir():
        if (run_dir / "checkpoint.pt").is_file() and cell.task != "features":
            resume = (load_state(run_dir), run_dir)  # an interrupted cell goes on where it stopped
        else:  # stopped before its first checkpoint: nothing worth keeping, start it again
            shutil.rmtree(run_dir)
    summary = tasks[cell.task](config, resume=resume) if resume else tasks[cell.task](config)
    result = {"key": cell.key, "row": cell.row, "item": cell.item, "task": cell.task, "status": summary["status"],
              "run_dir": summary["run_dir"], "metrics": summary["metrics"]}
    if cell.task == "fit" and (run_dir / "metrics.jsonl").is_file():
        result["history"] = [{k: r[k] for k in ("step", "psnr", "ssim", "seconds") if k in r}
                             for r in read_jsonl(run_dir / "metrics.jsonl")]
    return result


def fit_table(rows: list[dict], *, columns: list[int], reference: dict | None = None) -> dict:
    """Mean PSNR / SSIM over the items of each row at the ``columns`` steps, and the mean training seconds; with
    ``reference`` (row -> the paper's "PSNR / SSIM" cells), the paper's numbers beside ours."""
    by_row: dict[str, list[dict]] = {}
    for r in rows:
        by_row.setdefault(r["row"], []).append(r)
    table = []
    for row, runs in by_row.items():
        entry = {"row": row, "items": [r["item"] for r in runs], "columns": {}}
        for step in columns:
            at = [_at_step(r["history"], step) for r in runs]
            entry["columns"][str(step)] = {"psnr": float(np.mean([a["psnr"] for a in at])),
                                           "ssim": float(np.mean([a["ssim"] for a in at]))}
        entry["seconds"] = float(np.mean([r["metrics"]["wall_seconds"] for r in runs]))
        final = entry["columns"][str(columns[-1])]["psnr"]
        entry["psnr_per_second"] = final / entry["seconds"]
        table.append(entry)
    head = "| strategy | " + " | ".join(f"{s:,} steps" for s in columns) + " | time (s) |"
    lines = [head, "|---" * (len(columns) + 2) + "|"]
    for e in table:
        cells = [f"{e['columns'][str(s)]['psnr']:.2f} / {e['columns'][str(s)]['ssim']:.4f}" for s in columns]
        lines.append(f"| {e['row']} | " + " | ".join(cells) + f" | {e['seconds']:.1f} |")
    markdown = "\n".join(lines) + "\n"
    if reference:
        markdown += "\nThe paper's numbers (PSNR / SSIM at its own steps):\n\n" + "\n".join(
            f"- {row}: {cells}" for row, cells in reference.items()) + "\n"
    return {"kind": "fit", "columns": columns, "rows": table, "markdown": markdown}


def items_table(rows: list[dict], *, skipped: dict[str, str] | None = None) -> dict:
    """One fit per row (e.g. each image of a folder): final PSNR, SSIM and training seconds, then the rows
    ``skipped`` (name -> why: an unreadable image), then the mean of the fitted ones."""
    table = [{"row": r["row"], "psnr": r["metrics"]["psnr"], "ssim": r["metrics"].get("ssim"),
              "seconds": r["metrics"]["wall_seconds"], "run_dir": r["run_dir"]} for r in rows]
    ssims = [e["ssim"] for e in table if e["ssim"] is not None]
    mean = {"psnr": float(np.mean([e["psnr"] for e in table])), "ssim": float(np.mean(ssims)) if ssims else None,
            "seconds": float(np.mean([e["seconds"] for e in table]))}
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    lines = ["| signal | PSNR (dB) | SSIM | time (s) |", "|---|---|---|---|"]
    lines += [f"| {e['row']} | {e['psnr']:.2f} | {fmt(e['ssim'])} | {e['seconds']:.1f} |" for e in table]
    lines += [f"| {row} | skipped: {why.replace('|', '/')} | - | - |" for row, why in (skipped or {}).items()]
    lines.append(f"| **mean of {len(table)}** | {mean['psnr']:.2f} | {fmt(mean['ssim'])} | {mean['seconds']:.1f} |")
    return {"kind": "items", "rows": table, "skipped": dict(skipped or {}), "mean": mean,
            "markdown": "\n".join(lines) + "\n"}


def _at_step(history: list[dict], step: int) -> dict:
    for r in history:
        if r["step"] == step and "psnr" in r:
            return r
    raise ConfigError(f"no evaluation at step {step} in a cell's log; the column steps must be evaluation steps")


def classify_table(rows: list[dict]) -> dict:
    """Test accuracy, training time and size of each row (classify and features runs side by side). A classify row's
    test accuracy is its final weights'; its best epoch is chosen on the validation split, and the test accuracy of
    those weights stands beside it: the test split chooses nothing."""
    table = []
    for r in rows:
        m = r["metrics"]
        table.append({"row": r["row"], "accuracy": m["accuracy"], "best_epoch": m.get("best_epoch"),
                      "best_val_accuracy": m.get("best_val_accuracy"),
                      "best_test_accuracy": m.get("best_test_accuracy"),
                      "train_seconds": m.get("train_seconds", m.get("fit_seconds")),
                      "seconds_per_epoch": m.get("seconds_per_epoch"), "parameters": m.get("parameters"),
                      "run_dir": r["run_dir"]})
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    columns = ("model", "test accuracy (final)", "best epoch on val: val / test accuracy", "training (s)",
               "s / epoch", "parameters")
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for e in table:
        best = "-" if e["best_epoch"] is None else \
            f"{e['best_epoch']}: {e['best_val_accuracy']:.2%} / {e['best_test_accuracy']:.2%}"
        lines.append(f"| {e['row']} | {e['accuracy']:.2%} | {best} | {fmt(e['train_seconds'], '.1f')} | "
                     f"{fmt(e['seconds_per_epoch'], '.2f')} | {fmt(e['parameters'], ',')} |")
    return {"kind": "classify", "rows": table, "markdown": "\n".join(lines) + "\n"}


def read_table(folder: str | Path) -> dict:
    """The table of a finished experiment folder."""
    return read_json(Path(folder) / "table.json")
