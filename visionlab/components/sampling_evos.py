"""EVOS (Zhang et al., "EVOS: Efficient Implicit Neural Training via EVOlutionary Selector", CVPR 2025): treat every
sample as an individual and train only the fittest (largest error), with a ratio r_t from a scheduler of
:mod:`.sampling_base`:

1. *sparse fitness evaluation*: on evaluation steps every sample is trained, so the forward pass already gives every
   sample's fitness (squared error, averaged over channels) for free; the detached prediction is cached. The
   interval shrinks linearly, interval_t = int(100 - 50 t / T); step t (counted from 1) evaluates when
   t mod interval_t == 1 (72 evaluations for T = 5000);
2. *frequency-guided crossover* (``crossover="select"``): besides the squared error, a frequency error
   lambda (Lap(grey(pred)) - Lap(grey(target)))^2 (3x3 Laplacian, 0-255 units, lambda = 1e-5); the K = (r_t - m) N
   kept samples are those in both top-K lists, and the rest of the places are shared between the two lists in
   proportion to their mean errors. Ablations: ``"sum"`` ranks by squared error + frequency error, ``"none"`` by
   the squared error alone;
3. *augmented unbiased mutation*: on ordinary steps, m N more samples (m = r_0 / 2) are drawn uniformly from the
   rest, so that samples which the stale fitness under-rates still get trained.

*Cross-frequency supervision* (CFS) adds lambda x the mean squared Laplacian error to the loss during the first
1,500 steps (the whole signal on evaluation steps; on ordinary steps the trained predictions are pasted into the
cached full prediction and the error is averaged over the trained samples). ``evos-no-cfs`` drops it.

Grids, grey levels and Laplacians as in :mod:`.sampling_base`. Shape legend: N samples, n selected, C channels.
"""

from __future__ import annotations

import torch

from visionlab.components.sampling_base import TargetSampler, count, laplacian, signal_grey255
from visionlab.opt.fit import check_mutation_ratio
from visionlab.util.errors import ConfigError

CROSSOVERS = ("select", "sum", "none")


