"""SURF's orientation and descriptor from Haar wavelets on an integral image (Bay et al., CVIU 2008, Sec. 4); the
detector is in ``surf_detect.py`` and the user-facing ``Surf`` in ``surf.py``.

Why by hand: no pip wheel ships SURF (see ``surf.py``). Why this shape: both steps read Haar responses at a fixed
pattern of sample points around every keypoint, so each is one gather for all K keypoints at once, (K, N) points:

    Haar wavelet     dx = right half - left half, dy = bottom half - top half of a square of side 2h, as means;
                     the two share their corners, so 8 look-ups of the integral image give both (not 16)
    orientation      N = 109 samples of step s within radius 6s, side 4s, Gaussian weight sigma 2.5s (ECCV Sec. 4.1);
                     the window of pi/3 slides round the circle in steps of 1 degree: the weighted responses are
                     summed into 360 one-degree bins, and a cumulative sum along the circle gives every window's
                     sum (sum dx, sum dy) at once; the longest one gives the orientation (Sec. 4.1)
    descriptor       N = 400 samples of step s in a 20s square turned by the orientation, side 2s, Gaussian weight
                     sigma 3.3s, turned into the square's frame; sums over 4 x 4 subregions of 5 x 5 samples give
                     v = (sum dx, sum dy, sum |dx|, sum |dy|) each, or SURF-128's sign-split sums (Sec. 4.2)

The orientation reads Haar responses at sub-pixel positions (bilinear in the four whole positions around a sample);
the descriptor, with four times as many samples, rounds them to the nearest whole pixel, as the paper and OpenCV do,
but centres the wavelet on the sample (a whole-pixel Haar box is centred between pixels, half a pixel up and left,
which a turned view does not share). Windows reaching past the border read a mirrored copy of the image (``Padded``)
rather than zeros, so a keypoint near the border keeps a descriptor.
"""

from __future__ import annotations

import math

import numpy as np

from visionlab.components.surf_detect import integral_image

ORI_RADIUS, ORI_SIGMA, ORI_WAVELET = 6, 2.5, 4  # orientation: radius 6s, Gaussian 2.5s, wavelet side 4s (Sec. 4.1)
ORI_WINDOW, ORI_BINS = math.pi / 3, 360  # sliding window of pi/3, placed every degree
DESC_SIDE, DESC_SUB, DESC_SIGMA = 20, 4, 3.3  # 20s square, 4 x 4 subregions, Gaussian 3.3s (Sec. 4.2)
DESC_REACH = DESC_SIDE / 2 * math.sqrt(2) + 1  # farthest a descriptor sample + wavelet reaches, in units of s
ORI_REACH = ORI_RADIUS + ORI_WAVELET / 2  # the same for the orientation's samples


class Padded:
    """The integral image of a grey image mirrored by ``pad`` pixels on every side, flattened for gathers.

    ``reach``: how far past the border a window may read, in pixels; with keypoints ``xy`` (K, 2), ``reach`` is (K,)
    and the padding is the farthest any keypoint's window crosses the border (often far less than the largest window:
    large keypoints lie far inside, so the padded image, and its cost, stay small).
    """

    def __init__(self, grey: np.ndarray, *, reach, xy: np.ndarray | None = None):
        if xy is not None:  # distance of each keypoint to the nearest border, (K,)
            inside = np.minimum(np.minimum(xy[:, 0], grey.shape[1] - 1 - xy[:, 0]),
                                np.minimum(xy[:, 1], grey.shape[0] - 1 - xy[:, 1]))
            reach = float(np.max(np.asarray(reach) - inside, initial=0.0))
        self.pad = int(min(math.ceil(reach) + 2, 3 * max(grey.shape)))
        ii = integral_image(np.pad(grey, self.pad, mode="symmetric"))  # (H + 2 pad + 1, W + 2 pad + 1)
        self.flat, self.shape = ii.ravel(), ii.shape

    def haar(self, x: np.ndarray, y: np.ndarray, half: np.ndarray):
        """Haar responses (dx, dy) of side 2 half at the rounded (x, y), any equal shapes: the boxes meet at the
        integral image's corner (x, y), which is the corner between pixels at (x - 1/2, y - 1/2) of the image."""
        width = self.shape[1]
        px = np.clip(np.rint(x).astype(np.intp) + self.pad, half, width - 1 - half)
        py = np.clip(np.rint(y).astype(np.intp) + self.pad, half, self.shape[0] - 1 - half)
        centre, row = py * width + px, half * width

        def at(dy, dx):  # the integral image at (y + dy half, x + dx half)
            return self.flat.take(centre + dy * row + dx * half)

        top_left, top, top_right = at(-1, -1), at(-1, 0), at(-1, 1)
        left, right = at(0, -1), at(0, 1)
        bottom_left, bottom, bottom_right = at(1, -1), at(1, 0), at(1, 1)
        dx = (bottom_right - top_right) - 2 * (bottom - top) + (bottom_left - top_left)  # right box - left box
        dy = (bottom_right - bottom_left) - 2 * (right - left) + (top_right - top_left)  # bottom box - top box
        area = 2.0 * half * half
        return dx / area, dy / area

    def haar_subpixel(self, x: np.ndarray, y: np.ndarray, half: np.ndarray):
        """Haar responses centred exactly at (x, y), not at a rounded pixel: the responses at the four whole
        positions around it, blended bilinearly (the same as reading the integral image's corners bilinearly).

        ``haar`` at whole (x, y) is centred on the corner between pixels, (x - 1/2, y - 1/2); the +1/2 here puts the
        centre on (x, y) itself, so a turned image turns the sample pattern with it instead of a fixed half-pixel
        shift and a rounding that differ from view to view."""
        x, y = x + 0.5, y + 0.5
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = x - x0, y - y0
        dx, dy = 0.0, 0.0
        for ox, oy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                               (1, 1, fx * fy)):
            hx, hy = self.haar(x0 + ox, y0 + oy, half)
            dx, dy = dx + weight * hx, dy + weight * hy
        return dx, dy


