"""Images as signals for neural fields: load the pixels, and the coordinates they live on.

A neural field treats an image of H x W pixels with C channels as a function f(y, x) -> colour and trains a small MLP
to be that function. This module gives both sides of that function:

- the values: :func:`load_image` reads a file (PNG, JPEG, TIFF or BMP; 8 or 16 bit; grey, grey + alpha, RGB or RGBA)
  or one of scikit-image's bundled photos (:data:`SAMPLE_IMAGES`) and returns an :class:`ImageSignal` whose values
  are float32 in [0, 1] with shape (H, W, C): an integer pixel v of a b-bit image becomes v / (2^b - 1);
- the inputs: :func:`coordinate_grid` puts pixel (i, j) at

      y_i = -1 + 2 i / (H - 1),    x_j = -1 + 2 j / (W - 1),

  so both ends of each axis, -1 and 1, are pixel centres (an axis of one pixel sits at 0). Row k of the
  (H*W, 2) grid is pixel (k // W, k % W), the same row-major order as :meth:`ImageSignal.flat`.

Example::

    >>> from visionlab.data import load_image, coordinate_grid
    >>> image = load_image("astronaut", size=256)        # a bundled photo, shorter side 256
    >>> coords = coordinate_grid(image.height, image.width)
    >>> coords.shape, image.flat().shape
    (torch.Size([65536, 2]), torch.Size([65536, 3]))

Shapes: H height, W width, C channels, N = H * W pixels.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from einops import rearrange
from PIL import Image, UnidentifiedImageError
from skimage.transform import resize

from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import atomic_write, check_readable

# Only the photos that ship inside the scikit-image package: the others in skimage.data need a download (pooch).
SAMPLE_IMAGES: tuple[str, ...] = (
    "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee", "coins",
    "colorwheel", "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon",
    "page", "retina", "rocket", "text",
)

_SAMPLE_PREFIX = "skimage:"
_LOG_PREFIX = re.compile(r"^\s*\[\s*\w+:\d+@[\d.]+\]\s*(global\s+)?(\S+:\d+\s+)?")


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == gives a tensor, not a bool
class ImageSignal:
    """An image as a neural field's target: values (H, W, C) float32 in [0, 1], with where they came from."""

    values: torch.Tensor = field(repr=False)  # (H, W, C)
    name: str  # file stem or sample name
    source: str  # path or "skimage:<name>"
    bit_depth: int  # bits per channel of the source: 8 or 16 (32 or 64 for a float TIFF)

    def __post_init__(self) -> None:
        assert self.values.ndim == 3, f"values must be (H, W, C), got shape {tuple(self.values.shape)}"

    @property
    def height(self) -> int:
        return self.values.shape[0]

    @property
    def width(self) -> int:
        return self.values.shape[1]

    @property
    def channels(self) -> int:
        return self.values.shape[2]

    @property
    def num_pixels(self) -> int:
        return self.height * self.width

    def flat(self) -> torch.Tensor:
        """Values as (H*W, C) in row-major order, row k = pixel (k // W, k % W), matching :func:`coordinate_grid`."""
        return rearrange(self.values, "h w c -> (h w) c")

    def __repr__(self) -> str:
        return (f"ImageSignal(name={self.name!r}, H={self.height}, W={self.width}, C={self.channels}, "
                f"bit_depth={self.bit_depth}, source={self.source!r})")


MAX_SIDE = 16384  # the largest --size: 16384 x 16384 RGB is 3 GB of float32 values, already more than most fits


def parse_size(text: str | int, *, option: str = "size") -> tuple[int, int] | int:
    """Read a size option: "256" -> 256 (the shorter side), "256x384" -> (256, 384) as (H, W)."""
    problem = f"{option} must be N or HxW with positive integers, got {text!r}"
    if isinstance(text, bool):  # bool is an int subclass; size=True is a mistake, not a size of 1
        raise ConfigError(problem)
    parts = [text] if isinstance(text, int) else str(text).strip().lower().split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise ConfigError(problem) from None
    if len(numbers) > 2 or min(numbers) <= 0:
        raise ConfigError(problem)
    if max(numbers) > MAX_SIDE:  # before numpy is asked for the pixels (100000 x 100000 RGB: 112 GB in float32)
        pixels = numbers[0] ** 2 if len(numbers) == 1 else numbers[0] * numbers[1]
        raise ConfigError(f"{option} {text} is too large: at most {MAX_SIDE} pixels a side ({option} {text} would "
                          f"hold {pixels * 12 / 2**30:,.0f} GB of RGB values before training started)")
    return numbers[0] if len(numbers) == 1 else (numbers[0], numbers[1])


