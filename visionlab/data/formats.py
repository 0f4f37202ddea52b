"""Readers for the classic data set files users already have: MNIST IDX files, CIFAR python batches and ``.npz``.

Nothing is downloaded: point :func:`load_arrays` at what is on disk and it picks the reader.

**MNIST IDX** (LeCun et al. 1998; Fashion-MNIST, KMNIST and EMNIST use the same files). A big-endian header, then
the values::

    magic = 0x00 0x00 <type code> <d>,   d sizes as unsigned 32-bit integers,   prod(sizes) values

with type codes 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. MNIST images have magic
0x00000803 (uint8, 3 dimensions: N, 28, 28) and labels 0x00000801 (uint8, N). A folder holding
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``
(each may be ``.gz``) gives the official split: the t10k images are the fixed test set.

**CIFAR-10 / CIFAR-100** (Krizhevsky 2009), the "python version": each batch is a pickled dict whose ``data`` is a
uint8 array (N, 3072), one row per image: the red 32 x 32 plane, then green, then blue, so a row reads
``(c h w) -> h w c``; ``labels`` (CIFAR-100: ``fine_labels`` and ``coarse_labels``) is a list of ints, and
``batches.meta`` / ``meta`` holds the class names. Unpickling runs whatever functions the file names, so batches are
read by an unpickler that knows only NumPy's three array-building names and refuses every other one.

**.npz**: ``images`` (N, H, W) or (N, H, W, C) with C = 1 or 3, uint8, uint16 or float in [0, 1]; ``labels`` (N,)
integers; optionally ``class_names`` (K,) strings and ``is_test`` (N,) bool. Read with ``allow_pickle=False``.

Grey images come back as an :class:`~visionlab.data.datasets.ImageDataset` (N, H, W); colour images as an
:class:`ArrayDataset` (N, H, W, C). Both hold float32 in [0, 1] and int64 labels; ``uint8`` v becomes v / 255.

Example::

    >>> from visionlab.data.formats import load_arrays
    >>> mnist = load_arrays("data/mnist")              # the four IDX files
    >>> train, test = mnist.split()                     # the official 60,000 / 10,000 split
    >>> load_arrays("data/cifar-10-batches-py").images.shape
    (60000, 32, 32, 3)

Shapes: N images, H, W, C channels, K classes.
"""

from __future__ import annotations

import gzip
import math
import pickle
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from einops import rearrange

from visionlab.data.datasets import ImageDataset
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import list_folder

try:
    from numpy._core.multiarray import _reconstruct  # NumPy >= 2
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# The only names a CIFAR batch asks for: ndarray.__reduce__ gives (_reconstruct, (ndarray, shape, dtype), state).
# Old pickles spell the module numpy.core, NumPy 2 writes numpy._core; both map to the same function.
PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


@dataclass(eq=False)
class ArrayDataset:
    """Colour images with integer labels: the :class:`ImageDataset` fields, images (N, H, W, C)."""

    name: str
    images: np.ndarray  # (N, H, W, C) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64 in [0, len(class_names))
    class_names: list[str]
    is_test: np.ndarray | None = None  # (N,) bool: a fixed split, or None for a random stratified one
    sources: list[str] | None = None  # "file[index]" per image, for error messages and figures

    # One split rule for every data set: the fixed split if there is one, else a stratified random one.
    split = ImageDataset.split
    __len__ = ImageDataset.__len__

    def __repr__(self) -> str:
        h, w, c = self.images.shape[1:]
        return f"ArrayDataset({self.name!r}, {len(self)} images of {h}x{w}x{c}, {len(self.class_names)} classes)"

    def subset(self, index: np.ndarray, part: str) -> "ArrayDataset":
        sources = None if self.sources is None else [self.sources[i] for i in index]
        return ArrayDataset(f"{self.name}/{part}", self.images[index], self.labels[index], self.class_names,
                            None, sources)

    def to_grey(self) -> ImageDataset:
        """The same data as grey (N, H, W) by ITU-R 601 luma, for readers of :class:`ImageDataset` (HOG, SVM)."""
        grey = self.images @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (N, H, W, 3) -> (N, H, W)
        return ImageDataset(self.name, grey, self.labels, self.class_names, self.is_test, self.sources)


