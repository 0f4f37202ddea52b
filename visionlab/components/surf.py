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
                     |offset| > 0.5 (Sec. 3.4). The sign of Dxx + Dyy (the Laplacian) tells dark blobs on a bright
                     ground (+1) from bright ones (-1); matching may compare only equal signs (Sec. 4.3).
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
from scipy import ndimage

from visionlab.util.errors import ConfigError, DataError

W_XY = 0.9  # relative weight of Dxy in det(H_approx) (Eq. 3)
SIGMA_PER_SIZE = 1.2 / 9  # the 9 x 9 filter approximates sigma = 1.2 (Sec. 3.2)
ORI_RADIUS, ORI_SIGMA, ORI_WAVELET = 6, 2.5, 4  # orientation: radius 6s, Gaussian 2.5s, wavelet side 4s (Sec. 4.1)
ORI_WINDOW, ORI_STEPS = math.pi / 3, 72  # sliding window of pi/3, placed every 5 degrees
DESC_SIDE, DESC_SUB, DESC_SIGMA = 20, 4, 3.3  # 20s square, 4 x 4 subregions, Gaussian 3.3s (Sec. 4.2)
DESC_REACH = DESC_SIDE / 2 * math.sqrt(2) + 1  # farthest a descriptor sample + wavelet reaches, in units of s
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

    def subset(self, index) -> "SurfKeypoints":
        """The keypoints picked by an index array or boolean mask."""
        return SurfKeypoints(self.xy[index], self.scale[index], self.orientation[index], self.response[index],
                             self.laplacian[index])

    def to_cv2(self) -> list:
        """``cv2.KeyPoint`` list for drawing: size = 20 * scale (the descriptor square's side), angle in degrees."""
        import cv2

        return [cv2.KeyPoint(float(x), float(y), float(DESC_SIDE * s), float(np.degrees(a) % 360), float(r), 0,
                             int(lap))
                for (x, y), s, a, r, lap in zip(self.xy, self.scale, self.orientation, self.response, self.laplacian)]


# ---------------------------------------------------------------------------------------------- integral image, boxes

