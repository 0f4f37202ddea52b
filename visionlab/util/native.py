"""Native (C++) kernels: compiled once per machine with PyTorch's extension builder, or PyTorch's own ops instead.

A kernel is one ``.cpp`` file next to the module that uses it. :func:`load` compiles it the first time (about 20 s,
``torch.utils.cpp_extension`` with the C++ compiler and ninja), for this CPU (``-march=native``), into
``$VISIONLAB_CACHE/native/`` (default ``~/.cache/visionlab/native/``), under a name made of the source's hash, the
torch and Python versions and the CPU's flags, so that a changed source, another torch or a home folder shared by
two kinds of machine never loads a stale or foreign build. Later processes load the build in milliseconds.

Where it cannot be built (no compiler, no ninja, an unwritable cache, another platform's compiler refusing a flag)
or where ``VISIONLAB_NATIVE=0`` says not to, :func:`load` returns None and the caller keeps its PyTorch path, which
computes the same thing; :func:`describe` says in a few words which one runs and why. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable

import torch

from visionlab.util.io import cache_dir

NATIVE_ENV = "VISIONLAB_NATIVE"  # "0": never compile or load a native kernel (the PyTorch paths run)
# -ffp-contract=off: a kernel's explicit fused multiply-adds are all it gets, so that two loops computing one
# formula agree to the bit
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd", "-ffp-contract=off"]
X86_FLAGS = ["-mprefer-vector-width=512"]  # gcc and clang default to 256-bit vectors even where AVX-512 exists

_lock = threading.Lock()
_loaded: dict[str, ModuleType | None] = {}
_reasons: dict[str, str] = {}


def disabled() -> bool:
    """Whether ``VISIONLAB_NATIVE`` says no (read at each call: tests and users may set it after import)."""
    return os.environ.get(NATIVE_ENV, "1").strip() in ("0", "false", "no", "off")


def cpu_signature() -> str:
    """The CPU's model and instruction-set flags (Linux: /proc/cpuinfo), else the architecture's name."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(wanted))) or f"{platform.machine()} {platform.processor()}"


def build_name(name: str, source: Path, flags: list[str]) -> str:
    """The module's name: ``name`` and a digest of everything that makes a build usable here."""
    digest = hashlib.sha256()
    for part in (source.read_bytes(), torch.__version__.encode(), sys.version.encode(), " ".join(flags).encode(),
                 cpu_signature().encode()):
        digest.update(part)
        digest.update(b"\0")
    return f"visionlab_{name}_{digest.hexdigest()[:16]}"


def flags() -> list[str]:
    return FLAGS + (X86_FLAGS if platform.machine().lower() in ("x86_64", "amd64") else [])


def load(name: str, source: Path, *, announce: Callable[[str], None] | None = None) -> ModuleType | None:
    """The compiled module of ``source``, building it on first use; None where it cannot be had (see describe).

    ``announce`` is called with one line before a build starts (not when a finished build is loaded)."""
    with _lock:
        if name in _loaded:
            return _loaded[name]
        module, reason = None, ""
        if disabled():
            reason = f"{NATIVE_ENV}=0"
        elif not source.is_file():
            reason = f"{source.name} is missing from the installation"
        else:
            module, reason = _build(name, source, announce)
        _loaded[name], _reasons[name] = module, reason
        return module


def _build(name: str, source: Path, announce: Callable[[str], None] | None) -> tuple[ModuleType | None, str]:
    cflags = flags()
    module_name = build_name(name, source, cflags)
    folder = cache_dir() / "native" / module_name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return None, f"cannot write {folder.parent}: {error.strerror or error}"
    if announce is not None and not any(folder.glob(f"{module_name}*.so")) and not any(folder.glob("*.pyd")):
        announce(f"compiling visionlab's {name} kernel for this CPU (once per machine, about 20 s) into {folder}")
    try:
        import torch.utils.cpp_extension as cpp_extension  # setuptools and the compiler's tooling: only to build

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "the compiler may be ABI-incompatible": the test below decides
            return cpp_extension.load(name=module_name, sources=[str(source)], extra_cflags=cflags,
                                      build_directory=str(folder), verbose=False), "compiled for this CPU"
    except (Exception, SystemExit) as error:  # noqa: BLE001 (any failure to build leaves the PyTorch path)
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        return None, f"could not build it ({first[:160]})"


def describe(name: str) -> str:
    """``native (compiled for this CPU)`` or ``pytorch (<why>)``, after :func:`load`; ``not loaded`` before."""
    if name not in _loaded:
        return "not loaded"
    return f"native ({_reasons[name]})" if _loaded[name] is not None else f"pytorch ({_reasons[name]})"


def forget(name: str) -> None:
    """Drop what :func:`load` remembered for ``name``, so that the next call decides again (tests)."""
    with _lock:
        _loaded.pop(name, None)
        _reasons.pop(name, None)
