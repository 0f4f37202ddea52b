"""Script mode: every option documented, one-line errors with exit status 2, Ctrl-C then --resume."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from visionlab.cli import TRAIN_FAMILIES, main
from visionlab.data.images import save_image
from visionlab.opt import FitConfig
from visionlab.util.checkpoint import load_state

FAST = ["--preset", "tiny", "--size", "16", "--quiet"]


def test_fit_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(FitConfig):
        flag = field.name if field.metadata.get("positional") else "--" + field.name.replace("_", "-")
        assert flag in text, f"{flag} missing from 'visionlab fit --help'"
        assert " ".join(field.metadata["help"].split()[:4]) in text  # with its help text
    assert "--preset" in text and "--resume" in text


@pytest.mark.parametrize("args, message", [
    (["no/such/file.png"], "no such file or built-in signal: no/such/file.png"),
    (["unknown_sample"], "no such file or built-in signal: unknown_sample"),
    (["astronaut", "--size", "0"], "size"),
    (["astronaut", "--ratio", "1.5"], "ratio must be in (0, 1], got 1.5"),
    (["astronaut", "--ratio", "0"], "ratio must be in (0, 1], got 0.0"),
    (["astronaut", "--steps", "0"], "steps must be > 0"),
    (["astronaut", "--device", "cuda:7"], "device"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys, args, message):
    code = main(["fit", *FAST, *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"this is not a picture", None])
def test_bad_image_files(tmp_path, capsys, content):
    path = tmp_path / "bad.png"
    if content is None:  # a real PNG cut in half
        from visionlab.data.images import save_image
        import numpy as np

        save_image(path, np.random.default_rng(0).random((64, 64, 3)))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    code = main(["fit", str(path), *FAST, "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.png" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("checkpoint.pt"))


def test_fit_prints_metrics_and_where_outputs_are(tmp_path, capsys):
    assert main(["fit", "camera", *FAST, "--steps", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "SSIM" in out and str(tmp_path / "fit" / "camera-siren-evos") in out


def run_cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "visionlab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_subprocess_error_has_no_traceback(tmp_path):
    proc = run_cli("fit", str(tmp_path / "missing.jpg"), "--out", str(tmp_path))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "missing.jpg" in err and "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_leaves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    run = tmp_path / "fit" / "sigint"
    proc = run_cli("fit", "camera", "--preset", "tiny", "--size", "16", "--steps", "100000", "--checkpoint-every",
                   "50", "--eval-every", "50", "--out", str(tmp_path), "--name", "sigint", "--threads", "1")
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline:  # wait for the first checkpoint
        time.sleep(0.2)
    assert (run / "checkpoint.pt").exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    state = load_state(run)
    assert state["step"] >= 50
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["step"] == state["step"]
    # Resume with a shorter horizon is not possible (the run's own config is used): continue to the end instead,
    # here by editing nothing and stopping the resumed run after a few steps with another Ctrl-C.
    proc = run_cli("fit", "--resume", str(run), "--quiet")
    logged = len((run / "metrics.jsonl").read_text().splitlines())
    deadline = time.time() + 120
    while len((run / "metrics.jsonl").read_text().splitlines()) == logged and time.time() < deadline:
        time.sleep(0.2)  # until the resumed run has trained and logged (a loaded machine may take long to start)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert load_state(run)["step"] > state["step"]


def test_resume_refuses_options_that_would_change_the_run(tmp_path, capsys):
    assert main(["fit", "camera", *FAST, "--steps", "2", "--out", str(tmp_path), "--name", "r"]) == 0
    code = main(["fit", "--resume", str(tmp_path / "fit" / "r"), "--ratio", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and "(got ratio)" in err and "only device, threads and quiet may change, and steps" in err


@pytest.mark.parametrize("command", ["fit", "train", "features", "experiment", "shapes", "evaluate", "predict",
                                     "sample", "evaluate-samples"])
def test_every_help_page_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse exits 0 after printing help
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: visionlab" in capsys.readouterr().out


def test_every_command_takes_threads(capsys):
    """--threads on every command that computes ('shapes' runs on the meta device: no arithmetic, no threads)."""
    commands = [[c] for c in ("fit", "features", "experiment", "evaluate", "predict", "sample", "evaluate-samples",
                              "show")] + [["train", family] for family in TRAIN_FAMILIES]
    for words in commands:
        with pytest.raises(SystemExit):
            main([*words, "--help"])
        assert "--threads THREADS" in capsys.readouterr().out, words


def test_features_predict_and_evaluate_use_their_threads(tmp_path, capsys):
    assert torch.get_num_threads() == 1  # tests/conftest.py
    assert main(["features", "--data", "digits", "--quiet", "--threads", "2", "--out", str(tmp_path)]) == 0
    assert torch.get_num_threads() == 2 and threadpool_info()[0]["num_threads"] == 2
    image = tmp_path / "digit.png"
    save_image(image, np.zeros((8, 8, 1)))
    for command, threads in (["predict", str(tmp_path / "features" / "digits-hog-svm"), str(image)], 3), \
                            (["evaluate", str(tmp_path)], 2):  # not a run folder: refused, after the threads are set
        torch.set_num_threads(1)
        main([*command, "--threads", str(threads)])
        assert torch.get_num_threads() == threads, command
    assert main(["evaluate", str(tmp_path), "--threads", "0"]) == 2
    assert "threads must be > 0, got 0" in capsys.readouterr().err


def test_a_fits_files_and_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["fit", "camera", *FAST, "--steps", "2", "--out", str(tmp_path), "--name", "u"]) == 0
    finally:
        os.umask(old)
    paths = list((tmp_path / "fit").rglob("*"))
    assert any(p.name == "checkpoint.pt" for p in paths) and any(p.name == "summary.json" for p in paths)
    for path in paths:
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path
