"""Video data for ViViT: moving digits, whose label needs time to tell, and users' own clips.

**Moving digits** (:func:`moving_digits`). Each clip shows one of scikit-learn's 8 x 8 handwritten digits, upscaled to
``digit_size`` pixels, on a black ``size`` x ``size`` canvas. It starts at a random position and moves in a straight
line at a constant velocity (dy, dx) in {-1, 0, 1}^2 * ``speed`` pixels per frame (so E moves 1 pixel per frame, NE one
right and one up), one of 8 directions E, NE, N, NW, W, SW, S, SE (or 4: E, N, W, S; or 2: E, W)::

    corner_t = (corner_0 + t * velocity) mod size,        t = 0 .. T - 1

The canvas **wraps** (a torus): what leaves on the right comes back on the left. Wrapping (not bouncing) is what makes
the default label, the direction, invisible in any single frame: the start is uniform over the canvas, so the
position at every t is uniform too, whatever the direction, and each frame is just "a digit somewhere" with the same
distribution for every class. Only the change from frame to frame tells E from W, which is the point of a video
model. ``label="digit"`` asks for the digit instead (one frame suffices), ``label="both"`` for digit * D + direction.

The split is fixed and seeded: a ``test_fraction`` of the clips is the test set, and test clips draw their digits from
a disjoint part of scikit-learn's 1,797 images, so no handwritten sample seen in training appears in a test clip.

**Users' clips** (:func:`video_folder`): ``root/<class>/<clip>.npy`` arrays (T, H, W) or (T, H, W, C), uint8 or float
in [0, 1], and ``root/<class>/<clip>/`` folders of frame images, taken in name order with numbers compared as numbers
(``2.png`` before ``10.png``). Every clip becomes ``frames`` x H x W:

- fewer frames than ``frames``: an error naming the clip ("has 5 frames, needs at least 16");
- more: ``frames`` frames spread evenly over the clip, the middle of each of ``frames`` equal segments (the rule of
  :func:`~visionlab.components.embeddings.uniform_frame_sampling`); only those frames are decoded;
- a different H x W: resized (area-averaged when shrinking); all frames of one clip must share one size;
- colour: ``channels=1`` gives grey (ITU-R 601 luma), ``channels=3`` RGB (a grey clip repeated); alpha is dropped.

Example::

    >>> from visionlab.data.video import moving_digits
    >>> data = moving_digits(num_clips=1000, frames=16, size=32)
    >>> data.clips.shape, data.class_names[:3]
    ((1000, 16, 32, 32), ['E', 'NE', 'N'])
    >>> train, test = data.split()                       # the fixed 80 / 20 split
    >>> train.model_input().shape                        # ViViT's layout
    torch.Size([800, 1, 16, 32, 32])

Shapes: N clips, T frames, H, W, C channels, D directions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from skimage.transform import resize
from sklearn.datasets import load_digits

from visionlab.components.embeddings import uniform_frame_sampling
from visionlab.data.datasets import IMAGE_SUFFIXES, ImageDataset
from visionlab.data.formats import to_unit_range
from visionlab.data.images import load_image
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import list_folder

DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")  # counter-clockwise from east, 45 degrees apart
# (dy, dx) per frame for each direction; rows grow downwards, so north is -y
STEPS = np.array([(0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1)])
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(eq=False)
class VideoDataset:
    """Labelled clips, float32 in [0, 1]: grey (N, T, H, W) or colour (N, T, H, W, C), with an optional fixed split."""

    name: str
    clips: np.ndarray  # (N, T, H, W) or (N, T, H, W, C)
    labels: np.ndarray  # (N,) int64 in [0, len(class_names))
    class_names: list[str]
    is_test: np.ndarray | None = None  # (N,) bool: a fixed split, or None for a random stratified one
    sources: list[str] | None = None  # a file or folder per clip

    # One split rule for every data set: the fixed split if there is one, else a stratified random one.
    split = ImageDataset.split
    __len__ = ImageDataset.__len__

    def __repr__(self) -> str:
        t, h, w = self.clips.shape[1:4]
        return f"VideoDataset({self.name!r}, {len(self)} clips of {t}x{h}x{w}, classes {self.class_names})"

    def subset(self, index: np.ndarray, part: str) -> "VideoDataset":
        sources = None if self.sources is None else [self.sources[i] for i in index]
        return VideoDataset(f"{self.name}/{part}", self.clips[index], self.labels[index], self.class_names,
                            None, sources)

    def model_input(self) -> torch.Tensor:
        """The clips in the layout ViViT reads: (N, C, T, H, W)."""
        pattern = "n t h w -> n 1 t h w" if self.clips.ndim == 4 else "n t h w c -> n c t h w"
        return torch.from_numpy(np.ascontiguousarray(rearrange(self.clips, pattern)))


# ---- moving digits ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _sprites(digit_size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits upscaled to (1797, d, d) in [0, 1], and their classes (1797,)."""
    data = load_digits()
    small = torch.from_numpy(data.images / 16.0).float()[:, None]  # (1797, 1, 8, 8), 0-16 grey levels -> [0, 1]
    big = F.interpolate(small, size=(digit_size, digit_size), mode="bilinear", align_corners=False)
    return big[:, 0].clamp(0, 1).numpy(), data.target.astype(np.int64)  # (1797, d, d)


