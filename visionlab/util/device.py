"""Device choice: CUDA, then Apple's MPS, then the CPU; never assume CUDA."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits

from visionlab.util.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """Return the device called ``name``; ``"auto"`` takes cuda, then mps, then cpu.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here (use --device auto or cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r} asked for, but MPS is not available here (use --device auto or cpu)")
    return device


def set_threads(threads: int | None) -> None:
    """Use at most ``threads`` CPU threads (None: leave the libraries' own choice): PyTorch's, the BLAS / OpenMP pools
    that NumPy and scikit-learn compute in, and OpenCV's (SIFT, SURF, HOG of ``visionlab features``)."""
    if not threads:
        return
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)  # for the life of the process, like torch.set_num_threads
    import cv2  # OpenCV loads in ~0.2 s and only SIFT / keypoint drawing need it

    cv2.setNumThreads(threads)
