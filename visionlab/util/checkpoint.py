"""Checkpoints: the full training state (for ``--resume``) and the weights alone (for sharing and predicting).

- ``checkpoint.pt``: model, optimiser, scheduler, selector and random states, the step, the history and the config,
  saved with ``torch.save`` **atomically** and read back with ``torch.load(weights_only=True)``, which unpickles only
  tensors and plain containers (a checkpoint from elsewhere cannot run code).
- ``model.safetensors``: the weights alone, in the safetensors format (no code at all), with string metadata.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from visionlab.util.errors import DataError
from visionlab.util.io import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "model.safetensors"


def save_state(path: str | os.PathLike, state: dict) -> Path:
    """Write a training state atomically: an interrupted save leaves the previous checkpoint intact."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a training state written by :func:`save_state` (a run folder is accepted too)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read checkpoint {path}: {first_line}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise DataError(f"{path} is not a visionlab training checkpoint")
    return state


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
        raise DataError(f"cannot read weights {path}: {e}") from None
