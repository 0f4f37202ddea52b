"""How the fast preset was chosen: the hash grid at full size with each selector, table size and schedule.

    python benchmarks/fit_fast.py                                   # astronaut, coffee, rocket; every variant
    python benchmarks/fit_fast.py --images astronaut --variants preset,evos

Every cell is ``visionlab fit IMAGE --preset fast --threads 2`` at the image's own size, with one change (the
variant) and an evaluation every 10 steps; training time counts optimiser steps only. The variants answer the
preset's questions: which selector (the preset's random r = 0.5 against full, EVOS and EVOS without CFS at the same
ratio: does EVOS help a hash grid as it helps SIREN?), which table (2^19 entries per level, so that every level of a
512 px grid is dense, against Instant-NGP's 2^16), which schedule (the learning rate decayed from 1e-2 to 1e-3,
against constant) and which ratio (0.25). Reported: seconds to 35 / 38 / 40 dB and the final PSNR. Rerunning skips
the finished cells (kept in the JSON). Writes ``results/fit_fast.json`` and ``.md``.
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
VARIANTS = {
    "preset": {},  # random r = 0.5, T = 2^19, lr 1e-2 -> 1e-3
    "full": {"sampler": "full"},
    "evos": {"sampler": "evos"},
    "evos-no-cfs": {"sampler": "evos-no-cfs"},
    "random r = 0.25": {"ratio": 0.25},
    "table 2^16": {"hash_table": 16},
    "constant lr": {"lr_final": None},
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
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "fit_fast"))
    args = parser.parse_args()
    json_path = Path(args.out).with_suffix(".json")
    cells = read_json(json_path).get("cells", {}) if json_path.exists() else {}
    images, variants = args.images.split(","), args.variants.split(",")
    for variant in variants:
        for image in images:
            key = f"{image}/{variant}"
            if key not in cells:
                cells[key] = run_cell(image, variant, args.threads)
                print(key, cells[key], flush=True)
                write_json(json_path, {"threads": args.threads, "cells": cells})
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    lines = [f"# The fast preset's choices: hash grid at full size, {args.threads} threads", "",
             "`python benchmarks/fit_fast.py`: each row is `--preset fast` with one change; seconds of training to "
             "35 / 38 / 40 dB, and the PSNR at the end of the run.", "",
             "| variant | " + " | ".join(f"{i} s to 35 / 38 / 40 dB | {i} final" for i in images) + " | mean final |",
             "|---|" + "---|---|" * len(images) + "---|"]
    for variant in variants:
        row = [cells[f"{i}/{variant}"] for i in images]
        parts = [f"{fmt(c['seconds_to']['35'])} / {fmt(c['seconds_to']['38'])} / {fmt(c['seconds_to']['40'])} | "
                 f"{c['psnr']:.2f}" for c in row]
        lines.append(f"| {variant} | " + " | ".join(parts) + f" | {statistics.mean(c['psnr'] for c in row):.2f} |")
    write_text(Path(args.out).with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
