"""Labelled image data sets: the built-in ones, the fixed texture split, and users' folders with their errors."""

import numpy as np
import pytest

from visionlab.data.datasets import digits, faces, image_folder, load_dataset, textures
from visionlab.data.images import save_image
from visionlab.util.errors import DataError


def test_digits():
    d = digits()
    assert d.images.shape == (1797, 8, 8) and d.images.dtype == np.float32
    assert 0 <= d.images.min() and d.images.max() <= 1 and d.class_names == [str(i) for i in range(10)]


def test_stratified_split_is_fixed_by_the_seed():
    d = digits()
    train, test = d.split(test_size=0.25, seed=0)
    assert len(train) + len(test) == 1797 and len(test) == 450
    # stratified: every class keeps its share within one image
    for c in range(10):
        share = (test.labels == c).sum() / (d.labels == c).sum()
        assert abs(share - 0.25) < 0.02
    again = d.split(test_size=0.25, seed=0)[1]
    assert np.array_equal(test.labels, again.labels) and np.array_equal(test.images, again.images)


def test_faces_are_half_faces():
    d = faces()
    assert d.images.shape == (200, 25, 25) and np.bincount(d.labels).tolist() == [100, 100]


def test_textures_train_and_test_come_from_disjoint_halves():
    d = textures()
    train, test = d.split()
    assert len(train) == len(test) == 3 * 15 * 7 and d.images.shape[1:] == (64, 64)
    # No test patch appears among the training patches (the halves do not overlap).
    train_set = {t.tobytes() for t in train.images}
    assert not any(t.tobytes() in train_set for t in test.images)


def make_folder(root, classes, per_class=3, size=(20, 30)):
    rng = np.random.default_rng(0)
    for name in classes:
        for i in range(per_class):
            save_image(root / name / f"{i}.png", rng.random((*size, 3)))
    return root


def test_image_folder_reads_classes_resized_to_grey(tmp_path):
    d = image_folder(make_folder(tmp_path / "pets", ["cat", "dog"]), image_size=(16, 24))
    assert d.class_names == ["cat", "dog"] and d.images.shape == (6, 16, 24)
    assert np.bincount(d.labels).tolist() == [3, 3] and d.sources[0].endswith("cat/0.png")


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such data set or folder"):
        load_dataset(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders with images"):
        image_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="one class"):
        image_folder(make_folder(tmp_path / "one", ["only"]))
    root = make_folder(tmp_path / "bad", ["a", "b"])
    (root / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        image_folder(root)
    root = make_folder(tmp_path / "hole", ["a", "b"])
    (root / "c").mkdir()
    with pytest.raises(DataError, match="without images.*c"):
        image_folder(root)
