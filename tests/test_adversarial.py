"""The adversarial task: tiny GAN runs end to end, a D step leaves G alone and a G step leaves D alone, exact resume,
EMA of G's parameters only, the warnings, sampling and evaluating a GAN run, its one-line errors, and a tiny
gan-augment table."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import visionlab.api as api
from visionlab.cli import main
from visionlab.manager import experiment_plan
from visionlab.opt import GanConfig
from visionlab.trainer.adversarial import build_adversarial
from visionlab.trainer.gan_augment import gan_augment, stratified_subset
from visionlab.trainer.generative import image_grid, labelled_grid, to_model
from visionlab.util.checkpoint import load_state
from visionlab.util.errors import ConfigError

# G of 8 channels and z of 16 numbers (6k parameters): a step takes a few milliseconds on one CPU thread.
TINY_FLAGS = ["--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "16", "--eval-every", "2", "--quiet"]
TINY = dict(ngf=8, ndf=8, nz=16, batch_size=16, eval_every=2, quiet=True)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "gan", "--conditional", *TINY_FLAGS, "--steps", "6", "--sample-every", "4",
                 "--ema", "0.9", "--out", str(out), "--name", "tiny"]) == 0
    return str(out / "adversarial" / "tiny")


def test_gan_trains_end_to_end_and_writes_its_outputs(gan_run):
    for name in ("config.yaml", "metrics.jsonl", "metrics.json", "summary.json", "checkpoint.pt", "model.safetensors",
                 "discriminator.safetensors", "model.json", "samples.png", "loss.png", "samples/step-0000004.png"):
        assert os.path.isfile(os.path.join(gan_run, name)), name
    log = [json.loads(line) for line in open(os.path.join(gan_run, "metrics.jsonl"))]
    assert [r["step"] for r in log] == [2, 4, 6]
    for r in log:
        assert all(np.isfinite(r[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake", "diversity"))
        assert 0 <= r["d_accuracy"] <= 1 and r["monitor"] == "pixels"
    info = json.load(open(os.path.join(gan_run, "model.json")))
    assert info["task"] == "adversarial" and info["model"] == "gan" and info["loss"] == "ns"
    assert info["sample_shape"] == [1, 16, 16] and info["conditional"] and info["model_config"]["num_classes"] == 10
    summary = json.load(open(os.path.join(gan_run, "summary.json")))
    assert summary["status"] == "finished" and summary["metrics"]["discriminator_parameters"] > 0


def tiny_trainer(tmp_path, **options):
    config = GanConfig(**{**TINY, "steps": 4, "out": str(tmp_path), **options})
    return build_adversarial(config)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("loss", ["ns", "wgan-gp"])
def test_a_discriminator_step_leaves_g_alone_and_a_generator_step_leaves_d_alone(tmp_path, loss):
    trainer = tiny_trainer(tmp_path, loss=loss, conditional=True)
    g, d = trainer.generator, trainer.discriminator
    real = to_model(trainer.data.train_x[:16])
    y = trainer.data.train_y[:16]
    fake = g(g.noise(16), y)  # with a graph to G: the D step must not use it
    g0, d0 = snapshot(g), snapshot(d)
    trainer.discriminator_step(real, fake, y, generator=torch.Generator().manual_seed(0))
    g1, d1 = snapshot(g), snapshot(d)
    assert same(g0, g1) and not same(d0, d1)
    assert all(p.grad is None for p in g.parameters())
    trainer.generator_step(g.noise(16), y)
    g2, d2 = snapshot(g), snapshot(d)
    assert same(d1, d2) and not same(g1, g2)  # D's state (no running statistics) is untouched by a G step
    assert all(p.requires_grad for p in d.parameters())  # unfrozen again


def test_resumed_run_continues_bit_exactly(tmp_path):
    options = dict(TINY, steps=8, checkpoint_every=3, ema=0.8, loss="wgan-gp", n_critic=2, conditional=True,
                   out=str(tmp_path))
    straight = api.gan(name="straight", **options)

    def stop(trainer):
        if trainer.step == 5:
            trainer.request_stop()  # what Ctrl-C does: finish the step, checkpoint, stop

    stopped = api.gan(name="stopped", callbacks=[stop], **options)
    assert stopped["status"] == "interrupted" and stopped["step"] == 5
    assert main(["train", "--resume", stopped["run_dir"], "--batch-size", "8"]) == 2  # its own options only
    assert main(["train", "--resume", stopped["run_dir"], "--quiet"]) == 0  # the checkpoint says it is a GAN
    resumed = load_state(stopped["run_dir"])
    final = load_state(straight["run_dir"])
    assert resumed["step"] == final["step"] == 8
    for part in ("generator", "discriminator", "ema"):
        assert same(final[part], resumed[part]), part
    for name in ("model.safetensors", "discriminator.safetensors"):
        a, b = load_file(os.path.join(straight["run_dir"], name)), load_file(os.path.join(stopped["run_dir"], name))
        assert same(a, b), name

    def curve(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in open(os.path.join(run, "metrics.jsonl"))]

    assert curve(straight["run_dir"]) == curve(stopped["run_dir"])  # the log continues, line for line
    assert [r["step"] for r in curve(straight["run_dir"])] == [2, 4, 6, 8]
    assert all("gp" in r for r in curve(straight["run_dir"]))


def test_ema_averages_g_parameters_and_copies_its_batchnorm_statistics(tmp_path):
    decay, seen = 0.7, []

    def record(trainer):
        seen.append({k: v.detach().clone() for k, v in trainer.generator.named_parameters()})
        assert trainer.ema.use_buffers is False

    summary = api.gan(steps=4, ema=decay, callbacks=[record], out=str(tmp_path), **TINY)
    expected = dict(seen[0])  # the first update copies the parameters
    for t, params in enumerate(seen[1:], 1):  # then the warm-up d_t = min(0.7, (1 + t) / (10 + t))
        d = min(decay, (1 + t) / (10 + t))
        expected = {k: d * expected[k] + (1 - d) * params[k] for k in expected}
    assert summary["metrics"]["weights"] == "EMA weights, decay 0.7 with warm-up"
    saved = load_file(os.path.join(summary["run_dir"], "model.safetensors"))
    assert all(torch.allclose(saved[k], expected[k], atol=1e-6) for k in expected)
    assert any(not torch.allclose(saved[k], seen[-1][k]) for k in expected)  # the average, not the last weights
    live = load_state(summary["run_dir"])["generator"]
    buffers = [k for k in saved if "running_" in k]
    assert buffers and all(torch.equal(saved[k], live[k]) for k in buffers)  # the live G's BatchNorm statistics
    assert not torch.equal(saved[buffers[0]], torch.zeros_like(saved[buffers[0]]))  # ... not the initial ones


def test_warnings_are_printed_once_and_logged(tmp_path, capsys):
    summary = api.gan(steps=6, collapse_threshold=0.99, out=str(tmp_path), **TINY)  # every run "collapses" here
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "mode collapse" in err
    log = [json.loads(line) for line in open(os.path.join(summary["run_dir"], "metrics.jsonl"))]
    assert sum("warnings" in r for r in log) == 1
    assert "mode collapse" in summary["metrics"]["warnings"][0]
    trainer = tiny_trainer(tmp_path, d_win_steps=3)
    for step in range(1, 8):
        trainer._watch_discriminator(1.0 if step != 2 else 0.5, step)  # wins at 1, loses at 2, then wins 3 .. 7
    assert [w["kind"] for w in trainer.warnings] == ["discriminator-wins"] and trainer.warnings[0]["step"] == 5
    assert capsys.readouterr().err.count("the discriminator has told real from generated") == 1
    critic = tiny_trainer(tmp_path, loss="wgan-gp", d_win_steps=1)
    critic._watch_discriminator(1.0, 1)  # a WGAN critic is meant to separate: no warning
    assert critic.warnings == []


def test_sampling_a_gan_run_with_labels(gan_run, tmp_path, capsys):
    a = api.sample(gan_run, labels="3,7", num=5, seed=2, out=str(tmp_path / "a"), quiet=True)
    b = api.sample(gan_run, labels="3,7", num=5, seed=2, batch_size=2, out=str(tmp_path / "b"), quiet=True)
    x = np.load(a["images"])
    assert x.shape == (5, 1, 16, 16) and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(x, np.load(b["images"]))  # eval mode: an image depends on its noise only
    assert np.load(a["labels"]).tolist() == [3, 7, 3, 7, 3] and os.path.isfile(a["grid"])
    assert main(["sample", os.path.join(gan_run, "checkpoint.pt"), "--num", "4", "--out", str(tmp_path / "c"),
                 "--quiet"]) == 0
    assert "4 images (GAN, one generator pass each" in capsys.readouterr().out


def test_gan_sampling_errors_are_one_line_with_exit_status_2(gan_run, tmp_path, capsys):
    unconditional = api.gan(steps=2, out=str(tmp_path), **TINY)["run_dir"]
    capsys.readouterr()  # a 2-step run's samples look alike: its warning is not under test here
    cases = [([gan_run, "--steps", "5"], "--steps: a GAN draws each image in one pass of its generator"),
             ([gan_run, "--guidance", "2"], "--guidance: a GAN draws"),
             ([gan_run, "--sampler", "ddpm"], "--sampler ddpm: a GAN draws"),
             ([gan_run, "--labels", "10"], "label 10 is out of range: the model knows classes 0 .. 9"),
             ([unconditional, "--labels", "3"], "this GAN is unconditional (trained without --conditional)")]
    for args, message in cases:
        assert main(["sample", *args, "--quiet"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert main(["evaluate-samples", gan_run, "--steps", "5"]) == 2
    assert "a GAN draws" in capsys.readouterr().err


def test_evaluate_samples_judges_a_gan_run(gan_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VISIONLAB_CACHE", str(tmp_path / "cache"))
    assert main(["evaluate-samples", gan_run, "--num", "20", "--reference-epochs", "1", "--labels", "1,2"]) == 0
    assert "classified as the class asked for" in capsys.readouterr().out
    result = json.load(open(os.path.join(gan_run, "evaluation-samples-gan-n20-seed0.json")))
    assert result["sampler"] == "gan" and result["samples"] == 20 and np.isfinite(result["fid"])
    assert 0 <= result["class_accuracy"] <= 1


def test_train_gan_refuses_bad_options(tmp_path, capsys):
    for args, message in ((["--image-size", "24"], "power of two of at least 16"),
                          (["--loss", "wgan-gp", "--d-norm", "batch"], "BatchNorm mixes across the batch"),
                          (["--epochs", "3"], "--epochs: not an option of 'visionlab train gan'"),
                          (["--timesteps", "3"], "--timesteps: not an option of 'visionlab train gan'"),
                          (["--steps", "0"], "steps must be > 0"),
                          (["--beta1", "1.5"], "beta1 must be in [0, 1)")):
        assert main(["train", "gan", *args, "--out", str(tmp_path), "--quiet"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["train", "vit", "--loss", "hinge", "--out", str(tmp_path)]) == 2
    assert "--loss: not an option of 'visionlab train vit'" in capsys.readouterr().err


def test_stratified_subset_takes_the_same_share_of_every_class():
    labels = torch.arange(10).repeat_interleave(40)
    index = stratified_subset(labels, 0.1, seed=0)
    assert torch.bincount(labels[index]).tolist() == [4] * 10
    assert torch.equal(index, stratified_subset(labels, 0.1, seed=0))
    assert not torch.equal(index, stratified_subset(labels, 0.1, seed=1))


def test_gan_augment_writes_one_table_and_skips_finished_cells(tmp_path):
    settings = dict(data="digits", fractions=(0.05,), seeds=(0,),
                    gan=dict(ngf=8, ndf=8, nz=16, steps=3, batch_size=16, eval_every=3),
                    synthetic_per_class=2, synthetic_share=0.5, classifier_steps=2, classifier_batch=8,
                    classifier_lr=1e-3)
    result = gan_augment(settings=settings, out=str(tmp_path), name="tiny", device="cpu", quiet=True)
    assert result["status"] == "finished" and result["cells"] == 1
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == ["real only", "real + classic augmentation", "real + GAN samples"]
    assert all(0 <= r["columns"]["0.05"]["mean"] <= 1 and r["columns"]["0.05"]["seeds"] == 1 for r in rows.values())
    assert "| real + GAN samples |" in result["markdown"]
    folder = tmp_path / "experiment" / "tiny"
    cell = json.loads((folder / "cells.jsonl").read_text())
    assert cell["train_images"] == 70 and os.path.isfile(os.path.join(cell["gan_run"], "model.json"))
    again = gan_augment(settings=settings, out=str(tmp_path), name="tiny", device="cpu", quiet=True)
    assert again["markdown"] == result["markdown"] and len((folder / "cells.jsonl").read_text().splitlines()) == 1
    with pytest.raises(ConfigError, match="other settings"):
        gan_augment(settings=settings, seeds=(5,), out=str(tmp_path), name="tiny", device="cpu", quiet=True)
    with pytest.raises(ConfigError, match="no plan of runs"):
        experiment_plan("gan-augment")
    with pytest.raises(ConfigError, match="--images and --size do not apply"):
        api.experiment("gan-augment", images="coffee", out=str(tmp_path))


def test_class_conditional_grids_say_which_row_is_which_class(gan_run, tmp_path):
    """The grid of a conditional run (training's samples.png, 'visionlab sample') has one class per row and the
    class names in a margin on the left: wider than the plain grid of the same images, and the margin not blank."""
    images = torch.rand(32, 1, 16, 16)
    labels = torch.tensor([3, 7] * 16)
    plain = image_grid(images, columns=16)
    labelled = labelled_grid(images, labels, [str(k) for k in range(10)], columns=16)
    assert labelled.shape[0] == plain.shape[0] and labelled.shape[1] > plain.shape[1]  # 2 rows of 16
    margin = labelled[:, :labelled.shape[1] - plain.shape[1], 0]  # (H, margin)
    bands = margin.reshape(2, -1, margin.shape[1])  # one band per row: each has its label's dark pixels
    assert all((band < 0.5).sum() > 3 for band in bands)
    # the rows sorted by class: the first holds the 3s, the second the 7s, as the labels say
    sorted_grid = image_grid(torch.cat([images[::2], images[1::2]]), columns=16)
    assert torch.allclose(labelled[:, -plain.shape[1]:], sorted_grid, atol=0.5 / 255)  # 8-bit, as saved
    # a conditional run's grids carry the margin: training's samples.png and 'visionlab sample --labels'
    for grid in (os.path.join(gan_run, "samples.png"),
                 api.sample(gan_run, labels="3,7", num=32, out=str(tmp_path / "s"), quiet=True)["grid"]):
        picture = np.asarray(Image.open(grid))
        rows, columns = (10, 8) if grid.endswith("samples.png") else (4, 8)  # 16 x 16 images, frame 1, scaled 2x
        assert picture.shape[0] == rows * 18 * 2 and picture.shape[1] > columns * 18 * 2, picture.shape
