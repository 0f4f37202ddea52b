"""Signals for neural fields beyond images: audio, video, and one interface for all three.

A neural field fits a function from grid coordinates to values. An image is f(y, x) -> colour; a sound is
f(t) -> amplitude per channel; a video is f(t, y, x) -> colour. Each is a :class:`GridSignal`: values sampled on a
regular grid of shape (T,), (H, W) or (T, H, W), with C channels, float32 in [0, 1] of shape (*shape, C). Sample k of
the grid of shape (n_1, ..., n_d) has coordinates

    c_a = -1 + 2 i_a / (n_a - 1)        on each axis a (an axis of length 1 sits at 0),

so both ends, -1 and 1, are samples; the (N, d) coordinates are flattened row-major in the order of the shape
(t, y, x), the same order as :meth:`GridSignal.flat`. For d = 2 this is exactly
:func:`~visionlab.data.images.coordinate_grid`. Sample rate and frame rate only matter when the fit is written back.

- **audio** (:func:`load_audio`): a WAV file (8-bit unsigned, 16/24/32/64-bit signed integers, 32/64-bit floats) or
  the built-in ``"chirp"``. An integer sample v of b bits becomes x = v / 2^(b-1) (unsigned 8 bit: (v - 128) / 128),
  a float sample must lie in [-1, 1]; the value is (x + 1) / 2. Channels are kept (a stereo file is C = 2), as an RGB
  image keeps its colours; ``mono=True`` averages them. :meth:`AudioSignal.save` writes 16-bit PCM with
  v = clip(round(32768 (2 u - 1)), -32768, 32767), the exact inverse of reading, so a 16-bit file survives a round trip.
- **video** (:func:`load_video`): a folder of frame images (natural order: ``2.png`` before ``10.png``), an animated
  GIF (every frame, RGB) or a ``.npy`` array (T, H, W) or (T, H, W, C) (uint8, uint16 or float in [0, 1]); or the
  built-in ``"no-time-for-that"``. :meth:`VideoSignal.save` writes a folder of PNG frames plus an animated GIF.
- **images**: :func:`as_signal` adapts an :class:`~visionlab.data.images.ImageSignal`.
- :func:`load_signal` picks the loader from the name or the file: ``.wav`` -> audio; ``.gif``, ``.npy`` or a folder
  -> video; anything else -> image.

Built-in signals (no files, no downloads):

- ``"chirp"``: 3 s of mono audio at 16 kHz (48,000 samples), a linear chirp from f_0 = 100 Hz to f_1 = 2 kHz with its
  second and third harmonics, phase phi(t) = 2 pi (f_0 t + (f_1 - f_0) t^2 / (2 * 3 s)),
  x(t) = 0.5 sin(phi) + 0.25 sin(2 phi) + 0.125 sin(3 phi); |x| < 0.7, so values lie in about [0.15, 0.85].
  Deterministic.
- ``"no-time-for-that"``: scikit-image's ``no_time_for_that_tiny.gif``, 24 RGB frames of 25 x 14 pixels (H x W),
  70 ms each (about 14.3 frames per second).

Example::

    >>> from visionlab.data.signals import load_signal
    >>> sound = load_signal("chirp")
    >>> sound.kind, sound.shape, sound.channels, sound.coords().shape
    ('audio', (48000,), 1, torch.Size([48000, 1]))
    >>> clip = load_signal("no-time-for-that", frames=8)
    >>> clip.shape, clip.flat().shape, clip.coords().shape
    ((8, 25, 14), torch.Size([2800, 3]), torch.Size([2800, 3]))

Shapes: T samples or frames, H height, W width, C channels, d = len(shape) axes, N = prod(shape) grid points.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import skimage.data
import torch
from PIL import Image, ImageSequence, UnidentifiedImageError
from scipy.io import wavfile
from scipy.signal import resample_poly
from skimage.transform import resize

from visionlab.data.formats import to_unit_range
from visionlab.data.images import SAMPLE_IMAGES, ImageSignal, load_image, parse_size, quiet_decoding, save_image
from visionlab.data.video import frame_files, load_npy, read_frame_images
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import atomic_write, check_readable

AUDIO_SAMPLES: tuple[str, ...] = ("chirp",)
VIDEO_SAMPLES: dict[str, str] = {"no-time-for-that": "no_time_for_that_tiny.gif"}  # name -> file in skimage.data
DEFAULT_FPS = 10.0  # frame rate of a frame folder or .npy (they carry none) and of a GIF without frame durations
AUDIO_SUFFIXES = (".wav",)
VIDEO_SUFFIXES = (".gif", ".npy")
_FRAME_NAME = re.compile(r"frame_\d+\.png")


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
class AudioSignal(GridSignal):
    """Sound as a neural field's target: values (T, C) in [0, 1], amplitude x mapped to (x + 1) / 2."""

    kind: ClassVar[str] = "audio"
    ndim: ClassVar[int] = 1

    sample_rate: int = 16000  # samples per second

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.shape[0] / self.sample_rate

    def save(self, target: str | os.PathLike, values: torch.Tensor | np.ndarray) -> list[Path]:
        """Write (T, C) values as 16-bit PCM WAV (".wav" is appended when ``target`` has no suffix)."""
        path = _with_suffix(target, ".wav")
        return [save_audio(path, values, self.sample_rate)]

    def _extra(self) -> dict:
        return {"sample_rate": self.sample_rate}


