"""The pieces every config is made of: ``option()`` (a field that carries its flag's help), the options several
commands share (declared once here, each config takes the ones it has), and the checks they share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from visionlab.util.errors import ConfigError


def option(default: Any, help: str, *, choices: tuple | None = None, positional: bool = False) -> Any:
    """A dataclass field that also describes its command-line flag."""
    return field(default=default, metadata={"help": help, "choices": choices, "positional": positional})


# ---- options that several commands share ---------------------------------------------------------------------
# The ones that read the same everywhere are keyword-only mixins: a config lists them among its bases, and the
# command line shows them after the command's own options. Those whose default or words differ from command to
# command (what the seed seeds, how often to checkpoint) are functions that make the field.

@dataclass(kw_only=True)
class Threads:
    """How many CPU threads a command computes with (``visionlab features``: on the CPU only)."""

    threads: int | None = option(None, "CPU threads for PyTorch, NumPy / scikit-learn's BLAS and OpenCV (default: "
                                 "their own choice)")


@dataclass(kw_only=True)
class OnDevice(Threads):
    """Where a command computes."""

    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")


def quiet() -> Any:
    return option(False, "no progress bar (the result is still printed)")


@dataclass(kw_only=True)
class RunFolder:
    """Where a run writes: OUT/TASK/NAME. A config that has one says its TASK and how NAME is made (RUN_NAME); the
    help text of ``out`` and ``name`` names them (see :func:`help_text`)."""

    TASK = "TASK"  # class attributes, not options
    RUN_NAME = "made from the options"

    out: str = option("runs", "root folder of runs; this run goes to OUT/{task}/NAME")
    name: str | None = option(None, "run folder name; an existing folder is never overwritten (default: {run_name})")
    quiet: bool = quiet()


@dataclass(kw_only=True)
class TensorBoard:
    """A training run's TensorBoard event files (RUN/tb/)."""

    no_tensorboard: bool = option(False, "write no TensorBoard event files (default: RUN/tb/ gets the logged "
                                  "scalars, the pictures and the options when tensorboard is installed)")


def help_text(cls, f: dataclasses.Field) -> str:
    """The help of field ``f`` of config class ``cls``, with its run folder's words filled in."""
    text = f.metadata["help"]
    if f.name in ("out", "name") and issubclass(cls, RunFolder):
        text = text.format(task=cls.TASK, run_name=cls.RUN_NAME)
    return text


def seed(what: str) -> Any:
    """The run's random seed; ``what`` says what it seeds."""
    return option(0, f"seed of {what}; the same seed repeats the run")


def amp() -> Any:
    return option("auto", "mixed precision: auto (bf16 on GPUs that support it, else off), bf16 or off",
                  choices=("auto", "bf16", "off"))


def grad_clip() -> Any:
    return option(1.0, "clip the gradient norm to this (0: off)")


def test_size(default: float = 0.25) -> Any:
    return option(default, "fraction held out for testing when the data has no fixed split (stratified)")


def val_fraction(default: float = 0.1) -> Any:
    # 10 %: enough examples to rank epochs on the small built-in sets (digits: 135 images), little taken from training.
    return option(default, "fraction of the training split held out for validation (stratified by class where there "
                  "are classes, seeded): the best epoch and best.safetensors are chosen on it, never on the test "
                  "split (0: no validation, no best epoch)")


def every(default: int | None, what: str, *, note: str = "") -> Any:
    """A cadence: do ``what`` every this many steps (``note``: what the default or 0 means)."""
    return option(default, f"{what} every this many steps" + (f" ({note})" if note else ""))


def checkpoint_every(default: int | None) -> Any:
    return every(default, "write the training checkpoint", note="" if default else "default: every epoch")


# ---- checks --------------------------------------------------------------------------------------------------

def check_shared(config) -> None:
    """Check the shared options that ``config`` has, then every field's ``choices``: the end of each validate()."""
    names = {f.name for f in dataclasses.fields(config)}
    for name in ("threads", "eval_every", "checkpoint_every"):  # None: the default
        if name in names and getattr(config, name) is not None:
            positive(name, getattr(config, name))
    if "sample_every" in names and config.sample_every < 0:
        raise ConfigError(f"sample every must be >= 0, got {config.sample_every}")
    if "test_size" in names and not 0.0 < config.test_size < 1.0:
        raise ConfigError(f"test size must be in (0, 1), got {config.test_size}")
    if "val_fraction" in names and not 0.0 <= config.val_fraction < 1.0:
        raise ConfigError(f"val fraction must be in [0, 1), got {config.val_fraction}")
    for f in dataclasses.fields(config):
        choices = f.metadata.get("choices")
        if choices and getattr(config, f.name) not in choices:
            raise ConfigError(f"{f.name} must be one of {', '.join(map(str, choices))}, got "
                              f"{getattr(config, f.name)!r}")


def check_threads(threads: int | None) -> int | None:
    """``threads`` of a command made without a config ('visionlab evaluate', 'predict'), checked as in every config."""
    if threads is not None:
        positive("threads", threads)
    return threads


def positive(name: str, value) -> None:
    if value is None or value <= 0:
        raise ConfigError(f"{name.replace('_', ' ')} must be > 0, got {value}")


def positive_if_given(config, *names: str) -> None:
    """Each of ``names`` is None (the default) or > 0."""
    for name in names:
        if getattr(config, name) is not None:
            positive(name, getattr(config, name))


def from_dict(cls, values: dict):
    """Build a config from a dict (e.g. a checkpoint's), ignoring keys that this version does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})
