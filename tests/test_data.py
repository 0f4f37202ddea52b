"""Tests for visionlab.data.images: decoding every supported file kind, samples, resizing, coordinates and errors."""

import socket

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from visionlab.data import SAMPLE_IMAGES, ImageSignal, coordinate_grid, load_image, parse_size, save_image
from visionlab.util.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def write_rgb(path, rgb):
    """Write an RGB(A) or grey array with OpenCV, which expects BGR(A) order."""
    if rgb.ndim == 3 and rgb.shape[2] in (3, 4):
        rgb = rgb[:, :, [2, 1, 0, 3][: rgb.shape[2]]]
    assert cv2.imwrite(str(path), rgb), f"could not write the fixture {path}"
    return path


def as_hwc(array):
    return array[:, :, None] if array.ndim == 2 else array


# --- decoding ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["png", "bmp", "tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_lossless_8bit_round_trip(tmp_path, suffix, channels):
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    path = write_rgb(tmp_path / f"picture.{suffix}", pixels)
    image = load_image(path)
    assert isinstance(image, ImageSignal)
    assert image.values.dtype == torch.float32 and image.values.is_contiguous()
    assert (image.height, image.width, image.channels, image.num_pixels) == (5, 7, channels, 35)
    assert image.bit_depth == 8 and image.name == "picture" and image.source == str(path)
    np.testing.assert_allclose(image.values.numpy(), as_hwc(pixels) / 255.0, atol=1e-7)


def test_channel_order_is_rgb(tmp_path):
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    for suffix in ("png", "jpg"):
        values = load_image(write_rgb(tmp_path / f"red.{suffix}", red)).values
        assert values[..., 0].min() > 0.9 and values[..., 1:].max() < 0.1, suffix