@dataclass(frozen=True, eq=False, repr=False)
class VideoSignal(GridSignal):
    """A clip as a neural field's target: values (T, H, W, C) in [0, 1], played at ``fps`` frames per second."""

    kind: ClassVar[str] = "video"
    ndim: ClassVar[int] = 3

    fps: float = DEFAULT_FPS

    @property
    def frame_duration(self) -> float:
        """Seconds per frame."""
        return 1.0 / self.fps

    @property
    def duration(self) -> float:
        return self.shape[0] / self.fps

    def save(self, target: str | os.PathLike, values: torch.Tensor | np.ndarray) -> list[Path]:
        """Write (T, H, W, C) values as ``target/frame_00000.png`` ... and ``target/<target name>.gif``."""
        return save_video(target, values, self.fps)

    def _extra(self) -> dict:
        return {"fps": round(self.fps, 3)}


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
        path = _with_suffix(target, ".png")
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


# ---- audio -----------------------------------------------------------------------------------------------------

def chirp(*, seconds: float = 3.0, sample_rate: int = 16000, f0: float = 100.0, f1: float = 2000.0) -> np.ndarray:
    """The built-in "chirp": a linear chirp f0 -> f1 plus its 2nd and 3rd harmonics, amplitudes within +-0.7: (T,)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate  # (T,) seconds
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds))  # phi(t): frequency f0 + (f1 - f0) t / seconds
    return 0.5 * np.sin(phase) + 0.25 * np.sin(2 * phase) + 0.125 * np.sin(3 * phase)


def load_audio(source: str | os.PathLike, *, seconds: float | None = None, sample_rate: int | None = None,
               mono: bool = False) -> AudioSignal:
    """Load a WAV file or a built-in name as (T, C) float32 in [0, 1]; keep the first ``seconds`` (at most), then
    resample to ``sample_rate``; ``mono`` averages the channels."""
    if seconds is not None and not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
                                    and seconds > 0):
        raise ConfigError(f"seconds must be a positive number, got {seconds!r}")
    if sample_rate is not None and not (isinstance(sample_rate, int) and not isinstance(sample_rate, bool)
                                        and sample_rate > 0):
        raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    text = _check_given(source, "audio")
    path = Path(source)
    if path.is_file():  # a file wins over a built-in of the same name
        rate, amplitude = _read_wav(path)
        name, origin = path.stem, text
    elif text in AUDIO_SAMPLES:
        rate, amplitude = 16000, chirp()[:, None]  # (T, 1)
        name, origin = text, f"synth:{text}"
    elif path.is_dir():
        raise DataError(f"{path} is a directory, not a WAV file")
    else:
        raise DataError(f"no such WAV file or built-in audio: {text} (built-in: {', '.join(AUDIO_SAMPLES)})")

    if seconds is not None:
        amplitude = amplitude[:max(1, round(seconds * rate))]  # the first `seconds`, or all of a shorter sound
    if sample_rate is not None and sample_rate != rate:
        common = math.gcd(sample_rate, rate)
        amplitude = resample_poly(amplitude, sample_rate // common, rate // common, axis=0)  # (T', C), anti-aliased
        rate = sample_rate
        if len(amplitude) == 0:
            raise DataError(f"audio {origin}: nothing left after resampling to {sample_rate} Hz")
    if mono:
        amplitude = amplitude.mean(axis=1, keepdims=True)  # (T, 1)
    values = (np.clip(amplitude, -1.0, 1.0) + 1.0) / 2.0  # [-1, 1] -> [0, 1]; clip guards resampling overshoot
    values = np.ascontiguousarray(values, dtype=np.float32)
    return AudioSignal(values=torch.from_numpy(values), name=name, source=origin, sample_rate=int(rate))


def save_audio(path: str | os.PathLike, values: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write (T, C) or (T,) values in [0, 1] as a 16-bit PCM WAV, atomically."""
    array = _as_array(values)
    if array.ndim == 1:
        array = array[:, None]  # (T,) -> (T, 1)
    if array.ndim != 2 or 0 in array.shape:
        raise DataError(f"cannot save {path}: expected (T, C) audio values, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"cannot save {path}: the values contain NaN or infinity")
    amplitude = 2.0 * np.clip(array, 0.0, 1.0) - 1.0  # [0, 1] -> [-1, 1]
    pcm = np.clip(np.round(amplitude * 32768.0), -32768, 32767).astype(np.int16)  # the inverse of v / 2^15
    pcm = pcm[:, 0] if pcm.shape[1] == 1 else pcm  # scipy writes mono from (T,)
    return atomic_write(path, lambda tmp: wavfile.write(tmp, int(sample_rate), pcm))


def _read_wav(path: Path) -> tuple[int, np.ndarray]:
    """Decode a WAV file to its sample rate and amplitudes (T, C) float64 in [-1, 1]."""
    if path.stat().st_size == 0:
        raise DataError(f"cannot read audio {path}: the file is empty")
    check_readable(path, "audio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", wavfile.WavFileWarning)
        try:
            rate, samples = wavfile.read(path)
        except Exception as error:  # ValueError for a foreign format, struct.error or EOFError for a cut header
            reason = " ".join(str(error).split()) or type(error).__name__
            raise DataError(f"cannot read audio {path}: not a readable WAV file ({reason})") from None
    premature = [str(w.message) for w in caught if "EOF" in str(w.message)]
    if premature:  # scipy returns what it found and only warns; a fit of half a sound is not what was asked for
        raise DataError(f"cannot read audio {path}: the file is truncated ({premature[0]})")
    if samples.ndim == 1:
        samples = samples[:, None]  # (T,) -> (T, 1)
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise DataError(f"audio {path} has no samples (zero length)")
    if rate <= 0:
        raise DataError(f"audio {path}: sample rate {rate} in the header is not positive")
    kind = samples.dtype.kind
    if kind == "u" and samples.dtype.itemsize == 1:
        amplitude = (samples.astype(np.float64) - 128.0) / 128.0  # 8-bit WAV is unsigned, silence at 128
    elif kind == "i":
        amplitude = samples.astype(np.float64) / float(2 ** (samples.dtype.itemsize * 8 - 1))  # v / 2^(b-1)
    elif kind == "f":
        amplitude = samples.astype(np.float64)
        if not np.isfinite(amplitude).all():
            raise DataError(f"audio {path} contains NaN or infinite samples")
        low, high = float(amplitude.min()), float(amplitude.max())
        if low < -1.0 or high > 1.0:
            raise DataError(f"audio {path} has float samples in [{low:g}, {high:g}], expected [-1, 1]")
    else:
        raise DataError(f"cannot read audio {path}: sample type {samples.dtype} is not PCM integer or float")
    return int(rate), amplitude


# ---- video -----------------------------------------------------------------------------------------------------

def load_video(source: str | os.PathLike, *, frames: int | None = None, size: str | int | None = None,
               fps: float | None = None) -> VideoSignal:
    """Load a frame folder, animated GIF, ``.npy`` clip or built-in name as (T, H, W, C) float32 in [0, 1]; keep
    the first ``frames`` (at most), resize (``size``: N is the shorter side, HxW exact); ``fps`` overrides the rate."""
    if frames is not None and not (isinstance(frames, int) and not isinstance(frames, bool) and frames > 0):
        raise ConfigError(f"frames must be a positive integer, got {frames!r}")
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    target_size = None if size is None else parse_size(size)
    text = _check_given(source, "video")
    path = Path(source)
    if path.is_dir():
        values, rate = _read_frame_folder(path, frames), DEFAULT_FPS
        name, origin = path.name, text
    elif path.is_file():
        if path.stat().st_size == 0:
            raise DataError(f"cannot read video {path}: the file is empty")
        if path.suffix.lower() == ".npy":
            values, rate = _read_npy_clip(path, frames), DEFAULT_FPS
        elif path.suffix.lower() == ".gif":
            values, rate = _read_gif(path, frames)
        else:
            raise DataError(f"cannot read video {path}: expected a .gif, a .npy or a folder of frame images")
        name, origin = path.stem, text
    elif text in VIDEO_SAMPLES:
        values, rate = _read_gif(_skimage_file(VIDEO_SAMPLES[text]), frames)
        name, origin = text, f"skimage:{VIDEO_SAMPLES[text]}"
    else:
        raise DataError(f"no such video file or folder, or built-in video: {text} "
                        f"(built-in: {', '.join(VIDEO_SAMPLES)})")

    if target_size is not None:
        values = _resize_frames(values, target_size)
    values = np.ascontiguousarray(np.clip(values, 0.0, 1.0), dtype=np.float32)
    return VideoSignal(values=torch.from_numpy(values), name=name, source=origin,
                       fps=float(fps if fps is not None else rate))


def save_video(folder: str | os.PathLike, values: torch.Tensor | np.ndarray, fps: float) -> list[Path]:
    """Write (T, H, W, C) values in [0, 1] as ``folder/frame_00000.png`` ... and an animated ``folder/<name>.gif``.

    Frame files left from an earlier, longer save are removed, so the folder reads back as this clip. The GIF is for
    looking at: colour is quantised to 256 per frame, delays are whole hundredths of a second, and Pillow merges
    identical consecutive frames into one longer frame; the PNG frames are exact to 8 bits."""
    folder = Path(folder)
    array = _as_array(values)
    if array.ndim == 3:
        array = array[..., None]  # (T, H, W) -> (T, H, W, 1)
    if array.ndim != 4 or 0 in array.shape or array.shape[3] > 4:
        raise DataError(f"cannot save {folder}: expected (T, H, W, C) video values with C in 1-4, got {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"cannot save {folder}: the values contain NaN or infinity")
    if folder.exists() and not folder.is_dir():
        raise DataError(f"cannot save video frames into {folder}: it is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for t, frame in enumerate(array):
        written.append(folder / f"frame_{t:05d}.png")
        save_image(written[-1], frame)
    keep = {p.name for p in written}
    for stale in folder.iterdir():
        if _FRAME_NAME.fullmatch(stale.name) and stale.name not in keep:
            stale.unlink()

    pixels = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)  # (T, H, W, C)
    pixels = pixels[..., 0] if pixels.shape[3] < 3 else pixels[..., :3]  # GIF has no partial alpha: drop it
    pictures = [Image.fromarray(frame) for frame in pixels]
    gif = folder / f"{folder.resolve().name or 'video'}.gif"
    atomic_write(gif, lambda tmp: pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                                                   duration=round(1000.0 / fps), loop=0))
    return [folder, gif]


def _skimage_file(filename: str) -> Path:
    path = Path(os.path.dirname(skimage.data.__file__)) / filename
    if not path.is_file():
        raise DataError(f"built-in video file {path} is missing from this scikit-image installation")
    return path


def _read_frame_folder(folder: Path, frames: int | None) -> np.ndarray:
    """The first ``frames`` images of a folder, natural order, as (T, H, W, C); all of one size and channel count."""
    files = frame_files(folder)[:frames]  # raises for a folder without frame images; decode only what is kept
    values = read_frame_images(files)  # (H, W, C) each; raises for a frame of another size
    for f, v in zip(files, values):
        if v.shape[2] != values[0].shape[2]:
            raise DataError(f"{f}: frame has {v.shape[2]} channels, but {files[0].name} of the same clip has "
                            f"{values[0].shape[2]}")
    return np.stack(values)  # (T, H, W, C)


def _read_npy_clip(path: Path, frames: int | None) -> np.ndarray:
    values = load_npy(path)  # checks the .npy magic: without it, np.load would try to unpickle the file
    if values.ndim == 3:
        values = values[..., None]  # (T, H, W) -> (T, H, W, 1)
    if values.ndim != 4 or not 1 <= values.shape[3] <= 4 or 0 in values.shape:
        raise DataError(f"{path}: shape {values.shape}; expected (T, H, W) or (T, H, W, C) with C in 1-4")
    return to_unit_range(values[:frames], where=str(path), item="frame")  # NaN, range and dtype checked per frame


def _read_gif(path: Path, frames: int | None) -> tuple[np.ndarray, float]:
    """Every frame of an animated GIF (or the first ``frames``) as (T, H, W, 3) RGB, and its frame rate."""
    pictures, delays = [], []
    check_readable(path, "video")
    try:  # quietly: warnings of damage Pillow reads past would be more lines on stderr than the DataError's one
        with quiet_decoding(), Image.open(path) as gif:
            if gif.format != "GIF":
                raise DataError(f"cannot read video {path}: the file is {gif.format}, not a GIF")
            for frame in ImageSequence.Iterator(gif):  # Pillow composites each frame over the ones before
                pictures.append(np.asarray(frame.convert("RGB")))  # (H, W, 3) uint8
                delays.append(frame.info.get("duration") or 0)  # milliseconds; 0 or missing: unknown
                if frames is not None and len(pictures) == frames:
                    break
    except UnidentifiedImageError:
        raise DataError(f"cannot read video {path}: not a GIF image (the file is corrupt or of another format)") \
            from None
    except DataError:
        raise
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError or EOFError for damaged data
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"cannot read video {path}: the GIF is truncated or corrupt ({reason})") from None
    if not pictures:
        raise DataError(f"cannot read video {path}: the GIF has no frames")
    odd = next((k for k, p in enumerate(pictures) if p.shape != pictures[0].shape), None)
    if odd is not None:  # Pillow composites every frame onto the GIF's screen; only a damaged file varies
        raise DataError(f"cannot read video {path}: the GIF is truncated or corrupt (frame {odd} is "
                        f"{pictures[odd].shape[1]}x{pictures[odd].shape[0]} pixels, frame 0 "
                        f"{pictures[0].shape[1]}x{pictures[0].shape[0]})")
    known = [d for d in delays if d > 0]
    rate = 1000.0 / float(np.mean(known)) if known else DEFAULT_FPS
    return np.stack(pictures).astype(np.float32) / 255.0, rate  # (T, H, W, 3) in [0, 1]


