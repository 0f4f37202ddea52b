"""Sample selection for neural fields: which pixels to train on at each step.

Training an INR on every pixel every step ("full", the *Standard* row of the EVOS paper) wastes most of the compute on
pixels that are already fitted. A selector trains on a fraction r_t of the N pixels at step t:

- **ratio schedulers** give r_t: ``constant`` (r_t = r_0) and ``step`` (ten stages,
  r_t = min(r_0 + floor(t / (T/10)) (1 - r_0)/10, 1); r_0 = 0.2, T = 5000 gives 0.20, 0.28, ..., 0.92);
- **full** trains on all N pixels;
- **random** (*Uniform*) draws floor(r_t N) pixels uniformly, afresh each step;
- **EVOS** (Zhang et al., CVPR 2025) treats every pixel as an individual and trains only the fittest (largest error):

  1. *sparse fitness evaluation*: on evaluation steps every pixel is trained, so the forward pass already gives every
     pixel's fitness (squared error, averaged over channels) for free; the detached prediction is cached. The interval
     shrinks linearly, interval_t = int(100 - 50 t / T); step t (counted from 1) evaluates when t mod interval_t == 1
     (72 evaluations for T = 5000);
  2. *frequency-guided crossover*: besides the squared error, a frequency error
     lambda (Lap(grey(pred)) - Lap(grey(target)))^2 (3x3 Laplacian, 0-255 units, lambda = 1e-5); the K = (r_t - m) N
     kept pixels are those in both top-K lists, and the rest of the places are shared between the two lists in
     proportion to their mean errors;
  3. *augmented unbiased mutation*: on ordinary steps, m N more pixels (m = r_0 / 2) are drawn uniformly from the
     rest, so that pixels which the stale fitness under-rates still get trained.

  *Cross-frequency supervision* (CFS) adds lambda x the mean squared Laplacian error to the loss during the first
  1,500 steps (the whole image on evaluation steps; on ordinary steps the trained predictions are pasted into the
  cached full prediction and the error is averaged over the trained pixels).

Every selector draws from its own seeded ``torch.Generator`` (on the CPU, so a seed gives the same pixels on every
device) and saves it in ``state_dict()``, so runs repeat and a resumed run continues exactly. The EVOS authors' code
reseeds from the OS every step; this one does not. Written by hand: no library offers INR sample selection.

Interface: ``select(step) -> indices or None`` (None = every pixel), then ``extra_loss(step, indices, pred)`` sees the
prediction at those pixels (with its graph), updates the fitness on evaluation steps and may add a loss term.
Shape legend: N pixels, H, W, C; steps t are 0-based in the code unless said otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from visionlab.util.errors import ConfigError

# ---------------------------------------------------------------------------------------------------- schedulers


def constant_ratio(step: int, *, total_steps: int, ratio: float) -> float:
    """r_t = r_0."""
    return ratio


def step_ratio(step: int, *, total_steps: int, ratio: float, stages: int = 10) -> float:
    """r_t = min(r_0 + floor(t / (T / stages)) (1 - r_0) / stages, 1): the ratio grows in ``stages`` equal steps."""
    stage = math.floor(step / (total_steps / stages))
    return min(ratio + stage * (1.0 - ratio) / stages, 1.0)


RATIO_SCHEDULERS = {"constant": constant_ratio, "step": step_ratio}


def count(ratio: float, num_pixels: int) -> int:
    """floor(ratio * N), computed so that ratio = 1 gives exactly N despite float rounding."""
    return min(num_pixels, math.floor(ratio * num_pixels + 1e-9))


# ---------------------------------------------------------------------------------------------------- helpers

# The 3x3 Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] of EVOS's frequency error, applied with zero padding.
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as the EVOS code


def grey255(values: torch.Tensor) -> torch.Tensor:
    """(N, C) values in [-1, 1] -> (N,) grey level in 0-255 units (RGB(A): luma of RGB; 1 or 2 channels: mean)."""
    values = (values + 1.0) * 127.5
    if values.shape[1] >= 3:
        w = values.new_tensor(GREY_WEIGHTS)
        return values[:, :3] @ w
    return values.mean(dim=1)


def laplacian(grey: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N,) grey values of an H x W image -> (N,) Laplacian, zero padding."""
    image = rearrange(grey, "(h w) -> 1 1 h w", h=height, w=width)  # (1, 1, H, W)
    kernel = LAPLACIAN.to(grey)[None, None]  # (1, 1, 3, 3)
    return rearrange(F.conv2d(image, kernel, padding=1), "1 1 h w -> (h w)")  # (N,)


