"""The machine's failures, each said once and in one line a user can act on.

What the machine does to a run (a folder it may not write, a path through a file, a disk that fills up, memory that
runs out, a time limit's SIGTERM) is not a bug of visionlab, and a traceback would only hide what to do. This module
names each of them in one place:

- :func:`check_writable`: before any work, is the output folder writable (the nearest existing folder is probed with
  a file that is removed at once; root ignores modes, a read-only mount stops it, and so does the probe);
- :func:`explain`: an ``OSError`` (no space, no permission, a read-only file system, a file where a folder should
  be), a ``MemoryError`` or PyTorch's out-of-memory error as one line with what to do; the command line
  (``visionlab.cli.main``) and the training loop (``visionlab.trainer.base``) both use it;
- :func:`free_memory`: what the device has free, for the memory estimates made before a first step;
- :func:`note_signal` / :func:`terminated`: the stop signals received, for the exit status (143 after SIGTERM);
  :class:`~visionlab.util.errors.Terminated` is what a second SIGTERM raises.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import torch

from visionlab.util.errors import MachineError

NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
NO_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS}
# PyTorch says "out of memory" in a RuntimeError (CPU: "DefaultCPUAllocator: can't allocate memory").
OUT_OF_MEMORY = ("can't allocate memory", "out of memory", "cannot allocate memory")
GIB = 1024 ** 3


_signals: list[str] = []  # the stop signals this process received, in order (a process-wide fact, as signals are)


def note_signal(name: str) -> None:
    """Record that a stop signal ('SIGINT', 'SIGTERM') arrived, for the exit status the command line chooses."""
    _signals.append(name)


def terminated() -> bool:
    """Whether a SIGTERM asked this process to stop (its exit status is then 143, 128 + 15)."""
    return "SIGTERM" in _signals


def check_writable(folder: str | os.PathLike, *, option: str = "--out", advice: str | None = None) -> None:
    """Raise a one-line MachineError unless files can be created in ``folder`` (or, where it does not exist yet, in
    the folder that would hold it): a path through a regular file, a folder without write permission, a read-only
    file system. Nothing is left behind. ``advice`` replaces the default "choose another OPTION"."""
    advice = advice or f"choose another {option} or make the folder writable"
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing.parent != existing:  # exists() is False under a regular file too
        existing = existing.parent
    if not existing.is_dir():
        raise MachineError(f"{option} {folder}: {existing} is a file, not a folder; choose another {option}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".visionlab-probe-", dir=existing)
    except OSError as error:
        where = f"cannot write in {folder}" if existing == folder else f"{option} {folder}: cannot write in {existing}"
        raise MachineError(f"{where}: {reason(error)}; {advice}") from None
    os.close(fd)
    os.unlink(probe)


def check_run_writable(run: str | os.PathLike) -> None:
    """:func:`check_writable` for a run folder that a command writes into (resume, evaluate, sample)."""
    check_writable(run, option="run folder", advice="copy the run folder somewhere writable and use the copy")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):  # numpy's ArrayMemoryError too
        return True
    oom = getattr(torch, "OutOfMemoryError", None)  # CUDA's
    if oom is not None and isinstance(error, oom):
        return True
    return isinstance(error, RuntimeError) and any(words in str(error).lower() for words in OUT_OF_MEMORY)


def explain(error: BaseException) -> str | None:
    """One line for a failure of the machine, with what to do; None for anything else (a bug: let it through)."""
    if is_out_of_memory(error):
        return ("out of memory: the machine could not give this run the memory it asked for; use a smaller --size "
                "or --batch-size (fit: --preset fast, a lower --ratio or --size 512), or another --device")
    if not isinstance(error, OSError):
        return None
    where = error.filename or "a file"
    if error.errno in NO_SPACE:
        return (f"no space left on the disk while writing {where}; free some space or choose another --out (files "
                f"written before are intact: every write goes to a temporary file first)")
    if error.errno in NO_WRITE:
        return f"cannot write {where}: {reason(error)}; choose another --out or make the folder writable"
    if error.errno == errno.ENOTDIR:
        return f"{where}: a part of this path is a file, not a folder; choose another --out"
    return None


def reason(error: OSError) -> str:
    return (error.strerror or type(error).__name__).lower()


def disk_is_full(folder: str | os.PathLike, *, below: int = 1 << 20) -> bool:
    """Whether the file system holding ``folder`` has less than ``below`` bytes free for a user: what a writer that
    reports a failed write in its own words (torch.save, safetensors) most likely met."""
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
    return stat.f_bavail * stat.f_frsize < below


def no_space(path: str | os.PathLike) -> OSError:
    """The OSError a full disk raises, for a writer that said it another way."""
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def free_memory(device: torch.device) -> int | None:
    """Bytes the device can still give: a CUDA GPU's free memory, else the system's available memory (Linux's
    MemAvailable, which counts reclaimable caches); None where it cannot be known."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "mps":
        return None  # unified memory: the system's, but macOS has no /proc/meminfo
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def gib(nbytes: float) -> str:
    """Bytes in GiB for a message: '36.9 GB' (binary GB, as free and top show them)."""
    return f"{nbytes / GIB:.1f} GB"
