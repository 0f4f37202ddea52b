"""What bf16 costs in PSNR: the same fit in fp32 and in bf16, side by side, per model and photo.

    python benchmarks/fit_precision.py                                  # siren and hashgrid, 3 photos, 128 px
    python benchmarks/fit_precision.py --models siren --images astronaut --steps 200

Each cell is ``visionlab fit IMAGE --size 128x128 --steps 1000 --sampler full --precision fp32|bf16`` through the
fit trainer itself (the model's default learning rate, minmax transform, seed 0, one thread), so the two runs of a
pair differ in precision only. The PSNR cost of bf16 is fp32's PSNR minus bf16's; per model the table gives the mean
and the worst over the photos, and the step time of each. ``--precision auto`` takes bf16 for a model only where
the worst cost is below 0.1 dB (``bf16_cost_db`` on the model class, copied from this table). Rerunning continues
an interrupted table (cells are kept in the JSON as they finish). Writes ``results/fit_precision.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path

import torch

import visionlab as vl
from visionlab.trainer.fit import AUTO_BF16_MAX_COST_DB
from visionlab.util.io import read_json, write_json, write_text

HERE = Path(__file__).resolve().parent


def run_cell(model: str, image: str, precision: str, args) -> dict:
    with tempfile.TemporaryDirectory() as out:
        metrics = vl.fit(image, model=model, size=args.size, steps=args.steps, sampler="full", precision=precision,
                         threads=args.threads, eval_every=args.steps, checkpoint_every=args.steps, quiet=True,
                         out=out)
    return {"psnr": round(metrics["psnr"], 4), "ssim": round(metrics["ssim"], 5),
            "seconds_per_step": round(metrics["wall_seconds"] / metrics["steps"], 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="siren,hashgrid")
    parser.add_argument("--images", default="astronaut,camera,coffee")
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "fit_precision"))
    args = parser.parse_args()
    json_path = Path(args.out).with_suffix(".json")
    setting = {"size": args.size, "steps": args.steps, "threads": args.threads}
    done = read_json(json_path) if json_path.exists() else {}
    cells = done.get("cells", {}) if done.get("setting") == setting else {}
    for model in args.models.split(","):
        for image in args.images.split(","):
            for precision in ("fp32", "bf16"):
                key = f"{model}/{image}/{precision}"
                if key not in cells:
                    cells[key] = run_cell(model, image, precision, args)
                    print(key, cells[key], flush=True)
                    write_json(json_path, {"setting": setting, "cells": cells})
    rows = []
    summary = {}
    for model in args.models.split(","):
        costs = []
        for image in args.images.split(","):
            fp32, bf16 = cells[f"{model}/{image}/fp32"], cells[f"{model}/{image}/bf16"]
            cost = fp32["psnr"] - bf16["psnr"]
            costs.append(cost)
            rows.append(f"| {model} | {image} | {fp32['psnr']:.2f} | {bf16['psnr']:.2f} | {cost:+.2f} | "
                        f"{1e3 * fp32['seconds_per_step']:.0f} | {1e3 * bf16['seconds_per_step']:.0f} |")
        summary[model] = {"mean_cost_db": round(statistics.mean(costs), 3), "worst_cost_db": round(max(costs), 3),
                          "auto": "bf16" if max(costs) < AUTO_BF16_MAX_COST_DB else "fp32"}
    write_json(json_path, {"setting": setting, "cells": cells, "summary": summary,
                           "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__}})
    lines = [f"# What bf16 costs: fit {args.size}, {args.steps} steps, sampler full, {args.threads} thread(s)", "",
             "`python benchmarks/fit_precision.py` (each cell through `visionlab fit ... --precision fp32|bf16`).", "",
             "| model | image | fp32 PSNR | bf16 PSNR | cost (dB) | fp32 ms/step | bf16 ms/step |",
             "|---|---|---|---|---|---|---|", *rows, "",
             "| model | mean cost (dB) | worst cost (dB) | --precision auto takes |", "|---|---|---|---|",
             *[f"| {m} | {s['mean_cost_db']:+.2f} | {s['worst_cost_db']:+.2f} | {s['auto']} |"
               for m, s in summary.items()], ""]
    write_text(Path(args.out).with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
