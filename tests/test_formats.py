"""Users' classic data set files: MNIST IDX (plain and gzip), CIFAR python batches, .npz, and what each refuses."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from visionlab.data.datasets import ImageDataset
from visionlab.data.formats import ArrayDataset, cifar, load_arrays, load_npz, mnist, read_idx
from visionlab.util.errors import DataError


def idx_bytes(values: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: 0x00 0x00 <type code> <ndim>, big-endian uint32 sizes, then the values (big-endian)."""
    header = bytes([0, 0, code, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.astype(values.dtype.newbyteorder(">")).tobytes()


def write(path, data: bytes):
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_mnist(root, *, n_train=6, n_test=4, gz=False):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write(root / f"{stem}-images-idx3-ubyte{ext}", idx_bytes(rng.integers(0, 256, (n, 5, 4), dtype=np.uint8)))
        write(root / f"{stem}-labels-idx1-ubyte{ext}", idx_bytes(np.arange(n, dtype=np.uint8) % 10))
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_folder_gives_the_fixed_split(tmp_path, gz):
    d = load_arrays(make_mnist(tmp_path / "mnist", gz=gz))
    assert isinstance(d, ImageDataset) and d.images.shape == (10, 5, 4) and d.images.dtype == np.float32
    assert d.labels.dtype == np.int64 and d.labels.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    assert d.is_test.tolist() == [False] * 6 + [True] * 4 and d.class_names == [str(i) for i in range(10)]
    train, test = d.split()
    assert len(train) == 6 and len(test) == 4 and test.sources[0].endswith("t10k-images-idx3-ubyte" +
                                                                            (".gz" if gz else "") + "[0]")
    raw = np.frombuffer(gzip.decompress((tmp_path / "mnist/train-images-idx3-ubyte.gz").read_bytes()) if gz else
                        (tmp_path / "mnist/train-images-idx3-ubyte").read_bytes(), np.uint8, offset=16)
    assert np.allclose(d.images[:6].ravel(), raw / 255.0)  # v -> v / 255, row-major


def test_idx_header_gives_dtype_and_shape(tmp_path):
    values = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 5
    read = read_idx(write(tmp_path / "x.idx", idx_bytes(values, code=0x0B)))
    assert read.dtype == np.int16 and read.dtype.isnative and np.array_equal(read, values)


def test_idx_errors_say_which_file_and_what(tmp_path):
    root = make_mnist(tmp_path / "m")
    images = root / "train-images-idx3-ubyte"
    good = images.read_bytes()

    images.write_bytes(b"\x08\x03" + good[2:])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: magic number 0x08030803 is not an IDX header"):
        mnist(root)
    images.write_bytes(good[:-3])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated: a 6x5x4 array of uint8 takes 136"):
        mnist(root)
    images.write_bytes(good[:10])
    with pytest.raises(DataError, match="truncated header"):
        mnist(root)
    images.write_bytes(idx_bytes(np.zeros((6, 5, 4), np.int16), code=0x0B))
    with pytest.raises(DataError, match=r"holds int16 of shape \(6, 5, 4\); MNIST needs uint8 \(N, H, W\), magic "
                                        r"0x00000803"):
        mnist(root)
    images.write_bytes(good)

    labels = root / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte has 6 images but .*train-labels-idx1-ubyte has 5"):
        mnist(root)
    labels.write_bytes(idx_bytes(np.array([0, 1, 2, 12, 4, 11], np.uint8)))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: label 12 at index 3 is outside 0..9 \(2 labels"):
        mnist(root)
    assert len(mnist(root, class_names=[f"c{i}" for i in range(13)])) == 10  # more classes: name them
    labels.unlink()
    with pytest.raises(DataError, match="found train-images-idx3-ubyte but not train-labels-idx1-ubyte"):
        mnist(root)


def test_corrupt_gzip_is_a_data_error(tmp_path):
    root = make_mnist(tmp_path, gz=True)
    path = root / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])  # a gzip stream cut short
    with pytest.raises(DataError, match="cannot read .*t10k-images-idx3-ubyte.gz"):
        load_arrays(root)


def cifar_batch(n, rng, labels_key="labels", num_classes=10):
    return {b"batch_label": b"batch", labels_key.encode(): rng.integers(0, num_classes, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


def make_cifar10(root, n=5):
    rng = np.random.default_rng(0)
    root.mkdir()
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        with open(root / name, "wb") as f:
            pickle.dump(cifar_batch(n, rng), f)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": n, b"num_vis": 3072}, f)
    return root


def test_cifar10_batches(tmp_path):
    d = load_arrays(make_cifar10(tmp_path / "cifar-10-batches-py"))
    assert isinstance(d, ArrayDataset) and d.images.shape == (15, 32, 32, 3) and d.images.dtype == np.float32
    assert d.class_names[:2] == ["airplane", "automobile"] and d.is_test.sum() == 5
    # a row of 'data' is the red plane, then green, then blue, each 32 x 32 row-major
    with open(tmp_path / "cifar-10-batches-py/data_batch_1", "rb") as f:
        row = pickle.load(f)[b"data"][2]
    assert np.isclose(d.images[2, 1, 5, 0], row[37] / 255) and np.isclose(d.images[2, 1, 5, 2], row[2048 + 37] / 255)
    grey = d.to_grey()
    assert grey.images.shape == (15, 32, 32) and len(d.split()[1]) == 5


@pytest.mark.parametrize("label,count", [("fine", 100), ("coarse", 20)])
def test_cifar100_fine_and_coarse(tmp_path, label, count):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    for name, n in (("train", 6), ("test", 3)):
        batch = cifar_batch(n, rng, "fine_labels", 100)
        batch[b"coarse_labels"] = rng.integers(0, 20, n).tolist()
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)
    with open(root / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [b"f%d" % i for i in range(100)],
                     b"coarse_label_names": [b"c%d" % i for i in range(20)]}, f)
    d = cifar(root, label=label)
    assert len(d.class_names) == count and d.images.shape == (9, 32, 32, 3) and d.is_test.sum() == 3


def test_cifar_files_from_old_numpy_are_read(tmp_path):
    # The real batches name numpy.core.multiarray._reconstruct (NumPy < 2 spelling); NumPy 2 writes numpy._core.
    root = make_cifar10(tmp_path / "c")
    batch = cifar_batch(3, np.random.default_rng(3))
    data = pickle.dumps(batch, protocol=3)  # protocol 3: GLOBAL opcodes are plain "module\nname\n" text
    old = data.replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")
    assert old != data
    (root / "test_batch").write_bytes(old)
    d = cifar(root)
    assert np.isclose(d.images[-1, 0, 0, 0], batch[b"data"][-1, 0] / 255) and d.labels[-3:].tolist() == batch[b"labels"]


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    root = make_cifar10(tmp_path / "c")
    marker = tmp_path / "pwned"
    with open(root / "data_batch_2", "wb") as f:
        pickle.dump({b"labels": [0], b"data": RunsCode(marker)}, f)
    with pytest.raises(DataError, match=r"data_batch_2: refused to unpickle (posix|os)\.system"):
        load_arrays(root)
    assert not marker.exists()


def test_cifar_errors(tmp_path):
    root = make_cifar10(tmp_path / "c")
    rng = np.random.default_rng(0)
    batch = cifar_batch(4, rng)
    batch[b"labels"] = [0, 1, 10, 2]
    with open(root / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(DataError, match=r"test_batch \(labels\): label 10 at index 2 is outside 0..9"):
        cifar(root)
    batch[b"labels"] = [0, 1]
    with open(root / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(DataError, match="test_batch: 4 images but 2 labels"):
        cifar(root)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"labels": [0], b"data": np.zeros((1, 1024), np.uint8)}, f)
    with pytest.raises(DataError, match=r"'data' must be a uint8 array \(N, 3072\), found uint8 \(1, 1024\)"):
        cifar(root)
    (root / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read .*test_batch: not a readable pickle"):
        cifar(root)
    (root / "test_batch").unlink()
    (root / "batches.meta").unlink()
    with pytest.raises(DataError, match="missing batches.meta"):
        cifar(root)


def test_npz_grey_and_colour(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "grey.npz", images=rng.random((5, 6, 7)).astype(np.float32), labels=np.array([0, 1, 0, 1, 2]))
    d = load_arrays(tmp_path / "grey.npz")
    assert isinstance(d, ImageDataset) and d.images.shape == (5, 6, 7) and d.class_names == ["0", "1", "2"]
    np.savez(tmp_path / "rgb.npz", images=rng.integers(0, 256, (4, 6, 7, 3), dtype=np.uint8),
             labels=np.array([1, 0, 1, 0]), class_names=np.array(["cat", "dog"]),
             is_test=np.array([False, False, True, True]))
    d = load_arrays(tmp_path / "rgb.npz")
    assert isinstance(d, ArrayDataset) and d.images.shape == (4, 6, 7, 3) and d.class_names == ["cat", "dog"]
    assert d.images.max() <= 1 and [len(part) for part in d.split()] == [2, 2]


def test_npz_errors(tmp_path):
    path = tmp_path / "d.npz"
    images = np.zeros((3, 4, 4), np.float32)
    labels = np.array([0, 1, 1])
    cases = [
        (dict(images=images), r"no array 'labels' \(it holds: images\)"),
        (dict(images=images, labels=np.array([0, "x", None], dtype=object)), "array 'labels' holds Python objects"),
        (dict(images=images, labels=labels[:2]), r"'labels' has shape \(2,\), expected \(3,\)"),
        (dict(images=images, labels=labels, class_names=np.array(["a"])), "label 1 at index 1 is outside 0..0"),
        (dict(images=images, labels=labels.astype(float)), "labels must be a 1-D array of integers"),
        (dict(images=np.zeros((3, 4, 4, 2)), labels=labels), r"'images' has shape \(3, 4, 4, 2\)"),
        (dict(images=np.where(np.arange(3)[:, None, None] == 1, np.nan, images), labels=labels),
         r"\('images'\): image 1 contains NaN"),
        (dict(images=images + 1.5, labels=labels), r"image 0 has values in \[1.5, 1.5\], expected \[0, 1\]"),
    ]
    for arrays, message in cases:
        np.savez(path, **arrays)
        with pytest.raises(DataError, match=message):
            load_npz(path)
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read .*d.npz"):
        load_npz(path)


def test_unrecognised_paths(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_arrays(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a data set file this reader knows"):
        load_arrays(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="not a data set file this reader knows"):
        load_arrays(tmp_path)


@pytest.mark.parametrize("names", [
    ("emnist-letters-train-images-idx3-ubyte.gz", "emnist-letters-train-labels-idx1-ubyte.gz",
     "emnist-letters-test-images-idx3-ubyte.gz", "emnist-letters-test-labels-idx1-ubyte.gz"),
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ("kmnist-train-images.idx3-ubyte", "kmnist-train-labels.idx1-ubyte", "kmnist-t10k-images.idx3-ubyte",
     "kmnist-t10k-labels.idx1-ubyte"),
])
def test_idx_files_are_found_by_pattern(tmp_path, names):
    rng = np.random.default_rng(1)
    for (images, labels), n in zip((names[:2], names[2:]), (5, 3)):
        write(tmp_path / images, idx_bytes(rng.integers(0, 256, (n, 4, 4), dtype=np.uint8)))
        write(tmp_path / labels, idx_bytes(np.arange(1, n + 1, dtype=np.uint8) * (4 if "emnist" in labels else 1)))
    d = load_arrays(tmp_path)
    assert d.images.shape == (8, 4, 4) and d.is_test.tolist() == [False] * 5 + [True] * 3
    if names[0].startswith("emnist"):  # EMNIST letters count from 1; a prefixed set has as many classes as it needs
        assert d.labels.tolist() == [4, 8, 12, 16, 20, 4, 8, 12] and d.class_names == [str(k) for k in range(21)]
    else:
        assert d.labels.tolist() == [1, 2, 3, 4, 5, 1, 2, 3] and d.class_names == [str(k) for k in range(10)]


def test_idx_names_without_a_split_and_the_errors_that_name_the_patterns(tmp_path):
    rng = np.random.default_rng(2)
    write(tmp_path / "digits-images-idx3-ubyte.gz", idx_bytes(rng.integers(0, 256, (6, 3, 3), dtype=np.uint8)))
    write(tmp_path / "digits-labels-idx1-ubyte.gz", idx_bytes(np.arange(6, dtype=np.uint8) % 3))
    d = load_arrays(tmp_path)
    assert len(d) == 6 and d.is_test is None
    write(tmp_path / "other-images-idx3-ubyte", idx_bytes(rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)))
    with pytest.raises(DataError, match="IDX files of 2 data sets .*'digits-', 'other-'.*folder of its own"):
        load_arrays(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no MNIST IDX files \(expected \[PREFIX\]train-images-idx3-ubyte"):
        mnist(empty)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"\[PREFIX\]train-images-idx3-ubyte.*one sub-folder per class") as error:
        load_arrays(empty)
    assert "image_folder" not in str(error.value)
