"""The classify task: ViT / ViViT training end to end, exact resume, predict and its errors."""

import json
import os
import signal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import visionlab as vl
from visionlab.cli import main
from visionlab.data.images import save_image
from visionlab.components.augment import random_affine

FAST = dict(preset="tiny", image_size=8, patch_size=2, pool="mean", lr=3e-3, warmup_epochs=0.5, batch_size=32,
            quiet=True)


def bars(path, n=400, size=8, seed=0):
    """A tiny task: a horizontal (class 0) or vertical (class 1) bar at a random place, on noise."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size)).astype(np.float32) * 0.3
    labels = rng.integers(0, 2, n)
    where = rng.integers(0, size, n)
    for i in range(n):
        if labels[i] == 0:
            images[i, where[i], :] = 1.0
        else:
            images[i, :, where[i]] = 1.0
    np.savez(path, images=images, labels=labels, class_names=np.array(["horizontal", "vertical"]))
    return str(path)


@pytest.fixture(scope="module")
def bars_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return vl.train("vit", data=bars(out / "bars.npz"), epochs=10, out=str(out), name="bars", **FAST)


def test_vit_learns_a_tiny_task_and_writes_its_outputs(bars_run):
    m = bars_run["metrics"]
    assert m["test_accuracy"] >= 0.9 and m["accuracy"] == m["test_accuracy"]  # chance is 0.5
    assert m["weights"] == "raw weights, no EMA" and 0.9 <= m["best_test_accuracy"] <= 1
    # 300 training examples: 30 held out for validation (stratified), the test split's 100 untouched.
    assert m["val_examples"] == 30 and m["train_examples"] == 270 and m["test_examples"] == 100
    run = bars_run["run_dir"]
    for name in ("config.yaml", "metrics.jsonl", "metrics.json", "summary.json", "checkpoint.pt", "model.safetensors",
                 "best.safetensors", "model.json", "confusion.png", "curves.png"):
        assert os.path.isfile(os.path.join(run, name)), name
    log = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    assert len(log) == 10 and all("val_accuracy" in r and "accuracy" not in r for r in log)  # once per epoch, val
    best = max(range(10), key=lambda i: (log[i]["val_accuracy"], -i))  # the first epoch of the best val accuracy
    assert m["best_epoch"] == best + 1 and m["best_val_accuracy"] == log[best]["val_accuracy"]
    assert np.array(json.load(open(os.path.join(run, "metrics.json")))["confusion"]).sum() == 100


def test_the_validation_split_is_stratified_seeded_and_disjoint():
    from visionlab.data.classification import validation_split
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    keep, held = validation_split(labels, 0.1, seed=3)
    assert torch.bincount(labels[held]).tolist() == [5, 3, 2] and len(keep) == 90
    assert set(keep.tolist()).isdisjoint(held.tolist()) and len(set(keep.tolist()) | set(held.tolist())) == 100
    assert torch.equal(held, validation_split(labels, 0.1, seed=3)[1])  # resume and every DDP rank: the same split
    assert not torch.equal(held, validation_split(labels, 0.1, seed=4)[1])
    assert len(validation_split(labels, 0.0, seed=3)[1]) == 0


def test_no_validation_split_means_no_best_epoch(tmp_path):
    m = vl.train("vit", data="digits", epochs=1, val_fraction=0.0, out=str(tmp_path), **FAST)["metrics"]
    assert m["best_epoch"] is None and m["best_test_accuracy"] is None and m["val_examples"] == 0
    assert not (tmp_path / "classify" / "digits-vit" / "best.safetensors").exists()


def test_interrupted_and_resumed_training_matches_bit_for_bit(tmp_path):
    options = dict(FAST, data="digits", epochs=2, augment=True, ema=0.9, out=str(tmp_path))
    straight = vl.train("vit", name="straight", **options)

    def ctrl_c(trainer):
        if trainer.step == 13:  # mid-epoch
            os.kill(os.getpid(), signal.SIGINT)

    stopped = vl.train("vit", name="stopped", callbacks=[ctrl_c], checkpoint_every=5, **options)
    assert stopped["status"] == "interrupted" and stopped["step"] == 13
    assert main(["train", "--resume", stopped["run_dir"], "--recipe", "digits-vit"]) == 2  # options are the run's own
    resumed = vl.train(resume=stopped["run_dir"], quiet=True)
    a = load_file(os.path.join(straight["run_dir"], "model.safetensors"))
    b = load_file(os.path.join(resumed["run_dir"], "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_random_affine_moves_content_and_keeps_video_frames_together():
    x = torch.zeros(4, 1, 3, 16, 16)
    x[..., 6:10, 6:10] = 1.0
    moved = random_affine(x, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    assert torch.allclose(moved[:, :, 0], moved[:, :, 1]) and torch.allclose(moved[:, :, 1], moved[:, :, 2])


def test_predict_images_and_errors(bars_run, tmp_path, capsys):
    horizontal, vertical = np.zeros((8, 8, 1)), np.zeros((8, 8, 1))
    horizontal[3, :] = vertical[:, 5] = 1.0
    save_image(tmp_path / "d0.png", horizontal)
    save_image(tmp_path / "d1.png", vertical)
    rows = vl.predict(bars_run["run_dir"], [str(tmp_path / "d0.png"), str(tmp_path / "d1.png")])
    assert [r["class"] for r in rows] == ["horizontal", "vertical"] and all(0.5 < r["probability"] <= 1 for r in rows)
    assert main(["predict", bars_run["run_dir"], str(tmp_path / "d0.png")]) == 0
    assert "d0.png" in capsys.readouterr().out
    save_image(tmp_path / "rgb.png", np.random.default_rng(0).random((8, 8, 3)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for file, message in ((tmp_path / "rgb.png", "3 channel(s), but the model reads 1"),
                          (tmp_path / "broken.png", "broken.png"), (tmp_path / "missing.png", "missing.png")):
        assert main(["predict", bars_run["run_dir"], str(file)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_vivit_trains_on_moving_digits_and_refuses_short_clips(tmp_path, capsys):
    summary = vl.train("vivit", data="moving-digits", epochs=1, frames=4, image_size=16, vivit_model=2,
                       out=str(tmp_path), name="video", **{k: v for k, v in FAST.items() if k != "image_size"})
    assert summary["status"] == "finished" and 0 <= summary["metrics"]["accuracy"] <= 1
    np.save(tmp_path / "short.npy", np.zeros((2, 16, 16), dtype=np.float32))
    assert main(["predict", summary["run_dir"], str(tmp_path / "short.npy")]) == 2
    assert "has 2 frames, needs at least 4" in capsys.readouterr().err
    np.save(tmp_path / "ok.npy", np.zeros((6, 20, 20), dtype=np.float32))
    assert main(["predict", summary["run_dir"], str(tmp_path / "ok.npy")]) == 0


def test_train_rejects_bad_options(capsys):
    assert main(["train", "vit", "--epochs", "0"]) == 2
    assert "epochs must be > 0" in capsys.readouterr().err
    assert main(["train", "vit", "--val-fraction", "1"]) == 2 and main(["train", "unet", "--val-fraction", "-0.1"]) == 2
    assert capsys.readouterr().err.count("val fraction must be in [0, 1)") == 2


def test_evaluate_repeats_the_runs_test_accuracy_and_checks_other_data(bars_run, tmp_path, capsys):
    run = bars_run["run_dir"]
    m = vl.evaluate(run)
    assert m["accuracy"] == pytest.approx(bars_run["metrics"]["accuracy"])  # the same split, the same weights
    assert m["examples"] == 100 and np.asarray(m["confusion"]).sum() == 100
    assert os.path.isfile(os.path.join(run, "evaluation-bars.npz-test.json"))
    assert vl.evaluate(run, split="all")["examples"] == 400
    # Other data: its classes are mapped by name; classes the model does not know are refused.
    rng = np.random.default_rng(1)
    flipped = np.zeros((40, 8, 8), dtype=np.float32)
    flipped[:20, 2, :] = 1.0  # horizontal bars, stored as class 1 of a set whose names come in the other order
    flipped[20:, :, 2] = 1.0
    np.savez(tmp_path / "other.npz", images=np.maximum(flipped, rng.random(flipped.shape).astype(np.float32) * 0.3),
             labels=np.array([1] * 20 + [0] * 20), class_names=np.array(["vertical", "horizontal"]))
    assert vl.evaluate(run, data=str(tmp_path / "other.npz"), split="all")["accuracy"] >= 0.9
    np.savez(tmp_path / "alien.npz", images=flipped, labels=np.array([0, 1] * 20),
             class_names=np.array(["horizontal", "diagonal"]))
    assert main(["evaluate", run, "--data", str(tmp_path / "alien.npz")]) == 2
    assert "diagonal are not among the model's" in capsys.readouterr().err
    assert main(["evaluate", run]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path)]) == 2  # not a run folder
    assert "no model.json" in capsys.readouterr().err


def test_single_frame_control_trains_a_vit_on_one_frame_of_each_clip(tmp_path, capsys):
    summary = vl.train("vit", data="moving-digits", frames=4, image_size=16, frame=1, epochs=1, out=str(tmp_path),
                       name="frame", **{k: v for k, v in FAST.items() if k != "image_size"})
    info = json.load(open(os.path.join(summary["run_dir"], "model.json")))
    assert info["sample_shape"] == [1, 16, 16] and info["clip_frame"] == [1, 4]
    clip = np.zeros((4, 16, 16), dtype=np.float32)
    clip[1, 4:8, 4:8] = 1.0
    np.save(tmp_path / "clip.npy", clip)
    assert len(vl.predict(summary["run_dir"], [str(tmp_path / "clip.npy")])) == 1  # a clip, read as its frame 1
    assert vl.evaluate(summary["run_dir"])["accuracy"] == pytest.approx(summary["metrics"]["accuracy"])
    assert main(["train", "vit", "--data", "moving-digits", "--frames", "4", "--frame", "4"]) == 2
    assert "frame must be in [0, 4)" in capsys.readouterr().err
    assert main(["train", "vivit", "--frame", "0"]) == 2
    assert "a vivit reads whole clips" in capsys.readouterr().err


def test_resume_with_more_epochs_extends_a_finished_run(tmp_path, capsys):
    first = vl.train("vit", data=bars(tmp_path / "bars.npz"), epochs=2, out=str(tmp_path), name="r", **FAST)
    steps = first["step"]  # 2 epochs
    capsys.readouterr()
    assert main(["train", "--resume", first["run_dir"], "--epochs", "3"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "extended" in line]
    assert len(err) == 1 and err[0].startswith(f"extended from 2 to 3 epochs at step {steps} of {steps * 3 // 2}: "
                                               f"learning rate "), err
    summary = json.load(open(os.path.join(first["run_dir"], "summary.json")))
    assert summary["step"] == steps * 3 // 2 and summary["extended"]["option"] == "epochs"
    assert len(open(os.path.join(first["run_dir"], "metrics.jsonl")).readlines()) == 3  # one evaluation per epoch
