"""TensorBoard event files in RUN/tb/: scalars and pictures at the logged steps, the options as text, a resumed run
without duplicate steps, --no-tensorboard, and runs without tensorboard installed."""

import json
import shutil
import sys

import pytest

import visionlab as vl

pytest.importorskip("torch.utils.tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

FIT = dict(preset="tiny", size="24", quiet=True, lr=1e-3, steps=10, eval_every=5)
VIT = dict(preset="tiny", image_size=8, patch_size=2, pool="mean", batch_size=256, epochs=2, data="digits",
           quiet=True)


def events(run_dir) -> EventAccumulator:
    board = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    board.Reload()
    return board


def steps(board: EventAccumulator, tag: str, kind: str = "Scalars") -> list[int]:
    return [e.step for e in getattr(board, kind)(tag)]


def logged(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_fit_writes_its_scalars_reconstructions_and_options(tmp_path):
    run = tmp_path / "fit" / "camera-siren-evos"
    vl.fit_run("camera", out=str(tmp_path), **FIT)
    board, log = events(run), logged(run)
    assert steps(board, "psnr") == steps(board, "loss") == [r["step"] for r in log] == [5, 10]
    assert [e.value for e in board.Scalars("psnr")] == pytest.approx([r["psnr"] for r in log])
    assert steps(board, "lr") == steps(board, "ssim") == [5, 10]
    assert steps(board, "reconstruction", "Images") == [5, 10] and steps(board, "comparison", "Images") == [10]
    image = board.Images("reconstruction")[0]
    assert (image.height, image.width) == (24, 24)
    options = board.Tensors("options/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "sampler: evos" in options and "steps: 10" in options


def test_train_vit_writes_accuracy_per_epoch_and_the_confusion_matrix(tmp_path):
    summary = vl.train("vit", out=str(tmp_path), **VIT)
    run = tmp_path / "classify" / "digits-vit"
    board, log = events(run), logged(run)
    epochs = [r["step"] for r in log]
    assert len(epochs) == 2 and steps(board, "val_accuracy") == steps(board, "lr") == epochs
    assert board.Scalars("val_accuracy")[-1].value == pytest.approx(log[-1]["val_accuracy"])
    assert steps(board, "confusion", "Images") == [summary["step"]]


def test_a_resumed_run_adds_no_duplicate_steps(tmp_path):
    """The hard case: the process went on past its last checkpoint (step 5) before it died; the resumed run trains
    and logs steps 6 .. 10 again."""
    saved = tmp_path / "at-step-5.pt"

    def keep_the_step_5_checkpoint(trainer):
        if trainer.step == 5:
            shutil.copy(trainer.checkpoint_path, saved)

    straight = tmp_path / "fit" / "straight"
    vl.fit_run("camera", out=str(tmp_path), name="straight", **FIT)
    summary = vl.fit_run("camera", out=str(tmp_path), name="died", checkpoint_every=5,
                         callbacks=[keep_the_step_5_checkpoint], **FIT)
    run = tmp_path / "fit" / "died"
    shutil.copy(saved, run / "checkpoint.pt")  # as if it had died after step 10's events, before its checkpoint
    vl.fit_run(resume=summary["run_dir"], quiet=True)
    board, reference = events(run), events(straight)
    for tag in reference.Tags()["scalars"]:
        assert steps(board, tag) == steps(reference, tag), tag
    for tag in ("reconstruction", "comparison"):
        assert steps(board, tag, "Images") == steps(reference, tag, "Images"), tag
    assert len(board.Tensors("options/text_summary")) == 1
    assert [e.value for e in board.Scalars("psnr")] == pytest.approx([e.value for e in reference.Scalars("psnr")])


def test_no_tensorboard_writes_no_tb_folder(tmp_path):
    summary = vl.fit_run("camera", out=str(tmp_path), no_tensorboard=True, **FIT)
    assert summary["status"] == "finished" and not (tmp_path / "fit" / "camera-siren-evos" / "tb").exists()


def test_a_run_without_tensorboard_installed_works_and_says_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import torch.utils.tensorboard fails
    summary = vl.fit_run("camera", out=str(tmp_path), **FIT)
    run = tmp_path / "fit" / "camera-siren-evos"
    assert summary["status"] == "finished" and (run / "reconstruction.png").is_file() and not (run / "tb").exists()
    assert "tensorboard" not in capsys.readouterr().out.lower()


def test_the_cli_takes_no_tensorboard(tmp_path):
    from visionlab.cli import main

    assert main(["fit", "camera", "--preset", "tiny", "--size", "16", "--steps", "2", "--quiet", "--out",
                 str(tmp_path), "--no-tensorboard"]) in (0, None)
    assert not any(tmp_path.glob("fit/*/tb"))
