"""Judging generated images: FID against direct computations, the cached reference classifier, and
'visionlab evaluate-samples' on real images (which must score like the floor) and on samples of a run."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

import visionlab.api as api
from visionlab.cli import main
from visionlab.components.metrics import MetricInputError, feature_statistics, fid, frechet_distance
from visionlab.models.cnn import SmallCNN
from visionlab.trainer.generative import generative_data as diffusion_data
from visionlab.trainer.reference import data_hash, reference_classifier, reference_key


def gaussian_features(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features
    return rng.normal(size=(n, d)) @ mix * scale + shift


def direct_fid(a, b):
    """The formula written out with NumPy and SciPy."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))


def eigen_fid(a, b):
    """An independent route: Tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))), all symmetric."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_fid_of_a_set_with_itself_is_zero():
    for n, d in ((500, 16), (40, 64)):  # also fewer samples than features: a singular covariance
        a = gaussian_features(n, d, seed=1)
        assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    x = torch.randn(300, 8, dtype=torch.float64)
    assert fid(x, x.clone()) == pytest.approx(0.0, abs=1e-8)  # tensors too


def test_fid_matches_direct_computations():
    a, b = gaussian_features(400, 12, seed=2), gaussian_features(300, 12, seed=3, shift=0.3, scale=1.5)
    value = fid(a, b)
    assert value == pytest.approx(direct_fid(a, b), rel=1e-9)
    assert value == pytest.approx(eigen_fid(a, b), rel=1e-6)
    # One dimension: the Fréchet distance of N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)
    mu, sigma = feature_statistics(a)
    assert mu.shape == (12,) and sigma.shape == (12, 12) and np.allclose(sigma, np.cov(a, rowvar=False))


def test_fid_grows_with_a_shift():
    a = gaussian_features(1000, 10, seed=4)
    values = [fid(a, a + s) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values[0] == pytest.approx(0.0, abs=1e-8) and all(x < y for x, y in zip(values, values[1:]))
    assert values[-1] == pytest.approx(10 * 2.0 ** 2, rel=1e-6)  # same covariance: FID = D s^2


def test_fid_rejects_bad_features():
    with pytest.raises(MetricInputError, match="N >= 2"):
        fid(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(MetricInputError, match="feature widths differ"):
        fid(np.random.rand(5, 4), np.random.rand(5, 3))
    with pytest.raises(MetricInputError, match="NaN"):
        fid(np.full((5, 2), np.nan), np.random.rand(5, 2))


def test_small_cnn_features_and_head():
    model = SmallCNN(in_channels=3, num_classes=4, feature_dim=32)
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, 32) and model(x).shape == (2, 4)
    with pytest.raises(Exception, match="expected images"):
        model(torch.randn(2, 1, 32, 32))


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_reference_classifier_is_trained_once_and_cached_with_its_data_hash(cache):
    data = diffusion_data("digits", image_size=8)
    model, meta = reference_classifier(data, epochs=2)
    files = list((cache / "reference").glob("*.safetensors"))
    assert len(files) == 1 and not meta["cached"] and meta["data"] == "digits"
    assert meta["data_hash"] == data_hash(data) and float(meta["test_accuracy"]) > 0.5  # chance: 0.1
    state = torch.get_rng_state()
    again, meta2 = reference_classifier(data, epochs=2)  # from the cache: no training, the same weights
    assert meta2["cached"] and torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    other = diffusion_data("digits", image_size=8, seed=1)  # another split: another hash, another classifier
    assert not reference_classifier(other, epochs=1)[1]["cached"]
    assert len(list((cache / "reference").glob("*.safetensors"))) == 2


def test_the_reference_cache_is_keyed_by_its_epochs_and_checks_the_stored_key(cache, capsys):
    data = diffusion_data("digits", image_size=8)
    _, two = reference_classifier(data, epochs=2)
    _, one = reference_classifier(data, epochs=1)  # another --reference-epochs: its own entry, never the 2-epoch one
    assert not two["cached"] and not one["cached"] and one["path"] != two["path"]
    assert reference_classifier(data, epochs=2)[1]["cached"] and reference_classifier(data, epochs=1)[1]["cached"]
    record = json.loads(Path(two["path"]).with_suffix(".json").read_text())
    assert record["key"] == reference_key(data, epochs=2, seed=0) and record["key"]["epochs"] == 2
    assert record["key"]["sample_shape"] == [1, 8, 8] and record["key"]["data_hash"] == data_hash(data)
    capsys.readouterr()
    record["key"]["epochs"] = 30  # an entry whose stored key does not match its name: rebuilt, with one line
    Path(two["path"]).with_suffix(".json").write_text(json.dumps(record))
    _, rebuilt = reference_classifier(data, epochs=2)
    err = capsys.readouterr().err
    assert not rebuilt["cached"] and "made with other epochs" in err and len(err.strip().splitlines()) == 1
    assert reference_classifier(data, epochs=2)[1]["cached"]  # and whole again
    Path(two["path"]).with_suffix(".json").unlink()  # weights without their key (a write cut short): rebuilt
    assert not reference_classifier(data, epochs=2)[1]["cached"] and "cannot be read" in capsys.readouterr().err


def test_evaluate_samples_scores_real_images_like_the_floor(cache, tmp_path, capsys):
    out = tmp_path / "runs"
    summary = api.diffuse("ddpm", base_channels=8, timesteps=20, batch_size=16, sample_steps=4, eval_every=2,
                          steps=2, out=str(out), quiet=True)
    run = summary["run_dir"]
    # Real test images presented as samples, with their true labels: FID is about the floor, nearly all recognised.
    data = diffusion_data("digits")
    np.save(tmp_path / "real.npy", data.test_x[:300].numpy())
    np.save(tmp_path / "real.labels.npy", data.test_y[:300].numpy())
    m = api.evaluate_samples(run, samples=str(tmp_path / "real.npy"), reference_epochs=4, quiet=True)
    assert m["samples_in_fid"] == 300 and m["fid"] < 2 * m["fid_floor"]
    assert m["class_accuracy"] > 0.8 and m["reference_test_accuracy"] > 0.8
    noise = np.random.default_rng(0).random((300, 1, 16, 16)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    bad = api.evaluate_samples(run, samples=str(tmp_path / "noise.npy"), reference_epochs=4, quiet=True)
    assert bad["fid"] > 5 * m["fid"] and "class_accuracy" not in bad
    assert os.path.isfile(os.path.join(run, "evaluation-samples-real.json"))
    # Samples generated on the spot, through the command line (an untrained model: far from the floor).
    assert main(["evaluate-samples", run, "--num", "40", "--steps", "4", "--labels", "1,2", "--guidance", "2",
                 "--reference-epochs", "4", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "FID" in printed and "floor" in printed and "classified as the class asked for" in printed
    record = json.load(open(os.path.join(run, "evaluation-samples-ddim-4-g2-n40-seed0.json")))
    assert record["samples"] == 40 and record["guidance"] == 2 and record["fid_ratio"] > 1
    np.save(tmp_path / "wrong.npy", np.zeros((5, 3, 16, 16), dtype=np.float32))
    assert main(["evaluate-samples", run, "--samples", str(tmp_path / "wrong.npy"), "--reference-epochs", "4"]) == 2
    assert "do not match the data's (1, 16, 16)" in capsys.readouterr().err
