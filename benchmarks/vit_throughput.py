"""ViT training throughput side by side: visionlab's ViT against lucidrains' vit-pytorch at the same size.

    python benchmarks/vit_throughput.py                                 # two configurations, 2 CPU threads
    python benchmarks/vit_throughput.py --configs small --repeats 9 --batch 128
    python benchmarks/vit_throughput.py --device cuda --threads 0 --steps 10

vit-pytorch is a benchmark-only dependency (``pip install --no-deps vit-pytorch``); its package ``__init__``
imports torchvision, so its ``vit.py`` is loaded as a lone module file instead of importing the package.

Both models are built in this one process with the same hyper-parameters (image and patch size, dim, depth, heads,
mlp_dim, dim_head = dim / heads, classes, [CLS] pooling, no dropout, exact GELU), on the same device and thread
count, and trained on the same random batch: forward, cross-entropy, backward, AdamW step. After ``--warmup`` steps
each, every repeat times ``--steps`` steps of one model and then ``--steps`` of the other, the order alternating
from repeat to repeat, so that load from other processes and clock changes hit both alike. Reported per
configuration: parameter counts, the median images per second of each model over the repeats, and the ratio
visionlab / vit-pytorch of the medians (>= 1.0: visionlab is at least as fast). On a machine shared with other
work wall-clock rates swing by several times from repeat to repeat (with more threads than free cores, every
parallel region waits for its slowest, descheduled thread), so the median of the per-repeat ratios, each pairing two
neighbouring timings, comes with it as a cross-check; the JSON keeps every repeat. ``--profile`` prints each
model's most expensive ops. Writes ``results/vit_throughput.json`` and ``.md``.

The parameter counts differ slightly by design, not by mistake: visionlab embeds patches with a Conv2d
(kernel = stride = P; C P^2 D + D weights, as the paper and timm) where vit-pytorch uses LayerNorm(C P^2) -
Linear - LayerNorm(D) (2 C P^2 + 2 D more), and visionlab's qkv projection has a bias (3 D per block) where
vit-pytorch's has none.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import visionlab as vl
from visionlab.models.vit import ViT, vit_config
from visionlab.util.io import write_json, write_text

# (a) a small model on 32 x 32 inputs (CIFAR-sized), (b) ViT-Ti/16 at 224 x 224 with a small batch.
CONFIGS: dict[str, dict] = {
    "small": dict(label="small/4 @ 32", image_size=32, patch_size=4, dim=192, depth=6, heads=3, mlp_dim=768,
                  num_classes=10, batch=64, repeats=11),
    "ti16": dict(label="ViT-Ti/16 @ 224", image_size=224, patch_size=16, dim=192, depth=12, heads=3, mlp_dim=768,
                 num_classes=1000, batch=8, repeats=7),
}
SIZES = ("image_size", "patch_size", "dim", "depth", "heads", "mlp_dim", "num_classes", "batch", "repeats")


def load_vit_pytorch():
    """vit-pytorch's ``vit.py`` as a lone module (its package ``__init__`` would import torchvision)."""
    spec = importlib.util.find_spec("vit_pytorch")  # finds the package folder without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("vit-pytorch is not installed: pip install --no-deps vit-pytorch")
    path = Path(next(iter(spec.submodule_search_locations))) / "vit.py"
    module_spec = importlib.util.spec_from_file_location("_vit_pytorch_vit", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def build(cfg: dict, vit_pytorch) -> dict[str, nn.Module]:
    """Both models at the same size; dropout 0, [CLS] pooling, dim_head = dim / heads, exact GELU."""
    ours = ViT(config=vit_config("Ti", image_size=cfg["image_size"], patch_size=cfg["patch_size"], dim=cfg["dim"],
                                 depth=cfg["depth"], num_heads=cfg["heads"], mlp_dim=cfg["mlp_dim"],
                                 num_classes=cfg["num_classes"]))
    theirs = vit_pytorch.ViT(image_size=cfg["image_size"], patch_size=cfg["patch_size"],
                             num_classes=cfg["num_classes"], dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"],
                             mlp_dim=cfg["mlp_dim"], dim_head=cfg["dim"] // cfg["heads"], pool="cls")
    return {"visionlab": ours, "vit-pytorch": theirs}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """One training step: forward, cross-entropy, backward, AdamW."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def run_config(name: str, cfg: dict, args, vit_pytorch, device: torch.device) -> dict:
    torch.manual_seed(args.seed)
    models = {k: m.to(device).train() for k, m in build(cfg, vit_pytorch).items()}
    images = torch.randn(cfg["batch"], 3, cfg["image_size"], cfg["image_size"], device=device)
    labels = torch.randint(0, cfg["num_classes"], (cfg["batch"],), device=device)
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    for k, m in models.items():
        shape = tuple(m(images[:2]).shape)
        assert shape == (2, cfg["num_classes"]), f"{k} returned {shape}"
    print(f"{cfg['label']}: params visionlab {params['visionlab']:,}  vit-pytorch {params['vit-pytorch']:,}  "
          f"(batch {cfg['batch']}, {args.steps} step(s) x {cfg['repeats']} repeats)", flush=True)

    steps = {k: make_step(m, images, labels) for k, m in models.items()}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    sync(device)

    names = list(models)
    rates = {k: [] for k in names}
    for r in range(cfg["repeats"]):
        for k in names if r % 2 == 0 else names[::-1]:  # alternate who goes first
            sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                steps[k]()
            sync(device)
            rates[k].append(cfg["batch"] * args.steps / (time.perf_counter() - start))
        print(f"  repeat {r + 1}/{cfg['repeats']}: " + "  ".join(f"{k} {rates[k][-1]:7.1f} img/s" for k in names),
              flush=True)

    median = {k: statistics.median(v) for k, v in rates.items()}
    paired = [a / b for a, b in zip(rates["visionlab"], rates["vit-pytorch"])]
    row = dict(config=name, label=cfg["label"], **{k: cfg[k] for k in SIZES}, steps=args.steps, params=params,
               images_per_s=median, ratio=median["visionlab"] / median["vit-pytorch"],
               paired_ratio_median=statistics.median(paired), paired_ratios=paired, repeats_images_per_s=rates)
    print(f"  median: visionlab {median['visionlab']:.1f}  vit-pytorch {median['vit-pytorch']:.1f} img/s  "
          f"ratio {row['ratio']:.3f} (paired {row['paired_ratio_median']:.3f})", flush=True)
    if args.profile:
        profile(models, steps, device)
    return row


def profile(models: dict, steps: dict, device: torch.device, rows: int = 15) -> None:
    """torch.profiler's table of the ops taking the most time over two steps of each model."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for k in models:
        with torch_profile(activities=activities) as prof:
            for _ in range(2):
                steps[k]()
            sync(device)
        print(f"--- {k}: two training steps ---")
        print(prof.key_averages().table(sort_by=sort, row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    for size in SIZES:
        parser.add_argument(f"--{size.replace('_', '-')}", type=int, help=f"override every configuration's {size}")
    parser.add_argument("--steps", type=int, default=1, help="training steps per model per repeat")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (0: PyTorch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print the top ops of each model (not saved)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    vit_pytorch = load_vit_pytorch()
    rows = []
    for name in args.configs:
        cfg = {**CONFIGS[name], **{k: getattr(args, k) for k in SIZES if getattr(args, k) is not None}}
        rows.append(run_config(name, cfg, args, vit_pytorch, device))

    setup = dict(device=str(device), threads=torch.get_num_threads(), steps=args.steps, warmup=args.warmup,
                 seed=args.seed, step="forward + cross-entropy + backward + AdamW (lr 1e-4), float32",
                 torch=torch.__version__, vit_pytorch=importlib.metadata.version("vit-pytorch"),
                 visionlab=vl.__version__, cpu=platform.processor() or platform.machine(),
                 gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    out = Path(args.out)
    write_json(out / "vit_throughput.json", dict(setup=setup, rows=rows))
    write_text(out / "vit_throughput.md", markdown(setup, rows))
    print(markdown(setup, rows))


def markdown(setup: dict, rows: list[dict]) -> str:
    where = setup["gpu"] or f"{setup['cpu']}, {setup['threads']} thread(s)"
    lines = [f"Training throughput, {setup['step']}; {setup['device']} ({where}); median over the repeats after "
             f"{setup['warmup']} warm-up steps, the two models interleaved; torch {setup['torch']}, "
             f"vit-pytorch {setup['vit_pytorch']}.", "",
             "| config | image / patch | dim x depth, heads, mlp | batch | params visionlab / vit-pytorch "
             "| visionlab (img/s) | vit-pytorch (img/s) | ratio visionlab / vit-pytorch | paired ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, ips = r["params"], r["images_per_s"]
        lines.append(f"| {r['label']} | {r['image_size']} / {r['patch_size']} | {r['dim']} x {r['depth']}, "
                     f"{r['heads']}, {r['mlp_dim']} | {r['batch']} | {p['visionlab']:,} / {p['vit-pytorch']:,} | "
                     f"{ips['visionlab']:.1f} | {ips['vit-pytorch']:.1f} | **{r['ratio']:.2f}** | "
                     f"{r['paired_ratio_median']:.2f} |")
    lines += ["", "Ratio: of the median throughputs. Paired ratio: median over the repeats of visionlab / vit-pytorch "
              "timed back to back (robust to load that drifts during the run). The JSON has every repeat.",
              "Parameters differ by design: visionlab embeds patches with a Conv2d (as the paper), vit-pytorch with "
              "LayerNorm - Linear - LayerNorm (+2 C P^2 + 2 D), and visionlab's qkv has a bias (+3 D per block)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
