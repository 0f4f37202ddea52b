"""The fit task end to end: outputs, exact resume, Ctrl-C, the NaN guard, and the Python API."""

import json
import os
import signal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import visionlab as vl
from visionlab.cli import main
from visionlab.data.images import load_image, save_image
from visionlab.data.video_signals import load_video
from visionlab.util.checkpoint import load_state
from visionlab.util.errors import ConfigError, DataError, TrainingError

TINY = dict(preset="tiny", size="24", quiet=True, lr=1e-3)


def weights_of(run_dir):
    return load_file(os.path.join(run_dir, "model.safetensors"))


def log_of(run_dir):
    return [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]


def test_fit_writes_every_output_and_learns(tmp_path):
    summary = vl.fit_run("coffee", out=str(tmp_path), steps=60, eval_every=20, sampler="evos", ratio=0.5,
                         size="24", quiet=True, lr=1e-3, width=32, depth=2)
    run = tmp_path / "fit" / "coffee-siren-evos"
    assert summary["status"] == "finished" and summary["run_dir"] == str(run)
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "metrics.json", "checkpoint.pt",
                 "model.safetensors", "reconstruction.png", "comparison.png", "psnr_curve.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"psnr", "ssim", "wall_seconds", "steps", "pixels_trained"}
    assert metrics["steps"] == 60 and metrics["wall_seconds"] > 0
    log = log_of(run)
    assert [r["step"] for r in log] == [20, 40, 60]
    assert log[-1]["psnr"] > log[0]["psnr"] + 1  # it learns
    assert all(r["seconds"] <= s["seconds"] for r, s in zip(log, log[1:]))
    # EVOS trains fewer pixel-steps than full would (60 x N), evaluation steps included.
    assert metrics["pixels_trained"] < 0.8 * 60 * metrics["height"] * metrics["width"]
    assert weights_of(run)["head.weight"].shape == (3, 32)


def test_a_second_run_never_overwrites_the_first(tmp_path):
    first = vl.fit_run("camera", out=str(tmp_path), name="same", steps=3, **TINY)
    second = vl.fit_run("camera", out=str(tmp_path), name="same", steps=3, **TINY)
    assert first["run_dir"] != second["run_dir"] and os.path.isdir(first["run_dir"])


@pytest.mark.parametrize("sampler", ["evos", "random", "full"])
def test_interrupted_and_resumed_run_matches_straight_run_bit_for_bit(tmp_path, sampler):
    options = dict(TINY, out=str(tmp_path), steps=40, sampler=sampler, ratio=0.2, scheduler="step",
                   checkpoint_every=10, eval_every=5, lr_final=1e-4)
    straight = vl.fit_run("astronaut", name="straight", **options)

    def ctrl_c_at_step_17(trainer):
        if trainer.step == 17:
            os.kill(os.getpid(), signal.SIGINT)  # the real Ctrl-C path: finish the step, checkpoint, stop

    stopped = vl.fit_run("astronaut", name="stopped", callbacks=[ctrl_c_at_step_17], **options)
    assert stopped["status"] == "interrupted" and stopped["step"] == 17
    assert load_state(stopped["run_dir"])["step"] == 17
    resumed = vl.fit_run(resume=stopped["run_dir"], quiet=True)
    assert resumed["status"] == "finished" and resumed["step"] == 40
    a, b = weights_of(straight["run_dir"]), weights_of(resumed["run_dir"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = lambda run: [(r["step"], r["loss"], r["psnr"]) for r in log_of(run["run_dir"])]  # noqa: E731
    assert steps(straight) == steps(resumed)
    assert straight["metrics"]["pixels_trained"] == resumed["metrics"]["pixels_trained"]


def test_resume_after_a_hard_kill_drops_log_lines_past_the_checkpoint(tmp_path):
    straight = weights_of(vl.fit_run("camera", out=str(tmp_path), steps=20, checkpoint_every=10, eval_every=5,
                                     **TINY)["run_dir"])
    # A run stopped at its step-10 checkpoint, whose log then got a line the checkpoint does not cover (as when the
    # process is killed between a log line and the next checkpoint).
    first = vl.fit_run("camera", out=str(tmp_path), name="half", steps=20, checkpoint_every=10, eval_every=5,
                       callbacks=[lambda t: t.step == 10 and t.request_stop()], **TINY)
    with open(os.path.join(first["run_dir"], "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": 15, "loss": 1.0}) + "\n")
    resumed = vl.fit_run(resume=first["run_dir"], quiet=True)
    log = log_of(resumed["run_dir"])
    assert [r["step"] for r in log] == [5, 10, 15, 20] and log[2]["loss"] != 1.0
    assert all(torch.equal(straight[k], v) for k, v in weights_of(resumed["run_dir"]).items())


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    def poison(trainer):
        if trainer.step == 12:
            with torch.no_grad():
                trainer.model.head.bias.fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"loss became nan at step 13.*checkpoint.*--resume"):
        vl.fit_run("camera", out=str(tmp_path), name="nan", steps=30, checkpoint_every=10, callbacks=[poison],
                   **TINY)
    state = load_state(tmp_path / "fit" / "nan")
    assert state["step"] == 10 and all(torch.isfinite(v).all() for v in state["model"].values())
    summary = json.loads((tmp_path / "fit" / "nan" / "summary.json").read_text())
    assert summary["status"] == "failed" and "loss became nan" in summary["error"]


