"""Video as a neural field's target: f(t, y, x) -> colour, on a grid of shape (T, H, W).

(The clips of video *classification*, moving digits and clip folders for ViViT, are in :mod:`.video`.)

:func:`load_video` reads a folder of frame images (natural order: ``2.png`` before ``10.png``), an animated GIF
(every frame, RGB) or a ``.npy`` array (T, H, W) or (T, H, W, C) (uint8, uint16 or float in [0, 1]); or the built-in
``"no-time-for-that"``: scikit-image's ``no_time_for_that_tiny.gif``, 24 RGB frames of 25 x 14 pixels (H x W), 70 ms
each (about 14.3 frames per second). :meth:`VideoSignal.save` writes a folder of PNG frames plus an animated GIF.
Frame rate only matters when the fit is written back.

Example::

    >>> clip = load_video("no-time-for-that", frames=8)
    >>> clip.shape, clip.flat().shape, clip.coords().shape
    ((8, 25, 14), torch.Size([2800, 3]), torch.Size([2800, 3]))

Shapes: T frames, H height, W width, C channels.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import skimage.data
import torch
from PIL import Image, ImageSequence, UnidentifiedImageError
from skimage.transform import resize

from visionlab.data.formats import to_unit_range
from visionlab.data.grid import VIDEO_SAMPLES, GridSignal, as_array, check_given
from visionlab.data.images import note_upscale, parse_size, quiet_decoding, save_image
from visionlab.data.video import frame_files, load_npy, read_frame_images
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import atomic_write, check_readable

DEFAULT_FPS = 10.0  # frame rate of a frame folder or .npy (they carry none) and of a GIF without frame durations
VIDEO_SUFFIXES = (".gif", ".npy")
_FRAME_NAME = re.compile(r"frame_\d+\.png")


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


def load_video(source: str | os.PathLike, *, frames: int | None = None, size: str | int | None = None,
               fps: float | None = None) -> VideoSignal:
    """Load a frame folder, animated GIF, ``.npy`` clip or built-in name as (T, H, W, C) float32 in [0, 1]; keep
    the first ``frames`` (at most), resize (``size``: N is the shorter side, HxW exact); ``fps`` overrides the rate."""
    if frames is not None and not (isinstance(frames, int) and not isinstance(frames, bool) and frames > 0):
        raise ConfigError(f"frames must be a positive integer, got {frames!r}")
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    target_size = None if size is None else parse_size(size)
    text = check_given(source, "video")
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
        before = values.shape[1:3]
        values = _resize_frames(values, target_size)
        note_upscale(origin, before, values.shape[1:3])  # always the user's --size here
    values = np.ascontiguousarray(np.clip(values, 0.0, 1.0), dtype=np.float32)
    return VideoSignal(values=torch.from_numpy(values), name=name, source=origin,
                       fps=float(fps if fps is not None else rate))


def save_video(folder: str | os.PathLike, values: torch.Tensor | np.ndarray, fps: float) -> list[Path]:
    """Write (T, H, W, C) values in [0, 1] as ``folder/frame_00000.png`` ... and an animated ``folder/<name>.gif``.

    Frame files left from an earlier, longer save are removed, so the folder reads back as this clip. The GIF is for
    looking at: colour is quantised to 256 per frame, delays are whole hundredths of a second, and Pillow merges
    identical consecutive frames into one longer frame; the PNG frames are exact to 8 bits."""
    folder = Path(folder)
    array = as_array(values)
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
