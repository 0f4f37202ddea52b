"""Files of a run: atomic writes, JSON / YAML / JSON-lines, and the run folder ``runs/<task>/<name>/``.

Every file is written atomically (to a temporary file in the same folder, flushed to disk, then renamed over the
target), so that Ctrl-C or a crash never leaves a half-written checkpoint or summary behind; it gets the mode a plain
``open()`` would give it (0666 less the process's umask), not the temporary file's 0600.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from visionlab.util.errors import DataError
from visionlab.util.failures import check_writable, disk_is_full, no_space


def cache_dir() -> Path:
    """Where visionlab keeps what it builds once per machine (reference classifiers, compiled kernels):
    ``$VISIONLAB_CACHE`` or ``~/.cache/visionlab``."""
    return Path(os.environ.get("VISIONLAB_CACHE") or Path.home() / ".cache" / "visionlab")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, on failure remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        try:
            yield tmp
        except OSError:
            raise
        except Exception as error:  # torch.save and safetensors say "disk full" in their own words
            if disk_is_full(path.parent):
                raise no_space(path) from error
            raise
        with open(tmp, "rb") as f:  # the data must be on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 -> what open() would have made
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back: the only portable way)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values: tuples -> lists, paths -> str, NaN / inf -> None, tensors and arrays -> numbers."""
    if hasattr(obj, "tolist"):  # torch.Tensor, numpy arrays and scalars
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's value; a missing, unreadable or damaged file is a one-line DataError naming it."""
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:  # e.g. a hand-edited model.json, or one cut short by a full disk
        raise DataError(f"{path}: not valid JSON ({error})") from None


def write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, yaml.safe_dump(to_jsonable(obj), sort_keys=False))


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file's value (safe_load: plain values only); a damaged file is a one-line DataError naming it."""
    text = _read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:  # its own message spans several lines with a picture of the spot
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise DataError(f"{path}: not valid YAML ({problem}{at})") from None


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (a whole line per write, so an interrupted run leaves only whole lines)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(to_jsonable(record)) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines file ([] if there is none); a damaged line is a DataError naming file and line.

    A last line without its newline is an append that a crash cut short (append_jsonl writes line and newline at
    once): it is dropped, as the step it logged was never checkpointed and will be logged again on resume.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = _read_text(path)
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines) and not text.endswith("\n"):
                break
            raise DataError(f"{path}: line {number} is not valid JSON ({error})") from None
    return records


def _read_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (it is not UTF-8)") from None
    except OSError as error:  # missing, a folder, no permission: strerror is the readable part
        raise DataError(f"cannot read {path}: {_reason(error)}") from None


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def new_run_dir(root: str | os.PathLike, task: str, name: str) -> Path:
    """Create ``root/task/name`` and return it; an existing folder is never reused (``name-2``, ``name-3``, ...),
    so that a new run can never overwrite an earlier one. An output folder that cannot be written is a one-line
    MachineError here, before any work."""
    check_writable(root)
    base = Path(root) / task
    base.mkdir(parents=True, exist_ok=True)
    name = slug(name)
    for i in range(1, 10_000):
        candidate = base / (name if i == 1 else f"{name}-{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"too many runs named {name!r} in {base}")


def list_folder(folder: str | os.PathLike) -> list[Path]:
    """The entries of ``folder``; one that cannot be listed (no permission, not a folder) is a DataError naming it,
    where ``Path.iterdir`` would raise PermissionError or NotADirectoryError from the middle of a loader."""
    try:
        return list(Path(folder).iterdir())
    except OSError as error:
        raise DataError(f"cannot read folder {folder}: {_reason(error)}") from None


def check_readable(path: str | os.PathLike, what: str) -> None:
    """Raise a DataError naming ``path`` unless it can be opened for reading: the decoders behind the loaders report
    a file they may not open as damaged or of an unknown format, which sends the user looking in the wrong place."""
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise DataError(f"cannot read {what} {path}: {_reason(error)}") from None


def _reason(error: OSError) -> str:
    return (error.strerror or type(error).__name__).lower()
