"""Signals for neural fields: images, audio and video, and :func:`load_signal`, one loader for all three kinds.

A neural field fits a function from grid coordinates to values. An image is f(y, x) -> colour; a sound is
f(t) -> amplitude per channel; a video is f(t, y, x) -> colour. Each is a :class:`~visionlab.data.grid.GridSignal`:
values (*shape, C) in [0, 1] on a regular grid of shape (T,), (H, W) or (T, H, W), with coordinates in [-1, 1]^d.
By module:

- :mod:`.grid`: the interface (:class:`~visionlab.data.grid.GridSignal`, the coordinate grid), images through it
  (:func:`~visionlab.data.grid.as_signal`) and the names of the built-in signals;
- :mod:`.audio`: WAV files and the built-in ``"chirp"`` (:func:`~visionlab.data.audio.load_audio`, ``save_audio``);
- :mod:`.video_signals`: frame folders, animated GIFs, ``.npy`` clips and the built-in ``"no-time-for-that"``
  (:func:`~visionlab.data.video_signals.load_video`, ``save_video``).

:func:`load_signal` picks the loader from the name or the file: ``.wav`` -> audio; ``.gif``, ``.npy`` or a folder
-> video; anything else -> image. A GIF of one frame is a still picture, so it is fitted as an image.

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

import os
from pathlib import Path

from PIL import Image

from visionlab.data.audio import AUDIO_SUFFIXES, load_audio
from visionlab.data.grid import AUDIO_SAMPLES, VIDEO_SAMPLES, GridSignal, as_signal, check_given
from visionlab.data.images import SAMPLE_IMAGES, load_image
from visionlab.data.video_signals import VIDEO_SUFFIXES, load_video
from visionlab.util.errors import ConfigError, DataError


def signal_kind(spec: str | os.PathLike) -> str:
    """Which loader reads ``spec``: a built-in's kind; ``.wav`` audio; ``.gif`` (of more than one frame), ``.npy`` or
    a folder video; else image."""
    text, path = check_given(spec, "signal"), Path(spec)
    if not path.exists():
        if text in AUDIO_SAMPLES:
            return "audio"
        if text in VIDEO_SAMPLES:
            return "video"
    suffix = path.suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if suffix == ".gif" and _frame_count(path) == 1:
        return "image"
    if suffix in VIDEO_SUFFIXES or path.is_dir():
        return "video"
    return "image"


def _frame_count(path: Path) -> int | None:
    """Frames in a GIF, or None where Pillow cannot tell (the video reader then says what is wrong with it)."""
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1)
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError ... for damaged or foreign data
        return None


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
    return as_signal(load_image(spec, size=size, crop=crop, announce_upscale=True))
