"""The diffuse task: tiny DDPM U-Net and DiT runs end to end, exact resume, EMA of parameters only, sampling from a
run (DDPM, DDIM, guidance, labels) and its one-line errors."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import visionlab.api as api
from visionlab.cli import main
from visionlab.util.checkpoint import load_state, save_state

# A U-Net of 8 channels (71k parameters) and T = 20: a step takes a few tens of milliseconds on one CPU thread.
TINY_UNET = ["--base-channels", "8", "--timesteps", "20", "--batch-size", "16", "--sample-steps", "4",
             "--eval-every", "2", "--quiet"]
TINY = dict(base_channels=8, timesteps=20, batch_size=16, sample_steps=4, eval_every=2, quiet=True)


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "ddpm", *TINY_UNET, "--steps", "6", "--sample-every", "4", "--ema", "0.9",
                 "--out", str(out), "--name", "tiny"]) == 0
    return str(out / "diffuse" / "tiny")


def test_ddpm_trains_end_to_end_and_writes_its_outputs(ddpm_run, capsys):
    for name in ("config.yaml", "metrics.jsonl", "metrics.json", "summary.json", "checkpoint.pt", "model.safetensors",
                 "model.json", "samples.png", "loss.png", "samples/step-0000004.png"):
        assert os.path.isfile(os.path.join(ddpm_run, name)), name
    log = [json.loads(line) for line in open(os.path.join(ddpm_run, "metrics.jsonl"))]
    assert [r["step"] for r in log] == [2, 4, 6]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["test_loss"]) for r in log)
    info = json.load(open(os.path.join(ddpm_run, "model.json")))
    assert info["task"] == "diffuse" and info["model"] == "ddpm" and info["sample_shape"] == [1, 16, 16]
    assert info["conditional"] and info["class_names"] == [str(k) for k in range(10)]
    assert info["diffusion_config"]["timesteps"] == 20 and info["model_config"]["num_classes"] == 10


def test_dit_trains_unconditionally_with_a_learned_variance(tmp_path):
    summary = api.diffuse("dit", dim=32, depth=1, num_heads=2, unconditional=True, steps=3, out=str(tmp_path),
                          **{k: v for k, v in TINY.items() if k != "base_channels"})
    info = json.load(open(os.path.join(summary["run_dir"], "model.json")))
    assert summary["status"] == "finished" and info["model"] == "dit" and not info["conditional"]
    assert info["diffusion_config"]["variance"] == "learned_range" and info["model_config"]["learn_sigma"]
    result = api.sample(summary["run_dir"], sampler="ddpm", num=3, quiet=True)  # all T = 20 ancestral steps
    assert result["steps"] == 20 and result["labels"] is None
    assert np.load(result["images"]).shape == (3, 1, 16, 16)
    with pytest.raises(Exception, match="unconditional"):
        api.sample(summary["run_dir"], labels="3", quiet=True)


def test_resumed_run_continues_bit_exactly(tmp_path):
    options = dict(TINY, steps=8, checkpoint_every=3, ema=0.8, out=str(tmp_path))
    straight = api.diffuse("ddpm", name="straight", **options)

    def stop(trainer):
        if trainer.step == 5:
            trainer.request_stop()  # what Ctrl-C does: finish the step, checkpoint, stop

    stopped = api.diffuse("ddpm", name="stopped", callbacks=[stop], **options)
    assert stopped["status"] == "interrupted" and stopped["step"] == 5
    assert main(["train", "--resume", stopped["run_dir"], "--batch-size", "8"]) == 2  # its own options only
    resumed = api.diffuse(resume=stopped["run_dir"], quiet=True)
    assert resumed["status"] == "finished" and resumed["step"] == 8
    for name in ("model.safetensors",):
        a, b = load_file(os.path.join(straight["run_dir"], name)), load_file(os.path.join(resumed["run_dir"], name))
        assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = load_state(straight["run_dir"]), load_state(resumed["run_dir"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])

    def curve(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in open(os.path.join(run, "metrics.jsonl"))]

    assert curve(straight["run_dir"]) == curve(resumed["run_dir"])  # the loss log continues, line for line
    assert [r["step"] for r in curve(resumed["run_dir"])] == [2, 4, 6, 8]


def test_ema_averages_the_parameters_only(tmp_path):
    decay, seen = 0.7, {}

    def record(trainer):
        seen.setdefault("params", []).append({k: v.detach().clone() for k, v in trainer.model.named_parameters()})
        seen["use_buffers"] = trainer.ema.use_buffers

    summary = api.diffuse("dit", dim=32, depth=1, num_heads=2, steps=4, ema=decay, callbacks=[record],
                          out=str(tmp_path), **{k: v for k, v in TINY.items() if k != "base_channels"})
    assert seen["use_buffers"] is False
    expected = dict(seen["params"][0])  # the first update copies the parameters
    for t, params in enumerate(seen["params"][1:], 1):  # then d_t = min(0.7, (1 + t) / (10 + t)): 2/11, 3/12, 4/13
        d = min(decay, (1 + t) / (10 + t))
        expected = {k: d * expected[k] + (1 - d) * params[k] for k in expected}
    saved = load_file(os.path.join(summary["run_dir"], "model.safetensors"))
    assert set(saved) == set(expected)  # parameters only (the DiT's sin-cos table is a non-persistent buffer)
    assert all(torch.allclose(saved[k], expected[k], atol=1e-6) for k in expected)
    final = seen["params"][-1]
    assert any(not torch.allclose(saved[k], final[k]) for k in final)  # the average, not the last weights


def test_ema_decay_warms_up_to_its_ceiling():
    from visionlab.trainer.base import ema_decay
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay(0.999, 90) == pytest.approx(0.91) and ema_decay(0.999, 150) == pytest.approx(151 / 160)
    assert ema_decay(0.999, 10_000) == 0.999 and ema_decay(0.9, 80) == 0.9  # the ceiling from t = 80 on


@pytest.mark.slow
def test_a_short_ddpm_run_with_default_options_is_judged_on_sensible_ema_weights(tmp_path, capsys):
    # 150 steps with the default EMA (0.999), learning rate, warm-up and T; only the U-Net (8 channels) and the batch
    # (16: a quarter of the time) are small. Without the warm-up the average still holds 0.999^150 = 86 % of the
    # initial weights: EMA test loss 0.95 against the raw weights' 0.15 here; with it, 0.20.
    assert main(["train", "ddpm", "--base-channels", "8", "--batch-size", "16", "--steps", "150", "--sample-steps",
                 "4", "--quiet", "--out", str(tmp_path), "--name", "short"]) == 0
    assert "(EMA weights, decay 0.999 with warm-up; fixed test batch)" in capsys.readouterr().out
    m = json.loads((tmp_path / "diffuse" / "short" / "metrics.json").read_text())
    assert m["weights"] == "EMA weights, decay 0.999 with warm-up" and m["test_loss_raw"] < 0.5
    assert m["test_loss"] < 2 * m["test_loss_raw"], m
    state = load_state(tmp_path / "diffuse" / "short")
    assert int(state["ema"]["n_averaged"]) == 150  # t travels in the checkpoint: a resumed run decays as this one
    raw = api.diffuse("ddpm", steps=2, ema=0, out=str(tmp_path), name="raw", **TINY)["metrics"]
    assert raw["weights"] == "raw weights, no EMA" and raw["test_loss_raw"] == raw["test_loss"]


def test_ddim_with_fewer_steps_is_deterministic_for_a_seed(ddpm_run, tmp_path):
    a = api.sample(ddpm_run, steps=5, num=6, seed=3, out=str(tmp_path / "a"), quiet=True)
    b = api.sample(ddpm_run, steps=5, num=6, seed=3, out=str(tmp_path / "b"), quiet=True, batch_size=4)
    c = api.sample(ddpm_run, steps=5, num=6, seed=4, out=str(tmp_path / "c"), quiet=True)
    x, y, z = (np.load(r["images"]) for r in (a, b, c))
    assert x.shape == (6, 1, 16, 16) and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(x, y) and not np.array_equal(x, z)
    assert a["steps"] == 5 and np.load(a["labels"]).tolist() == [0, 1, 2, 3, 4, 5]
    full = api.sample(ddpm_run, sampler="ddpm", num=2, out=str(tmp_path / "d"), quiet=True)
    assert full["steps"] == 20 and os.path.isfile(full["grid"])


def test_sample_command_with_labels_and_guidance(ddpm_run, tmp_path, capsys):
    assert main(["sample", ddpm_run, "--steps", "4", "--labels", "7,3", "--guidance", "2", "--num", "5",
                 "--out", str(tmp_path / "g"), "--quiet"]) == 0
    assert "5 images (ddim, 4 steps, guidance 2" in capsys.readouterr().out
    assert np.load(tmp_path / "g.labels.npy").tolist() == [7, 3, 7, 3, 7]
    checkpoint = os.path.join(ddpm_run, "checkpoint.pt")  # a checkpoint samples too (its EMA weights)
    assert main(["sample", checkpoint, "--steps", "4", "--num", "2", "--out", str(tmp_path / "k"), "--quiet"]) == 0


def test_sampling_errors_are_one_line_with_exit_status_2(ddpm_run, tmp_path, capsys):
    other = tmp_path / "classify-run"
    other.mkdir()
    save_state(other / "checkpoint.pt", {"step": 3, "task": "classify", "model": {}})
    (tmp_path / "vit-run").mkdir()
    (tmp_path / "vit-run" / "model.json").write_text(json.dumps({"model": "vit", "model_config": {}}))
    cases = [([str(other / "checkpoint.pt")], "'classify' checkpoint, not a diffusion one"),
             ([str(other)], "'classify' checkpoint, not a diffusion one"),
             ([str(tmp_path / "vit-run")], "holds a vit model, not a diffusion model"),
             ([str(tmp_path / "missing")], "no such run or checkpoint"),
             ([ddpm_run, "--labels", "10"], "label 10 is out of range: the model knows classes 0 .. 9"),
             ([ddpm_run, "--labels", "-1"], "label -1 is out of range"),
             ([ddpm_run, "--labels", "seven"], "unknown class 'seven'"),
             ([ddpm_run, "--sampler", "ddpm", "--steps", "5"], "the ddpm sampler runs all 20 steps"),
             ([ddpm_run, "--steps", "50"], "at most the model's 20 time steps")]
    for args, message in cases:
        assert main(["sample", *args, "--quiet"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_learning_rate_schedules():
    from visionlab.trainer.base import lr_lambda
    constant = lr_lambda(warmup=4, total=10, decay="constant")
    assert [constant(t) for t in range(12)] == [0.25, 0.5, 0.75] + [1.0] * 9
    cosine = lr_lambda(warmup=2, total=10)
    factors = [cosine(t) for t in range(10)]
    assert factors[:3] == [0.5, 1.0, 1.0]  # warm-up, then the top of the half cosine
    assert factors[6] == pytest.approx(0.5)  # half way through the 8 steps after the warm-up
    assert all(a > b for a, b in zip(factors[2:], factors[3:])) and 0 < factors[-1] < 0.05
    assert cosine(10) == cosine(100) == 0.0


def test_every_diffusion_recipe_is_a_valid_configuration():
    from visionlab.manager import DIFFUSE_RECIPES
    from visionlab.opt import DiffuseConfig
    for name, recipe in DIFFUSE_RECIPES.items():
        config = DiffuseConfig(**recipe).validate()  # a misspelt option is a TypeError here
        assert config.steps >= 1000, name
    dit = DiffuseConfig(**DIFFUSE_RECIPES["digits-dit"])
    assert (dit.model, dit.min_snr, dit.lr_schedule) == ("dit", 5.0, "cosine")


def test_a_bad_min_snr_is_a_config_error_when_the_network_is_built(tmp_path):
    """models/diffusion.py checks --min-snr (> 0; 0 is off): the trainer's build refuses a bad value before a run
    folder exists, whatever opt.py checks."""
    from visionlab.opt import DiffuseConfig
    from visionlab.trainer.diffuse import build_network
    from visionlab.util.errors import ConfigError

    for bad in (-5.0, float("nan")):
        with pytest.raises(ConfigError, match="min snr gamma must be > 0"):
            build_network(DiffuseConfig(model="ddpm", min_snr=bad, out=str(tmp_path)), (1, 16, 16), 10)
    _, diffusion = build_network(DiffuseConfig(model="ddpm", min_snr=0.0), (1, 16, 16), 10)
    assert diffusion.config.min_snr_gamma is None  # 0: off
    assert not any(tmp_path.iterdir())


def test_train_refuses_bad_options(tmp_path, capsys):
    for args, message in ((["train", "ddpm", "--epochs", "3"], "--epochs: not an option of 'visionlab train ddpm'"),
                          (["train", "vit", "--timesteps", "3"], "--timesteps: not an option of 'visionlab train vit'"),
                          (["train", "dit", "--steps", "0"], "steps must be > 0"),
                          (["train", "ddpm", "--sample-steps", "30", "--timesteps", "20"], "cannot exceed"),
                          (["train", "dit", "--patch-size", "3"], "not divisible by patch_size 3"),
                          (["train", "dit", "--min-snr", "-5"], "min snr gamma must be > 0")):
        assert main([*args, "--out", str(tmp_path), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_resume_with_more_steps_stretches_the_cosine_to_the_new_end(tmp_path, capsys):
    """A 20-step run (warm-up 4, then a cosine to 0 at step 20) resumed with --steps 30 ends at step 30 with its
    checkpoint, on the 30-step cosine from step 20 on: said in one line and in the summary."""
    first = api.diffuse("ddpm", **TINY, steps=20, warmup_steps=4, lr_schedule="cosine", lr=1e-3,
                        sample_every=0, out=str(tmp_path), name="r")
    run = first["run_dir"]
    assert load_state(run)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine's end
    capsys.readouterr()
    assert main(["train", "--resume", run, "--steps", "30"]) == 0
    stretched = 1e-3 * 0.5 * (1 + np.cos(np.pi * (20 - 4) / (30 - 4)))
    err = [line for line in capsys.readouterr().err.splitlines() if "extended" in line]
    assert len(err) == 1 and err[0].startswith(f"extended from 20 to 30 steps at step 20 of 30: learning rate 0 -> "
                                               f"{stretched:.3g}"), err
    state = load_state(run)
    assert state["step"] == 30 and state["config"]["steps"] == 30
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)  # the new end
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["step"] == 30 and summary["extended"]["lr_after"] == pytest.approx(stretched)
