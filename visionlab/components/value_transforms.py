"""Reversible value transforms for neural-field targets: the base class, min-max, z-score and symmetric power.

A neural field is trained to output the pixel values of one image. Those values arrive scaled to [0, 1]; how they are
mapped before training changes how fast the network fits them (Zhang et al., "Symmetric Power Transformation",
AAAI 2025, arXiv 2412.09213): a target distribution that is centred and symmetric within [-1, 1] is learned faster.
Each transform is fitted once on the values of one image, maps them forward for training, and maps the network's
predictions back with ``inverse`` so that metrics are computed on the original [0, 1] range.

    minmax     y = 2 (x - min) / (max - min) - 1 = m(x), in [-1, 1]                  (the default)
    zscore     y = (x - mean) / std
    sympower   y = 2 (u^gamma - 0.5),   u = (x - min + s_L) / (max - min + s_L + s_R)

The transforms that the Sym-Power paper compares it with are in :mod:`.compared_transforms`; all of them by name in
:mod:`.transforms`.

Sym-Power works in 0-255 intensity units (x = 255 * value). It reads gamma and the soft boundary s_L, s_R off a
256-bin histogram of all values of all channels over [min, max], in five steps:

    (1) base exponent   gamma_0 = ln 0.5 / ln(b / 256),  b the bin at which the cumulative histogram reaches 0.5,
                        so that the median goes to u^gamma_0 = 0.5, i.e. to y = 0;
    (2) calibration     a power squeezes one tail: the low end when gamma_0 > 1, the high end when gamma_0 < 1. On
                        that tail's 12 bins (beta = 0.05 of the range) measure
                            delta = (mass after the power - mass before) / beta,  clipped to [0, 1],
                        and move gamma back towards 1 in proportion:
                            gamma = gamma_0 - (gamma_0 - 1) delta                if gamma_0 > 1,
                            1 / gamma = 1 / gamma_0 - (1 / gamma_0 - 1) delta    if gamma_0 < 1
                        (delta = 1, a tail crowded by 5 % of the pixels, gives gamma = 1: no power at all);
    (3) clamp           gamma to [1/5, 5];
    (4) soft boundary   s_L = 256 * (mass of the first 2 bins), s_R = 256 * (mass of the last 2 bins), so the extreme
                        values stay off u = 0 and u = 1, where the slope of u^gamma is 0 or infinite;
    (5) output          y = 2 (u^gamma - 0.5), in [-1, 1].
    Inverse             x = clamp(y / 2 + 0.5, 0, 1)^(1 / gamma) (max - min + s_L + s_R) + min - s_L,
                        divided by 255 and clamped to [0, 1].

Shapes: N pixels, C channels; values are (N, C). Fitting uses all values of all channels at once (any shape works).

Example::

    >>> t = SymPower().fit(values)                          # values (N, C) in [0, 1]
    >>> y = t(values)                                        # (N, C) in [-1, 1]
    >>> print(t)                                             # the fitted gamma0, gamma, s_left, ...
    >>> torch.allclose(t.inverse(y), values, atol=1e-5)
    True
"""

from __future__ import annotations

import math

import numpy as np
import torch

from visionlab.util.errors import DataError

NUM_BINS = 256  # histogram bins, one per 8-bit intensity level
BETA = 0.05  # tail fraction of the calibration step (2)
TAIL_BINS = int(BETA * NUM_BINS)  # 12 bins: 0.05 of 256, rounded down
EDGE_BINS = 2  # bins counted by the soft boundary, step (4)
GAMMA_MIN, GAMMA_MAX = 1 / 5, 5.0  # clamp of step (3)
VALUE_TOL = 1e-6  # float round-off allowed outside [0, 1] when checking fit's input