# ---------------------------------------------------------------------------------------------------- selectors


class Sampler:
    """Base selector: the ratio schedule, the generator, and the state that a checkpoint keeps."""

    name = "base"

    def __init__(self, *, num_pixels: int, total_steps: int, ratio: float = 1.0, scheduler: str = "constant",
                 seed: int = 0):
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"sample ratio must be in (0, 1], got {ratio}")
        if scheduler not in RATIO_SCHEDULERS:
            raise ConfigError(f"unknown ratio scheduler {scheduler!r}; choose one of {', '.join(RATIO_SCHEDULERS)}")
        if num_pixels < 1 or total_steps < 1:
            raise ConfigError(f"need at least one pixel and one step, got N={num_pixels}, T={total_steps}")
        self.num_pixels = num_pixels
        self.total_steps = total_steps
        self.ratio = ratio
        self.scheduler = scheduler
        self.generator = torch.Generator().manual_seed(seed)

    def ratio_at(self, step: int) -> float:
        """r_t, the fraction of pixels trained at ``step``."""
        return RATIO_SCHEDULERS[self.scheduler](step, total_steps=self.total_steps, ratio=self.ratio)

    def select(self, step: int) -> torch.Tensor | None:
        """The (n,) pixel indices to train at ``step``, or None for every pixel."""
        raise NotImplementedError

    def extra_loss(self, step: int, indices: torch.Tensor | None, pred: torch.Tensor) -> torch.Tensor | None:
        """See the (n, C) prediction at the selected pixels; return a loss term to add to the MSE, or None."""
        return None

    def uniform(self, n: int, k: int) -> torch.Tensor:
        """k distinct indices drawn uniformly from range(n), from this selector's generator (on the CPU)."""
        return torch.randperm(n, generator=self.generator)[:k]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class FullSampler(Sampler):
    """Every pixel, every step (EVOS's *Standard*)."""

    name = "full"

    def select(self, step: int) -> None:
        return None


class RandomSampler(Sampler):
    """floor(r_t N) pixels drawn uniformly without replacement, afresh each step (EVOS's *Uniform*)."""

    name = "random"

    def select(self, step: int) -> torch.Tensor:
        return self.uniform(self.num_pixels, count(self.ratio_at(step), self.num_pixels))


