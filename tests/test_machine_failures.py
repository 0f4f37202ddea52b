"""The machine's failures, each one line: memory (a huge image, an allocation that fails mid-step, numpy's
MemoryError), a disk that fills up during a run, SIGTERM in every trainer, Ctrl-C and SIGTERM during start-up.

The read-only and impossible output folders, a resume into a read-only run and a huge ``--size`` are cases of the
bad-input table (tests/test_bad_inputs.py), which holds them to the same promise as every other bad input.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import visionlab.trainer.fit as fit_task
import visionlab.trainer.fit_footprint as footprint_module
from visionlab.cli import main
from visionlab.models.inr import Siren
from visionlab.trainer.base import duration
from visionlab.trainer.fit_footprint import measure
from visionlab.util.checkpoint import load_state
from machine import AS_ROOT, fill, small_disk

FIT = ["--preset", "tiny", "--size", "24", "--threads", "1", "--quiet", "--checkpoint-every", "1"]
CPU_OUT_OF_MEMORY = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                     "tried to allocate 8388608 bytes. Error code 12 (Cannot allocate memory)")


def one_line(capfd) -> str:
    out, err = capfd.readouterr()
    assert "Traceback" not in err + out, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def runs_in(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/*") if p.is_dir())


# ---- memory ----------------------------------------------------------------------------------------------------

def test_a_huge_image_is_refused_before_any_folder_with_a_size_that_fits(tmp_path, monkeypatch, capfd):
    """4096 x 4096 at full size with SIREN 3x256 and EVOS: about 60 GB; with 4 GB free, one line naming --size."""
    ramp = np.linspace(0, 255, 4096, dtype=np.float32)
    Image.fromarray(np.add.outer(ramp, ramp).clip(0, 255).astype(np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(footprint_module, "free_memory", lambda device: 4 * 2**30)
    code = main(["fit", str(tmp_path / "huge.png"), "--threads", "1", "--quiet", "--out", str(tmp_path / "out")])
    line = one_line(capfd)
    assert code == 2 and "of memory" in line and "4.0 GB free" in line and "--size" in line, line
    side = int(line.split("--size ")[1].split()[0])
    assert 256 <= side < 4096
    assert not (tmp_path / "out").exists()  # refused before a run folder was made


def test_a_large_image_at_full_size_gets_a_one_line_note(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(footprint_module, "LARGE_IMAGE_PIXELS", 500)  # camera at 24 x 24: 576 samples
    assert main(["fit", "camera", "--width", "16", "--depth", "1", "--crop", "24", "--steps", "1", "--threads",
                 "1", "--out", str(tmp_path)]) == 0
    out = capfd.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "24x24" in notes[0] and "per step" in notes[0] and "--size 512" in notes[0]


def test_the_footprint_is_measured_per_point_and_scales_with_the_selection():
    """Saved bytes per point: a SIREN with two hidden layers of 64 keeps at least its 64-wide activations in fp32;
    twice the points per step, twice the step's memory; the probe leaves no gradient behind."""
    model = Siren(in_features=2, out_features=3, width=64, depth=2)
    cpu = torch.device("cpu")
    one = measure(model, in_features=2, channels=3, pixels=10_000, points_per_step=5_000, device=cpu,
                  precision="fp32")
    two = measure(model, in_features=2, channels=3, pixels=10_000, points_per_step=10_000, device=cpu,
                  precision="fp32")
    assert one.step_bytes / 5_000 >= 2 * 64 * 4
    assert two.step_bytes == pytest.approx(2 * one.step_bytes, rel=1e-3) and two.fixed_bytes == one.fixed_bytes
    assert one.seconds_per_step > 0 and all(p.grad is None for p in model.parameters())


def test_out_of_memory_in_a_step_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capfd):
    real_step = fit_task.FitTrainer.train_step

    def step(self, step):
        if step == 2:
            raise RuntimeError(CPU_OUT_OF_MEMORY)
        return real_step(self, step)

    monkeypatch.setattr(fit_task.FitTrainer, "train_step", step)
    code = main(["fit", "camera", *FIT, "--steps", "5", "--out", str(tmp_path)])
    line = one_line(capfd)
    assert code == 2 and "out of memory" in line and "--size" in line and "checkpoint" in line, line
    (run,) = runs_in(tmp_path)
    assert load_state(run)["step"] == 2  # the checkpoint of the last step done
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "out of memory" in summary["error"]


def test_numpy_running_out_of_memory_while_loading_is_one_line(tmp_path, monkeypatch, capfd):
    def resize(values, size):
        raise MemoryError("Unable to allocate 168. GiB for an array with shape (100000, 150000, 3)")

    monkeypatch.setattr("visionlab.data.images._resize", resize)
    code = main(["fit", "camera", *FIT, "--steps", "1", "--out", str(tmp_path)])
    assert code == 2 and "out of memory" in one_line(capfd)
    assert not runs_in(tmp_path)


# ---- a full disk -----------------------------------------------------------------------------------------------

