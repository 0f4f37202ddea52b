"""The papers' setting at full size on this CPU: SIREN + EVOS, SIREN full and the fast path, PSNR against time.

    python benchmarks/fit_512.py                                # astronaut 512x512, coffee 400x600, rocket 427x640
    python benchmarks/fit_512.py --budget 600                   # 10 minutes of training per SIREN run
    python benchmarks/fit_512.py --images ~/DIV2K_valid_HR      # a folder (or comma-separated files) of your own

Each image is fitted at its own size (no resize) three ways, each through ``visionlab fit`` itself:

- **fast**: ``visionlab fit IMAGE --preset fast --threads 2`` (the hash grid, manager.py), run to its end;
- **SIREN + EVOS**: ``--preset paper`` without its resize (SIREN 3x256, EVOS step-wise from r = 0.2, 5,000 steps: the
  EVOS paper's last row) on ``--siren-threads`` threads (1), stopped after ``--budget`` seconds of training
  (30 minutes);
- **SIREN full**: ``--preset paper-full`` (every pixel, every step), the same budget.

Runs live in ``--runs`` (``runs/bench-fit512``); rerunning continues them: a stopped run resumes from its checkpoint
up to the (possibly larger) budget, a finished one is read back. Evaluation every 50 steps (every 10 for the fast
path) gives the curves; training time counts optimiser steps only. Reported per run: final PSNR / SSIM, training
seconds, seconds to 35 / 38 / 40 dB (first evaluation at or above), and how much sooner the fast path reached SIREN +
EVOS's best PSNR. Writes ``results/fit_512.json`` and ``.md``, and ``assets/fit_512.png`` (the curves).
"""

from __future__ import annotations

import argparse
import os
import resource
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import visionlab as vl  # noqa: E402
from visionlab.data.datasets import image_files  # noqa: E402
from visionlab.util.io import read_json, read_jsonl, write_json, write_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = (35.0, 38.0, 40.0)
ROWS = {  # row -> (preset, its own options)
    "fast": ("fast", {"eval_every": 10}),
    "SIREN + EVOS": ("paper", {"eval_every": 50}),
    "SIREN full": ("paper-full", {"eval_every": 50}),
}


def relative(path: str | Path) -> str:
    """A path as the results files keep it: relative to the project when inside it."""
    try:
        return os.path.relpath(Path(path).resolve(), ROOT) if Path(path).resolve().is_relative_to(ROOT) else str(path)
    except ValueError:
        return str(path)


def run(image: str, row: str, *, runs: Path, budget: float | None, threads: int) -> dict:
    """Fit (or continue, or read back) one cell; returns its log and final metrics."""
    preset, options = ROWS[row]
    name = f"{Path(image).stem}-{preset}"
    run_dir = runs / "fit" / name
    stop = [] if budget is None else [lambda t: t.train_seconds >= budget and t.request_stop()]
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else None
    done = summary is not None and (summary["status"] == "finished" or
                                    (budget is not None and summary["train_seconds"] >= budget))
    cpu = None
    if not done:
        before = resource.getrusage(resource.RUSAGE_SELF)
        if (run_dir / "checkpoint.pt").exists():
            vl.fit_run(resume=run_dir, threads=threads, quiet=True, callbacks=stop)
        else:
            vl.fit_run(image, preset=preset, size=None, threads=threads, quiet=True, out=str(runs), name=name,
                       callbacks=stop, **options)
        summary = read_json(summary_path)
        after = resource.getrusage(resource.RUSAGE_SELF)
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        cpu = {"user_seconds": round(user, 1), "system_seconds": round(system, 1),
               "system_share": round(system / max(user + system, 1e-9), 4)}  # of this call (a resume: its part)
    log = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "psnr" in r]
    curve = [(r["seconds"], r["psnr"]) for r in log]
    reach = {f"{t:g}": next((s for s, p in curve if p >= t), None) for t in THRESHOLDS}
    metrics = summary["metrics"]
    return {"image": Path(image).stem, "row": row, "run_dir": relative(run_dir), "status": summary["status"],
            "steps": summary["step"], "seconds": round(summary["train_seconds"], 1),
            "psnr": round(metrics["psnr"], 3), "ssim": round(metrics["ssim"], 4),
            "best_psnr": round(max(p for _, p in curve), 3), "shape": metrics["shape"], "threads": threads,
            "seconds_to": reach, "cpu": cpu, "curve": curve}


