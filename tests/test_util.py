"""Machinery: atomic files, safe checkpoints, random states, device choice, run folders, options."""

import os
import pickle
import random

import numpy as np
import pytest
import torch

from visionlab.opt import FitConfig
from visionlab.util.checkpoint import load_state, load_weights, save_state, save_weights
from visionlab.util.device import pick_device
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import append_jsonl, atomic_write, new_run_dir, read_jsonl, write_text
from visionlab.util.seed import rng_state, seed_everything, set_rng_state


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_state(path, {"step": 1})

    def crash(tmp):
        tmp.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a save

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert load_state(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_checkpoint_loading_is_weights_only(tmp_path):
    class Payload:  # an arbitrary class: the safe unpickler must refuse it
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "evil.pt"
    torch.save({"step": 1, "x": Payload()}, path)
    with pytest.raises(DataError, match="cannot read checkpoint"):
        load_state(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("content", [b"", b"garbage", pickle.dumps({"step": 1})], ids=["empty", "text", "raw-pickle"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot read checkpoint"):
        load_state(path)


def test_missing_or_foreign_checkpoint(tmp_path):
    with pytest.raises(DataError, match="no checkpoint at"):
        load_state(tmp_path)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a visionlab training checkpoint"):
        load_state(tmp_path / "other.pt")


def test_safetensors_round_trip_and_errors(tmp_path):
    weights = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    save_weights(tmp_path / "model.safetensors", weights, metadata={"model": "siren"})
    loaded = load_weights(tmp_path)
    assert all(torch.equal(weights[k], loaded[k]) for k in weights)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(DataError, match="cannot read weights"):
        load_weights(tmp_path / "bad.safetensors")


def test_random_states_round_trip_through_a_safe_checkpoint(tmp_path):
    seed_everything(3)
    save_state(tmp_path / "s.pt", {"step": 0, "rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(99)
    set_rng_state(load_state(tmp_path / "s.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto").type != "cuda"
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device("tpu9")


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    first = new_run_dir(tmp_path, "fit", "my run")
    second = new_run_dir(tmp_path, "fit", "my run")
    assert first.name == "my-run" and second.name == "my-run-2"


def test_jsonl_lines(tmp_path):
    append_jsonl(tmp_path / "m.jsonl", {"step": 1, "psnr": float("nan")})
    append_jsonl(tmp_path / "m.jsonl", {"step": 2, "psnr": torch.tensor(3.5)})
    assert read_jsonl(tmp_path / "m.jsonl") == [{"step": 1, "psnr": None}, {"step": 2, "psnr": 3.5}]


@pytest.mark.parametrize("field, value, message", [
    ("ratio", 0.0, "ratio must be in (0, 1]"),
    ("width", 0, "width must be > 0"),
    ("depth", -1, "depth must be >= 0"),
    ("mutation_ratio", 0.6, "mutation ratio"),
    ("sampler", "best", "sampler must be one of"),
    ("lr", -1e-4, "lr must be > 0"),
])
def test_config_validation(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FitConfig(**{field: value}).validate()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_run_files_get_the_processs_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = [write_text(tmp_path / "a" / "summary.json", "{}"), save_state(tmp_path / "checkpoint.pt", {"k": 1}),
                   save_weights(tmp_path / "model.safetensors", {"w": torch.zeros(2)})]
        assert os.umask(umask) == umask  # reading it left it as it was
    finally:
        os.umask(old)
    for path in written:
        assert path.stat().st_mode & 0o777 == mode, path
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o777 & ~umask  # folders: as mkdir makes them
