"""The training recipes of visionlab/manager.py, searched again on the validation split only.

For each recipe (``digits-vit``, ``moving-digits-vivit``, ``shapes-unet``) a small grid around its current settings
is trained with ``visionlab.api.train`` / ``visionlab.api.segment`` on one thread. Each cell is scored by its
**final epoch's** validation score (accuracy; mean IoU for the U-Net), the weights the recipe ships
(``model.safetensors``) and the README's "final" column: the best epoch's validation score is a maximum over every
epoch's noisy evaluation of 136-160 images, so it favours the noisiest runs; it is recorded beside it, not used.
Ties (equal scores) go to the cell nearest the current recipe (the fewest of the grid's axes moved: the current
recipe itself first), then to the model with fewer parameters, then to the faster run.

The test split chooses nothing. The trainer scores its test split at the end of every run (it has no switch to
skip it), but this script never reads those numbers for a cell that was not chosen: the JSON holds validation
scores only, and the chosen cell's test score is read from its run folder once, after the choice.
``moving-digits-frame-vit`` (the single-frame control) is not searched: it takes the ViViT recipe's shared settings.

    taskset -c 1 python benchmarks/recipe_search.py     # ~12 minutes on one thread; resumable
    python benchmarks/recipe_search.py --only digits-vit  # one recipe's grid

Writes results/recipe_search.{json,md}; run folders go to runs/recipe_search/ (not committed). A cell already in
the JSON is skipped, so an interrupted search continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from visionlab import api
from visionlab.manager import CLASSIFY_RECIPES, SEGMENT_RECIPES
from visionlab.util.io import read_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
OUT = "runs/recipe_search"  # relative to the project (the script runs from its root)


def _digits_grid() -> list[dict]:
    cells = []
    for lr in (2e-3, 1e-3, 4e-3):  # the recipe's first
        for depth in (4, 2):
            for dim in (64, 32):
                cells.append(dict(lr=lr, depth=depth, dim=dim, mlp_dim=2 * dim))  # the recipe's MLP ratio, 2
    return cells


# recipe -> (kind, the grid's cells as overrides of the recipe, the score's key in a run summary)
GRIDS: dict[str, tuple[str, list[dict], str]] = {
    "digits-vit": ("classify", _digits_grid(), "val_accuracy"),
    "moving-digits-vivit": ("classify", [dict(lr=1e-3), dict(lr=5e-4), dict(lr=2e-3)], "val_accuracy"),
    "shapes-unet": ("segment", [dict(lr=3e-3), dict(lr=1.5e-3), dict(lr=6e-3), dict(lr=1.2e-2)],
                    "val_mean_iou"),
}
DERIVED = {"mlp_dim"}  # follows dim (twice it): not an axis of its own
# What a cell keeps of a run summary: validation scores and costs, never a test score.
KEEP = ("val_accuracy", "best_val_accuracy", "val_mean_iou", "best_val_mean_iou", "best_epoch", "parameters",
        "train_seconds", "val_examples", "val_images", "train_examples", "train_images")


def cell_key(recipe: str, overrides: dict) -> str:
    return recipe + " " + " ".join(f"{k}={v}" for k, v in overrides.items())


def is_current(recipe: str, overrides: dict) -> bool:
    base = {**CLASSIFY_RECIPES, **SEGMENT_RECIPES}[recipe]
    return all(base.get(k) == v for k, v in overrides.items())


def run_cell(recipe: str, kind: str, overrides: dict, threads: int) -> dict:
    name = cell_key(recipe, overrides).replace(" ", "_").replace("=", "-")
    options = dict(recipe=recipe, threads=threads, quiet=True, out=OUT, name=name, **overrides)
    start = time.perf_counter()
    if kind == "segment":
        summary = api.segment(**options)
    else:  # api.train's model argument goes over the recipe's: pass the recipe's own
        summary = api.train(CLASSIFY_RECIPES[recipe]["model"], **options)
    cell = {"recipe": recipe, "overrides": overrides, "run_dir": _relative(summary["run_dir"]),
            "wall_seconds": time.perf_counter() - start}
    cell.update({k: summary["metrics"][k] for k in KEEP if k in summary["metrics"]})
    return cell


def _relative(path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def distance(recipe: str, overrides: dict) -> int:
    """How many of the grid's axes (lr, depth, width, ...) a cell moves away from the current recipe."""
    base = {**CLASSIFY_RECIPES, **SEGMENT_RECIPES}[recipe]
    return sum(base.get(k) != v for k, v in overrides.items() if k not in DERIVED)


