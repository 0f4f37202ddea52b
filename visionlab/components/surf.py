"""SURF: Speeded-Up Robust Features (Bay, Tuytelaars & Van Gool, ECCV 2006; Bay, Ess, Tuytelaars & Van Gool, CVIU 2008).

Why by hand: SURF is patented, so OpenCV builds it only with its "nonfree" option and no pip wheel of OpenCV (neither
opencv-python nor opencv-contrib-python) ships it. This module implements it from the papers with NumPy; section and
equation numbers below are those of the CVIU 2008 paper unless marked ECCV.

SURF finds blobs with an approximate Hessian and describes them with Haar wavelet responses; both read box sums off one
integral image, four look-ups per box whatever its size:

    integral image   I_S(y, x) = sum_{i < y, j < x} I(i, j)                                       (Sec. 3.1, Eq. 1)
                     sum over [y0, y1) x [x0, x1) = I_S(y1, x1) - I_S(y0, x1) - I_S(y1, x0) + I_S(y0, x0)
    fast-Hessian     box filters Dxx, Dyy, Dxy of size L = 9, 15, 21, 27 (octave 1), 15, 27, 39, 51 (octave 2),
                     27, 51, 75, 99 (octave 3), ... stand for Gaussian second derivatives at sigma = 1.2 L / 9; lobes
                     are l = L / 3 long (Dxx, Dyy: 3 lobes of l x (2l - 1) weighted +1, -2, +1; Dxy: 4 lobes of l x l
                     weighted +-1). Octave o samples every 2^o pixels (Sec. 3.3). Responses are divided by the area
                     L^2, so they compare across sizes, and
                         det(H_approx) = Dxx Dyy - (w Dxy)^2,   w = 0.9 (Eq. 3)                      (Eq. 4)
                     Maxima of det in 3 x 3 x 3 (scale, y, x) neighbourhoods above ``hessian_threshold`` are refined by
                     a 3-D quadratic fit (Brown & Lowe 2002): offset = -(d2D/dv2)^-1 dD/dv, rejected if any
                     |offset| > 1 sample, as OpenCV does (Sec. 3.4; the stricter 0.5 drops a different subset of
                     blobs in each view of a scene: repeatability at 30 degrees 0.57 instead of 0.68). The sign of
                     Dxx + Dyy (the Laplacian) tells dark blobs on a bright ground (+1) from bright ones (-1);
                     matching may compare only equal signs (Sec. 4.3).
    orientation      Haar responses (dx, dy) of side 4s at the points of step s within radius 6s of the keypoint,
                     weighted by a Gaussian of sigma 2.5s (ECCV Sec. 4.1); a window of angle pi/3 slides round the
                     circle and the longest sum (sum dx, sum dy) inside it gives the orientation (Sec. 4.1).
    descriptor       a 20s square turned to the orientation, 4 x 4 subregions of 5 x 5 samples of step s; Haar
                     responses of side 2s, turned into the square's frame and weighted by a Gaussian of sigma 3.3s;
                     each subregion gives v = (sum dx, sum dy, sum |dx|, sum |dy|) -> 64 numbers of unit length
                     (Sec. 4.2). Extended SURF-128: sums of dx, |dx| split by the sign of dy, and of dy, |dy| by the
                     sign of dx, in that order (dy < 0 first) -> 8 per subregion.

Conventions: x to the right and y down, in pixels of the input image (pixel centres at integers); orientation in
radians, measured from +x towards +y (clockwise on screen, as ``cv2.KeyPoint.angle``). Images are (H, W) grey or
(H, W, 3) RGB, uint8 (0-255) or float in [0, 1]; they are turned into float grey in 0-255 (RGB by ITU-R 601 weights,
like OpenCV), so ``hessian_threshold`` is a value of det(H_approx) above for 0-255 images, as in OpenCV. OpenCV
divides each lobe by its own area rather than the whole filter by L^2, which makes its det at a blob centre about
(9l / (2l - 1))^2 = 20-29 times larger: threshold 100 here is roughly OpenCV's hessianThreshold 2000-3000.

Files: ``surf_detect.py`` (integral image, box filters read by strided slices, maxima, quadratic fit),
``surf_describe.py`` (Haar wavelets, orientation, descriptor) and this one (input checks, ``Surf``, dense grids);
``benchmarks/surf_stages.py`` measures each stage's share of what rotation costs, and its time against OpenCV's SIFT.

Example::

    >>> image = skimage.data.camera()                                    # (512, 512) uint8
    >>> kp, desc = Surf(hessian_threshold=50).detect_and_describe(image)  # K keypoints, desc (K, 64) unit rows
    >>> drawn = cv2.drawKeypoints(image, kp.to_cv2(), None, flags=cv2.DRAW_MATCHES_FLAGS_DRAW_RICH_KEYPOINTS)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from visionlab.components.surf_describe import DESC_REACH, DESC_SIDE, ORI_REACH, Padded, descriptor, orientation
from visionlab.components.surf_detect import (
    box_sum,
    fast_hessian,
    hessian_responses,
    integral_image,
    is_int,
    layer_sizes,
)
from visionlab.util.errors import ConfigError, DataError

__all__ = ["Surf", "SurfKeypoints", "box_sum", "dense_keypoints", "hessian_responses", "integral_image"]

GREY = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as cv2.cvtColor
BATCH = 256  # keypoints per vectorised batch (bounds memory)
VALUE_TOL = 1e-6  # round-off allowed outside [0, 1] for float images


@dataclass
class SurfKeypoints:
    """K SURF keypoints: position, scale, orientation, det(H) response and Laplacian sign."""

    xy: np.ndarray  # (K, 2) float32, (x, y) in pixels of the input image
    scale: np.ndarray  # (K,) float32, sigma = 1.2 L / 9 for (interpolated) filter size L
    orientation: np.ndarray  # (K,) float32 radians from +x towards +y; 0 when upright
    response: np.ndarray  # (K,) float32, det(H_approx) of area-normalised responses on 0-255 grey
    laplacian: np.ndarray  # (K,) int8, sign of Dxx + Dyy: +1 dark blob, -1 bright blob

    def __len__(self) -> int:
        return len(self.scale)

    def subset(self, index) -> SurfKeypoints:
        """The keypoints picked by an index array or boolean mask."""
        return SurfKeypoints(self.xy[index], self.scale[index], self.orientation[index], self.response[index],
                             self.laplacian[index])

    def to_cv2(self) -> list:
        """``cv2.KeyPoint`` list for drawing: size = 20 * scale (the descriptor square's side), angle in degrees."""
        import cv2

        return [cv2.KeyPoint(float(x), float(y), float(DESC_SIDE * s), float(np.degrees(a) % 360), float(r), 0,
                             int(lap))
                for (x, y), s, a, r, lap in zip(self.xy, self.scale, self.orientation, self.response, self.laplacian)]


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def dense_keypoints(shape: tuple[int, int], *, step: float, scales: tuple[float, ...]) -> SurfKeypoints:
    """Keypoints on a grid for dense SURF: every ``step`` pixels, each at every scale of ``scales``, upright.

    The grid is centred in the (H, W) image and keeps ``step / 2`` from its border; windows reaching past the border
    read the image mirrored (see ``describe``). Ordered by scale, then row, then column.
    """
    if not (_is_real(step) and step > 0) or not scales or any(not (_is_real(v) and v > 0) for v in scales):
        raise ConfigError(f"dense grids need a step > 0 and scales > 0, got step {step!r}, scales {scales!r}")
    height, width = shape
    # at least one point per axis (the centre) when the image is narrower than a step
    ys = np.arange(step / 2, height - step / 2 + 1e-9, step) if height >= step else np.array([height / 2])
    xs = np.arange(step / 2, width - step / 2 + 1e-9, step) if width >= step else np.array([width / 2])
    ys, xs = ys + (height - ys[-1] - ys[0]) / 2 - 0.5, xs + (width - xs[-1] - xs[0]) / 2 - 0.5  # centred grid
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)  # (G, 2) (x, y)
    n = len(grid) * len(scales)
    return SurfKeypoints(np.tile(grid, (len(scales), 1)).astype(np.float32),
                         np.repeat(np.asarray(scales, np.float32), len(grid)), np.zeros(n, np.float32),
                         np.zeros(n, np.float32), np.ones(n, np.int8))


