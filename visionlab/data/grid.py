"""The grid-signal interface that a neural-field trainer fits: values on a regular grid, their coordinates, and a
way to save a fit; audio (:mod:`.audio`), video (:mod:`.video_signals`) and images share it.

A signal is values sampled on a regular grid of shape (T,), (H, W) or (T, H, W), with C channels, float32 in [0, 1]
of shape (*shape, C). Sample k of the grid of shape (n_1, ..., n_d) has coordinates

    c_a = -1 + 2 i_a / (n_a - 1)        on each axis a (an axis of length 1 sits at 0),

so both ends, -1 and 1, are samples; the (N, d) coordinates are flattened row-major in the order of the shape
(t, y, x), the same order as :meth:`GridSignal.flat`. For d = 2 this is exactly
:func:`~visionlab.data.images.coordinate_grid`. :func:`as_signal` adapts an
:class:`~visionlab.data.images.ImageSignal`. The names of the built-in signals live here too, since every loader's
"not found" message lists them all.

Shapes: T samples or frames, H height, W width, C channels, d = len(shape) axes, N = prod(shape) grid points.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from visionlab.data.images import ImageSignal, save_image
from visionlab.util.errors import ConfigError, DataError

AUDIO_SAMPLES: tuple[str, ...] = ("chirp",)
VIDEO_SAMPLES: dict[str, str] = {"no-time-for-that": "no_time_for_that_tiny.gif"}  # name -> file in skimage.data


# ---- the interface ---------------------------------------------------------------------------------------------

@runtime_checkable
class Signal(Protocol):
    """What a neural-field trainer needs of its target: values on a grid, its coordinates, and a way to save a fit."""

    name: str
    source: str
    kind: str  # "audio" | "image" | "video"
    values: torch.Tensor  # (*shape, C) float32 in [0, 1]

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def channels(self) -> int: ...

    def flat(self) -> torch.Tensor: ...

    def coords(self, device=None, dtype=torch.float32) -> torch.Tensor: ...

    def save(self, target: str | os.PathLike, values: torch.Tensor | np.ndarray) -> list[Path]: ...


def grid_coordinates(shape: tuple[int, ...], *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Sample coordinates in [-1, 1]^d for a grid of ``shape``, both ends included, flattened row-major: (N, d)."""
    if len(shape) == 0 or min(shape) <= 0:
        raise ConfigError(f"a coordinate grid needs one or more positive sizes, got {tuple(shape)}")

    def axis(n: int) -> torch.Tensor:
        if n == 1:  # a single sample belongs in the middle of the axis, as in coordinate_grid
            return torch.zeros(1, device=device, dtype=dtype)
        return torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype)  # c_i = -1 + 2 i / (n - 1)

    axes = torch.meshgrid(*(axis(n) for n in shape), indexing="ij")  # d tensors of `shape`
    return torch.stack(axes, dim=-1).reshape(-1, len(shape))  # (*shape, d) -> (N, d)


# eq=False: comparing tensors with == gives a tensor, not a bool; repr=False: one __repr__ for every kind
@dataclass(frozen=True, eq=False, repr=False)
class GridSignal:
    """A signal sampled on a regular grid: values (*shape, C) float32 in [0, 1], with where they came from."""

    kind: ClassVar[str] = ""
    ndim: ClassVar[int] = 0  # grid axes: 1 audio, 2 image, 3 video

    values: torch.Tensor = field(repr=False)  # (*shape, C)
    name: str  # file stem or built-in name
    source: str  # path, or "<origin>:<name>" for a built-in

    def __post_init__(self) -> None:
        assert self.values.ndim == self.ndim + 1, \
            f"{self.kind} values must have {self.ndim} grid axes and channels, got shape {tuple(self.values.shape)}"
        assert self.values.dtype == torch.float32, f"values must be float32, got {self.values.dtype}"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[:-1])

    @property
    def channels(self) -> int:
        return self.values.shape[-1]

    @property
    def num_samples(self) -> int:
        return math.prod(self.shape)

    def flat(self) -> torch.Tensor:
        """Values as (N, C) in row-major order, matching :meth:`coords`."""
        return self.values.reshape(-1, self.channels)  # (N, C)

    def unflat(self, flat: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`flat`: (N, C) -> (*shape, C)."""
        return flat.reshape(*self.shape, flat.shape[-1])  # (*shape, C)

    def coords(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """Grid coordinates (N, d) in [-1, 1], ordered as :attr:`shape`, flattened row-major."""
        return grid_coordinates(self.shape, device=device, dtype=dtype)

    def save(self, target: str | os.PathLike, values: torch.Tensor | np.ndarray) -> list[Path]:
        """Write ``values`` (*shape, C) in [0, 1] in the natural format of the kind; return the written paths."""
        raise NotImplementedError

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self._extra().items())
        return (f"{type(self).__name__}(name={self.name!r}, shape={self.shape}, C={self.channels}{extra}, "
                f"source={self.source!r})")

    def _extra(self) -> dict:
        return {}


@dataclass(frozen=True, eq=False, repr=False)
class ImageGridSignal(GridSignal):
    """An :class:`~visionlab.data.images.ImageSignal` seen through the common interface: values (H, W, C)."""

    kind: ClassVar[str] = "image"
    ndim: ClassVar[int] = 2

    bit_depth: int = 8

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    def to_image(self) -> ImageSignal:
        return ImageSignal(values=self.values, name=self.name, source=self.source, bit_depth=self.bit_depth)

    def save(self, target: str | os.PathLike, values: torch.Tensor | np.ndarray) -> list[Path]:
        """Write (H, W, C) values as an 8-bit PNG (".png" is appended when ``target`` has no suffix)."""
        path = with_suffix(target, ".png")
        save_image(path, values)
        return [path]

    def _extra(self) -> dict:
        return {"bit_depth": self.bit_depth}


def as_signal(signal: GridSignal | ImageSignal) -> GridSignal:
    """Any loaded signal in the common interface (an ImageSignal is wrapped, sharing its values)."""
    if isinstance(signal, GridSignal):
        return signal
    if isinstance(signal, ImageSignal):
        return ImageGridSignal(values=signal.values, name=signal.name, source=signal.source,
                               bit_depth=signal.bit_depth)
    raise TypeError(f"expected a GridSignal or ImageSignal, got {type(signal).__name__}")


# ---- helpers of the loaders ---------------------------------------------------------------------------------

def check_given(source: str | os.PathLike, what: str) -> str:
    """The source as text; an empty one is an error (``Path("")`` would be the current folder)."""
    text = str(source)
    if not text.strip():
        raise DataError(f"no {what} given: the source is an empty string (built-in audio: "
                        f"{', '.join(AUDIO_SAMPLES)}; video: {', '.join(VIDEO_SAMPLES)})")
    return text


def as_array(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """Values to save as a float32 NumPy array, from a tensor on any device or anything array-like."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float32).numpy()
    return np.asarray(values, dtype=np.float32)


def with_suffix(target: str | os.PathLike, suffix: str) -> Path:
    """``target`` as a path, with ``suffix`` appended when it has none."""
    path = Path(target)
    return path if path.suffix else path.with_suffix(suffix)
