"""Segmentation data: the built-in ``shapes`` set and users' folders of images with masks.

**shapes.** Each image is a noisy background of a random colour with one to ``max_shapes`` shapes drawn by
scikit-image's ``draw.random_shapes`` (rectangles, circles and triangles of random colours and sizes). Every shape is
drawn on its own canvas, so its exact pixels are known: the mask gives each pixel its class (0 background, then one
class per kind of shape). Shapes never overlap (a shape that would is drawn again elsewhere). Everything comes from
one seed: the same seed gives the same images, the test split uses a seed of its own, so the splits never share an
image. Chance is low: a model must tell the kinds apart by their outline, not by their colour::

    image (N, 3, H, W) float32 in [0, 1]      mask (N, H, W) int64 in [0, 1 + number of kinds)

**Folders.** ``root/images/NAME.png`` with ``root/masks/NAME.png`` (any image format; the mask's grey values are the
class indices 0 .. K-1, and an optional ``root/classes.txt`` names them, one per line). Loading checks that every image
has its mask and every mask its image, that the sizes agree and that the mask values are classes, and names the file
when one is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.draw import random_shapes

from visionlab.data.datasets import IMAGE_SUFFIXES
from visionlab.data.images import load_image, quiet_decoding
from visionlab.util.errors import DataError
from visionlab.util.io import list_folder

SHAPE_KINDS = ("rectangle", "circle", "triangle")


@dataclass(eq=False)
class SegmentationData:
    """Train and test images with their masks and class names."""

    train_x: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    train_y: torch.Tensor  # (N, H, W) int64 class indices
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image."""
        return tuple(self.train_x.shape[1:])

    def __repr__(self) -> str:
        return (f"SegmentationData({self.name!r}: train {tuple(self.train_x.shape)}, test {tuple(self.test_x.shape)}, "
                f"classes {self.class_names})")


