"""Video data: moving digits (shapes, determinism, a label that needs time) and users' clip folders and errors."""

import time

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from visionlab.data.images import save_image
from visionlab.data.video import STEPS, load_videos, moving_digits, video_folder
from visionlab.util.errors import ConfigError, DataError


def test_moving_digits_shapes_split_and_classes():
    d = moving_digits(num_clips=400, frames=8, size=24, digit_size=10)
    assert d.clips.shape == (400, 8, 24, 24) and d.clips.dtype == np.float32
    assert 0 <= d.clips.min() and d.clips.max() <= 1 and d.sources is None
    assert d.class_names == ["E", "NE", "N", "NW", "W", "SW", "S", "SE"] and np.bincount(d.labels).tolist() == [50] * 8
    train, test = d.split()
    assert len(train) == 320 and len(test) == 80 and train.model_input().shape == (320, 1, 8, 24, 24)
    four = moving_digits(num_clips=40, frames=4, directions=4)
    assert four.class_names == ["E", "N", "W", "S"]


def test_moving_digits_are_deterministic_and_fast():
    start = time.perf_counter()
    a = moving_digits(num_clips=3000, frames=16, size=32, seed=5)
    elapsed = time.perf_counter() - start
    b = moving_digits(num_clips=3000, frames=16, size=32, seed=5)
    assert np.array_equal(a.clips, b.clips) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.is_test, b.is_test)
    assert not np.array_equal(moving_digits(num_clips=50, seed=5).clips, moving_digits(num_clips=50, seed=6).clips)
    assert elapsed < 5.0, f"3000 clips took {elapsed:.2f} s"


def decode_direction(clips, steps):
    """The direction whose shift best maps each frame onto the next: (N, T, H, W) -> (N,)."""
    errors = []
    for dy, dx in steps:
        moved = np.roll(clips[:, :-1], (dy, dx), axis=(2, 3))  # the wrap-around canvas is a roll
        errors.append(np.abs(moved - clips[:, 1:]).sum(axis=(1, 2, 3)))
    return np.argmin(errors, axis=0)


def test_the_direction_is_in_the_motion_not_in_a_frame():
    d = moving_digits(num_clips=2000, frames=6, size=16, digit_size=8, seed=1)
    # 1. The clip tells: every frame is the previous one shifted by the label's step, exactly.
    assert (decode_direction(d.clips, STEPS) == d.labels).all()
    # 2. The order carries it: the same frames played backwards are exactly the opposite direction (E <-> W, ...),
    #    so no function of the set of frames, ignoring their order, can give the label.
    assert (decode_direction(d.clips[:, ::-1], STEPS) == (d.labels + 4) % 8).all()
    # 3. One frame does not tell. Whatever the direction, a frame is the sprite at a uniformly random spot: a
    #    nearest-neighbour classifier on one frame is at chance (1/8) for the direction, on the pixels as on the
    #    shift-invariant |FFT|, while on that same |FFT| it reads the digit, so the frame is not simply blank.
    digit = moving_digits(num_clips=2000, frames=6, size=16, digit_size=8, seed=1, label="digit")
    assert np.array_equal(digit.clips, d.clips)
    train, test = ~d.is_test, d.is_test
    knn = KNeighborsClassifier(n_neighbors=5)
    spectrum = np.abs(np.fft.rfft2(d.clips[:, 0])).reshape(len(d), -1)
    for features in (d.clips[:, 0].reshape(len(d), -1), d.clips[:, 5].reshape(len(d), -1), spectrum):
        assert knn.fit(features[train], d.labels[train]).score(features[test], d.labels[test]) < 0.22
    assert knn.fit(spectrum[train], digit.labels[train]).score(spectrum[test], digit.labels[test]) > 0.5


def test_label_modes_agree_and_test_digits_are_unseen():
    kwargs = dict(num_clips=600, frames=4, size=20, digit_size=10, seed=2)
    direction, digit = moving_digits(**kwargs), moving_digits(label="digit", **kwargs)
    both = moving_digits(label="both", **kwargs)
    assert np.array_equal(both.labels, digit.labels * 8 + direction.labels) and len(both.class_names) == 80
    assert both.class_names[both.labels[0]] == f"{digit.labels[0]} {direction.class_names[direction.labels[0]]}"
    # On the wrapping canvas a frame holds exactly the sprite's pixels: their sorted values identify the sample.
    signature = [tuple(np.sort(frame[frame > 0])) for frame in direction.clips[:, 0]]
    train = {s for s, test in zip(signature, direction.is_test) if not test}
    assert not any(s in train for s, test in zip(signature, direction.is_test) if test)


