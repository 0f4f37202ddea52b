"""Hash grid against SIREN: how long the hash grid needs to reach the PSNR that SIREN reaches in 1,000 steps.

    python benchmarks/fit_hashgrid.py                          # 4 built-in photos at 256x256, one thread (hours:
                                                               # SIREN 3x256 on 65,536 pixels is seconds per step)
    python benchmarks/fit_hashgrid.py --images astronaut --size 128x128
    python benchmarks/fit_hashgrid.py --device cuda --threads 0

Both models fit each image in this one process, one after the other, with the same seed, pixels, value transform
(minmax), thread count and training loop: every step trains on all pixels (the full sampler) with the MSE loss and
Adam, as ``visionlab fit --sampler full`` does. The loop is written out here rather than taken from the fit trainer
so that the hash grid gets its paper's Adam settings (betas 0.9 / 0.99, eps 1e-15), which the trainer does not pass
yet. SIREN 3x256, lr 1e-4, trains ``--siren-steps`` (1,000) steps; its PSNR at the end is the target. The hash grid
(16 levels x 2 features, T = 2^16, resolutions 16..512, MLP 64 x 2, lr 1e-2) then trains ``--hash-steps`` steps,
evaluated every ``--eval-every`` steps; the time it reaches the target is the training time at the first evaluation
at or above it (an upper bound: it may have got there up to eval-every - 1 steps earlier). Only optimiser steps count
as training time, evaluation does not. PSNR: peak 1, on the de-transformed prediction clamped to [0, 1], as the fit
trainer. The goal: time to SIREN's PSNR at most 1/5 of SIREN's time. Writes ``results/fit_hashgrid.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from einops import rearrange

import visionlab as vl
from visionlab.components.metrics import psnr, ssim
from visionlab.components.transforms import make_transform
from visionlab.data.images import coordinate_grid, load_image
from visionlab.models.hashgrid import HashGrid
from visionlab.models.inr import Siren, predict_in_chunks
from visionlab.trainer.base import synchronize
from visionlab.util.io import write_json, write_text

GOAL = 0.2  # the hash grid must reach SIREN's PSNR in at most this fraction of SIREN's time


class Fit:
    """One model fitting one image with Adam on all pixels; ``seconds`` counts optimiser steps only."""

    def __init__(self, model: torch.nn.Module, *, coords: torch.Tensor, original: torch.Tensor, transform,
                 lr: float, betas=(0.9, 0.999), eps: float = 1e-8, device: torch.device):
        self.model, self.coords, self.original, self.transform, self.device = model, coords, original, transform, device
        self.target = transform(original)  # (N, C) in model space
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=eps)
        self.seconds, self.step = 0.0, 0

    def train(self, steps: int) -> None:
        for _ in range(steps):
            start = time.perf_counter()
            loss = torch.mean((self.model(self.coords) - self.target) ** 2)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            synchronize(self.device)
            self.seconds += time.perf_counter() - start
            self.step += 1

    def reconstruct(self) -> torch.Tensor:
        return self.transform.inverse(predict_in_chunks(self.model, self.coords)).clamp(0, 1)  # (N, C)

    def psnr(self) -> float:
        return float(psnr(self.reconstruct(), self.original))

    def ssim(self, height: int, width: int) -> float:
        def chw(x: torch.Tensor) -> torch.Tensor:
            return rearrange(x, "(h w) c -> c h w", h=height, w=width)  # (N, C) -> (C, H, W)

        return float(ssim(chw(self.reconstruct()), chw(self.original)))

    def record(self) -> dict:
        return {"step": self.step, "seconds": round(self.seconds, 4), "psnr": round(self.psnr(), 4)}


def run_image(name: str, args, device: torch.device) -> dict:
    image = load_image(name, size=args.size)
    coords = coordinate_grid(image.height, image.width, device=device)  # (N, 2)
    original = image.flat().to(device)  # (N, C) in [0, 1]
    transform = make_transform("minmax").fit(image.flat())

    torch.manual_seed(args.seed)
    siren = Fit(Siren(out_features=image.channels, width=256, depth=3).to(device), coords=coords, original=original,
                transform=transform, lr=1e-4, device=device)
    siren_history = []
    while siren.step < args.siren_steps:  # evaluate every 10 % for the curve; evaluation is not timed
        siren.train(min(max(1, args.siren_steps // 10), args.siren_steps - siren.step))
        siren_history.append(siren.record())
    target_psnr = siren_history[-1]["psnr"]
    siren_ssim = siren.ssim(image.height, image.width)
    print(f"{name:>10} SIREN 3x256  {siren.step} steps  PSNR {target_psnr:6.2f}  {siren.seconds:8.1f} s "
          f"({1000 * siren.seconds / siren.step:.0f} ms/step)", flush=True)

    torch.manual_seed(args.seed)
    model = HashGrid(in_features=2, out_features=image.channels, width=args.hash_width, depth=args.hash_depth,
                     num_levels=args.levels, log2_table_size=args.log2_table_size,
                     max_resolution=args.max_resolution).to(device)
    hashgrid = Fit(model, coords=coords, original=original, transform=transform, lr=args.hash_lr or model.default_lr,
                   betas=model.adam_betas, eps=model.adam_eps, device=device)
    hash_history, reached = [], None
    while hashgrid.step < args.hash_steps:
        hashgrid.train(min(args.eval_every, args.hash_steps - hashgrid.step))
        hash_history.append(hashgrid.record())
        if reached is None and hash_history[-1]["psnr"] >= target_psnr:
            reached = hash_history[-1]
    hash_ssim = hashgrid.ssim(image.height, image.width)
    ratio = None if reached is None else reached["seconds"] / siren.seconds
    print(f"{name:>10} hash grid    {hashgrid.step} steps  PSNR {hash_history[-1]['psnr']:6.2f}  "
          f"{hashgrid.seconds:8.1f} s ({1000 * hashgrid.seconds / hashgrid.step:.0f} ms/step); SIREN's PSNR "
          + ("never reached" if reached is None else
             f"at step {reached['step']}, {reached['seconds']:.1f} s = {ratio:.4f} of SIREN's time"), flush=True)
    return {"image": name, "height": image.height, "width": image.width,
            "siren": {"steps": siren.step, "psnr": target_psnr, "ssim": siren_ssim, "seconds": siren.seconds,
                      "ms_per_step": 1000 * siren.seconds / siren.step, "history": siren_history,
                      "parameters": sum(p.numel() for p in siren.model.parameters())},
            "hashgrid": {"steps": hashgrid.step, "psnr": hash_history[-1]["psnr"], "ssim": hash_ssim,
                         "seconds": hashgrid.seconds, "ms_per_step": 1000 * hashgrid.seconds / hashgrid.step,
                         "history": hash_history, "parameters": sum(p.numel() for p in model.parameters())},
            "steps_to_siren_psnr": None if reached is None else reached["step"],
            "seconds_to_siren_psnr": None if reached is None else reached["seconds"],
            "time_ratio": ratio, "goal_met": ratio is not None and ratio <= GOAL}

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", default=["astronaut", "camera", "coffee", "chelsea"])
    parser.add_argument("--size", default="256x256", help="resize each image (N: shorter side, HxW: exact)")
    parser.add_argument("--siren-steps", type=int, default=1000)
    parser.add_argument("--hash-steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=5, help="evaluate the hash grid every this many steps")
    parser.add_argument("--hash-lr", type=float, default=None, help="default: HashGrid.default_lr (1e-2)")
    parser.add_argument("--hash-width", type=int, default=64)
    parser.add_argument("--hash-depth", type=int, default=1, help="(width -> width) layers after the first")
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--log2-table-size", type=int, default=16)
    parser.add_argument("--max-resolution", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: PyTorch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = [run_image(name, args, device) for name in args.images]
    ratios = [r["time_ratio"] for r in rows if r["time_ratio"] is not None]
    mean = {"siren_psnr": statistics.mean(r["siren"]["psnr"] for r in rows),
            "siren_seconds": statistics.mean(r["siren"]["seconds"] for r in rows),
            "hash_psnr": statistics.mean(r["hashgrid"]["psnr"] for r in rows),
            "hash_seconds": statistics.mean(r["hashgrid"]["seconds"] for r in rows),
            "reached": f"{len(ratios)}/{len(rows)}", "time_ratio": statistics.mean(ratios) if ratios else None,
            "worst_time_ratio": max(ratios) if len(ratios) == len(rows) else None,
            "goal_met": all(r["goal_met"] for r in rows)}
    hashgrid = (f"hash grid L={args.levels} F=2 T=2^{args.log2_table_size} N=16..{args.max_resolution}, MLP "
                f"{args.hash_width} x {args.hash_depth + 1} hidden, Adam lr {args.hash_lr or HashGrid.default_lr:g} "
                f"betas {HashGrid.adam_betas} eps {HashGrid.adam_eps:g}, full sampler")
    setup = {"images": args.images, "size": args.size, "siren_steps": args.siren_steps,
             "hash_steps": args.hash_steps, "eval_every": args.eval_every,
             "threads": args.threads or torch.get_num_threads(), "device": args.device,
             "siren": "SIREN 3x256, Adam lr 1e-4, full sampler", "hashgrid": hashgrid,
             "goal": f"time to SIREN's PSNR <= {GOAL} x SIREN's time", "torch": torch.__version__,
             "cpu": platform.processor() or platform.machine(), "visionlab": vl.__version__}
    out = Path(args.out)
    write_json(out / "fit_hashgrid.json", {"setup": setup, "mean": mean, "rows": rows})
    write_text(out / "fit_hashgrid.md", markdown(setup, mean, rows))
    print(markdown(setup, mean, rows))


def markdown(setup: dict, mean: dict, rows: list[dict]) -> str:
    def fmt(x, spec: str) -> str:
        return "never" if x is None else format(x, spec)

    head = (f"Images: {', '.join(setup['images'])} at {setup['size']}; {setup['siren']}, {setup['siren_steps']} "
            f"steps; {setup['hashgrid']}, {setup['hash_steps']} steps, evaluated every {setup['eval_every']}; "
            f"{setup['device']}, {setup['threads']} thread(s); torch {setup['torch']}. Times are training only.")
    columns = ("| image | SIREN PSNR (dB) | SIREN time (s) | hash grid: steps to SIREN's PSNR | time to it (s) "
               "| time / SIREN's | goal <= 0.2 | hash grid final PSNR (dB) | hash grid time (s) |")
    lines = [head, "", columns, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['siren']['psnr']:.2f} | {r['siren']['seconds']:.1f} | "
                     f"{fmt(r['steps_to_siren_psnr'], 'd')} | {fmt(r['seconds_to_siren_psnr'], '.1f')} | "
                     f"{fmt(r['time_ratio'], '.4f')} | {'met' if r['goal_met'] else 'not met'} | "
                     f"{r['hashgrid']['psnr']:.2f} | {r['hashgrid']['seconds']:.1f} |")
    lines.append(f"| mean | {mean['siren_psnr']:.2f} | {mean['siren_seconds']:.1f} | ({mean['reached']} reached) | | "
                 f"{fmt(mean['time_ratio'], '.4f')} | {'met' if mean['goal_met'] else 'not met'} | "
                 f"{mean['hash_psnr']:.2f} | {mean['hash_seconds']:.1f} |")
    lines += ["", "Per step: " + ", ".join(f"{r['image']} SIREN {r['siren']['ms_per_step']:.0f} ms, hash grid "
                                          f"{r['hashgrid']['ms_per_step']:.0f} ms" for r in rows) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