def coordinate_grid(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates (y, x) in [-1, 1]^2, flattened row-major: (H*W, 2)."""
    if height <= 0 or width <= 0:
        raise ConfigError(f"coordinate grid needs a positive height and width, got {height}x{width}")

    def axis(n: int) -> torch.Tensor:
        # linspace(-1, 1, 1) would give -1; a single pixel belongs in the middle of the axis
        if n == 1:
            return torch.zeros(1, device=device, dtype=dtype)
        return torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype)  # -1 + 2 i / (n - 1)

    ys, xs = torch.meshgrid(axis(height), axis(width), indexing="ij")  # (H, W) each
    grid = torch.stack([ys, xs], dim=-1)  # (H, W, 2)
    return rearrange(grid, "h w yx -> (h w) yx")  # (H*W, 2)


def load_image(source: str | os.PathLike, *, size: str | int | None = None, crop: str | int | None = None,
               announce_upscale: bool = False) -> ImageSignal:
    """Load an image file or a sample name as (H, W, C) float32 in [0, 1]; resize (``size``) then centre-crop.
    ``announce_upscale``: a size that enlarges the image more than 4x gets a one-line note (the user's ``--size``; a
    data set's fixed size does not)."""
    target_size = None if size is None else parse_size(size)  # a bad option is reported before any decoding
    path = Path(source)
    text = str(source)
    sample = text[len(_SAMPLE_PREFIX):] if text.startswith(_SAMPLE_PREFIX) else text
    if not text.strip():
        raise DataError(f"no image given: the source is an empty string (samples: {', '.join(SAMPLE_IMAGES)})")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not an image file")
    if path.is_file():  # a file wins over a sample of the same name: the user pointed at it
        pixels, bit_depth = _read_file(path)
        name, origin = path.stem, text
    elif sample in SAMPLE_IMAGES:
        pixels, bit_depth = getattr(skimage.data, sample)(), 8
        name, origin = sample, _SAMPLE_PREFIX + sample
    else:
        raise DataError(f"no such file or sample image: {text} (samples: {', '.join(SAMPLE_IMAGES)})")

    if pixels.ndim == 2:
        pixels = pixels[:, :, None]  # grey -> (H, W, 1)
    values = _to_unit_range(pixels, bit_depth, origin)  # (H, W, C) float
    if target_size is not None:
        before = values.shape[:2]
        values = _resize(values, target_size)
        if announce_upscale:
            note_upscale(origin, before, values.shape[:2])
    if crop is not None:
        values = _centre_crop(values, crop, origin, resized=size is not None)
    values = np.ascontiguousarray(np.clip(values, 0.0, 1.0), dtype=np.float32)  # guards against interpolation overshoot
    return ImageSignal(values=torch.from_numpy(values), name=name, source=origin, bit_depth=bit_depth)


def save_image(path: str | os.PathLike, values: torch.Tensor | np.ndarray) -> None:
    """Write (H, W, C) values in [0, 1] as an 8-bit PNG (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA), atomically."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]  # Pillow writes grey from (H, W)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise DataError(f"cannot save {path}: expected (H, W, C) with C in 1-4, got shape {values.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"cannot save {path}: the values contain NaN or infinity")
    pixels = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)

    # A reader (or a crash) never sees half a file: written next to the target, then renamed over it.
    atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))


def _read_file(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file to (H, W) or (H, W, C) RGB(A) pixels with the source's own dtype; return them and the bit depth."""
    if path.stat().st_size == 0:
        raise DataError(f"cannot read image {path}: the file is empty")
    check_readable(path, "image")
    # OpenCV returns a half-grey picture for a truncated JPEG without a word, so Pillow decodes the file fully first.
    pillow_mode, failure, pixels = None, None, None
    with quiet_decoding() as notes:
        try:
            with Image.open(path) as image:
                pillow_mode = image.mode
                image.load()
        except UnidentifiedImageError:
            pass  # Pillow lacks some formats OpenCV reads (e.g. float RGB TIFF); OpenCV's verdict below decides
        except Exception as error:  # Pillow raises OSError, SyntaxError or ValueError for damaged data
            failure = " ".join(str(error).split()) or type(error).__name__
        if failure is None:
            pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keeps 16 bit and alpha
    said = f"; {notes[0][:200]}" if notes else ""  # e.g. libtiff's "TIFFReadDirectory: Failed to read directory"
    if failure is not None:
        raise DataError(f"cannot read image {path}: the file is truncated or corrupt ({failure}{said})")
    if pixels is None:
        raise DataError(f"cannot read image {path}: not an image, or a format OpenCV cannot decode"
                        + (f" ({said[2:]})" if said else ""))
    if pixels.ndim == 3:
        channels = pixels.shape[2]
        if channels in (3, 4):
            pixels = pixels[:, :, [2, 1, 0, 3][:channels]]  # BGR(A) -> RGB(A)
        elif channels != 2:
            raise DataError(f"cannot read image {path}: {channels} channels, expected grey, grey + alpha, RGB or RGBA")
        # OpenCV expands a grey + alpha PNG to BGRA with three equal colour channels; keep its two real channels
        if pillow_mode == "LA" and channels == 4 and (pixels[:, :, 0] == pixels[:, :, 1]).all() \
                and (pixels[:, :, 0] == pixels[:, :, 2]).all():
            pixels = pixels[:, :, [0, 3]]
    if pixels.dtype not in (np.uint8, np.uint16) and not np.issubdtype(pixels.dtype, np.floating):
        raise DataError(f"cannot read image {path}: pixel type {pixels.dtype} is not 8/16-bit or float")
    return pixels, pixels.dtype.itemsize * 8


@contextlib.contextmanager
def quiet_decoding() -> Iterator[list[str]]:
    """While a file is decoded, ignore Python warnings and collect what C libraries (libtiff, libpng, OpenCV's log)
    write to file descriptor 2; after the block the list holds those lines.

    Decoders complain on stderr about damage they read past or fail on (libtiff prints "TIFFReadDirectory: ..." even
    for RGBA TIFFs that OpenCV itself wrote): on the command line that would be lines beside the one line of a
    DataError, or noise after a good read. The loader reports the problem itself and may quote the first line. Output
    of other threads during the block is collected too: decoding is short, and visionlab decodes on one thread.
    """
    notes: list[str] = []
    try:
        if sys.stderr is not None:
            sys.stderr.flush()  # what Python wrote before must not land in the notes
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2 (a daemon) or a closed sys.stderr: nothing to hide
        saved = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. Pillow's "Corrupt EXIF data", two lines each outside a test runner
        if saved is None:
            yield notes
            return
        try:
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), 2)
                try:
                    yield notes
                finally:
                    os.dup2(saved, 2)
                    sink.seek(0)
                    text = sink.read().decode("utf-8", "replace")
                    # OpenCV's log lines start "[ERROR:0@3.349] global grfmt_tiff.cpp:117 ": only the words count
                    notes.extend(_LOG_PREFIX.sub("", line).strip() for line in text.splitlines() if line.strip())
        finally:
            os.close(saved)