def test_moving_digits_options_are_checked():
    with pytest.raises(ConfigError, match="directions must be 2, 4 or 8"):
        moving_digits(directions=6)
    with pytest.raises(ConfigError, match="label must be"):
        moving_digits(label="colour")
    with pytest.raises(ConfigError, match="speed"):
        moving_digits(size=8, digit_size=4, speed=4)


def write_frames(folder, count, size=(12, 10), rgb=False):
    for i in range(count):
        value = np.full((*size, 3 if rgb else 1), i / max(count - 1, 1), dtype=np.float32)
        save_image(folder / f"f{i}.png", value)


def make_videos(root):
    rng = np.random.default_rng(0)
    (root / "wave").mkdir(parents=True)
    np.save(root / "wave" / "a.npy", rng.integers(0, 256, (20, 12, 10), dtype=np.uint8))
    np.save(root / "wave" / "b.npy", rng.random((16, 24, 20, 3)).astype(np.float32))
    write_frames(root / "clap" / "c", 24)
    return root


def test_video_folder_reads_npy_and_frame_folders(tmp_path):
    d = video_folder(make_videos(tmp_path / "videos"), frames=16, size=(12, 10))
    assert d.clips.shape == (3, 16, 12, 10) and d.clips.dtype == np.float32
    assert d.class_names == ["clap", "wave"] and d.labels.tolist() == [0, 1, 1]
    assert d.sources[0].endswith("clap/c") and d.sources[1].endswith("wave/a.npy")
    # 24 frames -> 16: the middle of 16 equal segments, frames 0, 2, 3, 5, ... in name order (f2 before f10)
    picked = np.round(d.clips[0, :, 0, 0] * 23).astype(int)
    assert picked.tolist() == [int((k + 0.5) * 24 / 16) for k in range(16)]
    raw = np.load(tmp_path / "videos/wave/a.npy")
    assert np.allclose(d.clips[1, 0], raw[int(0.5 * 20 / 16)] / 255)  # uint8 v -> v / 255, no resize needed
    rgb = video_folder(tmp_path / "videos", frames=8, size=6, channels=3)
    assert rgb.clips.shape == (3, 8, 6, 6, 3) and rgb.model_input().shape == (3, 3, 8, 6, 6)
    assert load_videos(str(tmp_path / "videos"), frames=4, size=8).clips.shape == (3, 4, 8, 8)


def test_video_folder_errors_name_the_clip(tmp_path):
    root = make_videos(tmp_path / "v")
    bad = root / "wave" / "bad.npy"
    cases = [
        (np.zeros((5, 12, 10), np.uint8), "bad.npy: has 5 frames, needs at least 16"),
        (np.zeros((16, 12, 10, 2), np.uint8), r"bad.npy: shape \(16, 12, 10, 2\); expected \(T, H, W\)"),
        (np.zeros((12, 10), np.uint8), r"bad.npy: shape \(12, 10\); expected"),
        (np.where(np.arange(16)[:, None, None] == 7, np.nan, np.zeros((16, 4, 4))), "bad.npy: frame 7 contains NaN"),
        (np.full((16, 4, 4), 2.0), r"bad.npy: frame 0 has values in \[2, 2\], expected \[0, 1\]"),
        (np.zeros((16, 4, 4), np.int32), "bad.npy: values of type int32"),
        (np.array([None] * 16, dtype=object), "bad.npy: holds Python objects"),
    ]
    for array, message in cases:
        np.save(bad, array, allow_pickle=True)
        with pytest.raises(DataError, match=message):
            video_folder(root, frames=16)
    bad.unlink()

    write_frames(root / "clap" / "short", 5)
    with pytest.raises(DataError, match="short: has 5 frames, needs at least 16"):
        video_folder(root, frames=16)
    for f in (root / "clap" / "short").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="short: a clip folder without frame images"):
        video_folder(root, frames=16)
    write_frames(root / "clap" / "short", 16)
    save_image(root / "clap" / "short" / "f9.png", np.zeros((8, 8, 1)))
    with pytest.raises(DataError, match=r"f9.png: frame is 8x8, but f0.png of the same clip is 12x10"):
        video_folder(root, frames=16)


def test_video_folder_structure_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        video_folder(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="has no class sub-folders with clips"):
        video_folder(tmp_path)
    np.save(tmp_path / "a" / "x.npy", np.zeros((16, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"has one class \(a\)"):
        video_folder(tmp_path)
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="class folder.* without clips in .*: b"):
        video_folder(tmp_path)
