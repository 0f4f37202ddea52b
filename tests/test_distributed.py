"""Several processes (torchrun, Gloo on the CPU) against one: every trainer, the same global batch.

Each trainer runs a few steps in one process and in two (``torchrun --nproc_per_node=2``), from the same seed; the
two ranks must hold identical parameters, and they must equal the one-process run's within float tolerance. The
tolerance: Adam divides each gradient by its running RMS, so a rounding difference in a near-zero gradient (sums
taken in another order across ranks) can move a weight by a visible fraction of the learning rate; the bound is
1 % of the largest distance Adam can move a weight in these steps (lr per step), far below what a wrong gradient
(a missing rank, a double count, a wrong share weight) gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from visionlab.util.distributed import Dist

WORKER = Path(__file__).with_name("distributed_worker.py")
# kind -> (peak learning rate, steps): the tolerance's scale.
KINDS = {"fit-full": (1e-4, 4), "fit-evos": (1e-4, 4), "fit-soft-mining": (1e-4, 4), "classify": (1e-3, 13),
         "segment": (3e-3, 3), "ddpm": (1e-3, 3), "dit": (1e-3, 3), "gan": (2e-4, 3), "gan-wgan-gp": (1e-4, 3)}


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every kind trained once by one process and once by two (two launches in all: imports are slow here)."""
    root = tmp_path_factory.mktemp("ddp")
    run([sys.executable, str(WORKER), str(root / "one"), *KINDS])
    run(torchrun(str(WORKER), str(root / "two"), *KINDS))
    return root


@pytest.mark.parametrize("kind", list(KINDS))
def test_two_processes_match_each_other_and_one_process(runs, kind):
    one = torch.load(runs / "one" / kind / "params-rank0.pt", weights_only=True)
    rank0 = torch.load(runs / "two" / kind / "params-rank0.pt", weights_only=True)
    rank1 = torch.load(runs / "two" / kind / "params-rank1.pt", weights_only=True)
    assert one.keys() == rank0.keys() == rank1.keys() and len(one) > 0
    for name in one:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the ranks"
    lr, steps = KINDS[kind]
    tolerance = 0.01 * lr * steps
    for name, value in one.items():
        if value.is_floating_point():
            gap = (value.double() - rank0[name].double()).abs().max().item()
            assert gap <= tolerance, f"{name}: two processes end {gap:.3g} away from one (tolerance {tolerance:.3g})"
        else:
            assert torch.equal(value, rank0[name]), name
    # The runs did train all their steps.
    summary = json.loads((Path((runs / "one" / kind / "run_dir-rank0.txt").read_text()) / "summary.json").read_text())
    assert summary["step"] == steps and summary["status"] == "finished"


@pytest.mark.parametrize("kind", list(KINDS))
def test_only_rank0_writes_one_run_folder(runs, kind):
    out = runs / "two" / kind
    assert (out / "run_dir-rank0.txt").read_text() == (out / "run_dir-rank1.txt").read_text()
    run_dir = Path((out / "run_dir-rank0.txt").read_text())
    task_folder = run_dir.parent
    assert [p.name for p in task_folder.iterdir()] == [run_dir.name]  # one folder, not one per rank
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["step"] == KINDS[kind][1]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == sorted(set(steps)), "each evaluation logged once"


def test_torchrun_runs_the_command_line(tmp_path):
    """``torchrun ... -m visionlab train ddpm``: one run folder, one report on stdout (rank 0's)."""
    done = run(torchrun("-m", "visionlab", "train", "ddpm", "--base-channels", "8", "--timesteps", "20",
                        "--batch-size", "8", "--steps", "2", "--sample-every", "0", "--sample-steps", "2",
                        "--eval-every", "1", "--threads", "1", "--device", "cpu", "--quiet", "--out",
                        str(tmp_path)))
    folders = list((tmp_path / "diffuse").iterdir())
    assert len(folders) == 1 and (folders[0] / "model.safetensors").is_file()
    assert done.stdout.count(str(folders[0])) == 1, done.stdout


def test_shares_of_a_batch():
    """Shares cover the batch once, in order, as equal as possible; the backward scale makes DDP's mean of
    the ranks' scaled losses the global mean."""
    for world in (1, 2, 3, 4):
        for n in range(world, 20):
            shares = [Dist(rank=r, world_size=world).shard(n) for r in range(world)]
            assert [i for s in shares for i in range(n)[s]] == list(range(n))
            sizes = [s.stop - s.start for s in shares]
            assert max(sizes) - min(sizes) <= 1
            scales = [Dist(rank=r, world_size=world).backward_scale(sizes[r], n) for r in range(world)]
            assert sum(scales) / world == pytest.approx(1.0)


def test_a_batch_too_small_to_split_is_refused():
    from visionlab.util.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot be split over 4 processes"):
        Dist(rank=0, world_size=4).check_batch(3, "the last batch")
