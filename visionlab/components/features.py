"""Hand-made image features: an image in, one vector out, ready for an SVM or a KNN.

Before deep learning, computer vision described an image with features designed by hand and classified the vectors
with a classic learner (the learner's notes start here). Two families:

- **Dense descriptors** describe the whole image at once. *HOG* (Dalal & Triggs, CVPR 2005): gradient orientations
  are histogrammed in cells of ``pixels_per_cell`` (9 bins over 0-180 degrees), cells are grouped into overlapping
  blocks normalised with L2-Hys (L2, clip at 0.2, L2 again), and all blocks are concatenated. Same-size images give
  same-length vectors.
- **Local descriptors** describe keypoints: *SIFT* (Lowe, IJCV 2004; difference-of-Gaussians keypoints, 128-d
  gradient histograms), *dense SIFT* (the same descriptor on a fixed grid, for images too small or too plain for a
  detector, e.g. 8 x 8 digits), *SURF* (Bay et al., 2006; box filters on an integral image, 64-d Haar sums; see
  ``surf.py``) and *dense SURF* (SURF's descriptor, upright, on the same grid at ``dense_scales``). An image gives a
  *set* of descriptors, so they are pooled into one vector: a **bag of visual words** (k-means over training
  descriptors; an image becomes the normalised histogram of its nearest words) or **VLAD** (Jégou et al., CVPR 2010:
  per word, the sum of residuals x - c; power- and L2-normalised).

Every extractor is a scikit-learn transformer (``fit`` learns the vocabulary, ``transform`` gives (N, D) features), so
it drops into a ``Pipeline`` before a scaler and a classifier. Libraries do the work where they can: scikit-image's
``hog``, OpenCV's SIFT, scikit-learn's ``MiniBatchKMeans``; SURF is written by hand because no pip wheel ships it.

Shapes: images are (N, H, W) grey float in [0, 1]; K keypoints per image; D descriptor or feature length.
"""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import MiniBatchKMeans
from skimage.feature import hog
from skimage.transform import resize

from visionlab.components.surf import Surf, dense_keypoints
from visionlab.util.errors import ConfigError, DataError


def upscale(image: np.ndarray, min_side: int) -> np.ndarray:
    """Resize so that the shorter side is at least ``min_side`` (small images give detectors nothing to find)."""
    h, w = image.shape
    factor = min_side / min(h, w)
    if factor <= 1:
        return image
    return resize(image, (round(h * factor), round(w * factor)), order=1, anti_aliasing=False)


def as_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


class HogFeatures(BaseEstimator, TransformerMixin):
    """HOG of every image; images whose shorter side is below ``min_side`` are upscaled first (8 x 8 digits -> 32)."""

    def __init__(self, *, min_side: int = 32, orientations: int = 9, pixels_per_cell: tuple[int, int] = (8, 8),
                 cells_per_block: tuple[int, int] = (2, 2), block_norm: str = "L2-Hys"):
        self.min_side = min_side
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm

    def describe(self, image: np.ndarray, *, visualize: bool = False):
        """One (D,) HOG vector (and its picture with ``visualize``)."""
        return hog(upscale(image, self.min_side), orientations=self.orientations, pixels_per_cell=self.pixels_per_cell,
                   cells_per_block=self.cells_per_block, block_norm=self.block_norm, visualize=visualize)

    def fit(self, images, labels=None):
        return self

    def transform(self, images) -> np.ndarray:
        """(N, H, W) -> (N, D)."""
        return np.stack([self.describe(image) for image in images]).astype(np.float32)


