"""Property-based tests of the image, video and data-set loaders (Hypothesis).

(a) Valid files of any size (1..64 px), mode (grey, grey + alpha, RGB, RGBA), depth (8 / 16 bit where the format has
it) and format (PNG, TIFF, BMP, JPEG; GIF, .npy and frame folders for video) load to the documented shape, float32 in
[0, 1], and lossless formats give back exactly v / (2^b - 1).
(b) Any bytes, and valid files cut short or with bits flipped, under an image or video name either load to such a
valid result or raise visionlab's DataError, one line naming the file: never another exception.
(c) The clip reader returns (frames, H, W, C) for the frames, size and channels asked for, or a DataError.
(d) (b) holds for WAV sounds and .npz data sets too.
Loading prints nothing either way: a decoder's complaint on stderr, or a Python warning, would be more than the one
line of a command-line error (C libraries write to file descriptor 2, so capfd, not capsys).

Every example writes into its own temporary folder (tempfile, not the function-scoped tmp_path, which Hypothesis
would share between examples).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from visionlab.data.datasets import IMAGE_SUFFIXES
from visionlab.data.formats import load_npz
from visionlab.data.images import load_image
from visionlab.data.audio import load_audio
from visionlab.data.video_signals import load_video
from visionlab.data.video import read_clip
from visionlab.util.errors import DataError

# database=None: no example database in .hypothesis/ at the repository root (Hypothesis still caches constants
# there, in a folder it gitignores itself).
# capfd is function-scoped on purpose: each example reads (and so empties) it before and after loading.
FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
VALID = settings(FUZZ, max_examples=25)
# What Python prints by default outside a test runner; the others it ignores unless asked.
SILENT_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)

CHANNELS = {"grey": 1, "grey+alpha": 2, "rgb": 3, "rgba": 4}
# What each format stores: its suffix and, per mode, the integer types it holds (JPEG: lossy, 8 bit). Grey + alpha
# is written by Pillow, whose "LA" mode has 8 bits only; the others by OpenCV.
FORMATS = {
    "png": (".png", {"grey": (np.uint8, np.uint16), "grey+alpha": (np.uint8,), "rgb": (np.uint8, np.uint16),
                     "rgba": (np.uint8, np.uint16)}),
    "tiff": (".tif", {"grey": (np.uint8, np.uint16), "rgb": (np.uint8, np.uint16), "rgba": (np.uint8, np.uint16)}),
    "bmp": (".bmp", {"grey": (np.uint8,), "rgb": (np.uint8,), "rgba": (np.uint8,)}),
    "jpeg": (".jpg", {"grey": (np.uint8,), "rgb": (np.uint8,)}),
}


@st.composite
def image_specs(draw) -> dict:
    name = draw(st.sampled_from(sorted(FORMATS)))
    suffix, modes = FORMATS[name]
    mode = draw(st.sampled_from(sorted(modes)))
    return {"format": name, "suffix": suffix, "mode": mode, "dtype": draw(st.sampled_from(modes[mode])),
            "height": draw(st.integers(1, 64)), "width": draw(st.integers(1, 64)),
            "seed": draw(st.integers(0, 2 ** 32 - 1))}


def write_image(folder: Path, spec: dict) -> tuple[Path, np.ndarray]:
    """Random pixels (H, W, C) of the spec's type, written in its format; returns the path and the pixels."""
    rng = np.random.default_rng(spec["seed"])
    c, dtype = CHANNELS[spec["mode"]], spec["dtype"]
    pixels = rng.integers(0, np.iinfo(dtype).max, (spec["height"], spec["width"], c), dtype=dtype, endpoint=True)
    path = folder / f"image{spec['suffix']}"
    if c == 2:  # OpenCV cannot write grey + alpha; Pillow's "LA" PNG is the usual file
        Image.fromarray(pixels).save(path)  # (H, W, 2) uint8 is Pillow's "LA"
    else:
        bgr = pixels[..., [2, 1, 0, 3][:c]] if c >= 3 else pixels[..., 0]  # OpenCV writes BGR(A)
        assert cv2.imwrite(str(path), bgr), f"could not write the fixture {path}"
    return path, pixels


