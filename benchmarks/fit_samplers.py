"""Sample selectors side by side: full, random and EVOS fitting the same images for the same number of steps.

    python benchmarks/fit_samplers.py                       # 3 built-in photos, 128 px, 1,000 steps, one thread
    python benchmarks/fit_samplers.py --images a.png b.png --size 512x512 --steps 5000 --threads 0 --device cuda

Every strategy runs in this one process, one after the other per image, with the same seed, model (SIREN 3x256,
lr 1e-4) and thread count. Reported per image and as the mean: final PSNR / SSIM, training wall time (evaluation
excluded), the time as a ratio of full's, and the training time each strategy needs to reach the PSNR that full
reaches at its end (interpolated between evaluations). Writes ``results/fit_samplers.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import visionlab as vl
from visionlab.util.io import read_jsonl, write_json, write_text

STRATEGIES: dict[str, dict] = {
    "full": dict(sampler="full"),
    "random r=0.5": dict(sampler="random", ratio=0.5),
    "EVOS r=0.5": dict(sampler="evos", ratio=0.5),
    "EVOS step 0.2": dict(sampler="evos", ratio=0.2, scheduler="step"),
}


def time_to_reach(history: list[dict], psnr: float) -> float | None:
    """Training seconds at which the PSNR curve first reaches ``psnr`` (linear between evaluations), or None."""
    previous = {"seconds": 0.0, "psnr": float("-inf")}
    for record in history:
        if record["psnr"] >= psnr:
            if previous["psnr"] == float("-inf"):
                return record["seconds"]
            fraction = (psnr - previous["psnr"]) / (record["psnr"] - previous["psnr"])
            return previous["seconds"] + fraction * (record["seconds"] - previous["seconds"])
        previous = record
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", default=["astronaut", "coffee", "chelsea"])
    parser.add_argument("--size", default="128x128", help="resize each image (N: shorter side, HxW: exact)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: PyTorch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for image in args.images:
            for label in args.strategies:
                start = time.time()
                summary = vl.fit_run(image, size=args.size, steps=args.steps, threads=args.threads or None,
                                     device=args.device, eval_every=max(1, args.steps // 50), quiet=True, out=runs,
                                     checkpoint_every=args.steps, **STRATEGIES[label])
                history = read_jsonl(Path(summary["run_dir"]) / "metrics.jsonl")
                m = summary["metrics"]
                rows.append(dict(image=image, strategy=label, psnr=m["psnr"], ssim=m["ssim"],
                                 seconds=m["wall_seconds"], pixels_trained=m["pixels_trained"], history=history))
                print(f"{image:>10} {label:<14} PSNR {m['psnr']:6.2f}  SSIM {m['ssim']:.4f}  "
                      f"{m['wall_seconds']:7.1f} s  ({time.time() - start:.0f} s with evaluation)", flush=True)

    for row in rows:
        full = next(r for r in rows if r["image"] == row["image"] and r["strategy"] == "full")
        row["time_ratio"] = row["seconds"] / full["seconds"]
        row["psnr_gain"] = row["psnr"] - full["psnr"]
        reach = time_to_reach(row["history"], full["psnr"])
        row["seconds_to_full_psnr"] = reach
        row["time_to_full_psnr_ratio"] = None if reach is None else reach / full["seconds"]

    mean = []
    for label in args.strategies:
        group = [r for r in rows if r["strategy"] == label]
        reached = [r["time_to_full_psnr_ratio"] for r in group if r["time_to_full_psnr_ratio"] is not None]
        mean.append(dict(strategy=label, psnr=statistics.mean(r["psnr"] for r in group),
                         ssim=statistics.mean(r["ssim"] for r in group),
                         seconds=statistics.mean(r["seconds"] for r in group),
                         time_ratio=statistics.mean(r["time_ratio"] for r in group),
                         psnr_gain=statistics.mean(r["psnr_gain"] for r in group),
                         reached_full_psnr=f"{len(reached)}/{len(group)}",
                         time_to_full_psnr_ratio=statistics.mean(reached) if len(reached) == len(group) else None))

    setup = dict(images=args.images, size=args.size, steps=args.steps, threads=args.threads or torch.get_num_threads(),
                 device=args.device, model="SIREN 3x256, Adam lr 1e-4", torch=torch.__version__,
                 cpu=platform.processor() or platform.machine(), visionlab=vl.__version__)
    out = Path(args.out)
    write_json(out / "fit_samplers.json", dict(setup=setup, mean=mean, rows=rows))
    write_text(out / "fit_samplers.md", markdown(setup, mean, rows))
    print(markdown(setup, mean, rows))


def markdown(setup: dict, mean: list[dict], rows: list[dict]) -> str:
    fmt = lambda x, spec: "never" if x is None else format(x, spec)  # noqa: E731
    lines = [f"Images: {', '.join(setup['images'])} at {setup['size']}; {setup['steps']} steps; {setup['model']}; "
             f"{setup['device']}, {setup['threads']} thread(s); torch {setup['torch']}.", "",
             "| strategy | PSNR (dB) | SSIM | train time (s) | time / full | PSNR - full (dB) "
             "| time to full's final PSNR / full's time |", "|---|---|---|---|---|---|---|"]
    for m in mean:
        lines.append(f"| {m['strategy']} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['seconds']:.1f} | "
                     f"{m['time_ratio']:.2f} | {m['psnr_gain']:+.2f} | "
                     f"{fmt(m['time_to_full_psnr_ratio'], '.2f')} ({m['reached_full_psnr']} reached) |")
    lines += ["", "Per image:", "", "| image | strategy | PSNR | SSIM | time (s) | time / full | to full's PSNR |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['strategy']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.1f} | "
                     f"{r['time_ratio']:.2f} | {fmt(r['time_to_full_psnr_ratio'], '.2f')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