def integral_image(image: np.ndarray) -> np.ndarray:
    """(H, W) image -> (H + 1, W + 1) float64 integral image with a zero first row and column (Eq. 1)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise DataError(f"integral_image expects a 2-D (H, W) array, got shape {image.shape}")
    ii = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    ii[1:, 1:] = image.cumsum(0).cumsum(1)
    return ii


def box_sum(ii: np.ndarray, y0, x0, y1, x1) -> np.ndarray:
    """Sums over [y0, y1) x [x0, x1) from an integral image; corners may be broadcastable integer arrays.

    Corners are clipped to the image, so a box reaching outside sums only its part inside (zero padding).
    """
    h, w = ii.shape[0] - 1, ii.shape[1] - 1
    y0, y1 = (np.clip(np.asarray(v, dtype=np.intp), 0, h) for v in (y0, y1))
    x0, x1 = (np.clip(np.asarray(v, dtype=np.intp), 0, w) for v in (x0, x1))
    return ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]  # four look-ups (Sec. 3.1)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_filter_size(filter_size: int) -> None:
    if not _is_int(filter_size) or filter_size < 9 or (filter_size - 9) % 6:
        raise ConfigError(f"filter_size must be 9, 15, 21, 27, ... (9 + 6k, odd lobes), got {filter_size!r}")


def _hessian_grid(ii: np.ndarray, size: int, ys: np.ndarray, xs: np.ndarray):
    """Dxx, Dyy, Dxy of filter ``size`` at the grid ys x xs, each (len(ys), len(xs)), divided by size^2 (Sec. 3.3)."""
    lobe, half = size // 3, size // 2  # l = L / 3 (odd); the filter spans [-half, half] around its centre
    wing = lobe - 1  # Dxx / Dyy lobes are 2l - 1 wide: [-(l - 1), l - 1] across
    mid = lobe // 2  # the middle lobe spans [-(l - 1) / 2, (l - 1) / 2] along
    y, x = ys[:, None], xs[None, :]

    def box(dy0, dx0, dy1, dx1):  # box [y + dy0, y + dy1] x [x + dx0, x + dx1], bounds included
        return box_sum(ii, y + dy0, x + dx0, y + dy1 + 1, x + dx1 + 1)

    # (+1, -2, +1) lobes = whole 3l-long box - 3 * middle lobe (Fig. 1 of ECCV / Fig. 2 of CVIU)
    dyy = box(-half, -wing, half, wing) - 3 * box(-mid, -wing, mid, wing)
    dxx = box(-wing, -half, wing, half) - 3 * box(-wing, -mid, wing, mid)
    # four l x l lobes around a one-pixel cross: + top-left, - top-right, - bottom-left, + bottom-right
    dxy = (box(-lobe, -lobe, -1, -1) - box(-lobe, 1, -1, lobe)
           - box(1, -lobe, lobe, -1) + box(1, 1, lobe, lobe))
    area = float(size * size)
    return dxx / area, dyy / area, dxy / area


def hessian_responses(ii: np.ndarray, filter_size: int):
    """Box-filter Dxx, Dyy, Dxy of one size at every pixel, each (H, W), divided by filter_size^2.

    Within filter_size // 2 of the border the filters reach outside the image, which counts as zero there.
    """
    _check_filter_size(filter_size)
    return _hessian_grid(ii, int(filter_size), np.arange(ii.shape[0] - 1), np.arange(ii.shape[1] - 1))


def _haar(ii: np.ndarray, y: np.ndarray, x: np.ndarray, half: np.ndarray):
    """Haar wavelet responses of side 2 * half at integer (y, x): dx = right - left, dy = bottom - top, as means."""
    dx = box_sum(ii, y - half, x, y + half, x + half) - box_sum(ii, y - half, x - half, y + half, x)
    dy = box_sum(ii, y, x - half, y + half, x + half) - box_sum(ii, y - half, x - half, y, x + half)
    area = 2.0 * half * half
    return dx / area, dy / area


# ---------------------------------------------------------------------------------------------- SURF


def _layer_sizes(octave: int, intervals: int) -> list[int]:
    """Filter sizes of one octave: 9, 15, 21, 27 | 15, 27, 39, 51 | 27, 51, 75, 99 | ... (Sec. 3.3)."""
    return [3 * (2 ** (octave + 1) * (i + 1) + 1) for i in range(intervals)]


class Surf:
    """SURF detector (fast-Hessian) and descriptor (64-d, or 128-d extended); upright=True gives U-SURF."""

    def __init__(self, *, hessian_threshold: float = 100.0, octaves: int = 4, intervals: int = 4,
                 upright: bool = False, extended: bool = False, max_keypoints: int | None = None):
        """hessian_threshold: minimum det(H_approx) for 0-255 grey (see the module docstring);
        intervals: filters per octave (>= 3; the first and last only serve as neighbours);
        max_keypoints: keep the strongest ones (None: all above the threshold)."""
        if not (_is_real(hessian_threshold) and math.isfinite(hessian_threshold) and hessian_threshold >= 0):
            raise ConfigError(f"hessian_threshold must be a finite number >= 0, got {hessian_threshold!r}")
        if not _is_int(octaves) or octaves < 1:
            raise ConfigError(f"octaves must be an integer >= 1, got {octaves!r}")
        if not _is_int(intervals) or intervals < 3:
            raise ConfigError(f"intervals must be an integer >= 3 (a 3 x 3 x 3 scale neighbourhood), got {intervals!r}")
        if max_keypoints is not None and (not _is_int(max_keypoints) or max_keypoints < 1):
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

    def _grey(self, image) -> np.ndarray:
        """(H, W) or (H, W, 3), uint8 or float in [0, 1] -> (H, W) float64 grey in 0-255."""
        image = np.asarray(image)
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise DataError(f"SURF expects an (H, W) grey or (H, W, 3) RGB image, got shape {image.shape}")
        min_size = _layer_sizes(0, self.intervals)[-1] + 2  # first octave's largest filter, 3 x 3 neighbourhood
        if min(image.shape[:2]) < min_size:
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

    @staticmethod
    def _padded_integral(grey: np.ndarray, reach: float):
        """Integral image of ``grey`` mirrored by ``reach`` pixels on every side, so that orientation and descriptor
        windows near the border see plausible pixels instead of zeros; returns it and the padding."""
        pad = int(min(math.ceil(reach) + 2, 3 * max(grey.shape)))
        return integral_image(np.pad(grey, pad, mode="symmetric")), pad

    # ------------------------------------------------------------------------------------------ detector

    def detect(self, image: np.ndarray) -> SurfKeypoints:
        """Fast-Hessian keypoints of an image, with orientations unless upright (Sec. 3, 4.1)."""
        return self._detect(self._grey(image))

    def _detect(self, grey: np.ndarray) -> SurfKeypoints:
        ii, (height, width) = integral_image(grey), grey.shape
        found = []  # per octave: (x, y, scale, response, laplacian)
        for octave in range(self.octaves):
            step, sizes = 2 ** octave, _layer_sizes(octave, self.intervals)
            if sizes[-1] + 2 * step > min(height, width):
                break  # this octave's largest filter no longer fits with a neighbourhood around it
            ys, xs = np.arange(0, height, step), np.arange(0, width, step)
            dets, traces = [], []
            for size in sizes:
                dxx, dyy, dxy = _hessian_grid(ii, size, ys, xs)
                half = size // 2  # filters must lie inside the image
                inside = ((ys >= half) & (ys < height - half))[:, None] & ((xs >= half) & (xs < width - half))[None]
                dets.append(np.where(inside, dxx * dyy - (W_XY * dxy) ** 2, -np.inf))  # det(H_approx) (Eq. 4)
                traces.append(dxx + dyy >= 0)  # only the sign of the Laplacian is kept (Sec. 4.3)
            det = np.stack(dets)  # (S, Hy, Wx)
            # 3 x 3 x 3 non-maximum suppression in (scale, y, x), all 26 neighbours inside the image (Sec. 3.4)
            peak = (det == ndimage.maximum_filter(det, size=3, mode="constant", cval=-np.inf))
            peak &= det > self.hessian_threshold
            peak &= ndimage.minimum_filter(det, size=3, mode="constant", cval=-np.inf) > -np.inf
            peak[[0, -1]] = False  # the first and last layers only serve as neighbours
            layer, row, col = np.nonzero(peak)
            offset, response, keep = _refine(det, layer, row, col)
            layer, row, col, offset, response = layer[keep], row[keep], col[keep], offset[keep], response[keep]
            size = np.asarray(sizes)[layer] + offset[:, 0] * (sizes[1] - sizes[0])  # interpolated filter size
            found.append(((col + offset[:, 2]) * step, (row + offset[:, 1]) * step, SIGMA_PER_SIZE * size, response,
                          np.where(np.stack(traces)[layer, row, col], 1, -1)))
        x, y, scale, response, laplacian = (np.concatenate(parts) for parts in zip(*found))
        order = np.argsort(-response, kind="stable")[: self.max_keypoints]  # strongest first
        kp = SurfKeypoints(np.stack([x, y], 1)[order].astype(np.float32), scale[order].astype(np.float32),
                           np.zeros(len(order), np.float32), response[order].astype(np.float32),
                           laplacian[order].astype(np.int8))
        if not self.upright and len(kp):
            padded, pad = self._padded_integral(grey, (ORI_RADIUS + ORI_WAVELET / 2) * kp.scale.max())
            kp.orientation = np.concatenate([_orientation(padded, pad, kp.xy[b:b + BATCH], kp.scale[b:b + BATCH])
                                             for b in range(0, len(kp), BATCH)]).astype(np.float32)
        return kp

    # ------------------------------------------------------------------------------------------ descriptor

    def describe(self, image: np.ndarray, keypoints: SurfKeypoints) -> tuple[SurfKeypoints, np.ndarray]:
        """Descriptors (K, 64) or (K, 128) float32 of unit length at the given keypoints (Sec. 4.2).

        Uses each keypoint's orientation (0 when upright); windows reaching past the border see the image mirrored,
        so no keypoint is dropped and the keypoints come back as given (orientation zeroed when upright).
        """
        return self._describe(self._grey(image), keypoints)

    def _describe(self, grey: np.ndarray, keypoints: SurfKeypoints):
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
        padded, pad = self._padded_integral(grey, DESC_REACH * float(keypoints.scale.max()))
        desc = np.concatenate([_descriptor(padded, pad, keypoints.xy[b:b + BATCH], keypoints.scale[b:b + BATCH],
                                           keypoints.orientation[b:b + BATCH], self.extended)
                               for b in range(0, n, BATCH)])
        return keypoints, desc.astype(np.float32)

    def detect_and_describe(self, image: np.ndarray) -> tuple[SurfKeypoints, np.ndarray]:
        """Keypoints and their descriptors, (K, 64) or (K, 128) float32."""
        grey = self._grey(image)
        return self._describe(grey, self._detect(grey))


# ---------------------------------------------------------------------------------------------- steps


def _refine(det: np.ndarray, s: np.ndarray, y: np.ndarray, x: np.ndarray):
    """Brown & Lowe's 3-D quadratic fit at discrete maxima (Sec. 3.4): offsets (K, 3) in (scale, y, x) sample units,
    interpolated det, and a mask of the fits whose offsets all lie within 0.5."""
    def d(ds, dy, dx):
        return det[s + ds, y + dy, x + dx]

    centre = d(0, 0, 0)
    grad = np.stack([d(1, 0, 0) - d(-1, 0, 0), d(0, 1, 0) - d(0, -1, 0), d(0, 0, 1) - d(0, 0, -1)], -1) / 2  # (K, 3)
    hss, hyy, hxx = (d(*u) + d(*(-np.array(u))) - 2 * centre for u in ((1, 0, 0), (0, 1, 0), (0, 0, 1)))

    def cross(a, b):  # mixed second difference along unit directions a, b
        return (d(*(a + b)) - d(*(a - b)) - d(*(b - a)) + d(*(-a - b))) / 4

    es, ey, ex = np.eye(3, dtype=int)
    hsy, hsx, hyx = cross(es, ey), cross(es, ex), cross(ey, ex)
    hess = np.stack([hss, hsy, hsx, hsy, hyy, hyx, hsx, hyx, hxx], -1).reshape(-1, 3, 3)  # (K, 3, 3)
    singular = np.linalg.det(hess) == 0
    hess[singular] = np.eye(3)
    offset = -np.linalg.solve(hess, grad[..., None])[..., 0]  # x_hat = -H^-1 g
    keep = ~singular & (np.abs(offset) <= 0.5).all(1)
    return offset, centre + 0.5 * (grad * offset).sum(1), keep  # D(x_hat) = D + g . x_hat / 2


def _orientation(ii: np.ndarray, pad: int, xy: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Dominant orientation (radians) of K keypoints from Haar responses in a circle of radius 6s (Sec. 4.1)."""
    j, i = np.mgrid[-ORI_RADIUS:ORI_RADIUS + 1, -ORI_RADIUS:ORI_RADIUS + 1]
    disc = i ** 2 + j ** 2 <= ORI_RADIUS ** 2
    i, j = i[disc], j[disc]  # (N,) = 109 sample offsets of step s
    s = scale.astype(np.float64)[:, None]  # (K, 1)
    px = np.rint(xy[:, :1] + i * s).astype(np.intp) + pad  # (K, N)
    py = np.rint(xy[:, 1:] + j * s).astype(np.intp) + pad
    half = np.maximum(1, np.rint(ORI_WAVELET / 2 * s)).astype(np.intp)  # wavelets of side 4s
    dx, dy = _haar(ii, py, px, half)
    weight = np.exp(-(i ** 2 + j ** 2) / (2 * ORI_SIGMA ** 2))  # Gaussian, sigma 2.5s
    dx, dy = dx * weight, dy * weight
    centres = np.arange(ORI_STEPS) * (2 * np.pi / ORI_STEPS)  # (A,)
    angle = np.arctan2(dy, dx)  # (K, N)
    gap = (angle[:, None, :] - centres[None, :, None] + np.pi) % (2 * np.pi) - np.pi  # (K, A, N)
    window = (np.abs(gap) < ORI_WINDOW / 2).astype(np.float64)  # sliding window of pi/3
    sum_x, sum_y = window @ dx[..., None], window @ dy[..., None]  # (K, A, 1)
    best = np.argmax(sum_x ** 2 + sum_y ** 2, axis=1)[:, 0]  # longest vector
    rows = np.arange(len(best))
    return np.arctan2(sum_y[rows, best, 0], sum_x[rows, best, 0])