class Surf:
    """SURF detector (fast-Hessian) and descriptor (64-d, or 128-d extended); upright=True gives U-SURF."""

    def __init__(self, *, hessian_threshold: float = 100.0, octaves: int = 4, intervals: int = 4,
                 upright: bool = False, extended: bool = False, max_keypoints: int | None = None):
        """hessian_threshold: minimum det(H_approx) for 0-255 grey (see the module docstring);
        intervals: filters per octave (>= 3; the first and last only serve as neighbours);
        max_keypoints: keep the strongest ones (None: all above the threshold)."""
        if not (_is_real(hessian_threshold) and math.isfinite(hessian_threshold) and hessian_threshold >= 0):
            raise ConfigError(f"hessian_threshold must be a finite number >= 0, got {hessian_threshold!r}")
        if not is_int(octaves) or octaves < 1:
            raise ConfigError(f"octaves must be an integer >= 1, got {octaves!r}")
        if not is_int(intervals) or intervals < 3:
            raise ConfigError(f"intervals must be an integer >= 3 (a 3 x 3 x 3 scale neighbourhood), got {intervals!r}")
        if max_keypoints is not None and (not is_int(max_keypoints) or max_keypoints < 1):
            raise ConfigError(f"max_keypoints must be None or an integer >= 1, got {max_keypoints!r}")
        self.hessian_threshold, self.octaves, self.intervals = float(hessian_threshold), int(octaves), int(intervals)
        self.upright, self.extended = bool(upright), bool(extended)
        self.max_keypoints = None if max_keypoints is None else int(max_keypoints)

    def __repr__(self) -> str:
        return (f"Surf(hessian_threshold={self.hessian_threshold}, octaves={self.octaves}, "
                f"intervals={self.intervals}, upright={self.upright}, extended={self.extended}, "
                f"max_keypoints={self.max_keypoints})")

    @property
    def dim(self) -> int:
        """Descriptor length: 64, or 128 when extended."""
        return 128 if self.extended else 64

    # ------------------------------------------------------------------------------------------ input

    def _grey(self, image, *, detect: bool = True) -> np.ndarray:
        """(H, W) or (H, W, 3), uint8 or float in [0, 1] -> (H, W) float64 grey in 0-255; ``detect``: the image must
        hold the first octave's filters (describing given keypoints needs no such size)."""
        image = np.asarray(image)
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise DataError(f"SURF expects an (H, W) grey or (H, W, 3) RGB image, got shape {image.shape}")
        min_size = layer_sizes(0, self.intervals)[-1] + 2  # first octave's largest filter, 3 x 3 neighbourhood
        if detect and min(image.shape[:2]) < min_size:
            raise DataError(f"image of {image.shape[0]} x {image.shape[1]} pixels is too small for SURF's first "
                            f"octave (filters up to {min_size - 2} pixels): it needs at least {min_size} x {min_size}")
        if image.dtype == np.uint8:
            grey = image.astype(np.float64)
        elif np.issubdtype(image.dtype, np.floating):
            if not np.isfinite(image).all():
                raise DataError("image contains NaN or infinite values")
            lo, hi = float(image.min()), float(image.max())
            if lo < -VALUE_TOL or hi > 1 + VALUE_TOL:
                raise DataError(f"a float image must lie in [0, 1], its values lie in [{lo:.4g}, {hi:.4g}]; "
                                "divide 0-255 values by 255 or pass uint8")
            grey = image.astype(np.float64) * 255.0
        else:
            raise DataError(f"image must be uint8 (0-255) or float in [0, 1], got dtype {image.dtype}")
        return grey @ GREY if grey.ndim == 3 else grey

    # ------------------------------------------------------------------------------------------ detector

    def detect(self, image: np.ndarray) -> SurfKeypoints:
        """Fast-Hessian keypoints of an image, with orientations unless upright (Sec. 3, 4.1)."""
        return self._detect(self._grey(image))

    def _detect(self, grey: np.ndarray) -> SurfKeypoints:
        keypoints = self._fast_hessian(grey)
        if not self.upright and len(keypoints):
            self._orient(Padded(grey, reach=ORI_REACH * keypoints.scale, xy=keypoints.xy), keypoints)
        return keypoints

    def _fast_hessian(self, grey: np.ndarray) -> SurfKeypoints:
        """Upright keypoints, strongest first (Sec. 3)."""
        x, y, scale, response, laplacian = fast_hessian(grey, threshold=self.hessian_threshold,
                                                        octaves=self.octaves, intervals=self.intervals)
        order = np.argsort(-response, kind="stable")[: self.max_keypoints]
        return SurfKeypoints(np.stack([x, y], 1)[order].astype(np.float32), scale[order].astype(np.float32),
                             np.zeros(len(order), np.float32), response[order].astype(np.float32),
                             laplacian[order].astype(np.int8))

    @staticmethod
    def _orient(padded: Padded, keypoints: SurfKeypoints) -> None:
        """Sets the keypoints' orientations in place (Sec. 4.1), in batches of ``BATCH``."""
        keypoints.orientation = np.concatenate([orientation(padded, keypoints.xy[b:b + BATCH],
                                                            keypoints.scale[b:b + BATCH])
                                                for b in range(0, len(keypoints), BATCH)]).astype(np.float32)

    # ------------------------------------------------------------------------------------------ descriptor

    def describe(self, image: np.ndarray, keypoints: SurfKeypoints) -> tuple[SurfKeypoints, np.ndarray]:
        """Descriptors (K, 64) or (K, 128) float32 of unit length at the given keypoints (Sec. 4.2).

        Uses each keypoint's orientation (0 when upright); windows reaching past the border see the image mirrored,
        so no keypoint is dropped and the keypoints come back as given (orientation zeroed when upright).
        """
        return self._describe(self._grey(image, detect=False), keypoints)

    def _describe(self, grey: np.ndarray, keypoints: SurfKeypoints, padded: Padded | None = None):
        if not isinstance(keypoints, SurfKeypoints):
            raise DataError(f"describe expects SurfKeypoints (from Surf.detect), got {type(keypoints).__name__}")
        n = len(keypoints)
        if keypoints.xy.shape != (n, 2) or any(len(a) != n for a in (keypoints.orientation, keypoints.response,
                                                                        keypoints.laplacian)):
            raise DataError(f"SurfKeypoints fields disagree in length: xy {keypoints.xy.shape}, scale ({n},), "
                            f"orientation {keypoints.orientation.shape}")
        if n and not (np.isfinite(keypoints.xy).all() and np.isfinite(keypoints.orientation).all()
                      and np.isfinite(keypoints.scale).all() and (keypoints.scale > 0).all()):
            raise DataError("keypoints need finite positions and orientations and scales > 0")
        if self.upright:
            keypoints = keypoints.subset(slice(None))
            keypoints.orientation = np.zeros(n, np.float32)
        if n == 0:
            return keypoints, np.zeros((0, self.dim), np.float32)
        padded = padded or Padded(grey, reach=DESC_REACH * keypoints.scale, xy=keypoints.xy)
        desc = np.concatenate([descriptor(padded, keypoints.xy[b:b + BATCH], keypoints.scale[b:b + BATCH],
                                          keypoints.orientation[b:b + BATCH], self.extended)
                               for b in range(0, n, BATCH)])
        return keypoints, desc.astype(np.float32)

    def detect_and_describe(self, image: np.ndarray) -> tuple[SurfKeypoints, np.ndarray]:
        """Keypoints and their descriptors, (K, 64) or (K, 128) float32."""
        grey = self._grey(image)
        keypoints = self._fast_hessian(grey)
        if len(keypoints) == 0:
            return self._describe(grey, keypoints)
        # one mirrored integral image for the orientation and the descriptor
        padded = Padded(grey, reach=DESC_REACH * keypoints.scale, xy=keypoints.xy)
        if not self.upright:
            self._orient(padded, keypoints)
        return self._describe(grey, keypoints, padded)