def _to_float64(values: torch.Tensor) -> np.ndarray:
    """Check that `values` are finite numbers in [0, 1] and return them as a flat float64 NumPy array."""
    if not isinstance(values, torch.Tensor):
        raise DataError(f"values must be a torch.Tensor of shape (N, C), got {type(values).__name__}")
    if values.numel() == 0:
        raise DataError(f"values are empty (shape {tuple(values.shape)}); there is nothing to fit")
    v = values.detach().to(device="cpu", dtype=torch.float64).reshape(-1).numpy()
    if not np.isfinite(v).all():
        raise DataError("values contain NaN or infinite entries")
    lo, hi = float(v.min()), float(v.max())
    if lo < -VALUE_TOL or hi > 1 + VALUE_TOL:
        raise DataError(f"values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; divide 8-bit images by 255 first")
    return v


def _bin_counts(n: np.ndarray) -> np.ndarray:
    """Number of values in each of NUM_BINS equal bins over [0, 1]: (NUM_BINS,) integers."""
    counts, _ = np.histogram(n, bins=NUM_BINS, range=(0.0, 1.0))
    return counts


class ValueTransform:
    """Base: fit on the target values once, then map forward / back."""

    name: str = "base"
    _state_keys: tuple[str, ...] = ()  # the fitted numbers: attributes holding Python floats

    def __init__(self) -> None:
        self._fitted = False

    def fit(self, values: torch.Tensor) -> ValueTransform:
        """Fit on `values` (N, C) in [0, 1]; returns self."""
        self._fit(_to_float64(values))
        self._fitted = True
        return self

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """(N, C) values in [0, 1] -> (N, C) training targets, with differentiable torch ops on the input's device."""
        self._check_fitted("forward")
        return self._forward(values)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """(N, C) targets or predictions -> (N, C) values, clamped to [0, 1]."""
        self._check_fitted("inverse")
        return self._inverse(y).clamp(0.0, 1.0)

    __call__ = forward

    def state_dict(self) -> dict[str, float]:
        """The fitted numbers as plain floats, for a checkpoint."""
        self._check_fitted("state_dict")
        return {key: float(getattr(self, key)) for key in self._state_keys}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore the fitted numbers saved by `state_dict`."""
        missing = [k for k in self._state_keys if k not in state]
        unexpected = [k for k in state if k not in self._state_keys]
        if missing or unexpected:
            raise DataError(f"{self.name} transform state: missing keys {missing}, unexpected keys {unexpected}")
        for key in self._state_keys:
            setattr(self, key, float(state[key]))
        self._fitted = True

    def __repr__(self) -> str:
        if not self._fitted:
            return f"{type(self).__name__}(not fitted)"
        numbers = ", ".join(f"{k}={getattr(self, k):.4g}" for k in self._state_keys)
        return f"{type(self).__name__}({numbers})"

    def _check_fitted(self, what: str) -> None:
        if not self._fitted:
            raise RuntimeError(f"{type(self).__name__}.{what}() called before fit(); call fit(values) first")

    # subclasses implement these three
    def _fit(self, v: np.ndarray) -> None:
        raise NotImplementedError

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MinMax(ValueTransform):
    """Min-max normalisation of the image's own range to [-1, 1]."""

    name = "minmax"
    _state_keys = ("vmin", "vmax")

    def _fit(self, v: np.ndarray) -> None:
        self.vmin, self.vmax = float(v.min()), float(v.max())

    def _centre_half(self) -> tuple[float, float]:
        half = (self.vmax - self.vmin) / 2
        # a constant image has no range: keep its scale at 1 so it maps to y = 0 and back exactly
        return (self.vmin + self.vmax) / 2, (half if half > 0 else 1.0)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        centre, half = self._centre_half()
        return (x - centre) / half  # y = 2 (x - min) / (max - min) - 1

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        centre, half = self._centre_half()
        return y * half + centre  # x = (y + 1) / 2 (max - min) + min


class ZScore(ValueTransform):
    """Standardisation with the mean and (population) standard deviation of all values."""

    name = "zscore"
    _state_keys = ("mean", "std")

    def _fit(self, v: np.ndarray) -> None:
        self.mean, self.std = float(v.mean()), float(v.std())

    def _scale(self) -> float:
        return self.std if self.std > 0 else 1.0  # a constant image: std = 0, map it to y = 0 instead

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self._scale()  # y = (x - mean) / std

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._scale() + self.mean  # x = y std + mean


