"""One fit training step against the machine's matmul rate and against a plain PyTorch SIREN, side by side.

    python benchmarks/fit_step.py                       # 1 and 2 threads, 16,384 / 65,536 / 262,144 points
    python benchmarks/fit_step.py --threads 1 --points 65536 --repeats 4

In one process, per thread count and number of points N (astronaut at 128, 256 and 512 px, every pixel):

- **sgemm**: the hidden layers' product (N x 256) @ (256 x 256) as PyTorch runs it (a fresh output each call, the
  issue's reference), and the same work as (chunk x 256) products into one preallocated output, which is the best
  this core does (no page faults, operands in cache);
- **visionlab**: ``FitTrainer.train_step`` of ``visionlab fit astronaut --sampler full`` (SIREN 3x256, its default
  chunk, fused sine layers), in fp32 and in bf16;
- **reference**: a plain SIREN written here (``nn.Linear`` + ``torch.sin(30 x)``, one batch, Adam), with the same
  parameters, trained on the same coordinates and targets;
- **hash grid**: the fit trainer's full step (chunked, precomputed corners) and the plain one-batch step (hashing
  every step) at 256, 512 and 1,024 px, with the system time's share of the CPU time (``resource.getrusage``).

The steps and the two sgemm calls are interleaved (sgemm, sgemm in cache, reference, visionlab fp32, visionlab
bf16, ... for every repeat), so that the machine's slower and faster moments (this lab's VM drifts by several per
cent within minutes) reach the rate and the step alike, and the median of the repeats is reported. GFLOP/s counts
6 x parameters x points per step (forward 2, backward 4), 198,915 parameters. A chunk-size sweep at 65,536 points
documents each model's ``default_chunk``. Writes ``results/fit_step.json`` and ``.md`` (paths in them are relative
to the project).
"""

from __future__ import annotations

import argparse
import math
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from visionlab.opt import FitConfig
from visionlab.trainer.fit import build_fit
from visionlab.util.io import write_json, write_text
from visionlab.util.precision import bf16_is_fast

HERE = Path(__file__).resolve().parent
WIDTH = 256
SIDES = {16384: 128, 65536: 256, 262144: 512}


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sgemm_products(n: int, chunk: int) -> dict:
    """(n x 256) @ (256 x 256) as PyTorch allocates it ("fresh"), and the same as cache-sized products into one
    buffer ("in_cache"): the two calls, timed with the steps."""
    x, w = torch.randn(n, WIDTH), torch.randn(WIDTH, WIDTH)
    parts = list(zip(x.split(chunk), torch.empty(n, WIDTH).split(chunk)))
    return {"sgemm_fresh": lambda: x @ w, "sgemm_in_cache": lambda: [torch.mm(a, w, out=o) for a, o in parts]}


