"""Fits of other signals (audio, video) and of a folder of images, from Python and from the command line."""

import json

import numpy as np
import torch
import pytest
from scipy.io import wavfile

import visionlab as vl
from visionlab.cli import main
from visionlab.data.images import load_image, save_image

SMALL = dict(width=32, depth=2, lr=1e-3, quiet=True)


def test_audio_fit_learns_and_writes_a_wav(tmp_path, capsys):
    rate = 4000
    t = np.arange(2000) / rate
    wavfile.write(tmp_path / "tone.wav", rate, (0.5 * np.sin(2 * np.pi * 50 * t) * 32767).astype(np.int16))
    summary = vl.fit_run(str(tmp_path / "tone.wav"), steps=150, eval_every=50, sampler="evos", ratio=0.5,
                         out=str(tmp_path), **SMALL)
    m = summary["metrics"]
    log = [json.loads(x) for x in open(f"{summary['run_dir']}/metrics.jsonl")]
    assert m["kind"] == "audio" and m["shape"] == [2000] and m["ssim"] is None
    assert log[-1]["psnr"] > log[0]["psnr"] + 3 and np.isfinite(m["psnr"])
    rate_back, samples = wavfile.read(f"{summary['run_dir']}/reconstruction.wav")
    assert rate_back == rate and samples.shape == (2000,)
    assert main(["fit", str(tmp_path / "tone.wav"), "--steps", "20", "--eval-every", "10", "--width", "16",
                 "--quiet", "--out", str(tmp_path)]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert main(["fit", str(tmp_path / "tone.wav"), "--size", "32", "--out", str(tmp_path)]) == 2
    assert "size does not apply to audio" in capsys.readouterr().err


def test_video_fit_uses_t_y_x_coordinates_and_writes_frames_and_a_gif(tmp_path):
    summary = vl.fit_run("no-time-for-that", frames=4, steps=60, eval_every=30, sampler="evos", ratio=0.5,
                         out=str(tmp_path), **SMALL)
    m = summary["metrics"]
    assert m["kind"] == "video" and m["shape"] == [4, 25, 14] and 0 < m["ssim"] <= 1
    written = sorted(p.name for p in (tmp_path / "fit" / "no-time-for-that-siren-evos" / "reconstruction").iterdir())
    assert written == ["frame_00000.png", "frame_00001.png", "frame_00002.png", "frame_00003.png",
                       "reconstruction.gif"]


@pytest.mark.parametrize("sampler", ["egra", "expansive", "soft-mining"])
def test_edge_samplers_refuse_audio_with_a_clear_error(tmp_path, capsys, sampler):
    assert main(["fit", "chirp", "--seconds", "0.1", "--sampler", sampler, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert sampler in err and len(err.strip().splitlines()) == 1


def test_a_folder_of_images_is_fitted_image_by_image_into_one_table(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("camera", "coffee"):
        save_image(folder / f"{name}.png", load_image(name, size="24").values.numpy())
    (folder / "notes.txt").write_text("not an image")
    summary = vl.fit_run(str(folder), steps=30, eval_every=15, out=str(tmp_path), **SMALL)
    rows = {r["row"]: r for r in summary["rows"]}
    assert set(rows) == {"camera.png", "coffee.png"}
    assert summary["metrics"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows.values()]))
    table = (tmp_path / "fit" / "photos-siren-evos" / "table.md").read_text()
    assert table == summary["table"] and "| **mean of 2** |" in table
    assert capsys.readouterr().out.splitlines()[:2] == ["[1/2] camera.png", "[2/2] coffee.png"]  # progress
    # The same command again continues the table: nothing is refitted.
    assert main(["fit", str(folder), "--steps", "30", "--eval-every", "15", "--width", "32", "--depth", "2",
                 "--lr", "1e-3", "--quiet", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(summary["table"])
    assert main(["fit", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2  # missing
    (tmp_path / "empty").mkdir()
    assert main(["fit", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "has no images" in capsys.readouterr().err


def test_hash_grid_fit_uses_instant_ngp_sizes_and_adam_settings(tmp_path):
    from visionlab.opt import FitConfig
    from visionlab.trainer.fit import build_fit

    trainer = build_fit(FitConfig(image="camera", size="24", model="hashgrid", sampler="full", steps=60, eval_every=30,
                                  quiet=True, out=str(tmp_path)))
    group = trainer.optimizer.param_groups[0]
    assert group["betas"] == (0.9, 0.99) and group["eps"] == 1e-15 and group["lr"] == 1e-2
    hidden = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in hidden[:-1]] == [64, 64]  # Instant-NGP's MLP: two hidden layers of 64
    log = trainer.train()
    assert log["metrics"]["psnr"] > 30  # a hash grid fits a 24 x 24 image in 60 steps


def test_a_one_frame_gif_is_fitted_as_an_image(tmp_path):
    from PIL import Image
    from visionlab.data.signals import load_signal, signal_kind
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "one.gif")
    assert signal_kind(tmp_path / "one.gif") == "image"
    signal = load_signal(tmp_path / "one.gif")
    assert signal.kind == "image" and tuple(signal.shape) == (12, 16)
    summary = vl.fit_run(str(tmp_path / "one.gif"), steps=20, eval_every=10, out=str(tmp_path), **SMALL)
    assert summary["metrics"]["kind"] == "image" and summary["metrics"]["shape"] == [12, 16]
    frames = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
    frames[0].save(tmp_path / "two.gif", save_all=True, append_images=frames[1:], duration=50)
    assert signal_kind(tmp_path / "two.gif") == "video"
