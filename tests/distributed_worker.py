"""Tiny training runs of every trainer, for tests/test_distributed.py; run as a script, alone or under torchrun.

    python tests/distributed_worker.py OUT KIND [KIND ...]              # one process
    torchrun --nproc_per_node=2 tests/distributed_worker.py OUT KIND [KIND ...]

For each KIND, each process trains and writes its parameters (and buffers) to OUT/KIND/params-rankR.pt (tensors
only), so that the test can compare the ranks with each other and with the one-process run. KIND names a trainer and
a configuration: fit-full, fit-evos, fit-soft-mining, classify, segment, segment-ce, ddpm, dit, gan, gan-wgan-gp.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch


def configs(kind: str, out: str):
    from visionlab import opt

    common = dict(out=out, quiet=True, threads=1, device="cpu")
    if kind.startswith("fit-"):
        # 23 x 23 grey camera, a small SIREN; EVOS selects half the pixels (an odd count: unequal shares), and each
        # rank's share runs in chunks of 61 points.
        return "fit", opt.FitConfig(image="camera", width=32, depth=2, size="23", steps=4, sampler=kind[4:], ratio=0.5,
                                    eval_every=2, checkpoint_every=100, chunk=61, **common)
    if kind == "classify":
        # digits: 1,347 training images less 136 for validation, in batches of 100, the last one 11 (unequal shares),
        # with augmentation.
        return "classify", opt.ClassifyConfig(model="vit", data="digits", preset="tiny", epochs=1, batch_size=100,
                                              augment=True, **common)
    if kind.startswith("segment"):
        extra = dict(dice_weight=0.0) if kind == "segment-ce" else {}
        return "segment", opt.SegmentConfig(data="shapes", image_size=16, train_images=24, test_images=8, epochs=1,
                                            batch_size=8, preset="small", augment=True, **extra, **common)
    if kind in ("ddpm", "dit"):
        sizes = dict(base_channels=8, dropout=0.0) if kind == "ddpm" else dict(dim=32, depth=2, num_heads=2)
        return "diffuse", opt.DiffuseConfig(model=kind, data="digits", timesteps=20, batch_size=10, steps=3,
                                            eval_every=2, sample_every=0, sample_steps=2, ema=0.9, **sizes, **common)
    if kind.startswith("gan"):
        loss = "wgan-gp" if kind == "gan-wgan-gp" else "ns"
        return "gan", opt.GanConfig(data="digits", conditional=True, loss=loss, ngf=8, ndf=8, nz=16, batch_size=16,
                                    steps=3, eval_every=2, sample_every=0, **common)
    raise SystemExit(f"unknown kind {kind}")


def main(kind: str, out: str) -> None:
    from visionlab.trainer import adversarial, classify, diffuse, fit, segment

    Path(out).mkdir(parents=True, exist_ok=True)
    task, config = configs(kind, out)
    build = {"fit": fit.build_fit, "classify": classify.build_classify, "segment": segment.build_segment,
             "diffuse": diffuse.build_diffuse, "gan": adversarial.build_adversarial}[task]
    trainer = build(config)
    trainer.train()
    if task == "gan":
        state = {**{f"g.{k}": v for k, v in trainer.generator.state_dict().items()},
                 **{f"d.{k}": v for k, v in trainer.discriminator.state_dict().items()}}
    else:
        state = trainer.model.state_dict()
    rank = int(os.environ.get("RANK", 0))
    torch.save({k: v.detach().cpu() for k, v in state.items()}, Path(out) / f"params-rank{rank}.pt")
    (Path(out) / f"run_dir-rank{rank}.txt").write_text(str(trainer.run_dir))


if __name__ == "__main__":
    for name in sys.argv[2:]:
        main(name, str(Path(sys.argv[1]) / name))
