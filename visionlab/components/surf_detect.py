"""SURF's fast-Hessian detector on an integral image (Bay et al., CVIU 2008, Sec. 3); the descriptor is in
``surf_describe.py`` and the user-facing ``Surf`` in ``surf.py``.

Why by hand: no pip wheel ships SURF (see ``surf.py``). Why this shape: a box sum costs four look-ups whatever its
size (Eq. 1), but looking up every pixel's corners one gather at a time is slow in NumPy. Here every box filter of an
octave is read off the integral image with *strided slices* (one contiguous array operation per corner, the same for
all grid points), and the two boxes of Dxx (whole and middle lobe) share one strip sum: a strip of the integral image
across x (a difference of two of its columns) already sums over x, so the box over rows is one more difference.

    Dyy(y, x) = C[y + h + 1] - C[y - h] - 3 (C[y + m + 1] - C[y - m]),  C = I_S[:, x + l] - I_S[:, x - l + 1]
                (h = L // 2, m = l // 2, l = L / 3; C sums columns x - l + 1 .. x + l - 1, the lobes' 2l - 1 width)
    Dxy(y, x) = (E[y] - E[y - l]) - (E[y + l + 1] - E[y + 1]),  E = (I_S[:, x] - I_S[:, x - l]) - (I_S[:, x + l + 1]
                - I_S[:, x + 1])   (left strip minus right strip; four l x l lobes around a one-pixel cross)

Maxima of det(H_approx) (Eq. 4) in 3 x 3 x 3 (scale, y, x) neighbourhoods are found among the points above the
threshold only (a gather of 27 values each, not a maximum filter over the whole pyramid), then refined by Brown and
Lowe's quadratic fit (Sec. 3.4).
"""

from __future__ import annotations

import numbers

import numpy as np

from visionlab.util.errors import ConfigError, DataError

W_XY = 0.9  # relative weight of Dxy in det(H_approx) (Eq. 3)
SIGMA_PER_SIZE = 1.2 / 9  # the 9 x 9 filter approximates sigma = 1.2 (Sec. 3.2)
# The quadratic fit may move a maximum by up to one sample in each of (scale, y, x). Rejecting offsets above 0.5 (the
# strict reading of Sec. 3.4) drops a blob whose true extremum falls between two samples; which side of 0.5 it lands on
# changes with the sampling grid, so a rotated copy of the image keeps a different subset of blobs. Measured on the
# benchmark's photos at 30 degrees: repeatability 0.57 with 0.5, see ``benchmarks/results/surf_stages.md`` for 1.0.
MAX_OFFSET = 1.0  # OpenCV's SURF uses the same bound (interpolateKeypoint: |x| <= 1)


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


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_filter_size(filter_size: int) -> None:
    if not is_int(filter_size) or filter_size < 9 or (filter_size - 9) % 6:
        raise ConfigError(f"filter_size must be 9, 15, 21, 27, ... (9 + 6k, odd lobes), got {filter_size!r}")


def layer_sizes(octave: int, intervals: int) -> list[int]:
    """Filter sizes of one octave: 9, 15, 21, 27 | 15, 27, 39, 51 | 27, 51, 75, 99 | ... (Sec. 3.3)."""
    return [3 * (2 ** (octave + 1) * (i + 1) + 1) for i in range(intervals)]


def box_hessian(ii: np.ndarray, size: int, step: int, rows: tuple[int, int], cols: tuple[int, int],
                dtype=np.float32):
    """Dxx, Dyy, Dxy of filter ``size`` divided by size^2, at the pixels (r step, c step) for grid rows r in
    [rows[0], rows[1]) and columns c in [cols[0], cols[1]); each (R, C). The filters must lie inside ``ii``.

    The strips are differences of the float64 integral image, then ``dtype``: a strip sums at most H (2l - 1) pixels,
    so for 0-255 images below 2^24 / 255 = 65,793 pixels that many the float32 strips are exact integers, and every
    later difference of them too; float32 halves the memory the filters stream through (the detector's main cost).
    """
    lobe, half = size // 3, size // 2  # l = L / 3 (odd); the filter spans [-half, half] around its centre
    wing, mid = lobe - 1, lobe // 2  # Dxx / Dyy lobes are 2l - 1 = 2 wing + 1 wide; the middle lobe is l = 2 mid + 1

    def ys(offset):  # integral-image rows y + offset of the grid rows, as one strided slice
        return slice(rows[0] * step + offset, (rows[1] - 1) * step + offset + 1, step)

    def xs(offset):
        return slice(cols[0] * step + offset, (cols[1] - 1) * step + offset + 1, step)

    # (+1, -2, +1) lobes = whole 3l-long box - 3 * middle lobe (Fig. 1 of ECCV / Fig. 2 of CVIU); the strip sums
    # across (c, r below) are shared by both boxes
    c = (ii[:, xs(wing + 1)] - ii[:, xs(-wing)]).astype(dtype)  # (H + 1, C): rows of I_S summed over x +- wing
    dyy = c[ys(half + 1)] - c[ys(-half)] - 3 * (c[ys(mid + 1)] - c[ys(-mid)])  # (R, C)
    r = (ii[ys(wing + 1)] - ii[ys(-wing)]).astype(dtype)  # (R, W + 1)
    dxx = r[:, xs(half + 1)] - r[:, xs(-half)] - 3 * (r[:, xs(mid + 1)] - r[:, xs(-mid)])  # (R, C)
    # four l x l lobes around a one-pixel cross: + top-left, - top-right, - bottom-left, + bottom-right
    e = ((ii[:, xs(0)] - ii[:, xs(-lobe)]) - (ii[:, xs(lobe + 1)] - ii[:, xs(1)])).astype(dtype)  # left - right
    dxy = (e[ys(0)] - e[ys(-lobe)]) - (e[ys(lobe + 1)] - e[ys(1)])  # (R, C)
    area = dtype(size * size)
    return dxx / area, dyy / area, dxy / area