def _descriptor(ii: np.ndarray, pad: int, xy: np.ndarray, scale: np.ndarray, theta: np.ndarray,
                extended: bool) -> np.ndarray:
    """SURF descriptors (K, 64) or (K, 128) of unit length (Sec. 4.2)."""
    k = len(scale)
    t = np.arange(DESC_SIDE) - (DESC_SIDE - 1) / 2  # sample centres -9.5 .. 9.5, in units of s
    v, u = (a.ravel() for a in np.meshgrid(t, t, indexing="ij"))  # (400,) along and across the orientation
    s = scale.astype(np.float64)[:, None]
    cos, sin = np.cos(theta.astype(np.float64))[:, None], np.sin(theta.astype(np.float64))[:, None]
    px = np.rint(xy[:, :1] + s * (u * cos - v * sin)).astype(np.intp) + pad  # (K, 400) the square, turned by theta
    py = np.rint(xy[:, 1:] + s * (u * sin + v * cos)).astype(np.intp) + pad
    dx, dy = _haar(ii, py, px, np.maximum(1, np.rint(s)).astype(np.intp))  # wavelets of side 2s
    weight = np.exp(-(u ** 2 + v ** 2) / (2 * DESC_SIGMA ** 2))  # Gaussian, sigma 3.3s
    du = (dx * cos + dy * sin) * weight  # responses along the orientation ...
    dv = (-dx * sin + dy * cos) * weight  # ... and across it
    sub = (k, DESC_SUB, DESC_SIDE // DESC_SUB, DESC_SUB, DESC_SIDE // DESC_SUB)
    du, dv = du.reshape(sub), dv.reshape(sub)  # (K, 4, 5, 4, 5): subregion row, sample, subregion column, sample

    def total(a):
        return a.sum((2, 4))  # (K, 4, 4) sum over the 5 x 5 samples of each subregion

    if extended:  # SURF-128: split by the sign of the other response
        neg_v, neg_u = dv < 0, du < 0
        parts = [total(np.where(m, f(du), 0)) for f in (np.asarray, np.abs) for m in (neg_v, ~neg_v)]
        parts += [total(np.where(m, f(dv), 0)) for f in (np.asarray, np.abs) for m in (neg_u, ~neg_u)]
    else:
        parts = [total(du), total(dv), total(np.abs(du)), total(np.abs(dv))]
    desc = np.stack(parts, -1).reshape(k, -1)  # (K, 16 * 4) or (K, 16 * 8)
    return desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)  # unit length