class EvosSampler(Sampler):
    """EVOS: sparse fitness evaluation, frequency-guided crossover, augmented unbiased mutation, and CFS.

    ``target`` is the (N, C) training target in model space ([-1, 1]), row-major over an ``height`` x ``width`` grid.
    """

    name = "evos"

    def __init__(self, *, target: torch.Tensor, height: int, width: int, total_steps: int, ratio: float = 0.5,
                 scheduler: str = "constant", seed: int = 0, mutation_ratio: float | None = None,
                 interval_start: int = 100, interval_end: int = 50, freq_weight: float = 1e-5,
                 cfs_steps: int = 1500, crossover: bool = True):
        super().__init__(num_pixels=target.shape[0], total_steps=total_steps, ratio=ratio, scheduler=scheduler,
                         seed=seed)
        if height * width != target.shape[0]:
            raise ConfigError(f"target has {target.shape[0]} pixels, not height x width = {height} x {width}")
        self.mutation_ratio = 0.5 * ratio if mutation_ratio is None else mutation_ratio  # m = r_0 / 2
        if not 0.0 <= self.mutation_ratio < ratio:
            raise ConfigError(f"mutation ratio must be in [0, ratio = {ratio}), got {self.mutation_ratio}")
        if not interval_start >= interval_end >= 2:
            raise ConfigError(f"need interval_start >= interval_end >= 2, got {interval_start}, {interval_end}")
        self.height, self.width = height, width
        self.interval_start, self.interval_end = interval_start, interval_end
        self.freq_weight = freq_weight
        self.cfs_steps = cfs_steps
        self.crossover = crossover
        self.target = target
        self.target_laplacian = laplacian(grey255(target), height, width)  # (N,), fixed
        self.cached: torch.Tensor | None = None  # (N, C) detached prediction of the last evaluation step
        self.order: torch.Tensor | None = None  # (N,) pixel indices, fittest (to be trained) first

    # -- 1. sparse fitness evaluation ---------------------------------------------------------------------------
    def is_evaluation_step(self, step: int) -> bool:
        """EVOS Sec. 3.2: step t (from 1) evaluates when t mod int(start - (start - end) t / T) == 1."""
        t = step + 1
        interval = int(self.interval_start - (self.interval_start - self.interval_end) * t / self.total_steps)
        return t % interval == 1

    def counts(self, step: int) -> tuple[int, int]:
        """(K, M): the fittest pixels kept and the uniform mutations drawn at an ordinary ``step``."""
        r = self.ratio_at(step)
        return count(r - self.mutation_ratio, self.num_pixels), count(self.mutation_ratio, self.num_pixels)

    def select(self, step: int) -> torch.Tensor | None:
        if self.is_evaluation_step(step):
            return None  # every pixel: training on them is the fitness evaluation
        if self.order is None:
            raise RuntimeError("EVOS has no fitness yet: the first step must be an evaluation step")
        keep, mutate = self.counts(step)
        # 3. augmented unbiased mutation: m N pixels drawn uniformly from those not kept.
        rest = self.order[keep:]
        mutants = rest[self.uniform(rest.shape[0], mutate).to(rest.device)]
        return torch.cat([self.order[:keep], mutants])  # (K + M,)

    def extra_loss(self, step: int, indices: torch.Tensor | None, pred: torch.Tensor) -> torch.Tensor | None:
        if indices is None:
            self._evaluate(step, pred.detach())
        if step >= self.cfs_steps:
            return None
        # Cross-frequency supervision: lambda * mean squared Laplacian error, 0-255 units.
        if indices is None:
            error = (laplacian(grey255(pred), self.height, self.width) - self.target_laplacian) ** 2  # (N,)
            return self.freq_weight * error.mean()
        pasted = self.cached.index_put((indices,), pred)  # (N, C): fresh predictions over the cached ones
        error = (laplacian(grey255(pasted), self.height, self.width) - self.target_laplacian) ** 2  # (N,)
        return self.freq_weight * error[indices].mean()

    def _evaluate(self, step: int, pred: torch.Tensor) -> None:
        """Fitness of every pixel from the full prediction; rank them for the steps until the next evaluation."""
        self.cached = pred.clone()
        fitness = ((pred - self.target) ** 2).mean(dim=1)  # (N,) squared error, averaged over channels
        keep, _ = self.counts(step)
        if self.crossover:
            freq = self.freq_weight * (laplacian(grey255(pred), self.height, self.width) - self.target_laplacian) ** 2
            chosen = self.frequency_crossover(fitness, freq, keep)
        else:
            chosen = torch.topk(fitness, keep).indices
        # The chosen K first, then every other pixel by falling fitness: if r_t grows before the next evaluation,
        # the kept set is topped up from the next-ranked.
        is_chosen = torch.zeros_like(fitness, dtype=torch.bool)
        is_chosen[chosen] = True
        by_fitness = torch.argsort(fitness, descending=True)
        self.order = torch.cat([chosen, by_fitness[~is_chosen[by_fitness]]])

    @staticmethod
    def frequency_crossover(fitness: torch.Tensor, freq: torch.Tensor, k: int) -> torch.Tensor:
        """EVOS Sec. 3.3: the pixels in both top-k lists, then the remaining places split between the two lists in
        proportion to their mean errors, each share filled with its list's highest-scoring pixels not yet chosen."""
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


SAMPLERS: dict[str, type[Sampler]] = {"full": FullSampler, "random": RandomSampler, "evos": EvosSampler}


def build_sampler(name: str, *, target: torch.Tensor, height: int, width: int, total_steps: int, ratio: float,
                  scheduler: str = "constant", seed: int = 0, **options) -> Sampler:
    """The selector called ``name`` for an H x W target of shape (N, C); ``options`` go to EVOS."""
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    common = dict(total_steps=total_steps, ratio=ratio, scheduler=scheduler, seed=seed)
    if name == "evos":
        return EvosSampler(target=target, height=height, width=width, **common, **options)
    return SAMPLERS[name](num_pixels=target.shape[0], **common)