def assert_unit_values(values: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    """The loaders' promise: float32 of the documented shape, finite, in [0, 1]."""
    v = values.numpy()
    assert v.dtype == np.float32 and v.shape == shape, (v.dtype, v.shape, shape)
    assert np.isfinite(v).all() and v.min() >= 0 and v.max() <= 1
    return v


def quietly(load: Callable, capfd):
    """``load()``, checking that it printed nothing to stdout / stderr (file descriptors: C libraries too) and raised
    no warning that Python would print: on the command line either would be more than the one line of an error."""
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return load()
        finally:
            shown = [f"{w.category.__name__}: {w.message}" for w in caught
                     if not issubclass(w.category, SILENT_WARNINGS)]
            assert capfd.readouterr() == ("", "") and not shown, shown


def load_or_refuse(load: Callable, path: Path, capfd):
    """``load(path)``, or None when it raised a DataError of one line naming the file; any other exception, or
    anything printed on the way, fails."""
    try:
        return quietly(lambda: load(path), capfd)
    except DataError as error:
        message = str(error)
        assert "\n" not in message and path.name in message, message
        return None


def damage(data: bytes, *, keep: float | None, flips: list[tuple[float, int]]) -> bytes:
    """``data`` with bit b of the byte at fraction f of the file flipped for each (f, b), then cut to ``keep``."""
    out = bytearray(data)
    for where, bit in flips:
        if out:
            out[min(int(where * len(out)), len(out) - 1)] ^= 1 << bit
    return bytes(out if keep is None else out[:int(keep * len(out))])


# Damage mostly near the start, where headers (sizes, types, counts) live, but anywhere too.
flips = st.lists(st.tuples(st.one_of(st.floats(0, 0.1), st.floats(0, 1, exclude_max=True)), st.integers(0, 7)),
                 max_size=6)
keeps = st.one_of(st.none(), st.floats(0, 1, exclude_max=True))


# ---- images ----------------------------------------------------------------------------------------------------

@VALID
@given(spec=image_specs())
# OpenCV's own RGBA TIFFs made libtiff print a warning on every read
@example(spec={"format": "tiff", "suffix": ".tif", "mode": "rgba", "dtype": np.uint8, "height": 1, "width": 1,
               "seed": 0})
def test_valid_images_load_as_unit_floats_of_their_shape_and_round_trip(spec, capfd):
    with tempfile.TemporaryDirectory() as folder:
        path, pixels = write_image(Path(folder), spec)
        image = quietly(lambda: load_image(path), capfd)
    c = CHANNELS[spec["mode"]]
    values = assert_unit_values(image.values, (spec["height"], spec["width"], c))
    bits = np.iinfo(spec["dtype"]).bits
    assert image.bit_depth == bits and image.channels == c
    expected = pixels.astype(np.float64) / (2 ** bits - 1)  # v / (2^b - 1)
    if spec["format"] == "jpeg":  # lossy: the 8 x 8 blocks keep their mean (the DCT's DC term) best
        assert abs(values.mean() - expected.mean()) < 0.05
    else:
        np.testing.assert_allclose(values, expected, atol=1e-6)


@VALID
@given(spec=image_specs(), height=st.integers(1, 40), width=st.integers(1, 40))
def test_resized_images_have_exactly_the_size_asked_for(spec, height, width):
    with tempfile.TemporaryDirectory() as folder:
        path, _ = write_image(Path(folder), spec)
        image = load_image(path, size=f"{height}x{width}")
    assert_unit_values(image.values, (height, width, CHANNELS[spec["mode"]]))


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(IMAGE_SUFFIXES))
def test_any_bytes_named_as_an_image_load_or_raise_data_error(data, suffix, capfd):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        image = load_or_refuse(load_image, path, capfd)
    if image is not None:
        assert_unit_values(image.values, tuple(image.values.shape))
        assert 1 <= image.channels <= 4


@FUZZ
@given(spec=image_specs(), keep=keeps, flips=flips)
def test_damaged_images_load_or_raise_data_error(spec, keep, flips, capfd):
    with tempfile.TemporaryDirectory() as folder:
        path, _ = write_image(Path(folder), spec)
        path.write_bytes(damage(path.read_bytes(), keep=keep, flips=flips))
        image = load_or_refuse(load_image, path, capfd)
    if image is not None:
        assert_unit_values(image.values, tuple(image.values.shape))
        assert 1 <= image.channels <= 4


# ---- videos: GIFs, .npy clips and frame folders -----------------------------------------------------------------

clip_shapes = st.tuples(st.integers(1, 8), st.integers(1, 16), st.integers(1, 16))  # (T, H, W)