def choose(recipe: str, cells: list[dict], score: str) -> dict:
    """The best final validation score; ties: the nearest to the current recipe (fewest axes moved), then fewer
    parameters, then the faster run."""
    return max(cells, key=lambda c: (c[score], -distance(recipe, c["overrides"]), -c["parameters"],
                                     -c["train_seconds"]))


def test_score(cell: dict, kind: str) -> dict:
    """The chosen cell's test scores (final and best-epoch weights), read once from its run folder."""
    metrics = read_json(ROOT / cell["run_dir"] / "metrics.json")
    if kind == "segment":
        return {"test_mean_iou": metrics["mean_iou"], "test_mean_dice": metrics["mean_dice"],
                "best_test_mean_iou": metrics["best_test_mean_iou"]}
    return {"test_accuracy": metrics["test_accuracy"], "best_test_accuracy": metrics["best_test_accuracy"]}


def markdown(result: dict) -> str:
    lines = ["# Recipe search on the validation split", "",
             "Each cell: the recipe with the overrides shown, `--threads 1`, seed 0. Scored by the final epoch's "
             "validation accuracy (mean IoU for shapes-unet); ties go to the cell nearest the current recipe "
             "(fewest axes moved), then to fewer parameters. The test split chose nothing: only the chosen "
             "cell's test score is read, after the choice. `python benchmarks/recipe_search.py`.", ""]
    for recipe, block in result["recipes"].items():
        score, cells, chosen = block["score"], block["cells"], block.get("chosen")
        n_val = cells[0].get("val_examples") or cells[0].get("val_images")
        lines += [f"## {recipe}", "",
                  f"| overrides | final val {score[4:]} | best epoch: val | parameters | training (s) |",
                  "|---|---|---|---|---|"]
        for c in cells:
            mark = " **(chosen)**" if chosen and c["overrides"] == chosen["overrides"] else ""
            mark += " (current)" if is_current(recipe, c["overrides"]) else ""
            best_key = "best_" + score
            value = f"{c[score]:.2%}" if score == "val_accuracy" else f"{c[score]:.4f}"
            best = f"{c['best_epoch']}: " + (f"{c[best_key]:.2%}" if score == "val_accuracy" else f"{c[best_key]:.4f}")
            over = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in c["overrides"].items())
            lines.append(f"| {over}{mark} | {value} | {best} | {c['parameters']:,} | {c['train_seconds']:.1f} |")
        if chosen:
            if score == "val_accuracy":  # counted in examples wrong: the scores are float32 shares
                wrong = {cell_key(recipe, c["overrides"]): round((1 - c[score]) * n_val) for c in cells}
                mine = wrong[cell_key(recipe, chosen["overrides"])]
                others = [k for k in wrong if k != cell_key(recipe, chosen["overrides"])]
                tied = sum(wrong[k] == mine for k in others)
                near = sum(wrong[k] == mine + 1 for k in others)
                lines += ["", f"{n_val} validation examples (one is {1 / n_val:.2%}); the chosen cell gets {mine} "
                              f"wrong: {tied} other cell(s) tie with it, {near} more get one more wrong."]
            tests = ", ".join(f"{k} {v:.4f}" if "iou" in k or "dice" in k else f"{k} {v:.2%}"
                              for k, v in block["test_of_chosen"].items() if v is not None)
            lines += ["", f"Chosen: {', '.join(f'{k} {v}' for k, v in chosen['overrides'].items())}; its test "
                          f"scores (read once, after the choice): {tests}."]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(GRIDS), help="recipes to search (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-cells", type=int, default=None, help="cells per recipe at most (a shorter grid)")
    args = parser.parse_args(argv)
    path = RESULTS / "recipe_search.json"
    result = json.loads(path.read_text()) if path.is_file() else {"recipes": {}}
    for recipe in args.only or list(GRIDS):
        kind, grid, score = GRIDS[recipe]
        block = result["recipes"].setdefault(recipe, {"score": score, "cells": []})
        done = {cell_key(recipe, c["overrides"]) for c in block["cells"]}
        for overrides in grid[:args.max_cells]:
            if cell_key(recipe, overrides) in done:
                continue
            block["cells"].append(run_cell(recipe, kind, overrides, args.threads))
            c = block["cells"][-1]
            print(f"{cell_key(recipe, overrides)}: {score} {c[score]:.4f} ({c['train_seconds']:.1f} s)", flush=True)
            RESULTS.mkdir(exist_ok=True)
            path.write_text(json.dumps(result, indent=2) + "\n")
        chosen = choose(recipe, block["cells"], score)
        if block.get("chosen", {}).get("overrides") != chosen["overrides"]:  # the test read once per choice
            block["chosen"], block["test_of_chosen"] = chosen, test_score(chosen, kind)
        path.write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "recipe_search.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