@pytest.mark.parametrize("suffix", ["png", "tif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_survives(tmp_path, suffix, channels):
    # 1 and 65534 differ from 0 and 65535 only below 8-bit precision; 32768 is 65535 * 0.5 rounded
    levels = np.array([0, 1, 32768, 65534, 65535, 257, 12345], dtype=np.uint16)
    pixels = np.tile(levels, (3, 1))  # (3, 7)
    if channels == 3:
        pixels = np.stack([pixels, pixels[:, ::-1], np.roll(pixels, 1, axis=1)], axis=-1)
    image = load_image(write_rgb(tmp_path / f"deep.{suffix}", pixels))
    assert image.bit_depth == 16 and image.channels == channels
    values = image.values.numpy().astype(np.float64)
    np.testing.assert_array_equal(np.round(values * 65535), as_hwc(pixels))
    assert abs(values[0, 2, 0] - 0.5) <= 1 / 65535


def test_grey_alpha_png_keeps_two_channels(tmp_path):
    pixels = RNG.integers(0, 256, (6, 5, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(pixels, mode="LA").save(path)
    image = load_image(path)
    assert image.channels == 2
    np.testing.assert_allclose(image.values.numpy(), pixels / 255.0, atol=1e-7)


def test_jpeg_is_close(tmp_path):
    # a smooth gradient survives JPEG with small error; noise would not
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([y * 8, x * 5, 255 - y * 8], axis=-1).astype(np.uint8)
    image = load_image(write_rgb(tmp_path / "photo.jpg", rgb))
    assert image.values.shape == (32, 48, 3) and image.bit_depth == 8
    assert np.abs(image.values.numpy() - rgb / 255.0).mean() < 0.02


def test_float_tiff(tmp_path):
    pixels = RNG.random((4, 6, 3), dtype=np.float32)
    image = load_image(write_rgb(tmp_path / "float.tif", pixels))
    assert image.bit_depth == 32
    np.testing.assert_allclose(image.values.numpy(), pixels, atol=1e-7)
    with pytest.raises(DataError, match=r"bright\.tif.*\[0, 1\]"):
        load_image(write_rgb(tmp_path / "bright.tif", pixels * 3))


def test_every_sample_loads_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a sample image tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    for name in SAMPLE_IMAGES:
        image = load_image(name)
        assert image.name == name and image.source == f"skimage:{name}" and image.bit_depth == 8
        assert image.channels in (1, 3, 4) and min(image.height, image.width) >= 64, name
        assert 0.0 <= image.values.min() and image.values.max() <= 1.0 and image.values.max() > 0.0, name
    assert load_image("skimage:camera").source == "skimage:camera"


# --- resize and crop ----------------------------------------------------------------------------------------------

@pytest.fixture
def landscape(tmp_path):
    """A 40 x 60 RGB file."""
    return write_rgb(tmp_path / "wide.png", RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("size", "crop", "shape"),
    [
        (20, None, (20, 30, 3)),  # shorter side, aspect kept
        ("20", None, (20, 30, 3)),
        (25, None, (25, 38, 3)),  # 37.5 rounds to 38
        (80, None, (80, 120, 3)),  # upsampling works too
        ("16x24", None, (16, 24, 3)),  # exact, aspect ignored
        ("50X10", None, (50, 10, 3)),
        (None, "10x6", (10, 6, 3)),  # non-square centred crop
        (20, "20x20", (20, 20, 3)),
        (20, "12", (12, 12, 3)),
        (None, "40x60", (40, 60, 3)),
    ],
)
def test_size_and_crop_shapes(landscape, size, crop, shape):
    image = load_image(landscape, size=size, crop=crop)
    assert tuple(image.values.shape) == shape
    assert image.values.is_contiguous() and 0.0 <= image.values.min() and image.values.max() <= 1.0


def test_shorter_side_of_portrait(tmp_path):
    path = write_rgb(tmp_path / "tall.png", RNG.integers(0, 256, (60, 40), dtype=np.uint8))
    assert tuple(load_image(path, size=20).values.shape) == (30, 20, 1)


def test_crop_is_centred(tmp_path):
    pixels = np.arange(8 * 10, dtype=np.uint8).reshape(8, 10)
    image = load_image(write_rgb(tmp_path / "ramp.png", pixels), crop="4x6")
    np.testing.assert_allclose(image.values[..., 0].numpy(), pixels[2:6, 2:8] / 255.0, atol=1e-7)


def test_downsizing_is_anti_aliased(tmp_path):
    # one-pixel stripes shrunk 3x: each output pixel centre lands on one input pixel, so plain interpolation would
    # keep alternating 0 and 1; the low-pass filter before shrinking averages them to grey
    stripes = np.zeros((63, 63), np.uint8)
    stripes[:, ::2] = 255
    values = load_image(write_rgb(tmp_path / "stripes.png", stripes), size=21).values
    assert values.shape == (21, 21, 1)
    assert torch.allclose(values, torch.full_like(values, 0.5), atol=0.1)


def test_parse_size():
    assert parse_size("256") == 256 and parse_size(128) == 128
    assert parse_size("256x384") == (256, 384) and parse_size(" 3X4 ") == (3, 4)


# --- coordinates --------------------------------------------------------------------------------------------------

def test_coordinate_grid_shape_and_corners():
    grid = coordinate_grid(4, 6)
    assert grid.shape == (24, 2) and grid.dtype == torch.float32
    assert grid[0].tolist() == [-1.0, -1.0] and grid[-1].tolist() == [1.0, 1.0]
    assert grid[5].tolist() == [-1.0, 1.0] and grid[6].tolist() == [pytest.approx(-1 / 3), -1.0]
    assert coordinate_grid(2, 2, dtype=torch.float64).dtype == torch.float64


def test_coordinate_grid_single_pixel_axis():
    assert coordinate_grid(1, 3).tolist() == [[0.0, -1.0], [0.0, 0.0], [0.0, 1.0]]
    assert coordinate_grid(1, 1).tolist() == [[0.0, 0.0]]


def test_coordinates_match_flat_values_row_major(tmp_path):
    height, width = 3, 5
    pixels = RNG.permutation(256)[: height * width * 3].reshape(height, width, 3).astype(np.uint8)
    image = load_image(write_rgb(tmp_path / "small.png", pixels))
    grid, flat = coordinate_grid(height, width), image.flat()
    assert flat.shape == (height * width, 3)
    for k in range(height * width):
        i, j = k // width, k % width
        assert grid[k].tolist() == pytest.approx([-1 + 2 * i / (height - 1), -1 + 2 * j / (width - 1)])
        assert torch.equal(flat[k], image.values[i, j])
        np.testing.assert_allclose(flat[k].numpy(), pixels[i, j] / 255.0, atol=1e-7)


# --- errors -------------------------------------------------------------------------------------------------------

def written(path, data):
    path.write_bytes(data)
    return path


def truncated(path, rgb):
    write_rgb(path, rgb)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.png", "no such file or sample image.*missing.png"),
        (lambda d: d, "is a directory"),
        (lambda d: written(d / "empty.png", b""), "empty.png.*empty"),
        (lambda d: written(d / "notes.png", b"not a picture"), "notes.png.*not an image"),
        (lambda d: truncated(d / "cut.png", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "cut.png.*truncated"),
        (lambda d: truncated(d / "cut.jpg", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "cut.jpg.*truncated"),
        (lambda d: "no_such_sample", "no_such_sample.*samples: astronaut"),
        (lambda d: "", "empty string"),
    ],
    ids=["missing", "directory", "empty", "text", "truncated-png", "truncated-jpeg", "unknown-sample", "blank"],
)
def test_bad_sources_raise_data_error(tmp_path, make, expected):
    source = make(tmp_path)
    with pytest.raises(DataError, match=expected) as error:
        load_image(source)
    assert "\n" not in str(error.value)
    if source != "":
        assert str(source).split("/")[-1] in str(error.value)


@pytest.mark.parametrize("size", ["0", "-3", "abc", 0, -3, "2x0", "1x2x3", "", True])
def test_bad_size_raises_config_error(size):
    with pytest.raises(ConfigError, match=f"size.*{size!r}"):
        load_image("camera", size=size)


def test_crop_larger_than_image(landscape):
    with pytest.raises(ConfigError, match=r"crop 50x10 .*wide\.png \(40x60\)$"):
        load_image(landscape, crop="50x10")
    with pytest.raises(ConfigError, match=r"crop 30x30 .*20x30 after resizing"):
        load_image(landscape, size=20, crop="30")
    with pytest.raises(ConfigError, match="crop.*'abc'"):
        load_image(landscape, crop="abc")


# --- saving -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_save_image_round_trip(tmp_path, channels):
    levels = RNG.integers(0, 256, (6, 9, channels)) / 255.0
    path = tmp_path / "out" / "reconstruction.png"
    path.parent.mkdir()
    path.write_bytes(b"old contents")  # replaced, not appended to
    save_image(path, torch.tensor(levels, dtype=torch.float32, requires_grad=True))
    assert [p.name for p in path.parent.iterdir()] == ["reconstruction.png"]  # no temporary file left behind
    with Image.open(path) as written:
        assert written.format == "PNG" and written.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    np.testing.assert_allclose(load_image(path).values.numpy(), levels, atol=1e-6)


def test_save_image_clips_and_rejects_nan(tmp_path):
    save_image(tmp_path / "clipped.png", np.array([[[-0.5], [1.5]]]))
    assert load_image(tmp_path / "clipped.png").values.flatten().tolist() == [0.0, 1.0]
    with pytest.raises(DataError, match="nan.png.*NaN"):
        save_image(tmp_path / "nan.png", np.full((2, 2, 3), np.nan))
    with pytest.raises(DataError, match="shape"):
        save_image(tmp_path / "five.png", np.zeros((2, 2, 5)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clipped.png"]