def shapes_images(n: int, *, size: int = 32, max_shapes: int = 3, min_size: int | None = None,
                  max_size: int | None = None, noise: float = 0.05, kinds: tuple[str, ...] = SHAPE_KINDS,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, size, size, 3) float32 in [0, 1] and masks (n, size, size) int64; class k + 1 = kinds[k].

    >>> images, masks = shapes_images(4, size=32, seed=0)
    """
    if n < 1 or size < 8 or max_shapes < 1:
        raise DataError(f"shapes needs n >= 1, size >= 8 and max_shapes >= 1, got {n}, {size}, {max_shapes}")
    unknown = [k for k in kinds if k not in ("rectangle", "circle", "triangle", "ellipse")]
    if unknown or not kinds:
        raise DataError(f"unknown shape kind(s) {unknown}; random_shapes draws rectangle, circle, triangle, ellipse")
    min_size = min_size or max(4, size // 4)
    max_size = max_size or max(min_size + 1, size // 2)
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        background = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        image = np.broadcast_to(background, (size, size, 3)).copy()
        mask = masks[i]
        for _ in range(rng.integers(1, max_shapes + 1)):
            k = int(rng.integers(len(kinds)))
            for _attempt in range(20):  # a shape that would overlap another is drawn again elsewhere
                canvas, _ = random_shapes((size, size), max_shapes=1, min_shapes=1, min_size=min_size,
                                          max_size=max_size, shape=kinds[k],
                                          rng=int(rng.integers(2**31)), channel_axis=-1)
                pixels = (canvas != 255).any(axis=-1)  # the canvas is white (255) but for the shape
                if pixels.any() and not (mask[pixels] > 0).any():
                    break
            else:
                continue
            image[pixels] = canvas[pixels].astype(np.float32) / 255.0
            mask[pixels] = k + 1
        images[i] = np.clip(image + noise * rng.standard_normal(image.shape).astype(np.float32), 0.0, 1.0)
    return images, masks


def shapes_data(*, train: int = 1000, test: int = 200, size: int = 32, max_shapes: int = 3, noise: float = 0.05,
                kinds: tuple[str, ...] = SHAPE_KINDS, seed: int = 0) -> SegmentationData:
    """The built-in ``shapes`` set as tensors; the test images come from a seed of their own."""
    kw = dict(size=size, max_shapes=max_shapes, noise=noise, kinds=tuple(kinds))
    x_train, y_train = shapes_images(train, seed=seed, **kw)
    x_test, y_test = shapes_images(test, seed=seed + 1_000_003, **kw)
    return SegmentationData(_to_chw(x_train), torch.from_numpy(y_train), _to_chw(x_test), torch.from_numpy(y_test),
                            ["background", *kinds], "shapes")


def _to_chw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def mask_folder(root: str | Path, *, image_size: int | None = None, test_size: float = 0.2,
                seed: int = 0) -> SegmentationData:
    """A user's ``root/images`` and ``root/masks`` (same file stems) as tensors, split at random with ``seed``.

    Images are resized bilinearly, masks by nearest neighbour (so that they stay class indices).
    """
    root = Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    if not root.is_dir():
        raise DataError(f"no such data set or folder: {root} (built in: shapes)")
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"{root} needs two sub-folders, images/ and masks/, with one mask per image (same name)")
    images = {f.stem: f for f in sorted(list_folder(images_dir)) if f.suffix.lower() in IMAGE_SUFFIXES}
    masks = {f.stem: f for f in sorted(list_folder(masks_dir)) if f.suffix.lower() in IMAGE_SUFFIXES}
    if not images:
        raise DataError(f"{images_dir} has no images ({', '.join(IMAGE_SUFFIXES)})")
    no_mask, no_image = sorted(set(images) - set(masks)), sorted(set(masks) - set(images))
    if no_mask:
        raise DataError(f"image(s) without a mask in {masks_dir}: {', '.join(no_mask[:5])}"
                        f"{' ...' if len(no_mask) > 5 else ''}")
    if no_image:
        raise DataError(f"mask(s) without an image in {images_dir}: {', '.join(no_image[:5])}"
                        f"{' ...' if len(no_image) > 5 else ''}")
    xs, ys = [], []
    channels = None
    for stem, path in images.items():
        values = load_image(path).values  # (H, W, C) in [0, 1], checked and decoded
        values = values[..., :3] if values.shape[2] in (3, 4) else values[..., :1]  # alpha is not content
        mask = _read_mask(masks[stem])
        if tuple(mask.shape) != tuple(values.shape[:2]):
            raise DataError(f"{masks[stem]}: mask of {mask.shape[0]}x{mask.shape[1]} for an image of "
                            f"{values.shape[0]}x{values.shape[1]} ({path})")
        if channels is not None and values.shape[2] != channels:
            raise DataError(f"{path}: {values.shape[2]} channel(s), the images before it have {channels}")
        channels = values.shape[2]
        x = values.permute(2, 0, 1)[None].float()  # (1, C, H, W)
        y = torch.from_numpy(mask)[None, None].float()  # (1, 1, H, W)
        if image_size is not None:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                              antialias=image_size < x.shape[-1]).clamp(0, 1)
            y = F.interpolate(y, size=(image_size, image_size), mode="nearest")
        elif xs and tuple(x.shape[-2:]) != tuple(xs[0].shape[-2:]):
            raise DataError(f"{path}: {x.shape[-2]}x{x.shape[-1]} pixels, the images before it have "
                            f"{xs[0].shape[-2]}x{xs[0].shape[-1]}; pass an image size to resize them all")
        xs.append(x)
        ys.append(y[:, 0].long())
    x, y = torch.cat(xs), torch.cat(ys)  # (N, C, H, W), (N, H, W)
    num_classes = int(y.max()) + 1
    names_file = root / "classes.txt"
    if names_file.is_file():
        try:
            text = names_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read {names_file}: {error}") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if int(y.max()) >= len(names):
            bad = next(s for s, m in masks.items() if _read_mask(m).max() >= len(names))
            raise DataError(f"{masks[bad]}: class value {int(_read_mask(masks[bad]).max())} is outside the "
                            f"{len(names)} classes of {names_file}")
    else:
        present = torch.unique(y).tolist()
        # Without classes.txt the classes are 0 .. the largest value. A mask drawn in black and white (0 / 255) would
        # silently make a 256-class model that never sees 254 of its classes: refuse values that leave most unused.
        if num_classes > 2 and 2 * len(present) < num_classes:
            shown = ", ".join(map(str, present[:8])) + (" ..." if len(present) > 8 else "")
            raise DataError(f"{masks_dir}: the masks hold the values {shown}, so most of the classes 0 .. "
                            f"{num_classes - 1} never occur; mask values are class indices 0, 1, 2, ... (a black and "
                            f"white mask stored as 0 / 255? store 0 / 1), or name the classes in {names_file.name}")
        names = [str(k) for k in range(max(num_classes, 2))]
    if len(x) < 2:
        raise DataError(f"{root} has {len(x)} image; a train and a test split need at least two")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = min(len(x) - 1, max(1, round(test_size * len(x))))
    test, train = order[:n_test], order[n_test:]
    return SegmentationData(x[train], y[train], x[test], y[test], names, root.name)


def _read_mask(path: Path) -> np.ndarray:
    """A mask file -> (H, W) int64 class indices (its grey values as stored, 0 .. 255 or 0 .. 65535)."""
    try:
        with quiet_decoding(), Image.open(path) as image:
            array = np.asarray(image)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read mask {path}: {e}") from None
    if array.ndim == 3:
        if not (array[..., :1] == array[..., : min(3, array.shape[2])]).all():
            raise DataError(f"{path}: a colour mask; masks hold one class index per pixel (grey values 0, 1, 2, ...)")
        array = array[..., 0]
    if np.issubdtype(array.dtype, np.floating) or array.min() < 0:
        raise DataError(f"{path}: mask values must be class indices 0, 1, 2, ..., got {array.dtype}")
    return array.astype(np.int64)


def segmentation_data(name: str, *, image_size: int | None = None, train: int = 1000, test: int = 200,
                      max_shapes: int = 3, kinds: tuple[str, ...] | str = SHAPE_KINDS, test_size: float = 0.2,
                      seed: int = 0) -> SegmentationData:
    """``shapes`` (built in, ``image_size`` default 32; ``kinds`` as a tuple or "rectangle,circle") or a folder with
    images/ and masks/."""
    if name == "shapes":
        if isinstance(kinds, str):
            kinds = tuple(k.strip() for k in kinds.split(",") if k.strip())
        return shapes_data(train=train, test=test, size=image_size or 32, max_shapes=max_shapes, kinds=kinds,
                           seed=seed)
    return mask_folder(name, image_size=image_size, test_size=test_size, seed=seed)