def moving_digits(*, num_clips: int = 2000, frames: int = 16, size: int = 32, digit_size: int = 12,
                  directions: int = 8, speed: int = 1, label: str = "direction", test_fraction: float = 0.2,
                  seed: int = 0) -> VideoDataset:
    """Clips (N, T, size, size) of a digit moving in a straight line on a wrapping canvas; see the module docstring."""
    if directions not in (2, 4, 8):
        raise ConfigError(f"directions must be 2, 4 or 8, got {directions}")
    if label not in ("direction", "digit", "both"):
        raise ConfigError(f"label must be 'direction', 'digit' or 'both', got {label!r}")
    if not 1 <= digit_size <= size:
        raise ConfigError(f"digit_size must be in 1..size ({size}), got {digit_size}")
    if not 1 <= speed < size / 2:  # at size / 2 pixels per frame, E and W would look the same
        raise ConfigError(f"speed must be at least 1 and below size / 2 ({size / 2:g}) pixels per frame, got {speed}")
    if num_clips < 1 or frames < 2 or not 0 < test_fraction < 1:
        raise ConfigError(f"need num_clips >= 1, frames >= 2 and 0 < test_fraction < 1, got {num_clips}, {frames}, "
                          f"{test_fraction}")
    sprites, digit = _sprites(digit_size)
    names, steps = DIRECTIONS[::8 // directions], STEPS[::8 // directions] * speed  # (D, 2)
    rng = np.random.default_rng(seed)

    # Fixed split: test clips, and the scikit-learn images that test clips may show, are disjoint from training's.
    is_test = rng.permutation(num_clips) < round(test_fraction * num_clips)
    test_pool = rng.permutation(len(sprites)) < round(test_fraction * len(sprites))
    pools = [np.flatnonzero(~test_pool), np.flatnonzero(test_pool)]
    which = np.where(is_test, rng.choice(pools[1], num_clips), rng.choice(pools[0], num_clips))  # (N,)
    direction = rng.permutation(np.arange(num_clips) % directions)  # balanced classes
    start = rng.integers(0, size, (num_clips, 2))  # (N, 2) top-left corner (y, x), uniform over the canvas

    t = np.arange(frames)
    corner = start[:, None] + t[None, :, None] * steps[direction][:, None]  # (N, T, 2): corner_0 + t * velocity
    offsets = np.arange(digit_size)
    rows = (corner[..., 0, None] + offsets) % size  # (N, T, d): the wrap is this modulo
    cols = (corner[..., 1, None] + offsets) % size  # (N, T, d)
    clips = np.zeros((num_clips, frames, size, size), dtype=np.float32)
    # one scatter writes every sprite into every frame: index arrays broadcast to (N, T, d, d)
    clips[np.arange(num_clips)[:, None, None, None], t[None, :, None, None], rows[..., :, None], cols[..., None, :]] \
        = sprites[which][:, None]  # (N, 1, d, d)

    if label == "direction":
        labels, class_names = direction, list(names)
    elif label == "digit":
        labels, class_names = digit[which], [str(k) for k in range(10)]
    else:
        labels = digit[which] * directions + direction
        class_names = [f"{k} {name}" for k in range(10) for name in names]
    return VideoDataset("moving-digits", clips, labels.astype(np.int64), class_names, is_test)


# ---- users' clips ----------------------------------------------------------------------------------------------

def _natural(path: Path) -> list:
    """Sort key: "frame2" before "frame10" (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _frame_index(total: int, frames: int) -> np.ndarray:
    """Which of ``total`` frames to keep: the same rule as uniform_frame_sampling, applied to the frame numbers."""
    numbers = torch.arange(total).view(1, 1, total, 1, 1)  # (B, C, T, H, W) = (1, 1, total, 1, 1)
    return uniform_frame_sampling(numbers, frames).flatten().numpy()


def _to_channels(values: np.ndarray, channels: int, where: str) -> np.ndarray:
    """(..., C) with C in 1..4 -> (..., channels): alpha dropped, RGB -> luma, grey -> repeated."""
    c = values.shape[-1]
    if c in (2, 4):
        values, c = values[..., :c - 1], c - 1  # alpha is transparency, not colour
    if c not in (1, 3):
        raise DataError(f"{where}: {values.shape[-1]} channels; expected 1 (grey) or 3 (RGB)")
    if c == channels:
        return values
    return values @ LUMA[:, None] if channels == 1 else np.repeat(values, 3, axis=-1)


NPY_MAGIC = b"\x93NUMPY"


def load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array as stored (no pickles); an unreadable file is a DataError naming it."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({(error.strerror or type(error).__name__).lower()})") from None
    if not magic:
        raise DataError(f"{path}: cannot be read (the file is empty)")
    if magic != NPY_MAGIC:  # without the magic, np.load falls back to unpickling and blames pickles
        raise DataError(f"{path}: cannot be read (not a NumPy .npy file)")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:  # object arrays raise ValueError (allow_pickle), damaged files many kinds
        why = "holds Python objects (dtype=object), refused because unpickling can run code" \
            if "allow_pickle" in str(error) else f"cannot be read ({' '.join(str(error).split())})"
        raise DataError(f"{path}: {why}") from None


def _read_npy(path: Path, frames: int, channels: int) -> np.ndarray:
    values = load_npy(path)
    if values.ndim == 3:
        values = values[..., None]  # (T, H, W) -> (T, H, W, 1)
    if values.ndim != 4 or values.shape[3] not in (1, 3) or 0 in values.shape:
        raise DataError(f"{path}: shape {values.shape}; expected (T, H, W) or (T, H, W, C) with C = 1 or 3")
    if len(values) < frames:
        raise DataError(f"{path}: has {len(values)} frames, needs at least {frames}")
    values = to_unit_range(values, where=str(path), item="frame")  # (T, H, W, C) float32, checked
    return _to_channels(values[_frame_index(len(values), frames)], channels, str(path))


def frame_files(folder: Path) -> list[Path]:
    """The frame images of a clip folder in natural order; an error if it has none."""
    # hidden files are system litter (e.g. macOS "._f1.png"), not frames
    files = sorted((f for f in list_folder(folder) if f.suffix.lower() in IMAGE_SUFFIXES
                    and not f.name.startswith(".")), key=_natural)
    if not files:
        raise DataError(f"{folder}: a clip folder without frame images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_frame_images(files: list[Path]) -> list[np.ndarray]:
    """Decode frame images to (H, W, C) float32 in [0, 1]; all must share the first one's H x W."""
    values = [load_image(f).values.numpy() for f in files]  # (H, W, C) each, decoded and checked
    for f, v in zip(files, values):
        if v.shape[:2] != values[0].shape[:2]:
            raise DataError(f"{f}: frame is {v.shape[0]}x{v.shape[1]}, but {files[0].name} of the same clip is "
                            f"{values[0].shape[0]}x{values[0].shape[1]}")
    return values


def _read_frames(folder: Path, frames: int, channels: int) -> np.ndarray:
    files = frame_files(folder)
    if len(files) < frames:
        raise DataError(f"{folder}: has {len(files)} frames, needs at least {frames}")
    picked = [files[i] for i in _frame_index(len(files), frames)]
    values = read_frame_images(picked)
    return np.stack([_to_channels(v, channels, str(f)) for f, v in zip(picked, values)])  # (T, H, W, C)


def video_folder(root: str | Path, *, frames: int = 16, size: int | tuple[int, int] = 32,
                 channels: int = 1) -> VideoDataset:
    """One sub-folder per class of ``.npy`` clips or frame folders -> (N, T, H, W) grey or (N, T, H, W, 3) RGB."""
    root = Path(root)
    height, width = (size, size) if isinstance(size, int) else size
    if channels not in (1, 3) or frames < 1 or min(height, width) < 1:
        raise ConfigError(f"need channels 1 or 3, frames >= 1 and a positive size, got {channels}, {frames}, {size}")
    if not root.is_dir():
        raise DataError(f"no such folder: {root} (expected {root}/<class>/<clip>.npy or <clip>/<frames>)")
    classes = sorted((p for p in list_folder(root) if p.is_dir() and not p.name.startswith(".")), key=_natural)
    found = {c.name: sorted((p for p in list_folder(c) if not p.name.startswith(".") and
                             (p.suffix == ".npy" and p.is_file() or p.is_dir())), key=_natural) for c in classes}
    if not any(found.values()):
        raise DataError(f"{root} has no class sub-folders with clips; expected {root}/<class>/<clip>.npy or "
                        f"{root}/<class>/<clip>/<frame images>")
    empty = [name for name, clips in found.items() if not clips]
    if empty:
        raise DataError(f"class folder(s) without clips in {root}: {', '.join(empty)} (a clip is a .npy array or a "
                        f"folder of frame images; video files such as .mp4 are not decoded)")
    if len(found) < 2:
        raise DataError(f"{root} has one class ({classes[0].name}); a classifier needs at least two")
    clips, labels, sources = [], [], []
    for label, paths in enumerate(found.values()):
        for path in paths:
            clip = _read_frames(path, frames, channels) if path.is_dir() else _read_npy(path, frames, channels)
            if clip.shape[1:3] != (height, width):  # anti-aliasing averages when shrinking instead of aliasing
                clip = np.clip(resize(clip, (frames, height, width, channels), anti_aliasing=True), 0, 1)
            clips.append(clip.astype(np.float32))
            labels.append(label)
            sources.append(str(path))
    clips = np.stack(clips)  # (N, T, H, W, C)
    return VideoDataset(root.name, clips[..., 0] if channels == 1 else clips, np.array(labels, dtype=np.int64),
                        list(found), None, sources)


def read_clip(path: str | Path, *, frames: int, size: tuple[int, int], channels: int = 1) -> np.ndarray:
    """One clip (a ``.npy`` array or a folder of frame images) as (T, H, W, C) float32, sampled and resized as
    :func:`video_folder` does for training (too few frames is an error)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such clip: {path}")
    clip = _read_frames(path, frames, channels) if path.is_dir() else _read_npy(path, frames, channels)
    if clip.shape[1:3] != tuple(size):
        clip = np.clip(resize(clip, (frames, *size, channels), anti_aliasing=True), 0, 1)
    return clip.astype(np.float32)


def load_videos(name: str, *, frames: int = 16, size: int = 32, seed: int = 0) -> VideoDataset:
    """``"moving-digits"`` (built in) or a folder of class sub-folders of clips."""
    if name == "moving-digits":
        return moving_digits(frames=frames, size=size, seed=seed)
    return video_folder(name, frames=frames, size=size)