class LocalFeatures(BaseEstimator, TransformerMixin):
    """Keypoint descriptors (SIFT, dense SIFT, SURF or dense SURF) pooled into one vector by a bag of words or VLAD."""

    DETECTORS = ("sift", "dense-sift", "surf", "dense-surf")
    ENCODINGS = ("bow", "vlad")

    def __init__(self, *, detector: str = "sift", encoding: str = "bow", vocabulary: int = 200,
                 min_side: int = 64, grid_step: int = 8, patch_size: int = 16,
                 dense_scales: tuple[float, ...] = (1.6,), seed: int = 0):
        self.detector = detector  # sift | dense-sift | surf | dense-surf
        self.encoding = encoding  # bow: histogram of visual words; vlad: residual sums
        self.vocabulary = vocabulary  # k, the number of visual words (200 for the bag of words, fewer for VLAD)
        self.min_side = min_side  # upscale smaller images to this shorter side before detection
        self.grid_step = grid_step  # dense SIFT: grid spacing in pixels (of the upscaled image)
        self.patch_size = patch_size  # dense SIFT: keypoint diameter in pixels
        # dense SURF: SURF scales s of the grid points; the descriptor's square is 20 s wide, so 1.6 covers 32
        # pixels, twice the dense-SIFT patch (a quarter of an 8 x 8 digit upscaled to 64). Chosen on a validation
        # split of the digits' training images, never on the test split: benchmarks/dense_surf_scales.py (1.6:
        # 97.8%; 0.8: 95.6%; 0.8 + 1.6, 1.6 + 3.2 and 0.8 + 1.6 + 3.2: 97.0%)
        self.dense_scales = dense_scales
        self.seed = seed

    # -- keypoints and descriptors of one image
    def keypoints_and_descriptors(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xy (K, 2), diameter (K,), descriptors (K, D)) on the upscaled image; K may be 0."""
        if self.detector not in self.DETECTORS:
            raise ConfigError(f"unknown detector {self.detector!r}; choose one of {', '.join(self.DETECTORS)}")
        image = upscale(image, self.min_side)
        if self.detector == "surf":
            keypoints, descriptors = Surf().detect_and_describe(image)
            return keypoints.xy, 2 * 10 * keypoints.scale, descriptors
        if self.detector == "dense-surf":  # upright: a grid has no orientation to be invariant to
            grid = dense_keypoints(image.shape, step=self.grid_step, scales=tuple(self.dense_scales))
            keypoints, descriptors = Surf(upright=True).describe(image, grid)
            return keypoints.xy, 2 * 10 * keypoints.scale, descriptors
        sift = cv2.SIFT_create()
        pixels = as_uint8(image)
        if self.detector == "sift":
            found, descriptors = sift.detectAndCompute(pixels, None)
        else:
            half = self.patch_size / 2
            grid = [cv2.KeyPoint(float(x), float(y), float(self.patch_size))
                    for y in np.arange(half, pixels.shape[0] - half + 1, self.grid_step)
                    for x in np.arange(half, pixels.shape[1] - half + 1, self.grid_step)]
            found, descriptors = sift.compute(pixels, grid)
        if descriptors is None or len(found) == 0:
            return np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros((0, 128), np.float32)
        xy = np.array([k.pt for k in found], dtype=np.float32)
        return xy, np.array([k.size for k in found], dtype=np.float32), descriptors.astype(np.float32)

    def descriptor_sets(self, images) -> list[np.ndarray]:
        return [self.keypoints_and_descriptors(image)[2] for image in images]

    # -- pooling
    def fit(self, images, labels=None):
        if self.encoding not in self.ENCODINGS:
            raise ConfigError(f"unknown encoding {self.encoding!r}; choose one of {', '.join(self.ENCODINGS)}")
        sets = self.descriptor_sets(images)
        found = [s for s in sets if len(s)]
        if not found:
            raise DataError(f"{self.detector} found no keypoints in any of the {len(sets)} training images; try "
                            f"dense-sift, or a larger --min-side")
        pooled = np.concatenate(found)
        k = min(self.vocabulary, len(pooled))
        self.kmeans_ = MiniBatchKMeans(n_clusters=k, random_state=self.seed, n_init=3, batch_size=2048)
        self.kmeans_.fit(pooled)
        self.images_without_keypoints_ = len(sets) - len(found)
        return self

    def transform(self, images) -> np.ndarray:
        """(N, H, W) -> (N, k) word histograms, or (N, k D) VLAD vectors; an image without keypoints gives zeros."""
        return np.stack([self.encode(s) for s in self.descriptor_sets(images)]).astype(np.float32)

    def encode(self, descriptors: np.ndarray) -> np.ndarray:
        centers = self.kmeans_.cluster_centers_  # (k, D)
        k, d = centers.shape
        if len(descriptors) == 0:
            return np.zeros(k if self.encoding == "bow" else k * d, np.float32)
        words = self.kmeans_.predict(descriptors)  # (K,)
        if self.encoding == "bow":
            histogram = np.bincount(words, minlength=k).astype(np.float32)
            return histogram / histogram.sum()  # a distribution over words: images with more keypoints compare
        residuals = np.zeros((k, d), np.float32)
        np.add.at(residuals, words, descriptors - centers[words])  # v_i = sum over x near c_i of (x - c_i)
        v = residuals.ravel()
        v = np.sign(v) * np.sqrt(np.abs(v))  # power normalisation (alpha = 0.5) tames bursty words
        return v / max(np.linalg.norm(v), 1e-12)


EXTRACTORS = ("hog", "sift", "dense-sift", "surf", "dense-surf")


def build_extractor(name: str, *, encoding: str = "bow", vocabulary: int = 200, seed: int = 0):
    """The extractor called ``name`` (one of :data:`EXTRACTORS`)."""
    if name == "hog":
        return HogFeatures()
    if name in LocalFeatures.DETECTORS:
        return LocalFeatures(detector=name, encoding=encoding, vocabulary=vocabulary, seed=seed)
    raise ConfigError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")


def oriented_keypoints(image: np.ndarray, detector: str = "sift") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints of a grey image (H, W) in [0, 1] with their scale and orientation, for drawing: (xy (K, 2),
    radius (K,) in pixels, angle (K,) in radians). SIFT (Lowe 2004): OpenCV's detector, radius = half its
    keypoint size; SURF (Bay et al. 2006): visionlab's, radius = half its box filter's side L = 9 sigma / 1.2."""
    if detector == "surf":
        found = Surf().detect(image)
        return found.xy, (9 / 1.2 / 2) * found.scale, found.orientation  # L / 2, L = 9 sigma / 1.2
    if detector != "sift":
        raise ConfigError(f"keypoints are drawn for sift or surf, not {detector!r}")
    found = cv2.SIFT_create().detect(as_uint8(image), None)
    if not found:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    xy = np.array([k.pt for k in found], dtype=np.float32)
    scale = np.array([k.size / 2 for k in found], np.float32)
    return xy, scale, np.radians([k.angle for k in found]).astype(np.float32)