# ---- shared checks ---------------------------------------------------------------------------------------------

def to_unit_range(values: np.ndarray, *, where: str, item: str = "image") -> np.ndarray:
    """uint8 / uint16 -> v / (2^b - 1); floats must be finite and in [0, 1]. Errors name ``item`` i (axis 0)."""
    if values.dtype in (np.uint8, np.uint16):
        return values.astype(np.float32) / float(np.iinfo(values.dtype).max)
    if not np.issubdtype(values.dtype, np.floating):
        raise DataError(f"{where}: values of type {values.dtype}; expected uint8, uint16 or float in [0, 1]")
    flat = values.reshape(len(values), -1)  # (N, everything else)
    bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    if len(bad):
        raise DataError(f"{where}: {item} {bad[0]} contains NaN or infinite values ({len(bad)} {item}s in all)")
    bad = np.flatnonzero((flat < 0).any(axis=1) | (flat > 1).any(axis=1))
    if len(bad):
        row = flat[bad[0]]
        raise DataError(f"{where}: {item} {bad[0]} has values in [{row.min():g}, {row.max():g}], expected [0, 1] "
                        f"({len(bad)} {item}s out of range)")
    return values.astype(np.float32)


def check_labels(labels, num_classes: int, *, where: str) -> np.ndarray:
    """Labels as (N,) int64 in [0, num_classes); an error names the first bad index."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be a 1-D array of integers, got {labels.dtype} of shape {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DataError(f"{where}: label {labels[bad[0]]} at index {bad[0]} is outside 0..{num_classes - 1} "
                        f"({len(bad)} labels out of range)")
    return labels.astype(np.int64)


# ---- MNIST IDX -------------------------------------------------------------------------------------------------

def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (``.gz`` too) as a NumPy array in native byte order, its shape taken from the header."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; a cut gzip stream an EOFError
        raise DataError(f"cannot read {path}: {error}") from None
    magic = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise DataError(f"{path}: magic number 0x{magic:08X} is not an IDX header (expected 0x0000TTDD: type code "
                        f"TT in {', '.join(f'{t:02X}' for t in IDX_TYPES)}, DD >= 1 dimensions)")
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, the file has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"{path}: {problem}: a {'x'.join(map(str, shape))} array of {dtype.name} takes {expected} "
                        f"bytes with the header, the file has {len(raw)}")
    values = np.frombuffer(raw, dtype, count=math.prod(shape), offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


# [prefix][train | t10k | test-]images-idx3-ubyte / ...labels-idx1-ubyte, a dot for the dash before idx on some
# mirrors, plain or .gz: MNIST, Fashion-MNIST and KMNIST (no prefix), EMNIST ("emnist-letters-"), or one unsplit pair.
IDX_NAME = re.compile(r"(?P<prefix>.*?)(?:(?P<part>train|t10k|test)-)?(?P<what>images|labels)[-.]"
                      r"idx(?P<ndim>[13])-ubyte(?:\.gz)?")
IDX_ACCEPTED = ("[PREFIX]train-images-idx3-ubyte with [PREFIX]train-labels-idx1-ubyte, and / or t10k- (or test-) "
                "images and labels, or one unsplit [PREFIX]images-idx3-ubyte / labels-idx1-ubyte pair; each plain or "
                ".gz, a dot allowed before idx")


def _idx_files(root: Path) -> tuple[str, dict[tuple[str, str], Path]]:
    """The prefix and {(part, "images" | "labels"): file} of the one IDX data set in ``root``; part is "train",
    "test" or ""."""
    found = {}
    for path in sorted(p for p in list_folder(root) if p.is_file()):
        match = IDX_NAME.fullmatch(path.name)
        if match is None or match["ndim"] != ("3" if match["what"] == "images" else "1"):
            continue
        part = {"t10k": "test", None: ""}.get(match["part"], match["part"])
        found.setdefault(match["prefix"], {}).setdefault((part, match["what"]), []).append(path)
    if len(found) > 1:
        raise DataError(f"{root}: IDX files of {len(found)} data sets ("
                        f"{', '.join(repr(p or '(no prefix)') for p in found)}); put each in a folder of its own")
    prefix, files = next(iter(found.items()), ("", {}))
    for key, paths in files.items():
        if len(paths) > 1:
            raise DataError(f"{root}: both {paths[0].name} and {paths[1].name}; keep one of them")
    return prefix, {key: paths[0] for key, paths in files.items()}


def _idx_pair(images_path: Path, labels_path: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    for path, values, ndim, magic, what in ((images_path, images, 3, 0x803, "(N, H, W)"),
                                            (labels_path, labels, 1, 0x801, "(N,)")):
        if values.dtype != np.uint8 or values.ndim != ndim:
            raise DataError(f"{path}: holds {values.dtype.name} of shape {values.shape}; MNIST needs uint8 {what}, "
                            f"magic 0x{magic:08X}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(images) == 0:
        raise DataError(f"{images_path} holds no images")
    return images, check_labels(labels, len(class_names), where=str(labels_path))


def mnist(root: str | Path, *, class_names: list[str] | None = None) -> ImageDataset:
    """A folder of MNIST-style IDX files: the train and / or t10k pairs; t10k is the fixed test set.

    Files are found by pattern (``IDX_ACCEPTED``): MNIST's, Fashion-MNIST's and KMNIST's names, and EMNIST's
    (``emnist-letters-train-images-idx3-ubyte.gz``, ``emnist-letters-test-...``). ``class_names`` defaults to
    "0" .. "9" (a prefixed set such as EMNIST's: "0" up to its largest label); pass your own for other classes.
    """
    root = Path(root)
    (prefix, files), parts = _idx_files(root), []
    for part in ("train", "test", ""):
        images, labels = files.get((part, "images")), files.get((part, "labels"))
        if (images is None) != (labels is None):
            found = images or labels
            wanted = found.name.replace("images", "labels").replace("idx3", "idx1") if labels is None else \
                found.name.replace("labels", "images").replace("idx1", "idx3")
            raise DataError(f"{root}: found {found.name} but not {wanted.removesuffix('.gz')} (plain or .gz)")
        if images is not None:
            parts.append((images, labels, part == "test"))
    if not parts:
        raise DataError(f"{root}: no MNIST IDX files (expected {IDX_ACCEPTED})")
    if class_names is None:  # "0" .. "9"; a prefixed set (EMNIST letters: 1 .. 26) as many as its labels need
        labels = [read_idx(labels) for _, labels, _ in parts] if prefix else []  # images are read first below
        tops = [int(v.max()) for v in labels if v.ndim == 1 and v.size and v.dtype == np.uint8]
        class_names = [str(k) for k in range(max([9, *tops]) + 1)]
    names = list(class_names)
    parts = [(images, *_idx_pair(images, labels, names), test) for images, labels, test in parts]
    if len({images.shape[1:] for _, images, _, _ in parts}) > 1:
        raise DataError(f"{root}: train images are {parts[0][1].shape[1:]} but t10k images {parts[1][1].shape[1:]}")
    images, labels, is_test, sources = _combine(parts)
    return ImageDataset(root.name, images, labels, names, is_test, sources)


def _combine(parts: list[tuple[Path, np.ndarray, np.ndarray, bool]]) -> tuple:
    """(file, uint8 images, labels, is test data) per file -> float images, labels, fixed split or None, sources."""
    images = np.concatenate([images for _, images, _, _ in parts]).astype(np.float32) / 255.0
    labels = np.concatenate([labels for _, _, labels, _ in parts])
    is_test = np.concatenate([np.full(len(labels), test) for _, _, labels, test in parts])
    sources = [f"{path}[{i}]" for path, _, labels, _ in parts for i in range(len(labels))]
    return images, labels, is_test if 0 < is_test.sum() < len(is_test) else None, sources  # a split needs both


# ---- CIFAR python batches --------------------------------------------------------------------------------------

class _ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and NumPy arrays; refuses every other class or function."""

    def __init__(self, file, *, source: Path):
        super().__init__(file, encoding="bytes")  # CIFAR was pickled by Python 2: its str are bytes
        self.source = source

    def find_class(self, module: str, name: str):
        # Every callable a pickle can call is looked up here first, so refusing here means nothing else runs.
        if (module, name) in PICKLE_ALLOWED:
            return PICKLE_ALLOWED[(module, name)]
        raise DataError(f"{self.source}: refused to unpickle {module}.{name}: a CIFAR batch holds only dicts, lists, "
                        f"strings, numbers and NumPy arrays, and a pickle that names anything else could run code")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            batch = _ArrayUnpickler(file, source=path).load()
    except DataError:
        raise
    except Exception as error:  # damaged pickles raise UnpicklingError, EOFError, ValueError, TypeError, ...
        raise DataError(f"cannot read {path}: not a readable pickle ({type(error).__name__}: {error})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: holds a {type(batch).__name__}, expected the dict of a CIFAR batch")
    return {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in batch.items()}


def _entry(batch: dict, key: str, path: Path):
    if key not in batch:
        raise DataError(f"{path}: no entry {key!r} (it has: {', '.join(map(str, batch))})")
    return batch[key]


def _cifar_batch(path: Path, labels_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data = _entry(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array (N, 3072), found {found}")
    try:
        labels = check_labels(_entry(batch, labels_key, path), num_classes, where=f"{path} ({labels_key})")
    except ValueError:  # np.asarray of ragged nested lists
        raise DataError(f"{path}: {labels_key!r} is not a flat list of integers") from None
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} {labels_key}")
    return rearrange(data, "n (c h w) -> n h w c", c=3, h=32, w=32), labels  # (N, 32, 32, 3)


def _class_names(path: Path, key: str) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path.parent}: missing {path.name}, the file with the class names")
    names = _entry(_unpickle(path), key, path)
    if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{path}: {key!r} must be a non-empty list of strings")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def cifar(root: str | Path, *, label: str = "fine") -> ArrayDataset:
    """CIFAR-10 (``data_batch_*``, ``test_batch``, ``batches.meta``) or CIFAR-100 (``train``, ``test``, ``meta``).

    CIFAR-100's ``label`` picks the 100 "fine" classes or the 20 "coarse" superclasses. The test batch is the fixed
    test set. Images (N, 32, 32, 3).
    """
    root = Path(root)
    if label not in ("fine", "coarse"):
        raise ConfigError(f"CIFAR-100 label must be 'fine' or 'coarse', got {label!r}")
    train = sorted((p for p in root.glob("data_batch_*") if re.fullmatch(r"data_batch_\d+", p.name)),
                   key=lambda p: int(p.name[len("data_batch_"):]))  # data_batch_2 before data_batch_10
    if train or (root / "test_batch").is_file():  # CIFAR-10
        names = _class_names(root / "batches.meta", "label_names")
        files, labels_key = train + [root / "test_batch"], "labels"
    elif (root / "train").is_file() or (root / "test").is_file():  # CIFAR-100
        names = _class_names(root / "meta", f"{label}_label_names")
        files, labels_key = [root / "train", root / "test"], f"{label}_labels"
    else:
        raise DataError(f"{root}: no CIFAR batches (CIFAR-10: data_batch_1..5, test_batch; CIFAR-100: train, test)")
    parts = [(f, *_cifar_batch(f, labels_key, len(names)), f.name in ("test_batch", "test")) for f in files
             if f.is_file()]
    images, labels, is_test, sources = _combine(parts)
    return ArrayDataset(root.name, images, labels, names, is_test, sources)


# ---- .npz ------------------------------------------------------------------------------------------------------

def load_npz(path: str | Path) -> ImageDataset | ArrayDataset:
    """``images``, ``labels`` and optional ``class_names`` / ``is_test`` from an ``.npz``, without unpickling."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            head = file.read(6)
    except OSError as error:
        raise DataError(f"cannot read {path}: {(error.strerror or type(error).__name__).lower()}") from None
    # np.load guesses the format from these bytes and unpickles what it does not recognise: its error for a text
    # file would talk about pickles and allow_pickle, which is neither the problem nor something to switch on.
    if not head:
        raise DataError(f"cannot read {path}: the file is empty")
    if head == b"\x93NUMPY":
        raise DataError(f"{path}: holds a single array (.npy), expected an .npz archive with 'images' and 'labels'")
    if not head.startswith(b"PK"):
        raise DataError(f"cannot read {path}: not an .npz archive (it does not begin as a zip file does: damaged, or "
                        f"another format)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read {path}: not a readable .npz ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array, expected an .npz archive with 'images' and 'labels'")
    with archive:
        missing = sorted({"images", "labels"} - set(archive.files))
        if missing:
            raise DataError(f"{path}: no array {' or '.join(map(repr, missing))} (it holds: "
                            f"{', '.join(archive.files)}); expected 'images' (N, H, W[, C]) and 'labels' (N,)")
        arrays = {}
        for key in {"images", "labels", "class_names", "is_test"} & set(archive.files):
            try:
                arrays[key] = archive[key]
            except Exception as error:  # numpy refuses object arrays with a ValueError; damage raises many kinds
                why = ("holds Python objects (dtype=object), refused because unpickling can run code; save numbers "
                       "or strings") if "allow_pickle" in str(error) else f"is damaged ({error})"
                raise DataError(f"{path}: array {key!r} {why}") from None
    images, labels, names = arrays["images"], arrays["labels"], arrays.get("class_names")
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]  # (N, H, W, 1) -> (N, H, W)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3) or len(images) == 0:
        raise DataError(f"{path}: 'images' has shape {images.shape}; expected (N, H, W) or (N, H, W, C) with "
                        f"N >= 1 and C = 1 or 3")
    if labels.shape != (len(images),):
        raise DataError(f"{path}: 'labels' has shape {labels.shape}, expected ({len(images)},)")
    if names is not None and (names.ndim != 1 or names.dtype.kind not in "US"):
        raise DataError(f"{path}: 'class_names' must be a 1-D array of strings, got {names.dtype} {names.shape}")
    # without names, the classes are 0 .. the largest label, named by their number
    names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names.tolist()] \
        if names is not None else [str(k) for k in range(int(labels.max()) + 1 if labels.dtype.kind in "iu" else 0)]
    labels = check_labels(labels, len(names), where=f"{path} ('labels')")
    is_test = arrays.get("is_test")
    if is_test is not None and (is_test.dtype != bool or is_test.shape != labels.shape):
        raise DataError(f"{path}: 'is_test' must be bool ({len(labels)},), got {is_test.dtype} {is_test.shape}")
    images = to_unit_range(images, where=f"{path} ('images')")
    kind = ImageDataset if images.ndim == 3 else ArrayDataset
    return kind(path.stem, images, labels, names, is_test, [f"{path}[{i}]" for i in range(len(labels))])


# ---- dispatch --------------------------------------------------------------------------------------------------

def load_arrays(path: str | Path, **options) -> ImageDataset | ArrayDataset:
    """Read whatever ``path`` is: an ``.npz``, or a folder of MNIST IDX files or CIFAR python batches.

    ``options`` go to the reader: ``class_names`` for :func:`mnist`, ``label`` for :func:`cifar`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    names = {p.name for p in list_folder(path) if p.is_file()} if path.is_dir() else set()
    if path.is_file() and path.suffix == ".npz":
        return load_npz(path, **options)
    if any(re.search(r"idx[13]-ubyte(\.gz)?$", n) for n in names):
        return mnist(path, **options)
    if names & {"test_batch", "batches.meta", "train", "test", "meta"} or any(n.startswith("data_batch_")
                                                                           for n in names):
        return cifar(path, **options)
    raise DataError(f"{path}: not a data set file this reader knows: expected an .npz (images, labels), MNIST IDX "
                    f"files ({IDX_ACCEPTED}) or CIFAR python batches (data_batch_*, "
                    f"test_batch / train, test); a folder of images needs one sub-folder per class")