def test_resume_refuses_a_changed_image(tmp_path):
    image = tmp_path / "img.png"
    save_image(image, torch.rand(16, 16, 3))
    run = vl.fit_run(str(image), out=str(tmp_path), steps=4, **TINY)
    save_image(image, torch.rand(16, 16, 3))
    with pytest.raises(DataError, match="not the image this run was trained on"):
        vl.fit_run(resume=run["run_dir"])


def test_fit_api_returns_metrics_and_rejects_unknown_options(tmp_path):
    metrics = vl.fit("chelsea", out=str(tmp_path), steps=5, **TINY)
    assert metrics["steps"] == 5 and 0 < metrics["ssim"] <= 1 and metrics["psnr"] > 5
    with pytest.raises(ConfigError, match="unknown option"):
        vl.fit("chelsea", stepz=5)


def test_same_seed_repeats_different_seed_differs(tmp_path):
    a = vl.fit_run("coffee", out=str(tmp_path), steps=8, seed=1, **TINY)
    b = vl.fit_run("coffee", out=str(tmp_path), steps=8, seed=1, **TINY)
    c = vl.fit_run("coffee", out=str(tmp_path), steps=8, seed=2, **TINY)
    wa, wb, wc = (weights_of(r["run_dir"]) for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_a_size_that_upscales_more_than_4x_gets_a_one_line_note(tmp_path, capsys):
    save_image(tmp_path / "dot.png", torch.rand(2, 3, 3))
    load_image(tmp_path / "dot.png", size=8, announce_upscale=True)  # 4x: no note
    load_image(tmp_path / "dot.png", size=64)  # a data set's own size (features, classify): no note either
    assert capsys.readouterr().err == ""
    vl.fit(str(tmp_path / "dot.png"), **{**TINY, "size": "16"}, steps=2, out=str(tmp_path))  # 8x
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: size 16x24 enlarges") and "(2x3) 8 times" in err[0], err
    np.save(tmp_path / "clip.npy", np.random.default_rng(0).random((2, 2, 3, 3), dtype=np.float32))  # (T, H, W, C)
    load_video(tmp_path / "clip.npy", size="3x12")  # a video's frames: 4x along W, no note ...
    assert capsys.readouterr().err == ""
    load_video(tmp_path / "clip.npy", size="2x13")  # ... 13 / 3 = 4.33x
    assert "enlarges" in capsys.readouterr().err


def test_a_folder_fit_skips_an_unreadable_image_and_lists_it(tmp_path, capsys):
    album = tmp_path / "album"
    for k in range(2):
        save_image(album / f"{k}.png", torch.rand(16, 16, 3))
    (album / "1.png").write_bytes((album / "1.png").read_bytes()[:60])  # cut
    out = tmp_path / "runs"
    assert main(["fit", str(album), "--preset", "tiny", "--steps", "2", "--quiet", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("skipped: ") and "1.png" in err[0], err
    table = (out / "fit" / "album-siren-evos" / "table.md").read_text()
    assert "| 0.png | " in table and "| 1.png | skipped: " in table and "**mean of 1**" in table
    assert "(1 unreadable image(s) skipped)" in captured.out
    # mended, the same command fits it too: the table grows by the image that was skipped
    save_image(album / "1.png", torch.rand(16, 16, 3))
    assert main(["fit", str(album), "--preset", "tiny", "--steps", "2", "--quiet", "--out", str(out)]) == 0
    table = (out / "fit" / "album-siren-evos" / "table.md").read_text()
    assert "skipped" not in table and "**mean of 2**" in table


@pytest.mark.parametrize("stopped", [False, True])
def test_resume_with_more_steps_extends_a_finished_or_stopped_run(tmp_path, capsys, stopped):
    """A 20-step fit resumed with --steps 30 ends at step 30 with its checkpoint; the exponential decay to
    --lr-final is stretched to the new end, and the run says so in one line and in its summary."""
    stop = [lambda trainer: trainer.step == 12 and trainer.request_stop()] if stopped else []
    first = vl.fit_run("camera", **TINY, steps=20, lr_final=1e-4, eval_every=10, out=str(tmp_path), name="r",
                       callbacks=stop)
    assert first["step"] == (12 if stopped else 20)
    run = first["run_dir"]
    capsys.readouterr()
    assert main(["fit", "--resume", run, "--steps", "30"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "extended" in line]
    step = 12 if stopped else 20
    assert err == [f"extended from 20 to 30 steps at step {step} of 30: learning rate {1e-3 * 0.1 ** (step / 20):.3g}"
                   f" -> {1e-3 * 0.1 ** (step / 30):.3g} (its decay, and a selector's ratio schedule, follow their "
                   f"30-step curves from here)"]
    state = load_state(run)
    assert state["step"] == 30 and state["config"]["steps"] == 30
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # --lr-final at the new end
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["step"] == 30 and summary["extended"]["from"] == 20 and summary["extended"]["to"] == 30
    assert [r["step"] for r in map(json.loads, open(os.path.join(run, "metrics.jsonl")))][-2:] == [20, 30]
    assert main(["fit", "--resume", run, "--steps", "25"]) == 2  # below the steps done
    assert "--steps 25 ends at step 25, before step 30 where this run stopped" in capsys.readouterr().err
