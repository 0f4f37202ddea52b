"""Reversible value transforms for neural-field targets.

A neural field is trained to output the pixel values of one image. Those values arrive scaled to [0, 1]; how they are
mapped before training changes how fast the network fits them (Zhang et al., "Symmetric Power Transformation",
AAAI 2025, arXiv 2412.09213): a target distribution that is centred and symmetric within [-1, 1] is learned faster.
Each transform is fitted once on the values of one image, maps them forward for training, and maps the network's
predictions back with ``inverse`` so that metrics are computed on the original [0, 1] range.

    minmax     y = 2 (x - min) / (max - min) - 1 = m(x), in [-1, 1]                  (the default)
    zscore     y = (x - mean) / std
    sympower   y = 2 (u^gamma - 0.5),   u = (x - min + s_L) / (max - min + s_L + s_R)
    gamma0.5   y = 2 u^gamma - 1,       u = (x - min) / (max - min), gamma fixed at 0.5 (gamma2: 2)
    scale0.5   y = k m(x), in [-k, k], k = 0.5 (scale1: k = 1, scale2: k = 2)
    inverse    y = m(1 - x), the negative image (255 - x on 8-bit data), min-max normalised
    rpp        y = m(x)[perm]: min-max, then the pixel *positions* shuffled by a seeded permutation
    boxcox     y = m'(B_lambda(255 x + 25.6)),  B_lambda(z) = (z^lambda - 1) / lambda  (ln z for lambda = 0),
               lambda by maximum likelihood (scipy.stats.boxcox), m' min-max over the transformed values

These are the transforms that the Sym-Power paper compares (its Table 1). On "scale": the paper multiplies the
min-max-normalised range [-1, 1] by 0.5, 1 or 2, so scale1 gives the same numbers as minmax, kept under its own name
so that each row of that table is one name here (the paper's "0-1 normalisation" is [0, 1], which none of these is).
The fixed gammas work on [0, 1] (u) and map u^gamma to [-1, 1]; gamma 0.5 lifts the dark values, gamma 2 compresses
them. RPP is the paper's control: it keeps the value distribution exactly and destroys all spatial structure, so a
network must learn noise. It is the only transform that moves values between rows: forward and inverse act on the
whole (N, C) array in the pixel order it was fitted on (N rows, fixed), and the permutation is drawn from ``seed``,
part of its state. Box-Cox needs positive data, hence the shift by 25.6 in 0-255 units (the paper's); its forward and
inverse run in torch (float64 inside), only the fit calls SciPy.

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

    >>> t = make_transform("sympower").fit(values)          # values (N, C) in [0, 1]
    >>> y = t(values)                                        # (N, C) in [-1, 1]
    >>> print(t)                                             # the fitted gamma0, gamma, s_left, ...
    >>> torch.allclose(t.inverse(y), values, atol=1e-5)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from visionlab.util.errors import ConfigError, DataError

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


class Gamma(MinMax):
    """Fixed power of the min-max-normalised values, y = 2 u^gamma - 1.

    A gamma above 1 flattens the dark end: in float32, every u below about sqrt(eps) = 3e-4 lands within one float
    step of y = -1, so such values come back only to about 3e-4 (the inverse is exact in float64 to 1e-8). Images on
    8-bit levels have no u in (0, 1/255) and come back to 1e-6.
    """

    _state_keys = ("gamma", "vmin", "vmax")

    def __init__(self, *, gamma: float) -> None:
        super().__init__()
        assert gamma > 0, f"gamma must be > 0, got {gamma}"
        self.gamma = float(gamma)
        self.name = f"gamma{gamma:g}"

    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        span = self.vmax - self.vmin
        if span > 0:
            return (x - self.vmin) / span  # u = (x - min) / (max - min)
        # a constant image has no range: put it at u = 0.5^(1 / gamma), where y = 0 as for every other transform
        return x - self.vmin + 0.5 ** (1 / self.gamma)

    def _from_unit(self, u: torch.Tensor) -> torch.Tensor:
        span = self.vmax - self.vmin
        return u * span + self.vmin if span > 0 else u - 0.5 ** (1 / self.gamma) + self.vmin

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # u = 0 has an infinite slope for gamma < 1: a tiny floor keeps the gradient finite (its value is -1 anyway,
        # to 1e-15 for gamma 0.5), and the upper clamp keeps other inputs from leaving the range
        u = self._unit(x).clamp(1e-30, 1.0)
        return 2 * u**self.gamma - 1  # y = 2 u^gamma - 1

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        u = ((y + 1) / 2).clamp(0.0, 1.0) ** (1 / self.gamma)  # u = ((y + 1) / 2)^(1 / gamma)
        return self._from_unit(u)


class Scale(MinMax):
    """The min-max range [-1, 1] multiplied by ``scale``: y = scale * (2 (x - min) / (max - min) - 1)."""

    _state_keys = ("scale", "vmin", "vmax")

    def __init__(self, *, scale: float) -> None:
        super().__init__()
        assert scale > 0, f"scale must be > 0, got {scale}"
        self.scale = float(scale)
        self.name = f"scale{scale:g}"

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * super()._forward(x)  # y = k m(x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return super()._inverse(y / self.scale)


class UnitRange(MinMax):
    """Min-max to [0, 1]: y = (x - min) / (max - min), the Sym-Power paper's "0-1 normalisation" row (its scale x1
    row is [-1, 1], this module's ``minmax``)."""

    name = "unit"

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return (super()._forward(x) + 1) / 2  # y = (m(x) + 1) / 2

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return super()._inverse(2 * y - 1)


