"""kill -9 at random moments, resume, and end exactly where an uninterrupted run ends (fit, classify, diffuse).

The runs write a checkpoint after every step, so that a good share of the kills land inside a checkpoint write; after
each kill the checkpoint must load, and the resumed run must finish with the same weights, bit for bit, and the same
logged numbers as a run that was never stopped. The kill moments come from a seeded generator, so a failure repeats.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from visionlab.cli import main
from visionlab.util.checkpoint import load_state

COMMANDS = {
    # --chunk: the same chunks in this process (conftest sets the default to 97) and in the killed ones
    "fit": ["fit", "camera", "--size", "32", "--width", "32", "--depth", "2", "--steps", "300", "--eval-every", "50",
            "--chunk", "97"],
    "classify": ["train", "vit", "--data", "digits", "--preset", "tiny", "--epochs", "6", "--batch-size", "64"],
    "diffuse": ["train", "ddpm", "--base-channels", "8", "--timesteps", "20", "--batch-size", "16", "--steps", "60",
                "--sample-every", "0", "--sample-steps", "2", "--eval-every", "10"],
}
COMMON = ["--checkpoint-every", "1", "--threads", "1", "--quiet"]
KILLS = 2


def start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "visionlab", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def logged(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields, which differ between any two runs."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("seconds",)} for row in rows]


@pytest.mark.parametrize("task", list(COMMANDS))
def test_killed_and_resumed_run_ends_bit_identical(tmp_path, task):
    command = COMMANDS[task]
    assert main([*command, *COMMON, "--out", str(tmp_path), "--name", "straight"]) == 0
    folder = tmp_path / ("diffuse" if task == "diffuse" else task)
    straight = folder / "straight"

    rng = random.Random(f"kill-{task}")
    run_dir = folder / "killed"
    resume = ["fit" if task == "fit" else "train", "--resume", str(run_dir), "--threads", "1", "--quiet"]
    process = start([*command, *COMMON, "--out", str(tmp_path), "--name", "killed"])
    killed = 0
    for attempt in range(KILLS + 1):
        if attempt == KILLS:  # the last start runs to the end
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            break
        checkpoint = run_dir / "checkpoint.pt"
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # training has begun once the first checkpoint is there
        time.sleep(rng.uniform(0.0, 1.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.communicate(timeout=60)
        state = load_state(checkpoint)  # never unloadable, whenever the kill came
        assert 0 < state["step"]
        if (run_dir / "summary.json").exists():
            break  # it finished before the kill
        process = start(resume)
    assert killed >= 1, "no kill landed while the run was training: the test proved nothing"

    a, b = load_file(str(straight / "model.safetensors")), load_file(str(run_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after kill and resume"
    assert logged(run_dir) == logged(straight)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert not list(run_dir.glob(".*.tmp")), "temporary files of killed writes are cleaned up on resume"


def test_a_kill_inside_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    """A process that dies (SIGKILL) halfway through writing checkpoint.pt: the file on disk is the previous one."""
    path = tmp_path / "checkpoint.pt"
    script = f"""
import os, signal, torch
from visionlab.util.checkpoint import save_state
save_state({str(path)!r}, {{"step": 1, "weights": torch.arange(10.0)}})
real_save = torch.save
def dying_save(obj, f, *args, **kwargs):
    with open(f, "wb") as out:
        out.write(b"PK\\x03\\x04 half of a zip file")
        out.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
save_state({str(path)!r}, {{"step": 2, "weights": torch.zeros(10)}})
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    state = load_state(path)
    assert state["step"] == 1 and torch.equal(state["weights"], torch.arange(10.0))
    assert len(list(tmp_path.glob(".checkpoint.pt.*.tmp"))) == 1  # the dead write's litter, beside the good file


@pytest.mark.parametrize("kind", ["fit-evos", "classify", "segment", "ddpm", "dit", "gan"])
def test_a_nan_loss_stops_every_trainer_with_the_last_good_checkpoint(tmp_path, kind):
    """Weights poisoned after step 3: step 4's loss is NaN; the run stops before touching the weights, says so in
    one message that names the checkpoint, and the checkpoint of step 2 stays finite."""
    import dataclasses

    from distributed_worker import configs  # tests/ is on sys.path under pytest

    from visionlab.trainer import adversarial, classify, diffuse, fit, segment
    from visionlab.util.errors import TrainingError

    task, config = configs(kind, str(tmp_path))
    longer = {"segment": {"epochs": 2}, "diffuse": {"steps": 6}, "gan": {"steps": 6}}.get(task, {})
    config = dataclasses.replace(config, checkpoint_every=2, **longer)
    build = {"fit": fit.build_fit, "classify": classify.build_classify, "segment": segment.build_segment,
             "diffuse": diffuse.build_diffuse, "gan": adversarial.build_adversarial}[task]
    trainer = build(config)
    network = trainer.generator if task == "gan" else trainer.model

    def poison(t):
        if t.step == 3:
            with torch.no_grad():
                next(network.parameters()).fill_(float("nan"))

    trainer.callbacks.append(poison)
    with pytest.raises(TrainingError, match=r"loss became nan at step 4.*checkpoint.*--resume"):
        trainer.train()
    state = load_state(trainer.run_dir)
    assert state["step"] == 2
    weights = state["generator"] if task == "gan" else state["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    summary = json.loads((trainer.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "loss became nan" in summary["error"]
