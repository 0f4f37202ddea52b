"""Value transforms for neural-field targets, by name: :data:`TRANSFORMS` and :func:`make_transform`.

A transform is fitted once on the values x in [0, 1] of one image, maps them forward for training and maps the
network's predictions back (Zhang et al., "Symmetric Power Transformation", AAAI 2025). By module:

- :mod:`.value_transforms`: the base class and ``minmax`` (the default), ``zscore`` and ``sympower``;
- :mod:`.compared_transforms`: the others of the Sym-Power paper's Table 1: ``unit``, ``gamma0.5``, ``gamma2``,
  ``scale0.5``, ``scale1``, ``scale2``, ``inverse``, ``rpp`` and ``boxcox``.

Example::

    >>> t = make_transform("sympower").fit(values)          # values (N, C) in [0, 1]
    >>> y = t(values)                                        # (N, C) in [-1, 1]
    >>> torch.allclose(t.inverse(y), values, atol=1e-5)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from visionlab.components.compared_transforms import BoxCox, Gamma, Invert, RandomPixelPermutation, Scale, UnitRange
from visionlab.components.value_transforms import MinMax, SymPower, ValueTransform, ZScore
from visionlab.util.errors import ConfigError


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
