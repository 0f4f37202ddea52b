"""How the fast preset was chosen: the hash grid at full size with each selector, table size and schedule.

    python benchmarks/fit_fast.py                                   # astronaut, coffee, rocket; every variant
    python benchmarks/fit_fast.py --images astronaut --variants "full;EVOS, r = 0.5"

Every cell is ``visionlab fit IMAGE --preset fast --threads 2`` at the image's own size (the hash grid, 2^19
entries per level, lr 1e-2 decayed to 1e-3, 400 steps) with the selector of its row, and an evaluation every 10
steps; training time counts optimiser steps only. The rows answer the preset's questions: which selector (EVOS with
and without CFS against full and uniform random: does EVOS help a hash grid as it helps SIREN?), which ratio, which
table (2^19 entries per level, so that every level of a 512 px grid is dense, against Instant-NGP's 2^16) and which
schedule (decayed against constant), the last two asked of random r = 0.5. Reported: seconds to 35 / 38 / 40 dB
and the final PSNR. Rerunning skips the finished cells (kept in the JSON). Writes ``results/fit_fast.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import visionlab as vl
from visionlab.util.io import read_json, read_jsonl, write_json, write_text

HERE = Path(__file__).resolve().parent
THRESHOLDS = (35.0, 38.0, 40.0)
# Every variant spells out what it changes from the fast preset (manager.py), so that the rows stay what they say
# whatever the preset becomes.
VARIANTS = {
    "EVOS without CFS, r = 0.5": {"sampler": "evos-no-cfs", "ratio": 0.5},
    "EVOS, r = 0.5": {"sampler": "evos", "ratio": 0.5},
    "full": {"sampler": "full"},
    "random, r = 0.5": {"sampler": "random", "ratio": 0.5},
    "random, r = 0.25": {"sampler": "random", "ratio": 0.25},
    "random, r = 0.5, T = 2^16": {"sampler": "random", "ratio": 0.5, "hash_table": 16},
    "random, r = 0.5, constant lr": {"sampler": "random", "ratio": 0.5, "lr_final": None},
}


def run_cell(image: str, variant: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        summary = vl.fit_run(image, preset="fast", threads=threads, eval_every=10, quiet=True, out=out,
                             **VARIANTS[variant])
        log = [r for r in read_jsonl(Path(summary["run_dir"]) / "metrics.jsonl") if "psnr" in r]
    reach = {f"{t:g}": next((r["seconds"] for r in log if r["psnr"] >= t), None) for t in THRESHOLDS}
    return {"psnr": round(summary["metrics"]["psnr"], 3), "best_psnr": round(max(r["psnr"] for r in log), 3),
            "seconds": round(summary["train_seconds"], 1), "steps": summary["step"], "seconds_to": reach}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="astronaut,coffee,rocket")
    parser.add_argument("--variants", default=";".join(VARIANTS), help="row names, separated by ';'")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "fit_fast"))
    parser.add_argument("--table-only", action="store_true", help="write the table of the cells run so far")
    args = parser.parse_args()
    json_path = Path(args.out).with_suffix(".json")
    cells = read_json(json_path).get("cells", {}) if json_path.exists() else {}
    images, variants = args.images.split(","), args.variants.split(";")
    for variant in variants:
        for image in images:
            key = f"{image}/{variant}"
            if key not in cells and not args.table_only:
                cells[key] = run_cell(image, variant, args.threads)
                print(key, cells[key], flush=True)
                write_json(json_path, {"threads": args.threads, "cells": cells})
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    lines = [f"# The fast preset's choices: hash grid at full size, {args.threads} threads", "",
             "`python benchmarks/fit_fast.py`: each row is `--preset fast` (hash grid, 2^19 entries a level, lr 1e-2 "
             "-> 1e-3, 400 steps) with its selector; seconds of training to 35 / 38 / 40 dB, and the PSNR at the end "
             "of the run (-: not run).", "",
             "| variant | " + " | ".join(f"{i} s to 35 / 38 / 40 dB | {i} final" for i in images) + " | mean final |",
             "|---|" + "---|---|" * len(images) + "---|"]
    for variant in variants:
        row = [cells.get(f"{i}/{variant}") for i in images]
        parts = ["- | -" if c is None else f"{fmt(c['seconds_to']['35'])} / {fmt(c['seconds_to']['38'])} / "
                 f"{fmt(c['seconds_to']['40'])} | {c['psnr']:.2f}" for c in row]
        mean = "-" if None in row else f"{statistics.mean(c['psnr'] for c in row):.2f}"
        lines.append(f"| {variant} | " + " | ".join(parts) + f" | {mean} |")
    write_text(Path(args.out).with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