class EvosSampler(TargetSampler):
    """EVOS: sparse fitness evaluation, frequency-guided crossover, augmented unbiased mutation, and CFS.

    ``target`` is the (N, C) training target in model space ([-1, 1]), row-major over a grid of ``shape``.
    ``crossover``: ``"select"`` (the paper's frequency-guided crossover), ``"sum"`` (rank by squared error + frequency
    error) or ``"none"`` (squared error only).
    """

    name = "evos"
    options = ("mutation_ratio", "cfs_steps", "crossover")

    def __init__(self, *, target: torch.Tensor, shape: tuple[int, ...], total_steps: int, ratio: float = 0.5,
                 scheduler: str = "constant", seed: int = 0, mutation_ratio: float | None = None,
                 interval_start: int = 100, interval_end: int = 50, freq_weight: float = 1e-5,
                 cfs_steps: int = 1500, crossover: str = "select"):
        super().__init__(target=target, shape=shape, total_steps=total_steps, ratio=ratio, scheduler=scheduler,
                         seed=seed)
        self.mutation_ratio = check_mutation_ratio(mutation_ratio, ratio=ratio)  # m, by default r_0 / 2
        if not interval_start >= interval_end >= 2:
            raise ConfigError(f"need interval_start >= interval_end >= 2, got {interval_start}, {interval_end}")
        if crossover not in CROSSOVERS:
            raise ConfigError(f"unknown EVOS crossover {crossover!r}; choose one of {', '.join(CROSSOVERS)}")
        self.interval_start, self.interval_end = interval_start, interval_end
        self.freq_weight = freq_weight
        self.cfs_steps = cfs_steps
        self.crossover = crossover
        self.target_laplacian = self.laplacian_of(target)  # (N,), fixed
        self.cached: torch.Tensor | None = None  # (N, C) detached prediction of the last evaluation step
        self.order: torch.Tensor | None = None  # (N,) sample indices, fittest (to be trained) first

    def laplacian_of(self, values: torch.Tensor) -> torch.Tensor:
        """(N, C) values -> (N,) Laplacian of their grey level (0-255 units) on this selector's grid."""
        return laplacian(signal_grey255(values, self.shape), self.shape)

    # -- 1. sparse fitness evaluation ---------------------------------------------------------------------------
    def is_evaluation_step(self, step: int) -> bool:
        """EVOS Sec. 3.2: step t (from 1) evaluates when t mod int(start - (start - end) t / T) == 1."""
        t = step + 1
        interval = int(self.interval_start - (self.interval_start - self.interval_end) * t / self.total_steps)
        return t % interval == 1

    def counts(self, step: int) -> tuple[int, int]:
        """(K, M): the fittest samples kept and the uniform mutations drawn at an ordinary ``step``."""
        r = self.ratio_at(step)
        return count(r - self.mutation_ratio, self.num_pixels), count(self.mutation_ratio, self.num_pixels)

    def select(self, step: int) -> torch.Tensor | None:
        if self.is_evaluation_step(step):
            return None  # every sample: training on them is the fitness evaluation
        if self.order is None:
            raise RuntimeError("EVOS has no fitness yet: the first step must be an evaluation step")
        keep, mutate = self.counts(step)
        # 3. augmented unbiased mutation: m N samples drawn uniformly from those not kept.
        rest = self.order[keep:]
        mutants = rest[self.uniform(rest.shape[0], mutate).to(rest.device)]
        return torch.cat([self.order[:keep], mutants])  # (K + M,)

    def couples_rows(self, step: int) -> bool:
        return step < self.cfs_steps  # the Laplacian term; the fitness reads the detached prediction

    def extra_loss(self, step: int, indices: torch.Tensor | None, pred: torch.Tensor) -> torch.Tensor | None:
        if indices is None:
            self._evaluate(step, pred.detach())
        if step >= self.cfs_steps:
            return None
        # Cross-frequency supervision: lambda * mean squared Laplacian error, 0-255 units.
        if indices is None:
            error = (self.laplacian_of(pred) - self.target_laplacian) ** 2  # (N,)
            return self.freq_weight * error.mean()
        pasted = self.cached.index_put((indices,), pred)  # (N, C): fresh predictions over the cached ones
        error = (self.laplacian_of(pasted) - self.target_laplacian) ** 2  # (N,)
        return self.freq_weight * error[indices].mean()

    def _evaluate(self, step: int, pred: torch.Tensor) -> None:
        """Fitness of every sample from the full prediction; rank them for the steps until the next evaluation."""
        self.cached = pred.clone()
        fitness = ((pred - self.target) ** 2).mean(dim=1)  # (N,) squared error, averaged over channels
        keep, _ = self.counts(step)
        score = fitness  # what ranks the samples after the chosen K
        if self.crossover == "none":
            chosen = torch.topk(fitness, keep).indices
        else:
            freq = self.freq_weight * (self.laplacian_of(pred) - self.target_laplacian) ** 2  # (N,)
            if self.crossover == "select":
                chosen = self.frequency_crossover(fitness, freq, keep)
            else:  # "sum": one ranking by squared error + frequency error
                score = fitness + freq
                chosen = torch.topk(score, keep).indices
        # The chosen K first, then every other sample by falling score: if r_t grows before the next evaluation,
        # the kept set is topped up from the next-ranked.
        is_chosen = torch.zeros_like(fitness, dtype=torch.bool)
        is_chosen[chosen] = True
        by_score = torch.argsort(score, descending=True)
        self.order = torch.cat([chosen, by_score[~is_chosen[by_score]]])

    @staticmethod
    def frequency_crossover(fitness: torch.Tensor, freq: torch.Tensor, k: int) -> torch.Tensor:
        """EVOS Sec. 3.3: the samples in both top-k lists, then the remaining places split between the two lists in
        proportion to their mean errors, each share filled with its list's highest-scoring samples not yet chosen."""
        top_fit = torch.topk(fitness, k).indices  # sorted, highest first
        top_freq = torch.topk(freq, k).indices
        in_fit = torch.zeros_like(fitness, dtype=torch.bool)
        in_fit[top_fit] = True
        in_freq = torch.zeros_like(fitness, dtype=torch.bool)
        in_freq[top_freq] = True
        both = top_fit[in_freq[top_fit]]
        only_fit = top_fit[~in_freq[top_fit]]  # disjoint from only_freq, so the shares never collide
        only_freq = top_freq[~in_fit[top_freq]]
        places = k - both.shape[0]
        mean_fit, mean_freq = float(fitness.mean()), float(freq.mean())
        total = mean_fit + mean_freq
        share_fit = places if total <= 0 else round(places * mean_fit / total)
        return torch.cat([both, only_fit[:share_fit], only_freq[:places - share_fit]])  # (k,)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "cached": self.cached, "order": self.order}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        on_device = lambda t: None if t is None else t.to(self.target.device)  # noqa: E731
        self.cached, self.order = on_device(state["cached"]), on_device(state["order"])


class EvosWithoutCfsSampler(EvosSampler):
    """EVOS without cross-frequency supervision (the paper's ablation row): EVOS with ``cfs_steps = 0``."""

    name = "evos-no-cfs"
    options = ("mutation_ratio", "crossover")  # the name fixes cfs_steps

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "cfs_steps": 0})
