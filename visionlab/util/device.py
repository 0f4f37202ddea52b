"""Device choice: CUDA, then Apple's MPS, then the CPU; never assume CUDA."""

from __future__ import annotations

import ctypes
import platform

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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_kept_freed_memory = False


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory a process frees for its next allocations; whether it could (glibc only).

    A training step on the CPU allocates and frees the same large arrays every step (activations kept for
    backward: hundreds of MB for a 512 x 512 fit). By default glibc gives large blocks back to the kernel when
    they are freed (``mmap`` above 128 KiB to 32 MiB, and trimming the heap's top), so the next step faults every
    page in again: on this lab's CPU up to 130,000 page faults and a quarter of the step's time in the kernel,
    varying with what else the process allocates in between. With no ``mmap`` for allocations and no trimming, the
    process keeps its peak memory (which the fit's footprint check already counts) and reuses it. PyTorch's own
    advice for CPU training, jemalloc or tcmalloc, does the same with a preloaded library.
    """
    global _kept_freed_memory
    if _kept_freed_memory:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _kept_freed_memory = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _kept_freed_memory
