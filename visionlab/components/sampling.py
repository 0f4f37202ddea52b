"""Sample selection for neural fields: which samples (pixels) to train on at each step, and :func:`build_sampler`.

Training an INR on every pixel every step ("full", the *Standard* row of the EVOS paper) wastes most of the compute on
pixels that are already fitted. A selector trains on a fraction r_t of the N samples at step t (of T), r_t from a
ratio scheduler (constant, step, linear, cosine). The selectors, by module:

- :mod:`.sampling_base`: the ratio schedulers, the checks of a run's options, the grid helpers (grey level,
  Laplacian) and the base class :class:`Sampler` with the trainer's hooks (prepare, select, loss_weights, extra_loss,
  observe);
- :mod:`.sampling_evos`: **EVOS** (Zhang et al., CVPR 2025): sparse fitness evaluation, frequency-guided crossover,
  augmented unbiased mutation and cross-frequency supervision; ``evos-no-cfs`` without the last;
- :mod:`.sampling_peers`: the other rows of EVOS's Table 1: **full**, **random** (*Uniform*), **EGRA**,
  **expansive** supervision, **soft mining** and **INT** (nonparametric teaching; ``int-dense`` profiles every step).

This module names them (:data:`SAMPLERS`) and builds one from a run's options. Building checks every option once,
before training starts: the name here, the ratio r_0 in (0, 1] and the scheduler in :class:`Sampler`, EVOS's mutation
ratio in [0, r_0) in :func:`~visionlab.opt.fit.check_mutation_ratio`; each raises a one-line
``ConfigError`` naming the bad value and what is allowed.

Example::

    >>> target = torch.rand(32 * 32, 3) * 2 - 1                      # (N, C) in model space
    >>> s = build_sampler("evos", target=target, shape=(32, 32), total_steps=100, ratio=0.2, scheduler="step")
    >>> s.select(0) is None                                            # step 1 evaluates every sample
    True

Shape legend: N samples, C channels, H, W, T.
"""

from __future__ import annotations

import torch

from visionlab.components.sampling_base import Sampler, TargetSampler, check_shape
from visionlab.components.sampling_evos import EvosSampler, EvosWithoutCfsSampler
from visionlab.components.sampling_peers import (
    EdgeGuidedSampler,
    ExpansiveSampler,
    FullSampler,
    IntDenseSampler,
    IntSampler,
    RandomSampler,
    SoftMiningSampler,
)
from visionlab.opt.fit import check_mutation_ratio
from visionlab.util.errors import ConfigError

SAMPLERS: dict[str, type[Sampler]] = {
    "full": FullSampler,
    "random": RandomSampler,
    "egra": EdgeGuidedSampler,
    "expansive": ExpansiveSampler,
    "soft-mining": SoftMiningSampler,
    "int": IntSampler,
    "int-dense": IntDenseSampler,
    "evos": EvosSampler,
    "evos-no-cfs": EvosWithoutCfsSampler,
}

__all__ = ["SAMPLERS", "build_sampler", "Sampler", "FullSampler", "RandomSampler", "EdgeGuidedSampler",
           "ExpansiveSampler", "SoftMiningSampler", "IntSampler", "IntDenseSampler", "EvosSampler",
           "EvosWithoutCfsSampler"]


def build_sampler(name: str, *, target: torch.Tensor, shape: tuple[int, ...], total_steps: int, ratio: float,
                  scheduler: str = "constant", seed: int = 0, **options) -> Sampler:
    """The selector called ``name`` for an (N, C) target on a grid of ``shape`` ((H, W) for an image).

    ``options`` are a run's selector options (e.g. EVOS's ``mutation_ratio``, ``cfs_steps``, ``crossover``); each
    selector takes those in its ``options`` and leaves the rest, so one config serves every selector. A name that
    no selector takes is a mistake: ConfigError.
    """
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    known = {key for sampler in SAMPLERS.values() for key in sampler.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown sampler option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    cls = SAMPLERS[name]
    common = {"total_steps": total_steps, "ratio": ratio, "scheduler": scheduler, "seed": seed}
    own = {key: value for key, value in options.items() if key in cls.options}
    if issubclass(cls, TargetSampler):
        sampler = cls(target=target, shape=shape, **common, **own)
    else:  # full and random need only the number of samples; a grid that is not the target's is still refused
        check_shape(shape, target.shape[0])
        sampler = cls(num_pixels=target.shape[0], **common, **own)
    # A run hands EVOS's mutation ratio to every selector; one that leaves it still refuses a bad value, so that the
    # mistake shows whichever sampler is picked (EVOS checks it in its constructor: each value is checked once).
    if options.get("mutation_ratio") is not None and "mutation_ratio" not in cls.options:
        check_mutation_ratio(options["mutation_ratio"], ratio=ratio)
    return sampler
