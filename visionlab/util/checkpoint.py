"""Checkpoints: the full training state (for ``--resume``) and the weights alone (for sharing and predicting).

- ``checkpoint.pt``: model, optimiser, scheduler, selector and random states, the step, the history and the config,
  saved with ``torch.save`` **atomically** and read back with ``torch.load(weights_only=True)``, which unpickles only
  tensors and plain containers (a checkpoint from elsewhere cannot run code). A checkpoint written by a later
  visionlab than the running one is refused: this version cannot know what its options and states mean.
- ``model.safetensors``: the weights alone, in the safetensors format (no code at all), with string metadata.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from visionlab.util.errors import DataError
from visionlab.util.io import atomic_write
from visionlab.util.version import __version__

CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "model.safetensors"


def save_state(path: str | os.PathLike, state: dict) -> Path:
    """Write a training state atomically: an interrupted save leaves the previous checkpoint intact."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a training state written by :func:`save_state` (a run folder is accepted too).

    Every way a file can fail to be one (missing, empty, cut short, random bytes, a pickle that asks to run code, a
    checkpoint of a later visionlab) is a :class:`DataError` of one line naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise DataError(f"cannot read checkpoint {path}: the file is empty")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise DataError(_unpickling_problem(path, str(error))) from None
    # A damaged file raises RuntimeError, OSError, EOFError, KeyError, ... depending on where the damage is.
    except Exception as error:  # noqa: BLE001
        reason = " ".join(str(error).split()) or type(error).__name__
        what = "the file is damaged or not a PyTorch checkpoint" if zipfile.is_zipfile(path) else \
            "the file is cut short, damaged or not a PyTorch checkpoint (no complete zip archive)"
        raise DataError(f"cannot read checkpoint {path}: {what} ({type(error).__name__}: {reason[:200]})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise DataError(f"{path} is not a visionlab training checkpoint")
    _check_version(path, state.get("version"))
    return state


def _unpickling_problem(path: Path, message: str) -> str:
    """One line for torch's weights-only refusal, which spans many lines and suggests ``weights_only=False``: the
    one thing a user must not do with a file that asks to run code."""
    refused = re.search(r"GLOBAL ([\w.]+)", message)
    if refused:
        return (f"cannot read checkpoint {path}: refused, it asks to run {refused.group(1)} while unpickling; a "
                f"visionlab checkpoint holds only tensors, numbers, strings and containers, and anything else could "
                f"run code")
    return f"cannot read checkpoint {path}: the file is damaged or not a PyTorch checkpoint"


def _version_key(version: str) -> tuple[int, ...] | None:
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else None


def _check_version(path: Path, version) -> None:
    """Refuse a checkpoint of a later visionlab: its options and states may mean what this one cannot know (configs
    drop keys they do not know, silently). Earlier versions and checkpoints without a version are read."""
    if version is None:
        return
    written = _version_key(version) if isinstance(version, str) else None
    if written is None:
        raise DataError(f"{path}: its version field {version!r} is not a visionlab version; not a checkpoint that "
                        f"visionlab wrote")
    if written > _version_key(__version__):
        raise DataError(f"{path} was written by visionlab {version}, later than this visionlab {__version__}; "
                        f"upgrade visionlab to resume or sample from it")


def save_weights(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], *,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write weights as safetensors, atomically (tensors are made contiguous and moved to the CPU)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_weights(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read safetensors weights (a run folder is accepted too)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise DataError(f"no weights file at {path}")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        reason = " ".join(str(e).split())
        raise DataError(f"cannot read weights {path}: {reason}") from None