def write_gif(path: Path, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """A GIF of (T, H, W, 3) frames of at most 24 colours, so that its 256-colour palette holds them exactly; pixel
    (0, 0) has a colour of its own in every frame, as Pillow would merge two equal frames into one longer one."""
    t, h, w = shape
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    frames = palette[rng.integers(0, 16, (t, h, w))]  # (T, H, W, 3)
    frames[:, 0, 0] = np.stack([np.arange(t) * 31 + 7, 255 - np.arange(t) * 31, np.full(t, 128)], axis=1)
    pictures = [Image.fromarray(frame) for frame in frames]
    pictures[0].save(path, format="GIF", save_all=True, append_images=pictures[1:], duration=50, loop=0)
    return frames


npy_clips = st.fixed_dictionaries({
    "shape": clip_shapes, "channels": st.sampled_from([None, 1, 2, 3, 4]),
    "dtype": st.sampled_from([np.uint8, np.uint16, np.float32, np.float64]), "seed": st.integers(0, 2 ** 32 - 1)})


def clip_values(spec: dict) -> np.ndarray:
    """(T, H, W) or (T, H, W, C) of the spec's dtype: integers of any value, floats in [0, 1]."""
    shape = spec["shape"] + (() if spec["channels"] is None else (spec["channels"],))
    rng = np.random.default_rng(spec["seed"])
    if np.issubdtype(spec["dtype"], np.integer):
        return rng.integers(0, np.iinfo(spec["dtype"]).max, shape, dtype=spec["dtype"], endpoint=True)
    return rng.random(shape).astype(spec["dtype"])


def unit(values: np.ndarray) -> np.ndarray:
    """The documented conversion: integers v -> v / max of their type, floats kept; (T, H, W) -> (T, H, W, 1)."""
    scaled = values / np.iinfo(values.dtype).max if np.issubdtype(values.dtype, np.integer) else values
    return scaled if scaled.ndim == 4 else scaled[..., None]


@VALID
@given(spec=npy_clips, frames=st.one_of(st.none(), st.integers(1, 10)))
def test_npy_clips_load_exactly_with_at_most_the_frames_asked_for(spec, frames):
    values = clip_values(spec)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.npy"
        np.save(path, values)
        clip = load_video(path, frames=frames)
    t = spec["shape"][0] if frames is None else min(frames, spec["shape"][0])
    expected = unit(values)[:t]
    loaded = assert_unit_values(clip.values, expected.shape)
    np.testing.assert_allclose(loaded, expected, atol=1e-6)


@VALID
@given(shape=clip_shapes, seed=st.integers(0, 2 ** 32 - 1), frames=st.one_of(st.none(), st.integers(1, 10)))
def test_gifs_load_as_rgb_clips_with_at_most_the_frames_asked_for(shape, seed, frames):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.gif"
        pixels = write_gif(path, shape, seed)
        clip = load_video(path, frames=frames)
    t, h, w = shape
    t = t if frames is None else min(frames, t)
    loaded = assert_unit_values(clip.values, (t, h, w, 3))
    np.testing.assert_allclose(loaded, pixels[:t] / 255.0, atol=1e-6)  # few colours: the palette is exact
    assert clip.fps == pytest.approx(20.0)  # 50 ms a frame


@VALID
@given(shape=clip_shapes, channels=st.sampled_from([1, 2, 3, 4]), seed=st.integers(0, 2 ** 32 - 1))
def test_frame_folders_load_exactly_in_natural_order(shape, channels, seed):
    t, h, w = shape
    pixels = np.random.default_rng(seed).integers(0, 256, (t, h, w, channels), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        clip_folder = Path(folder) / "clip"
        clip_folder.mkdir()
        for k, frame in enumerate(pixels):  # frame2.png before frame10.png: numbers compare as numbers
            Image.fromarray(frame[..., 0] if channels == 1 else frame).save(clip_folder / f"frame{k * 5}.png")
        clip = load_video(clip_folder)
    loaded = assert_unit_values(clip.values, (t, h, w, channels))
    np.testing.assert_allclose(loaded, pixels / 255.0, atol=1e-6)


@VALID
@given(spec=npy_clips, frames=st.integers(1, 10), size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
       channels=st.sampled_from([1, 3]), as_folder=st.booleans())
def test_read_clip_gives_the_frames_size_and_channels_asked_for_or_a_data_error(spec, frames, size, channels,
                                                                                 as_folder):
    values = clip_values(spec)
    with tempfile.TemporaryDirectory() as folder:
        if as_folder:  # the same clip as 8-bit PNG frames
            path = Path(folder) / "clip"
            path.mkdir()
            for k, frame in enumerate(np.round(unit(values) * 255).astype(np.uint8)):
                Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(path / f"{k}.png")
        else:
            path = Path(folder) / "clip.npy"
            np.save(path, values)
        try:
            clip = read_clip(path, frames=frames, size=size, channels=channels)
        except DataError as error:
            message = str(error)
            assert "\n" not in message and path.name in message, message
            # the documented refusals: a channel count other than grey / RGB (+ alpha in PNGs), or too few frames
            if spec["channels"] not in (None, 1, 3) and not (as_folder and spec["channels"] in (2, 4)):
                assert "expected (T, H, W) or (T, H, W, C) with C = 1 or 3" in message, message
            else:
                assert frames > spec["shape"][0] and "needs at least" in message, message
            return
    assert clip.dtype == np.float32 and clip.shape == (frames, *size, channels)
    assert np.isfinite(clip).all() and clip.min() >= 0 and clip.max() <= 1


video_suffixes = st.sampled_from([".gif", ".npy"])


@FUZZ
@given(data=st.binary(max_size=4096), suffix=video_suffixes)
def test_any_bytes_named_as_a_video_load_or_raise_data_error(data, suffix, capfd):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        clip = load_or_refuse(load_video, path, capfd)
    if clip is not None:
        assert_unit_values(clip.values, tuple(clip.values.shape))
        assert clip.values.ndim == 4 and 1 <= clip.channels <= 4


@FUZZ
@given(data=st.binary(max_size=2048))
def test_any_bytes_after_a_npy_header_load_or_raise_data_error(data, capfd):
    """Random bytes rarely begin with NumPy's magic; these do, so the header parser and the checks behind it run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.npy"
        path.write_bytes(b"\x93NUMPY\x01\x00" + data)
        clip = load_or_refuse(load_video, path, capfd)
    if clip is not None:
        assert_unit_values(clip.values, tuple(clip.values.shape))


@FUZZ
@given(kind=st.sampled_from(["gif", "npy"]), spec=npy_clips, keep=keeps, flips=flips)
# a flipped bit gave one frame another size, and np.stack raised ValueError
@example(kind="gif", spec={"shape": (8, 1, 1), "channels": None, "dtype": np.uint8, "seed": 0}, keep=None,
         flips=[(0.8046875, 0)])
def test_damaged_clips_load_or_raise_data_error(kind, spec, keep, flips, capfd):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{kind}"
        if kind == "gif":
            write_gif(path, spec["shape"], spec["seed"])
        else:
            np.save(path, clip_values(spec))
        path.write_bytes(damage(path.read_bytes(), keep=keep, flips=flips))
        clip = load_or_refuse(load_video, path, capfd)
        read = load_or_refuse(lambda p: read_clip(p, frames=1, size=(4, 4), channels=3), path, capfd)
    if clip is not None:
        assert_unit_values(clip.values, tuple(clip.values.shape))
        assert clip.values.ndim == 4
    if read is not None:
        assert read.dtype == np.float32 and read.shape == (1, 4, 4, 3) and 0 <= read.min() and read.max() <= 1


@FUZZ
@given(shape=clip_shapes, seed=st.integers(0, 2 ** 32 - 1), keep=keeps, flips=flips, which=st.integers(0, 7))
def test_a_frame_folder_with_a_damaged_frame_loads_or_raises_data_error(shape, seed, keep, flips, which, capfd):
    t, h, w = shape
    pixels = np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        clip_folder = Path(folder) / "clip"
        clip_folder.mkdir()
        for k, frame in enumerate(pixels):
            Image.fromarray(frame).save(clip_folder / f"{k}.png")
        broken = clip_folder / f"{which % t}.png"
        broken.write_bytes(damage(broken.read_bytes(), keep=keep, flips=flips))
        try:
            clip = quietly(lambda: load_video(clip_folder), capfd)
        except DataError as error:
            assert "\n" not in str(error) and "clip" in str(error)
            return
    assert_unit_values(clip.values, tuple(clip.values.shape))
    assert clip.values.shape[:3] == (t, h, w)


# ---- the other files users hand in: sounds and data sets -------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=2048), header=st.booleans())
def test_any_bytes_named_as_a_wav_load_or_raise_data_error(data, header, capfd):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.wav"
        # with a RIFF / WAVE header in front, the chunk parser behind it sees the random bytes
        path.write_bytes((b"RIFF" + len(data).to_bytes(4, "little") + b"WAVEfmt " if header else b"") + data)
        sound = load_or_refuse(load_audio, path, capfd)
    if sound is not None:
        assert_unit_values(sound.values, tuple(sound.values.shape))


@FUZZ
@given(data=st.binary(max_size=2048), zip_header=st.booleans())
def test_any_bytes_named_as_an_npz_load_or_raise_data_error(data, zip_header, capfd):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.npz"
        path.write_bytes((b"PK\x03\x04" if zip_header else b"") + data)
        load_or_refuse(load_npz, path, capfd)


@FUZZ
@given(keep=keeps, flips=flips, seed=st.integers(0, 2 ** 32 - 1))
def test_damaged_npz_data_sets_load_or_raise_data_error(keep, flips, seed, capfd):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.npz"
        np.savez(path, images=rng.integers(0, 256, (4, 3, 3), dtype=np.uint8), labels=np.array([0, 1, 0, 1]),
                 class_names=np.array(["a", "b"]))
        path.write_bytes(damage(path.read_bytes(), keep=keep, flips=flips))
        data = load_or_refuse(load_npz, path, capfd)
    if data is not None:
        assert data.images.dtype == np.float32 and len(data.images) == len(data.labels)
        assert 0 <= data.images.min() and data.images.max() <= 1
        assert data.labels.min() >= 0 and data.labels.max() < len(data.class_names)
