"""What the machine can do to a run, made real for tests: a read-only folder, a full disk.

A user's chmod 555 makes a folder read-only for its owner; root ignores modes, so as root (CI's containers) the
folder gets a read-only bind mount of itself instead, and a full disk is a small tmpfs mounted over an empty folder.
Both need Linux's mount (CAP_SYS_ADMIN, which root has in these containers); where a user cannot mount, the full
disk is a monkeypatched write (:func:`full_disk` says which it used).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(*folders: Path) -> Iterator[None]:
    """``folders`` cannot be written by this process inside the block (their files can still be read)."""
    if not AS_ROOT:
        for folder in folders:
            folder.chmod(0o555)
        try:
            yield
        finally:
            for folder in folders:
                folder.chmod(0o755)
        return
    mounted = []
    try:
        for folder in folders:
            _mount("--bind", str(folder), str(folder))
            mounted.append(folder)
            _mount("-o", "remount,bind,ro", str(folder))
        yield
    finally:
        for folder in reversed(mounted):
            subprocess.run(["umount", str(folder)], check=True, capture_output=True)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "4m") -> Iterator[Path]:
    """An empty file system of ``size`` mounted on ``folder`` (root only): fill it and writes fail with ENOSPC."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:  # lazily: a file a failed writer left open (TensorBoard's, until collected) must not keep it mounted
        subprocess.run(["umount", "--lazy", str(folder)], check=True, capture_output=True)


def fill(folder: Path) -> None:
    """Write a ballast file into ``folder`` until its file system is full."""
    fd = os.open(folder / "ballast", os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * (1 << 16))
        with contextlib.suppress(OSError):  # the last few blocks
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