def _resize_frames(values: np.ndarray, size: tuple[int, int] | int) -> np.ndarray:
    """(T, H, W, C) -> (T, H', W', C): N -> shorter side N with the aspect ratio kept; (H', W') -> exactly that."""
    t, height, width, c = values.shape
    if isinstance(size, int):
        scale = size / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size == (height, width):
        return values
    # the scale along T and C is 1, so anti-aliasing blurs only within each frame
    return resize(values, (t, *size, c), anti_aliasing=True, preserve_range=True)  # (T, H', W', C)


# ---- dispatch --------------------------------------------------------------------------------------------------

def signal_kind(spec: str | os.PathLike) -> str:
    """Which loader reads ``spec``: a built-in's kind; ``.wav`` audio; ``.gif``, ``.npy`` or a folder video; else
    image."""
    text, path = _check_given(spec, "signal"), Path(spec)
    if not path.exists():
        if text in AUDIO_SAMPLES:
            return "audio"
        if text in VIDEO_SAMPLES:
            return "video"
    suffix = path.suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if suffix in VIDEO_SUFFIXES or path.is_dir():
        return "video"
    return "image"


def load_signal(spec: str | os.PathLike, *, kind: str | None = None, size: str | int | None = None,
                crop: str | int | None = None, seconds: float | None = None, sample_rate: int | None = None,
                mono: bool = False, frames: int | None = None, fps: float | None = None) -> GridSignal:
    """Load any signal a neural field can fit; ``kind`` ("audio", "image", "video") overrides the guess from the
    name or suffix. Options that do not apply to the kind are an error rather than silently ignored."""
    if kind is None:
        kind = signal_kind(spec)
    options = {"size": size, "crop": crop, "seconds": seconds, "sample_rate": sample_rate, "mono": mono or None,
               "frames": frames, "fps": fps}
    allowed = {"audio": ("seconds", "sample_rate", "mono"), "image": ("size", "crop"),
               "video": ("frames", "size", "fps")}
    if kind not in allowed:
        raise ConfigError(f"kind must be 'audio', 'image' or 'video', got {kind!r}")
    misplaced = [k for k, v in options.items() if v is not None and k not in allowed[kind]]
    if misplaced:
        raise ConfigError(f"{', '.join(misplaced)} does not apply to {kind} ({spec}); {kind} options: "
                          f"{', '.join(allowed[kind])}")
    if kind == "audio":
        return load_audio(spec, seconds=seconds, sample_rate=sample_rate, mono=mono)
    if kind == "video":
        return load_video(spec, frames=frames, size=size, fps=fps)
    text = str(spec)
    if text.strip() and not Path(spec).exists() and text not in SAMPLE_IMAGES and not text.startswith("skimage:"):
        raise DataError(f"no such file or built-in signal: {text} (audio: {', '.join(AUDIO_SAMPLES)}; video: "
                        f"{', '.join(VIDEO_SAMPLES)}; images: {', '.join(SAMPLE_IMAGES)})")
    return as_signal(load_image(spec, size=size, crop=crop))


# ---- helpers ---------------------------------------------------------------------------------------------------

def _check_given(source: str | os.PathLike, what: str) -> str:
    """The source as text; an empty one is an error (``Path("")`` would be the current folder)."""
    text = str(source)
    if not text.strip():
        raise DataError(f"no {what} given: the source is an empty string (built-in audio: "
                        f"{', '.join(AUDIO_SAMPLES)}; video: {', '.join(VIDEO_SAMPLES)})")
    return text


def _as_array(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float32).numpy()
    return np.asarray(values, dtype=np.float32)


def _with_suffix(target: str | os.PathLike, suffix: str) -> Path:
    path = Path(target)
    return path if path.suffix else path.with_suffix(suffix)