def sooner(cells: list[dict], image: str) -> float | None:
    """SIREN + EVOS's training time to its best PSNR over the fast path's time to that PSNR."""
    by_row = {c["row"]: c for c in cells if c["image"] == image}
    evos, fast = by_row.get("SIREN + EVOS"), by_row.get("fast")
    if evos is None or fast is None:
        return None
    best = max(p for _, p in evos["curve"])
    t_evos = next(s for s, p in evos["curve"] if p >= best)
    t_fast = next((s for s, p in fast["curve"] if p >= best), None)
    return None if t_fast is None else t_evos / max(t_fast, 1e-9)


def figure(cells: list[dict], images: list[str], path: Path) -> None:
    fig, axes = plt.subplots(1, len(images), figsize=(4.2 * len(images), 3.4), squeeze=False)
    for ax, image in zip(axes[0], images):
        for c in (c for c in cells if c["image"] == image):
            seconds, values = zip(*c["curve"])
            ax.plot(seconds, values, label=f"{c['row']} ({c['threads']} thr.)")
        ax.set_xscale("log")
        ax.axhline(40, color="grey", lw=0.6, ls=":")
        shape = next(c["shape"] for c in cells if c["image"] == image)
        ax.set_title(f"{image} {shape[0]} x {shape[1]}")
        ax.set_xlabel("training time (s)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="astronaut,coffee,rocket")
    parser.add_argument("--budget", type=float, default=1800.0, help="training seconds per SIREN run")
    parser.add_argument("--siren-threads", type=int, default=1)
    parser.add_argument("--fast-threads", type=int, default=2)
    parser.add_argument("--rows", default=",".join(ROWS), help="which rows, comma-separated")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench-fit512"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fit_512"))
    parser.add_argument("--figure", default=str(ROOT / "assets" / "fit_512.png"))
    args = parser.parse_args()
    images = ([str(f) for f in image_files(args.images)] if Path(args.images).is_dir()
              else [i.strip() for i in args.images.split(",") if i.strip()])
    rows = [r.strip() for r in args.rows.split(",")]
    cells = []
    earlier = read_json(Path(args.out).with_suffix(".json")) if Path(args.out).with_suffix(".json").exists() else {}
    measured = {(c["image"], c["row"]): c.get("cpu") for c in earlier.get("cells", [])}
    for row in rows:  # the fast path first, on every image: it needs both cores to itself
        for image in images:
            fast = row == "fast"
            cells.append(run(image, row, runs=Path(args.runs), budget=None if fast else args.budget,
                             threads=args.fast_threads if fast else args.siren_threads))
            if cells[-1]["cpu"] is None:  # read back, not run now: keep the CPU times measured when it ran
                cells[-1]["cpu"] = measured.get((cells[-1]["image"], row))
            print({k: v for k, v in cells[-1].items() if k != "curve"}, flush=True)
    names = [Path(i).stem for i in images]
    speedups = {image: sooner(cells, image) for image in names}
    write_json(Path(args.out).with_suffix(".json"), {"budget_seconds": args.budget, "cells": cells,
                                                      "fast_sooner_than_siren_evos": speedups})
    fmt = lambda v: "-" if v is None else f"{v:,.1f}" if v < 10 else f"{v:,.0f}"  # noqa: E731
    lines = [f"# Full-size fits: the fast path against SIREN 3x256 (training budget {args.budget:,.0f} s per SIREN "
             "run)", "", "`python benchmarks/fit_512.py`; training seconds (optimiser steps only).", "",
             "| image | row | threads | steps | training s | PSNR | SSIM | s to 35 dB | s to 38 dB | s to 40 dB | "
             "system share of CPU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        share = "-" if not c["cpu"] else f"{c['cpu']['system_share']:.1%}"
        lines.append(f"| {c['image']} | {c['row']} | {c['threads']} | {c['steps']:,} | {c['seconds']:,.1f} | "
                     f"{c['psnr']:.2f} | {c['ssim']:.4f} | " + " | ".join(fmt(c['seconds_to'][f'{t:g}'])
                                                                       for t in THRESHOLDS) + f" | {share} |")
    lines += ["", "The fast path reached SIREN + EVOS's best PSNR (within its budget) this many times sooner: " +
              ", ".join(f"{k} {'-' if v is None else f'{v:.0f}x'}" for k, v in speedups.items()), ""]
    write_text(Path(args.out).with_suffix(".md"), "\n".join(lines))
    figure(cells, names, Path(args.figure))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
