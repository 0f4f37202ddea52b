"""The transforms that the Sym-Power paper (Zhang et al., AAAI 2025) compares symmetric power with (its Table 1),
each a reversible :class:`~visionlab.components.value_transforms.ValueTransform` of a neural field's target values
x in [0, 1], with m(x) = 2 (x - min) / (max - min) - 1 the min-max map:

    gamma0.5   y = 2 u^gamma - 1,       u = (x - min) / (max - min), gamma fixed at 0.5 (gamma2: 2)
    scale0.5   y = k m(x), in [-k, k], k = 0.5 (scale1: k = 1, scale2: k = 2)
    unit       y = (m(x) + 1) / 2, in [0, 1] (the paper's "0-1 normalisation")
    inverse    y = m(1 - x), the negative image (255 - x on 8-bit data), min-max normalised
    rpp        y = m(x)[perm]: min-max, then the pixel *positions* shuffled by a seeded permutation
    boxcox     y = m'(B_lambda(255 x + 25.6)),  B_lambda(z) = (z^lambda - 1) / lambda  (ln z for lambda = 0),
               lambda by maximum likelihood (scipy.stats.boxcox), m' min-max over the transformed values

On "scale": the paper multiplies the min-max-normalised range [-1, 1] by 0.5, 1 or 2, so scale1 gives the same
numbers as minmax, kept under its own name so that each row of that table is one name (see
:data:`~visionlab.components.transforms.TRANSFORMS`). The fixed gammas work on [0, 1] (u) and map u^gamma to [-1, 1];
gamma 0.5 lifts the dark values, gamma 2 compresses them. RPP is the paper's control: it keeps the value distribution
exactly and destroys all spatial structure, so a network must learn noise. It is the only transform that moves values
between rows: forward and inverse act on the whole (N, C) array in the pixel order it was fitted on (N rows, fixed),
and the permutation is drawn from ``seed``, part of its state. Box-Cox needs positive data, hence the shift by 25.6
in 0-255 units (the paper's); its forward and inverse run in torch (float64 inside), only the fit calls SciPy.

Shapes: N pixels, C channels; values are (N, C).
"""

from __future__ import annotations

import numpy as np
import torch

from visionlab.components.value_transforms import MinMax, ValueTransform
from visionlab.util.errors import DataError


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
