"""Labelled image data sets for classification, built in or read from the user's folders (no downloads).

Built in (design.md):

- ``digits``: scikit-learn's 1,797 handwritten digits (UCI), 8 x 8 pixels, 10 classes;
- ``faces``: scikit-image's LFW subset, 100 faces and 100 non-faces, 25 x 25 pixels (HOG's classic task);
- ``textures``: scikit-image's brick, grass and gravel photos (512 x 512) cut into 64 x 64 patches (stride 32); the
  training patches come from the left half of each photo and the test patches from the right half, so that no test
  pixel was ever seen in training (a random split of overlapping patches would leak).

A folder holds one sub-folder per class (``root/cat/*.png``, ``root/dog/*.jpg``); every image is read as grey and
resized to ``image_size`` so that all feature vectors have one length. Loading checks what it reads: an empty folder,
a file that does not decode, fewer than two classes, and says which file or folder is wrong.

Shapes: N images, H, W; images are grey float32 in [0, 1], (N, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from visionlab.data.images import load_image
from visionlab.util.errors import DataError
from visionlab.util.io import list_folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; a folder without any is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    files = sorted(f for f in list_folder(folder) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
TEXTURES = ("brick", "grass", "gravel")


@dataclass(eq=False)
class ImageDataset:
    """Grey images with integer labels, and (for some data sets) a fixed train / test split."""

    name: str
    images: np.ndarray  # (N, H, W) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64 in [0, len(class_names))
    class_names: list[str]
    is_test: np.ndarray | None = None  # (N,) bool: a fixed split, or None for a random stratified one
    sources: list[str] | None = None  # a file (or sample) per image, for error messages and figures

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        h, w = self.images.shape[1:3]
        return f"ImageDataset({self.name!r}, {len(self)} images of {h}x{w}, classes {self.class_names})"

    def split(self, *, test_size: float = 0.25, seed: int = 0) -> tuple["ImageDataset", "ImageDataset"]:
        """(train, test): the fixed split if the data set has one, else a stratified random split."""
        index = np.arange(len(self))
        if self.is_test is not None:
            train, test = index[~self.is_test], index[self.is_test]
        else:
            train, test = train_test_split(index, test_size=test_size, stratify=self.labels, random_state=seed)
        return self.subset(train, "train"), self.subset(test, "test")

    def subset(self, index: np.ndarray, part: str) -> "ImageDataset":
        sources = None if self.sources is None else [self.sources[i] for i in index]
        return ImageDataset(f"{self.name}/{part}", self.images[index], self.labels[index], self.class_names,
                            None, sources)


def digits() -> ImageDataset:
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)  # 0-16 grey levels -> [0, 1]
    return ImageDataset("digits", images, data.target.astype(np.int64), [str(c) for c in data.target_names])


def faces() -> ImageDataset:
    images = skimage.data.lfw_subset().astype(np.float32)  # (200, 25, 25): the first 100 are faces
    labels = np.array([1] * 100 + [0] * 100, dtype=np.int64)
    return ImageDataset("faces", images, labels, ["non-face", "face"])


def textures(*, patch: int = 64, stride: int = 32) -> ImageDataset:
    images, labels, is_test = [], [], []
    for label, name in enumerate(TEXTURES):
        photo = getattr(skimage.data, name)().astype(np.float32) / 255.0  # (512, 512)
        half = photo.shape[1] // 2
        for test, part in ((False, photo[:, :half]), (True, photo[:, half:])):
            for y in range(0, part.shape[0] - patch + 1, stride):
                for x in range(0, part.shape[1] - patch + 1, stride):
                    images.append(part[y:y + patch, x:x + patch])
                    labels.append(label)
                    is_test.append(test)
    return ImageDataset("textures", np.stack(images), np.array(labels, dtype=np.int64), list(TEXTURES),
                        np.array(is_test))


BUILTIN_DATASETS = {"digits": digits, "faces": faces, "textures": textures}


def image_folder(root: str | Path, *, image_size: tuple[int, int] = (64, 64)) -> ImageDataset:
    """One sub-folder per class; every image read as grey and resized to ``image_size`` (H, W)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"no such data set or folder: {root} (built in: {', '.join(BUILTIN_DATASETS)})")
    classes = sorted(p for p in list_folder(root) if p.is_dir() and not p.name.startswith("."))
    files = {c.name: sorted(f for f in list_folder(c) if f.suffix.lower() in IMAGE_SUFFIXES) for c in classes}
    if not classes or not any(files.values()):
        raise DataError(f"{root} has no class sub-folders with images ({', '.join(IMAGE_SUFFIXES)}); expected "
                        f"{root}/<class>/<image>")
    empty = [name for name, found in files.items() if not found]
    if empty:
        raise DataError(f"class folder(s) without images in {root}: {', '.join(empty)}")
    if len(classes) < 2:
        raise DataError(f"{root} has one class ({classes[0].name}); a classifier needs at least two")
    images, labels, sources = [], [], []
    for label, (name, paths) in enumerate(files.items()):
        for path in paths:
            images.append(read_grey(path, image_size))
            labels.append(label)
            sources.append(str(path))
    return ImageDataset(root.name, np.stack(images), np.array(labels, dtype=np.int64), list(files), None, sources)


def read_grey(path: str | Path, image_size: tuple[int, int]) -> np.ndarray:
    """One image file as grey (H, W) float32 in [0, 1], resized to ``image_size``: how folders are read."""
    values = load_image(path, size=f"{image_size[0]}x{image_size[1]}").values.numpy()  # (H, W, C), checked
    return _grey(values)


def load_dataset(name: str, *, image_size: tuple[int, int] = (64, 64)) -> ImageDataset:
    """A built-in data set by name, or a folder of class sub-folders."""
    if name in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[name]()
    return image_folder(name, image_size=image_size)


def _grey(values: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W): ITU-R 601 luma for colour, the channel itself for grey; alpha is dropped."""
    if values.shape[2] >= 3:
        return values[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return values[..., 0]