class PlainSiren(nn.Module):
    """SIREN as a new user writes it: Linear, then sin(30 x), three hidden layers of 256, a linear head."""

    def __init__(self, like: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(layer.linear.in_features, layer.linear.out_features)
                                    for layer in like.net)
        self.head = nn.Linear(WIDTH, like.head.out_features)
        self.load_state_dict({k.replace("net.", "layers.").replace(".linear", ""): v
                              for k, v in like.state_dict().items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.sin(30.0 * layer(x))
        return self.head(x)


def fit_trainer(side: int, model: str, precision: str, out: str, chunk: int | None = None):
    config = FitConfig(image="astronaut", size=f"{side}x{side}", model=model, sampler="full", steps=10**6,
                       precision=precision, chunk=chunk, quiet=True, out=out, checkpoint_every=10**6)
    return build_fit(config)


def step_of(trainer):
    counter = iter(range(10**9))
    return lambda: trainer.train_step(next(counter))


def siren_rows(threads: int, points: list[int], repeats: int, out: str) -> list[dict]:
    rows = []
    for n in points:
        side = SIDES[n]
        fp32 = fit_trainer(side, "siren", "fp32", out)
        bf16 = fit_trainer(side, "siren", "bf16", out) if bf16_is_fast(torch.device("cpu")) else None
        params = sum(p.numel() for p in fp32.model.parameters())
        plain = PlainSiren(fp32.model)
        optimizer = torch.optim.Adam(plain.parameters(), lr=1e-4)
        coords, target = fp32.coords, fp32.target

        def reference():
            loss = torch.mean((plain(coords) - target) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        steps = {**sgemm_products(n, fp32.chunk), "reference": reference, "fp32": step_of(fp32)}
        if bf16 is not None:
            steps["bf16"] = step_of(bf16)
        times = {name: [] for name in steps}
        for fn in steps.values():
            fn()  # warm-up
        for _ in range(repeats):  # interleaved, sgemm too: a slow moment of the machine hits every variant
            for name, fn in steps.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        row = {"threads": threads, "points": n, "chunk": fp32.chunk}
        for name, values in times.items():
            seconds = statistics.median(values)
            flops = 2 * n * WIDTH * WIDTH if name.startswith("sgemm") else 6 * params * n
            row[f"{name}_ms"] = round(1e3 * seconds, 1)
            row[f"{name}_gflops"] = round(flops / seconds / 1e9, 1)
        row["fp32_of_sgemm_fresh"] = round(row["fp32_gflops"] / row["sgemm_fresh_gflops"], 3)
        row["fp32_of_sgemm_in_cache"] = round(row["fp32_gflops"] / row["sgemm_in_cache_gflops"], 3)
        row["fp32_speedup_vs_reference"] = round(row["reference_ms"] / row["fp32_ms"], 2)
        if "bf16_ms" in row:
            row["bf16_speedup_vs_fp32"] = round(row["fp32_ms"] / row["bf16_ms"], 2)
        print(row, flush=True)
        rows.append(row)
    return rows


def cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def hashgrid_rows(threads: int, sides: list[int], repeats: int, out: str) -> list[dict]:
    rows = []
    for side in sides:
        trainer = fit_trainer(side, "hashgrid", "fp32", out)
        model, coords, target, optimizer = trainer.model, trainer.coords, trainer.target, trainer.optimizer

        def one_batch():  # the step before chunking: every point hashed, one batch
            loss = torch.mean((model(coords) - target) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        row = {"threads": threads, "side": side, "points": side * side}
        for name, fn in (("one_batch", one_batch), ("visionlab", step_of(trainer))):
            fn()
            user0, sys0 = cpu_seconds()
            seconds = median_seconds(fn, repeats)
            user1, sys1 = cpu_seconds()
            row[f"{name}_ms"] = round(1e3 * seconds, 1)
            row[f"{name}_ns_per_pixel"] = round(1e9 * seconds / (side * side), 1)
            row[f"{name}_system_share"] = round((sys1 - sys0) / max(user1 - user0 + sys1 - sys0, 1e-9), 3)
        print(row, flush=True)
        rows.append(row)
    return rows


def chunk_sweep(repeats: int, out: str) -> list[dict]:
    rows = []
    for model in ("siren", "hashgrid"):
        for precision in ("fp32", "bf16") if model == "siren" else ("fp32",):
            for chunk in (1024, 2048, 4096, 8192, 16384, 65536):
                trainer = fit_trainer(256, model, precision, out, chunk=chunk)
                seconds = median_seconds(step_of(trainer), repeats)
                rows.append({"model": model, "precision": precision, "chunk": chunk, "ms": round(1e3 * seconds, 1)})
                print(rows[-1], flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = ["# One fit step: SIREN 3x256 against sgemm and a plain PyTorch SIREN; the hash grid's step", "",
             f"`python benchmarks/fit_step.py` on {result['machine']['cpu']}, torch {result['machine']['torch']}; "
             "median of the interleaved repeats; GFLOP/s = 6 x 198,915 x points / step time.", "",
             "| threads | points | sgemm (N x 256) GFLOP/s | sgemm in cache | reference ms | visionlab fp32 ms | "
             "GFLOP/s | of sgemm | of in-cache sgemm | vs reference | bf16 ms | bf16 vs fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["siren"]:
        lines.append(f"| {r['threads']} | {r['points']:,} | {r['sgemm_fresh_gflops']:.0f} | "
                     f"{r['sgemm_in_cache_gflops']:.0f} | {r['reference_ms']:,.0f} | {r['fp32_ms']:,.0f} | "
                     f"{r['fp32_gflops']:.0f} | {r['fp32_of_sgemm_fresh']:.0%} | {r['fp32_of_sgemm_in_cache']:.0%} | "
                     f"{r['fp32_speedup_vs_reference']:.2f}x | {r.get('bf16_ms', math.nan):,.0f} | "
                     f"{r.get('bf16_speedup_vs_fp32', math.nan):.2f}x |")
    lines += ["", "Hash grid (16 levels, T = 2^16, MLP 64 x 2), full step:", "",
              "| threads | image | one batch ms | ns / pixel | system share | visionlab ms | ns / pixel | "
              "system share |", "|---|---|---|---|---|---|---|---|"]
    for r in result["hashgrid"]:
        lines.append(f"| {r['threads']} | {r['side']} x {r['side']} | {r['one_batch_ms']:,.0f} | "
                     f"{r['one_batch_ns_per_pixel']:,.0f} | {r['one_batch_system_share']:.0%} | "
                     f"{r['visionlab_ms']:,.0f} | {r['visionlab_ns_per_pixel']:,.0f} | "
                     f"{r['visionlab_system_share']:.0%} |")
    if result.get("chunks"):
        lines += ["", "Chunk size at 65,536 points (256 px), one thread, step ms:", "",
                  "| model | precision | " + " | ".join(str(c) for c in sorted({r['chunk'] for r in result['chunks']}))
                  + " |", "|---|---|" + "---|" * len({r['chunk'] for r in result['chunks']})]
        for key in dict.fromkeys((r["model"], r["precision"]) for r in result["chunks"]):
            cells = [f"{r['ms']:.0f}" for r in result["chunks"] if (r["model"], r["precision"]) == key]
            lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--points", default="16384,65536,262144")
    parser.add_argument("--hash-sides", default="256,512,1024")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--no-sweep", action="store_true", help="skip the chunk-size sweep")
    parser.add_argument("--out", default=str(HERE / "results" / "fit_step"))
    args = parser.parse_args()
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                          "bf16_native": bf16_is_fast(torch.device("cpu"))}, "siren": [], "hashgrid": []}
    with tempfile.TemporaryDirectory() as out:
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            result["siren"] += siren_rows(threads, [int(n) for n in args.points.split(",")], args.repeats, out)
            result["hashgrid"] += hashgrid_rows(threads, [int(s) for s in args.hash_sides.split(",")],
                                                args.repeats, out)
        if not args.no_sweep:
            torch.set_num_threads(1)
            result["chunks"] = chunk_sweep(max(3, args.repeats // 2), out)
    write_json(Path(args.out).with_suffix(".json"), result)
    text = markdown(result)
    write_text(Path(args.out).with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
