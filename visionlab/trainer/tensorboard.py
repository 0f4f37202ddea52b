"""TensorBoard event files of a run, in ``RUN/tb/`` (``tensorboard --logdir runs``).

One :class:`Board` per run, opened by the trainer's loop on rank 0: the scalars of every ``metrics.jsonl`` line
(:meth:`Trainer.log`), the pictures each trainer names (reconstructions, sample grids, confusion matrices,
overlays) and the run's options as text at step 0. TensorBoard is an optional extra (``pip install
visionlab[tensorboard]``): without it, or with ``--no-tensorboard``, the board is a no-op and prints nothing.

A resumed run continues from its checkpoint's step S. As with ``metrics.jsonl``, the events after S (written by a
process killed before its next checkpoint) are dropped from the files first, and a (tag, step) pair already written
is not written again, so that every tag has each step once whatever reads the files.
"""

from __future__ import annotations

import contextlib

import os
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from visionlab.util.io import atomic_path, to_jsonable


def _summary_writer():
    """torch's SummaryWriter class, or None when tensorboard is not installed."""
    try:  # lazy: tensorboard is an optional extra (tests/test_layers.py LAZY_ALLOWED)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def as_pixels(picture) -> np.ndarray:
    """A PNG file's path, or (H, W[, C]) values (floats in [0, 1] or uint8) -> (H, W, C) uint8, C = 1 or 3."""
    if isinstance(picture, (str, os.PathLike)):
        with Image.open(picture) as image:
            array = np.asarray(image.convert("RGB" if image.mode not in ("L", "I;16", "I") else "L"))
    else:
        array = picture.detach().float().cpu().numpy() if isinstance(picture, torch.Tensor) else np.asarray(picture)
        if array.dtype != np.uint8:
            array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return array[:, :, :1] if array.shape[2] == 2 else array[:, :, :3]  # alpha is not content


def trim_events(folder: Path, last_step: int) -> set[tuple[str, int]]:
    """Drop the events after ``last_step`` from every event file in ``folder``; return the (tag, step) pairs kept."""
    # lazy: tensorboard is an optional extra. The records are copied as read: the parsed events of EventFileLoader
    # are migrated to another form, which TensorBoard would no longer show as scalars.
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    kept_pairs = set()
    for path in sorted(folder.glob("events.out.tfevents.*")):
        records = [(record, Event.FromString(record)) for record in RawEventFileLoader(str(path)).Load()]
        kept = [(record, event) for record, event in records if event.step <= last_step]
        kept_pairs |= {(v.tag, event.step) for _, event in kept for v in event.summary.value}
        if len(kept) < len(records):
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                writer = RecordWriter(f)
                for record, _ in kept:
                    writer.write(record)
                writer.flush()
    return kept_pairs


class Board:
    """A run's TensorBoard writer; every method does nothing when it is off (not installed, not asked, not rank 0)."""

    def __init__(self, folder: Path | None = None, *, step: int = 0):
        writer_class = _summary_writer() if folder is not None else None
        self.writer, self.written = None, set()
        if writer_class is None:
            return
        folder = Path(folder)
        if step > 0 and folder.is_dir():  # a resumed run: the events after its checkpoint go, as in metrics.jsonl
            self.written = trim_events(folder, step)
        self.writer = writer_class(log_dir=str(folder))

    @property
    def on(self) -> bool:
        return self.writer is not None

    def _new(self, tag: str, step: int) -> bool:
        if self.writer is None or (tag, step) in self.written:
            return False
        self.written.add((tag, step))
        return True

    def scalars(self, record: dict) -> None:
        """Every finite number of a ``metrics.jsonl`` record, by its key, at the record's step."""
        step = int(record.get("step", 0))
        for key, value in to_jsonable(record).items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and self._new(key, step):
                self.writer.add_scalar(key, value, step)

    def image(self, tag: str, picture, step: int) -> None:
        """A picture (a PNG's path or (H, W[, C]) values) under ``tag`` at ``step``."""
        if self._new(tag, step):
            self.writer.add_image(tag, as_pixels(picture), step, dataformats="HWC")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self._new(f"{tag}/text_summary", step):  # the tag that torch's add_text writes
            self.writer.add_text(tag, text, step)

    def options(self, config) -> None:
        """The run's options (a config dataclass or dict) as YAML text at step 0."""
        values = to_jsonable(config if isinstance(config, dict) else vars(config))
        block = yaml.safe_dump(values, sort_keys=False)
        self.text("options", "\n".join("    " + line for line in block.splitlines()), 0)  # a markdown code block

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            with contextlib.suppress(OSError):  # a full disk: the run's own error says so, not a second one here
                writer.close()


def open_board(run_dir: Path, config, *, is_main: bool = True, step: int = 0) -> Board:
    """The board of run folder ``run_dir``: on unless ``config.no_tensorboard``, on rank 0 only, and only when
    tensorboard is installed; at ``step`` 0 it writes the run's options."""
    if not is_main or getattr(config, "no_tensorboard", True):  # configs without the option: off
        return Board()
    board = Board(Path(run_dir) / "tb", step=step)
    if step == 0:
        board.options(config)
    return board