def hessian_responses(ii: np.ndarray, filter_size: int):
    """Box-filter Dxx, Dyy, Dxy of one size at every pixel, each (H, W), divided by filter_size^2.

    Within filter_size // 2 of the border the filters reach outside the image, which counts as zero there.
    """
    check_filter_size(filter_size)
    pad = filter_size // 2 + 1
    height, width = ii.shape[0] - 1, ii.shape[1] - 1
    padded = np.pad(ii, pad, mode="edge")  # repeating the integral image's edges = zero pixels outside
    return box_hessian(padded, int(filter_size), 1, (pad, pad + height), (pad, pad + width), dtype=np.float64)


def octave_det(ii: np.ndarray, sizes: list[int], step: int, known: dict | None = None):
    """det(H_approx) (Eq. 4) of one octave, (S, Hy, Wx) on the grid of ``step`` pixels, -inf where a filter would
    reach outside the image; and the sign of the Laplacian, Dxx + Dyy >= 0, (S, Hy, Wx) bool (Sec. 4.3).

    ``known``: {size: (det, laplacian)} of the previous octave (grid step / 2); the octaves overlap (15 and 27 are in
    the first two, 27 and 51 in the next two, ...), and a shared size is that octave's layer taken every other sample.
    """
    height, width = ii.shape[0] - 1, ii.shape[1] - 1
    shape = (len(sizes), -(-height // step), -(-width // step))
    det, laplacian = np.full(shape, -np.inf, np.float32), np.zeros(shape, bool)
    for k, size in enumerate(sizes):
        if known and size in known:
            det[k], laplacian[k] = known[size][0][::2, ::2], known[size][1][::2, ::2]
            continue
        half = size // 2  # grid points whose filter lies inside: half <= y < height - half
        r0, r1, c0, c1 = -(-half // step), -(-(height - half) // step), -(-half // step), -(-(width - half) // step)
        if r1 <= r0 or c1 <= c0:
            continue
        dxx, dyy, dxy = box_hessian(ii, size, step, (r0, r1), (c0, c1))
        det[k, r0:r1, c0:c1] = dxx * dyy - (W_XY * dxy) ** 2  # det(H_approx) (Eq. 4)
        laplacian[k, r0:r1, c0:c1] = dxx + dyy >= 0
    return det, laplacian


OFFSETS = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(27, 3)  # (27, 3) (ds, dy, dx)


def octave_maxima(det: np.ndarray, threshold: float):
    """Layer, row, column of the points above ``threshold`` that are >= their 26 neighbours, all of which lie
    inside the image (Sec. 3.4); the first and last layers only serve as neighbours."""
    layer, row, col = np.nonzero(det[1:-1, 1:-1, 1:-1] > threshold)
    layer, row, col = layer + 1, row + 1, col + 1
    centre = det[layer, row, col]
    # most candidates lie on a blob's flank: the 6 face neighbours rule them out cheaply before the full cube
    axes = OFFSETS[np.abs(OFFSETS).sum(1) == 1]  # (6, 3)
    face = det[layer[:, None] + axes[:, 0], row[:, None] + axes[:, 1], col[:, None] + axes[:, 2]]  # (K, 6)
    alive = face.max(1) <= centre
    layer, row, col = layer[alive], row[alive], col[alive]
    cube = det[layer[:, None] + OFFSETS[:, 0], row[:, None] + OFFSETS[:, 1], col[:, None] + OFFSETS[:, 2]]  # (K, 27)
    peak = (cube.max(1) <= det[layer, row, col]) & (cube.min(1) > -np.inf)
    return layer[peak], row[peak], col[peak]


def refine(det: np.ndarray, s: np.ndarray, y: np.ndarray, x: np.ndarray):
    """Brown & Lowe's 3-D quadratic fit at discrete maxima (Sec. 3.4): offsets (K, 3) in (scale, y, x) sample units,
    interpolated det, and a mask of the fits whose offsets all lie within ``MAX_OFFSET``."""
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
    keep = ~singular & (np.abs(offset) <= MAX_OFFSET).all(1)
    return offset, centre + 0.5 * (grad * offset).sum(1), keep  # D(x_hat) = D + g . x_hat / 2


def fast_hessian(grey: np.ndarray, *, threshold: float, octaves: int, intervals: int):
    """Keypoints of a (H, W) float image: x, y, scale, response, Laplacian sign, each (K,) unsorted (Sec. 3)."""
    ii, (height, width) = integral_image(grey), grey.shape
    found, known = [], {}  # per octave: (x, y, scale, response, laplacian); the previous octave's layers by size
    for octave in range(octaves):
        step, sizes = 2 ** octave, layer_sizes(octave, intervals)
        if sizes[-1] + 2 * step > min(height, width):
            break  # this octave's largest filter no longer fits with a neighbourhood around it
        det, laplacian = octave_det(ii, sizes, step, known)  # (S, Hy, Wx)
        known = {size: (det[k], laplacian[k]) for k, size in enumerate(sizes)}
        layer, row, col = octave_maxima(det, threshold)
        offset, response, keep = refine(det, layer, row, col)
        layer, row, col, offset, response = layer[keep], row[keep], col[keep], offset[keep], response[keep]
        size = np.asarray(sizes)[layer] + offset[:, 0] * (sizes[1] - sizes[0])  # interpolated filter size
        found.append(((col + offset[:, 2]) * step, (row + offset[:, 1]) * step, SIGMA_PER_SIZE * size, response,
                      np.where(laplacian[layer, row, col], 1, -1)))
    return [np.concatenate(parts) for parts in zip(*found)]
