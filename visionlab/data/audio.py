"""Audio as a neural field's target: f(t) -> amplitude per channel, on a grid of shape (T,).

:func:`load_audio` reads a WAV file (8-bit unsigned, 16/24/32/64-bit signed integers, 32/64-bit floats) or the
built-in ``"chirp"``. An integer sample v of b bits becomes x = v / 2^(b-1) (unsigned 8 bit: (v - 128) / 128), a
float sample must lie in [-1, 1]; the value is (x + 1) / 2. Channels are kept (a stereo file is C = 2), as an RGB
image keeps its colours; ``mono=True`` averages them. :meth:`AudioSignal.save` writes 16-bit PCM with
v = clip(round(32768 (2 u - 1)), -32768, 32767), the exact inverse of reading, so a 16-bit file survives a round trip.

The built-in ``"chirp"``: 3 s of mono audio at 16 kHz (48,000 samples), a linear chirp from f_0 = 100 Hz to
f_1 = 2 kHz with its second and third harmonics, phase phi(t) = 2 pi (f_0 t + (f_1 - f_0) t^2 / (2 * 3 s)),
x(t) = 0.5 sin(phi) + 0.25 sin(2 phi) + 0.125 sin(3 phi); |x| < 0.7, so values lie in about [0.15, 0.85].
Deterministic.

Example::

    >>> sound = load_audio("chirp")
    >>> sound.shape, sound.channels, sound.sample_rate
    ((48000,), 1, 16000)

Shapes: T samples, C channels.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly

from visionlab.data.grid import AUDIO_SAMPLES, GridSignal, as_array, check_given, with_suffix
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import atomic_write, check_readable

AUDIO_SUFFIXES = (".wav",)


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
        path = with_suffix(target, ".wav")
        return [save_audio(path, values, self.sample_rate)]

    def _extra(self) -> dict:
        return {"sample_rate": self.sample_rate}


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
    text = check_given(source, "audio")
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
    array = as_array(values)
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