class Invert(MinMax):
    """The negative image, 1 - x (255 - x on 0-255 data), then min-max to [-1, 1].

    ``vmin`` and ``vmax`` are the range of 1 - x. Since m(1 - x) = -m(x), this is minmax with the sign flipped.
    """

    name = "inverse"

    def _fit(self, v: np.ndarray) -> None:
        super()._fit(1.0 - v)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return super()._forward(1.0 - x)  # y = m(1 - x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return 1.0 - super()._inverse(y)  # x = 1 - m^-1(y)


class RandomPixelPermutation(MinMax):
    """Min-max to [-1, 1], then the rows (pixel positions) of the (N, C) array shuffled: y[i] = m(x)[perm[i]].

    The permutation is ``torch.randperm(N)`` from a CPU generator seeded with ``seed``, so the same seed and N give
    the same permutation on every machine; ``seed`` and ``num_pixels`` are saved in the state. The inverse puts every
    row back, x[perm[i]] = m^-1(y[i]). Both need an (N, ...) array of the fitted N rows, in the fitted order.
    """

    name = "rpp"
    _state_keys = ("vmin", "vmax", "seed", "num_pixels")

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__()
        self.seed = float(seed)  # floats, like every state entry; exact for any seed below 2^53
        self._perm: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def fit(self, values: torch.Tensor) -> ValueTransform:
        super().fit(values)
        self.num_pixels = float(values.shape[0])
        self._perm = {}  # drawn again for this N
        return self

    def load_state_dict(self, state: dict[str, float]) -> None:
        super().load_state_dict(state)
        self._perm = {}  # drawn again, from the loaded seed and size

    def permutation(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The permutation and its inverse, both (N,) int64 on ``device``."""
        self._check_fitted("permutation")
        device = torch.device(device)
        if device not in self._perm:
            n = int(self.num_pixels)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(self.seed)))  # (N,)
            undo = torch.empty_like(perm)
            undo[perm] = torch.arange(n)  # undo[perm[i]] = i
            self._perm[device] = (perm.to(device), undo.to(device))
        return self._perm[device]

    def _check_rows(self, t: torch.Tensor) -> None:
        if t.ndim == 0 or t.shape[0] != int(self.num_pixels):
            raise DataError(f"rpp permutes the {int(self.num_pixels)} pixel positions it was fitted on; got an array "
                            f"of shape {tuple(t.shape)} (forward and inverse take all N rows, in order)")

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_rows(x)
        perm, _ = self.permutation(x.device)
        return super()._forward(x)[perm]  # y[i] = m(x)[perm[i]]

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        self._check_rows(y)
        _, undo = self.permutation(y.device)
        return super()._inverse(y[undo])  # x[perm[i]] = m^-1(y[i])


class BoxCox(ValueTransform):
    """Box-Cox power transform of 255 x + 25.6, lambda by maximum likelihood, then min-max to [-1, 1]."""

    name = "boxcox"
    _state_keys = ("lmbda", "shift", "bmin", "bmax")
    SHIFT = 25.6  # in 0-255 units: Box-Cox needs positive data, and the paper shifts by 25.6

    def _fit(self, v: np.ndarray) -> None:
        z = v * 255.0 + self.SHIFT
        self.shift = self.SHIFT
        if z.min() == z.max():
            self.lmbda = 1.0  # a constant image has no likelihood to maximise (SciPy refuses it); no power at all
        else:
            # the lambda that scipy.stats.boxcox(z) picks: it calls this maximum-likelihood search
            import scipy.stats  # here, not at the top: it costs half a second of every 'import visionlab'

            self.lmbda = float(scipy.stats.boxcox_normmax(z, method="mle"))
        # B_lambda increases, so the extremes of the data are the extremes of the transformed data
        self.bmin, self.bmax = (float(self._boxcox(torch.tensor(e, dtype=torch.float64))) for e in (z.min(), z.max()))

    def _boxcox(self, z: torch.Tensor) -> torch.Tensor:
        if self.lmbda == 0:
            return torch.log(z)  # B_0(z) = ln z
        return (z**self.lmbda - 1) / self.lmbda  # B_lambda(z) = (z^lambda - 1) / lambda

    def _centre_half(self) -> tuple[float, float]:
        half = (self.bmax - self.bmin) / 2
        return (self.bmin + self.bmax) / 2, (half if half > 0 else 1.0)  # constant image: y = 0, as MinMax

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # float64 inside: z^lambda spans many decades for a large |lambda|, more than float32 resolves exactly
        z = (x.to(torch.float64) * 255.0 + self.shift).clamp_min(1e-12)  # > 0 even for inputs below 0
        centre, half = self._centre_half()
        return ((self._boxcox(z) - centre) / half).to(x.dtype)  # y = 2 (B(z) - B_min) / (B_max - B_min) - 1

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        centre, half = self._centre_half()
        b = y.to(torch.float64) * half + centre  # B(z)
        if self.lmbda == 0:
            z = torch.exp(b)  # z = e^B
        else:
            # z = (lambda B + 1)^(1 / lambda); predictions outside [-1, 1] can leave the domain lambda B + 1 > 0, the
            # floor at 0 sends them to the nearer end (0, or +inf for lambda < 0) which the final clamp takes to 0 or 1
            z = (self.lmbda * b + 1).clamp_min(0.0) ** (1 / self.lmbda)
        return ((z - self.shift) / 255.0).to(y.dtype)  # x = (z - 25.6) / 255


# Every name maps to a factory of a new, unfitted transform; the numbers in a name are fixed here.
TRANSFORMS: dict[str, Callable[..., ValueTransform]] = {
    "minmax": MinMax,
    "unit": UnitRange,
    "zscore": ZScore,
    "sympower": SymPower,
    "gamma0.5": partial(Gamma, gamma=0.5),
    "gamma2": partial(Gamma, gamma=2.0),
    "scale0.5": partial(Scale, scale=0.5),
    "scale1": partial(Scale, scale=1.0),
    "scale2": partial(Scale, scale=2.0),
    "inverse": Invert,
    "rpp": RandomPixelPermutation,
    "boxcox": BoxCox,
}


def make_transform(name: str, **options) -> ValueTransform:
    """A new, unfitted transform by name: one of TRANSFORMS' keys. ``options``: e.g. ``seed`` for rpp."""
    if name not in TRANSFORMS:
        raise ConfigError(f"unknown value transform {name!r}; choose one of: {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name](**options)
