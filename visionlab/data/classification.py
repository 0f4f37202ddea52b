"""Classification data as tensors: any image or video source -> (train, test) tensors in the layout models read.

Sources: the built-in image sets (``digits``, ``faces``, ``textures``), ``moving-digits`` clips, a folder of class
sub-folders (images, or videos as ``.npy`` / frame folders), MNIST IDX files, CIFAR python batches and ``.npz``.
Images become (N, C, H, W) float32 in [0, 1], resized to ``image_size`` if given (bilinear, anti-aliased); videos
become (N, C, T, H, W). The split is the source's own fixed one, or a stratified one with ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from visionlab.data.datasets import BUILTIN_DATASETS, image_folder
from visionlab.data.formats import load_arrays
from visionlab.data.video import load_videos
from visionlab.util.errors import DataError
from visionlab.util.io import list_folder


@dataclass(eq=False)
class ClassificationData:
    """Train and test tensors with their labels and class names."""

    train_x: torch.Tensor  # (N, C, H, W) or (N, C, T, H, W)
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    name: str
    frame: tuple[int, int] | None = None  # (k, T): these images are frame k of clips of T frames

    @property
    def is_video(self) -> bool:
        return self.train_x.ndim == 5

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(C, H, W) or (C, T, H, W) of one example."""
        return tuple(self.train_x.shape[1:])

    def single_frame(self, frame: int | None = None) -> "ClassificationData":
        """Frame ``frame`` (default: the middle one) of every clip, as images: the control that shows what a
        model can tell without time. (N, C, T, H, W) -> (N, C, H, W)."""
        if not self.is_video:
            raise DataError(f"{self.name} holds images, not clips; a single frame is picked only from videos")
        t = self.train_x.shape[2]
        k = t // 2 if frame is None else frame
        if not 0 <= k < t:
            raise DataError(f"frame {k} is outside clips of {t} frames")
        return ClassificationData(self.train_x[:, :, k].contiguous(), self.train_y, self.test_x[:, :, k].contiguous(),
                                  self.test_y, self.class_names, f"{self.name}-frame{k}", frame=(k, t))

    def __repr__(self) -> str:
        return (f"ClassificationData({self.name!r}: train {tuple(self.train_x.shape)}, test "
                f"{tuple(self.test_x.shape)}, {len(self.class_names)} classes)")


def classification_data(name: str, *, video: bool = False, image_size: int | None = None, frames: int = 16,
                        seed: int = 0, test_size: float = 0.25) -> ClassificationData:
    """Load ``name`` (a built-in set, ``moving-digits`` or a path) as tensors; ``video`` selects clip loaders."""
    if video or name == "moving-digits":
        clips = load_videos(name, frames=frames, size=image_size or 32, seed=seed)
        train, test = clips.split(test_size=test_size, seed=seed)
        return ClassificationData(train.model_input(), _labels(train.labels), test.model_input(),
                                  _labels(test.labels), list(clips.class_names), Path(name).name)
    if name in BUILTIN_DATASETS:
        dataset = BUILTIN_DATASETS[name]()
    elif Path(name).is_file() or (Path(name).is_dir() and _looks_like_arrays(Path(name))):
        dataset = load_arrays(name)
    else:
        dataset = image_folder(name, image_size=(image_size, image_size) if image_size else (64, 64))
    train, test = dataset.split(test_size=test_size, seed=seed)
    return ClassificationData(_images(train.images, image_size), _labels(train.labels),
                              _images(test.images, image_size), _labels(test.labels), list(dataset.class_names),
                              Path(name).name)


def validation_split(labels: torch.Tensor, fraction: float, *, seed: int, stratify: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out): sorted indices that split examples ``labels`` (N,) into training and validation, with
    ``fraction`` held out, the same share of every class when ``stratify``: at least one example of each class of two
    or more (so that a tiny set still validates), never its last one. Seeded by ``seed`` alone, so a resumed run and
    every process of a distributed one carve the same split. ``fraction`` 0: nothing held out."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + 17)  # not the seed of the batches: a split of its own
    groups = [torch.nonzero(labels == k).flatten() for k in torch.unique(labels).tolist()] if stratify else \
        [torch.arange(len(labels))]
    held = []
    for members in groups:
        take = min(max(1, round(fraction * len(members))), len(members) - 1) if fraction > 0 else 0
        held.append(members[torch.randperm(len(members), generator=g)[:max(take, 0)]])
    held_out = torch.cat(held).sort().values if held else torch.zeros(0, dtype=torch.int64)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_out] = False
    return torch.nonzero(mask).flatten(), held_out


def _looks_like_arrays(folder: Path) -> bool:
    """MNIST IDX or CIFAR batch files, rather than class sub-folders."""
    names = {p.name for p in list_folder(folder)}
    return any("idx" in n for n in names) or bool(names & {"data_batch_1", "test_batch", "train", "meta"})


def _images(images: np.ndarray, size: int | None) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (N, H, W) or (N, H, W, C) -> (N, C, H, W)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < x.shape[-1]).clamp(0, 1)
    return x.contiguous()


def _labels(labels: np.ndarray) -> torch.Tensor:
    if len(labels) == 0:
        raise DataError("a split of the data set is empty; it needs examples of every class in train and test")
    return torch.as_tensor(np.asarray(labels), dtype=torch.int64)