def _to_unit_range(pixels: np.ndarray, bit_depth: int, origin: str) -> np.ndarray:
    """Integers v of b bits -> v / (2^b - 1); floats must already lie in [0, 1]."""
    if np.issubdtype(pixels.dtype, np.floating):
        if not np.isfinite(pixels).all():
            raise DataError(f"image {origin} contains NaN or infinite values")
        low, high = float(pixels.min()), float(pixels.max())
        if low < 0.0 or high > 1.0:
            raise DataError(f"image {origin} has float values in [{low:g}, {high:g}], expected [0, 1]")
        return pixels.astype(np.float32)
    return pixels.astype(np.float32) / float(2 ** bit_depth - 1)


UPSCALE_NOTE = 4  # a size that enlarges an image (or video frames) more than this many times gets a one-line note


def note_upscale(origin: str, before: tuple[int, int], after: tuple[int, int]) -> None:
    """One line on stderr when a size option enlarges ``origin`` from ``before`` to ``after`` (H, W) more than
    UPSCALE_NOTE times: a fit of it learns an interpolation of few pixels, at the larger image's cost."""
    factor = max(after[0] / before[0], after[1] / before[1])
    if factor > UPSCALE_NOTE:
        print(f"note: size {after[0]}x{after[1]} enlarges {origin} ({before[0]}x{before[1]}) {factor:.3g} times; its "
              f"detail stays that of {before[0]}x{before[1]} pixels, interpolated", file=sys.stderr)


def _resize(values: np.ndarray, size: tuple[int, int] | int) -> np.ndarray:
    """Resize (H, W, C) to (H', W', C): N -> shorter side N with the aspect ratio kept; (H', W') -> exactly that."""
    height, width = values.shape[:2]
    if isinstance(size, int):
        scale = size / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size == (height, width):
        return values
    # anti_aliasing blurs before shrinking, so fine detail turns into an average instead of aliasing
    return resize(values, (*size, values.shape[2]), anti_aliasing=True, preserve_range=True)  # (H', W', C)


def _centre_crop(values: np.ndarray, crop: str | int, origin: str, *, resized: bool) -> np.ndarray:
    """Cut the centred (h, w) window out of (H, W, C); "N" means N x N."""
    target = parse_size(crop, option="crop")
    crop_h, crop_w = (target, target) if isinstance(target, int) else target
    height, width = values.shape[:2]
    if crop_h > height or crop_w > width:
        when = " after resizing" if resized else ""
        raise ConfigError(f"crop {crop_h}x{crop_w} is larger than image {origin} ({height}x{width}{when})")
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return values[top:top + crop_h, left:left + crop_w]  # (h, w, C)