class SymPower(ValueTransform):
    """Symmetric power transformation (Zhang et al., AAAI 2025), steps (1)-(5) of the module docstring."""

    name = "sympower"
    # vmin, vmax, s_left, s_right are in 0-255 intensity units, as in the paper
    _state_keys = ("gamma0", "gamma", "s_left", "s_right", "vmin", "vmax")

    def _fit(self, v: np.ndarray) -> None:
        x = v * 255.0  # intensity units
        self.vmin, self.vmax = float(x.min()), float(x.max())
        span = self.vmax - self.vmin
        if span <= 0:
            # a constant image: every value lies in the first and in the last bins, so (4) gives s_L = s_R = 256,
            # u = 1/2 and y = 0; there is no distribution to reshape, so gamma = 1
            self.gamma0 = self.gamma = 1.0
            self.s_left = self.s_right = float(NUM_BINS)
            return
        n = (x - self.vmin) / span  # min-max normalised; its histogram over [0, 1] is x's over [min, max]
        counts = _bin_counts(n)
        mass = counts / n.size  # histogram mass: fractions of all values, sums to 1

        # (1) gamma_0 = ln 0.5 / ln(b / 256). b counts bins from 1, so b / 256 is the upper edge of the bin where the
        # cumulative histogram first reaches 0.5 and is never 0. b = 256 (over half the pixels in the top bin) would
        # give ln 1 = 0; use the edge below it, a very large gamma_0 that steps (2) and (3) then bring back.
        reached = 2 * np.cumsum(counts) >= n.size  # cumulative mass >= 0.5, in exact integer arithmetic
        b = int(np.argmax(reached)) + 1
        self.gamma0 = math.log(0.5) / math.log(min(b, NUM_BINS - 1) / NUM_BINS)

        # (2) deviation-aware calibration on the tail that the power compresses
        mass_after = _bin_counts(n**self.gamma0) / n.size
        tail = slice(0, TAIL_BINS) if self.gamma0 > 1 else slice(NUM_BINS - TAIL_BINS, NUM_BINS)
        delta = (mass_after[tail].sum() - mass[tail].sum()) / BETA  # delta = (mass after - mass before) / beta
        # a power keeps every value of that tail inside it, so delta < 0 only comes from round-off: treat it as 0;
        # delta >= 1 means gamma = 1
        delta = min(max(float(delta), 0.0), 1.0)
        if self.gamma0 > 1:
            gamma = self.gamma0 - (self.gamma0 - 1) * delta  # gamma = gamma_0 - d delta, d = gamma_0 - 1
        else:
            # reciprocal form: 1 / gamma = 1 / gamma_0 - d delta, d = 1 / gamma_0 - 1
            gamma = 1 / (1 / self.gamma0 - (1 / self.gamma0 - 1) * delta)

        # (3) clamp gamma to [1/5, 5]
        self.gamma = min(max(gamma, GAMMA_MIN), GAMMA_MAX)

        # (4) adaptive soft boundary, in intensity units: s_L = 256 * mass(first 2 bins), s_R = 256 * mass(last 2)
        self.s_left = float(NUM_BINS * mass[:EDGE_BINS].sum())
        self.s_right = float(NUM_BINS * mass[-EDGE_BINS:].sum())

    def _width(self) -> float:
        return self.vmax - self.vmin + self.s_left + self.s_right  # max - min + s_L + s_R

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        u = (x * 255.0 - self.vmin + self.s_left) / self._width()  # (4) u = (x - min + s_L) / (max - min + s_L + s_R)
        # fitted values give u in (0, 1); clamp keeps other inputs from a fractional power of a negative number
        return 2 * (u.clamp(0.0, 1.0) ** self.gamma - 0.5)  # (5) y = 2 (u^gamma - 0.5)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        u = (y / 2 + 0.5).clamp(0.0, 1.0) ** (1 / self.gamma)  # u = clamp(y / 2 + 0.5, 0, 1)^(1 / gamma)
        x = u * self._width() + self.vmin - self.s_left  # x = u (max - min + s_L + s_R) + min - s_L
        return x / 255.0  # back to [0, 1]; the caller clamps