def _disc_offsets():
    j, i = np.mgrid[-ORI_RADIUS:ORI_RADIUS + 1, -ORI_RADIUS:ORI_RADIUS + 1]
    disc = i ** 2 + j ** 2 <= ORI_RADIUS ** 2
    return i[disc].astype(np.float64), j[disc].astype(np.float64)  # (109,) each, in units of s


DISC_I, DISC_J = _disc_offsets()
DISC_WEIGHT = np.exp(-(DISC_I ** 2 + DISC_J ** 2) / (2 * ORI_SIGMA ** 2))  # Gaussian, sigma 2.5s


def orientation(padded: Padded, xy: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Dominant orientation (K,) in radians of K keypoints (xy (K, 2), scale (K,)) (Sec. 4.1)."""
    k = len(scale)
    s = scale.astype(np.float64)[:, None]  # (K, 1)
    half = np.maximum(1, np.rint(ORI_WAVELET / 2 * s)).astype(np.intp)  # wavelets of side 4s
    dx, dy = padded.haar_subpixel(xy[:, :1] + DISC_I * s, xy[:, 1:] + DISC_J * s, half)  # (K, 109) each
    dx, dy = dx * DISC_WEIGHT, dy * DISC_WEIGHT
    angle = np.arctan2(dy, dx)  # (K, 109) in (-pi, pi]
    bins = (np.floor(angle * (ORI_BINS / (2 * np.pi))).astype(np.intp) % ORI_BINS) + ORI_BINS * np.arange(k)[:, None]
    sums = [np.bincount(bins.ravel(), weights=a.ravel(), minlength=k * ORI_BINS).reshape(k, ORI_BINS)
            for a in (dx, dy)]  # (K, 360) per one-degree bin
    width = round(ORI_WINDOW * ORI_BINS / (2 * np.pi))  # 60 bins
    window = []
    for a in sums:  # circular sliding sum over ``width`` bins: window w covers bins w .. w + width - 1 (mod 360)
        c = np.concatenate([np.zeros((k, 1)), np.cumsum(np.concatenate([a, a[:, :width]], 1), 1)], 1)
        window.append(c[:, width:width + ORI_BINS] - c[:, :ORI_BINS])  # (K, 360)
    sum_x, sum_y = window
    best = np.argmax(sum_x ** 2 + sum_y ** 2, axis=1)  # longest vector
    rows = np.arange(k)
    return np.arctan2(sum_y[rows, best], sum_x[rows, best])


def _square_offsets():
    t = np.arange(DESC_SIDE) - (DESC_SIDE - 1) / 2  # sample centres -9.5 .. 9.5, in units of s
    v, u = (a.ravel() for a in np.meshgrid(t, t, indexing="ij"))  # (400,) across and along the orientation
    return u, v


SQUARE_U, SQUARE_V = _square_offsets()
SQUARE_WEIGHT = np.exp(-(SQUARE_U ** 2 + SQUARE_V ** 2) / (2 * DESC_SIGMA ** 2))  # Gaussian, sigma 3.3s


def descriptor(padded: Padded, xy: np.ndarray, scale: np.ndarray, theta: np.ndarray, extended: bool) -> np.ndarray:
    """SURF descriptors (K, 64) or (K, 128) of unit length (Sec. 4.2)."""
    k, u, v = len(scale), SQUARE_U, SQUARE_V
    s = scale.astype(np.float64)[:, None]
    cos, sin = np.cos(theta.astype(np.float64))[:, None], np.sin(theta.astype(np.float64))[:, None]
    x = xy[:, :1] + s * (u * cos - v * sin)  # (K, 400) the square, turned by theta
    y = xy[:, 1:] + s * (u * sin + v * cos)
    # wavelets of side 2s at the whole pixel nearest each sample, centred on it (+1/2, see ``haar_subpixel``): the
    # bilinear blend would match a little better under rotation (benchmarks: M_desc at 30 degrees 0.96 against 0.91)
    # but reads 4 x as much and would double SURF's time; the centring alone lifts 0.90 to 0.91 (90 degrees: 0.93 to
    # 1.00) for nothing
    dx, dy = padded.haar(x + 0.5, y + 0.5, np.maximum(1, np.rint(s)).astype(np.intp))
    du = (dx * cos + dy * sin) * SQUARE_WEIGHT  # responses along the orientation ...
    dv = (-dx * sin + dy * cos) * SQUARE_WEIGHT  # ... and across it
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