def test_a_disk_that_fills_up_during_a_run_is_one_line_and_the_last_checkpoint_is_intact(tmp_path, monkeypatch,
                                                                                         capfd):
    """As root, a 4 MB tmpfs filled by a ballast file after step 3: the checkpoint after step 4 cannot be written.
    As a user, torch.save fails as it does on a full disk (its own RuntimeError) with the disk reported full."""
    out = tmp_path / "disk"
    real_step = fit_task.FitTrainer.train_step

    def step(self, step):
        if step == 3 and AS_ROOT:
            fill(out)
        elif step == 3:
            monkeypatch.setattr(torch, "save", full_disk_save)
        return real_step(self, step)

    def full_disk_save(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(fit_task.FitTrainer, "train_step", step)
    if not AS_ROOT:
        monkeypatch.setattr("visionlab.util.io.disk_is_full", lambda folder: True)
        out.mkdir()
    with small_disk(out) if AS_ROOT else contextlib.nullcontext():
        code = main(["fit", "camera", *FIT, "--steps", "8", "--out", str(out)])
        line = one_line(capfd)
        assert code == 2 and "no space left" in line and "last good checkpoint" in line, line
        (run,) = runs_in(out)
        assert load_state(run)["step"] == 3  # written before the disk filled, still whole
        assert not list(run.glob(".*.tmp")), "a half-written file was left behind"


# ---- signals ---------------------------------------------------------------------------------------------------

COMMAND = [sys.executable, "-m", "visionlab"]
LONG_RUNS = {  # each runs far longer than the test waits; evaluations and checkpoints early and often
    "fit": (["fit", "camera", "--preset", "tiny", "--size", "24", "--steps", "1000000", "--eval-every", "5"], "fit"),
    "classify": (["train", "vit", "--data", "digits", "--image-size", "8", "--patch-size", "4", "--dim", "8",
                  "--depth", "1", "--num-heads", "1", "--epochs", "100000"], "classify"),
    "diffuse": (["train", "ddpm", "--base-channels", "8", "--timesteps", "20", "--batch-size", "16",
                 "--sample-steps", "2", "--steps", "1000000", "--sample-every", "0", "--eval-every", "5"],
                "diffuse"),
    "gan": (["train", "gan", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "16", "--steps", "1000000",
             "--eval-every", "5", "--sample-every", "0"], "adversarial"),
}


def wait_for(root: Path, patterns: list[str], timeout: float = 120.0) -> None:
    """Until every glob pattern under ``root`` matches a file."""
    deadline = time.monotonic() + timeout
    while not all(any(root.glob(pattern)) for pattern in patterns):
        assert time.monotonic() < deadline, f"not written in {timeout} s: {patterns}"
        time.sleep(0.2)


def test_sigterm_stops_every_trainer_after_its_step_with_a_checkpoint_and_exit_143(tmp_path):
    """A cluster's time limit: SIGTERM during training finishes the step, writes the checkpoint and the summary
    ("interrupted", by SIGTERM) and exits with 143 = 128 + 15, saying in one line how to continue."""
    processes = {}
    for name, (argv, task) in LONG_RUNS.items():
        out = tmp_path / name
        processes[name] = subprocess.Popen([*COMMAND, *argv, "--threads", "1", "--quiet", "--out", str(out)],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(tmp_path, [f"{name}/{task}/*/metrics.jsonl" for name, (_, task) in LONG_RUNS.items()])
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            out, err = process.communicate(timeout=120)
            task = LONG_RUNS[name][1]
            assert process.returncode == 143, (name, err)
            lines = err.strip().splitlines()
            assert "Traceback" not in err and len(lines) == 1 and "terminated (SIGTERM)" in lines[0], (name, err)
            assert "--resume" in lines[0], (name, lines[0])
            (run,) = (tmp_path / name / task).iterdir()
            summary = json.loads((run / "summary.json").read_text())
            assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM", name
            assert load_state(run)["step"] == summary["step"] > 0, name
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_during_start_up_is_one_line(tmp_path, signum, status, word):
    """Ctrl-C (or SIGTERM) while PyTorch and the trainers load, or while the data is read: one line, no traceback,
    and no run folder."""
    for delay in (0.3, 0.8):  # importing the command line takes seconds
        process = subprocess.Popen([*COMMAND, "fit", "camera", "--preset", "tiny", "--size", "24", "--steps", "50",
                                    "--quiet", "--out", str(tmp_path)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert process.returncode == status, (delay, err)
        assert "Traceback" not in err + out and len(lines) == 1 and word in lines[0], (delay, err)
    assert not (tmp_path / "fit").exists()


# ---- a long run says how long --------------------------------------------------------------------------------------

def test_a_long_run_says_its_duration_after_its_first_steps(tmp_path, monkeypatch, capfd):
    """Every trainer: after 5 timed steps, one line with the time left, when that is long (here: anything)."""
    monkeypatch.setattr("visionlab.trainer.base.LONG_RUN_SECONDS", 0.0)
    assert main(["train", "ddpm", "--base-channels", "8", "--timesteps", "20", "--batch-size", "8", "--steps", "8",
                 "--sample-every", "0", "--sample-steps", "2", "--threads", "1", "--out", str(tmp_path)]) == 0
    lines = [line for line in capfd.readouterr().out.splitlines() if line.startswith("diffuse: about")]
    assert len(lines) == 1 and "for the 3 steps left" in lines[0] and "s per step so far" in lines[0], lines


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0.414, 45, 720, 27_600)] == ["0.41 s", "45 s", "12 min", "7 h 40 min"]
