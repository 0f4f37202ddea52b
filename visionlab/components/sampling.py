"""Sample selection for neural fields: which samples (pixels) to train on at each step.

Training an INR on every pixel every step ("full", the *Standard* row of the EVOS paper) wastes most of the compute on
pixels that are already fitted. A selector trains on a fraction r_t of the N samples at step t (of T):

- **ratio schedulers** give r_t (all counts are floor(r_t N)):
  ``constant`` r_t = r_0;
  ``step`` (ten stages) r_t = min(r_0 + floor(t / (T/10)) (1 - r_0)/10, 1): r_0 = 0.2, T = 5000 gives 0.20, ..., 0.92;
  ``linear`` r_t = r_0 + (1 - r_0) t / T;
  ``cosine`` r_t = r_0 + (1 - r_0) (1 - cos(pi t / T)) / 2 (flat at both ends);
- **full** trains on all N samples;
- **random** (*Uniform*) draws floor(r_t N) samples uniformly, afresh each step;
- **EVOS** (Zhang et al., CVPR 2025) treats every sample as an individual and trains only the fittest (largest error):

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
- the peers of the EVOS paper's Table 1 (EGRA, expansive supervision, soft mining, INT) live in
  :mod:`visionlab.components.sampling_peers`.

Signals: a selector sees the target as (N, C) values, row-major over a grid of ``shape``: (H, W) for an image,
(T, H, W) for a video, (T,) for audio. The Laplacian is the 3x3 kernel on an image (per frame on a video) and the
second difference [1, -2, 1] on a 1-D signal; "grey" is the ITU-R 601 luma for 3 (or 4, RGBA) channels on an image
or video, the channel mean otherwise.

Every selector draws from its own seeded ``torch.Generator`` (on the CPU, so a seed gives the same samples on every
device) and saves it in ``state_dict()``, so runs repeat and a resumed run continues exactly. The EVOS authors' code
reseeds from the OS every step; this one does not. Written by hand: no library offers INR sample selection.

Interface, in the order the trainer calls it each step (every hook but ``select`` has a do-nothing default):

1. ``prepare(step, model=, coords=)``: may look at the model, without gradients (INT profiles here);
2. ``select(step) -> indices or None`` (None = every sample);
3. ``loss_weights(step, indices, pred) -> (n,) or None``: per-sample weights w of the loss
   mean_i w_i mean_c (pred - target)^2 (None: the plain MSE over samples and channels);
4. ``extra_loss(step, indices, pred)`` sees the prediction at those samples (with its graph), may update state (EVOS's
   fitness) and may add a loss term;
5. ``observe(step, indices, coords_grad)``, only for selectors with ``wants_coordinate_grad``: after ``backward``, the
   gradient of the loss w.r.t. the selected coordinates (soft mining moves its samples with it).

Shape legend: N samples, n selected, C channels, H, W, T; steps t are 0-based in the code unless said otherwise.
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


def linear_ratio(step: int, *, total_steps: int, ratio: float) -> float:
    """r_t = r_0 + (1 - r_0) min(t / T, 1): a straight ramp from r_0 at the first step to 1 at the end of the run."""
    return ratio + (1.0 - ratio) * min(step / total_steps, 1.0)


def cosine_ratio(step: int, *, total_steps: int, ratio: float) -> float:
    """r_t = r_0 + (1 - r_0) (1 - cos(pi min(t / T, 1))) / 2: a ramp from r_0 to 1 that is flat at both ends."""
    return ratio + (1.0 - ratio) * 0.5 * (1.0 - math.cos(math.pi * min(step / total_steps, 1.0)))


RATIO_SCHEDULERS = {"constant": constant_ratio, "step": step_ratio, "linear": linear_ratio, "cosine": cosine_ratio}


def count(ratio: float, num_pixels: int) -> int:
    """floor(ratio * N), computed so that ratio = 1 gives exactly N despite float rounding."""
    return min(num_pixels, math.floor(ratio * num_pixels + 1e-9))


# ---------------------------------------------------------------------------------------------------- helpers

# The 3x3 Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] of EVOS's frequency error, applied with zero padding.
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
SECOND_DIFFERENCE = torch.tensor([1.0, -2.0, 1.0])  # its 1-D counterpart, for audio
GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as the EVOS code


def check_shape(shape: tuple[int, ...], num_pixels: int) -> tuple[int, ...]:
    """The grid shape as a tuple, checked: 1 to 3 positive sizes whose product is the number of samples N."""
    shape = tuple(int(s) for s in shape)
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise ConfigError(f"a signal grid is (T,), (H, W) or (T, H, W) with positive sizes, got {shape}")
    if math.prod(shape) != num_pixels:
        raise ConfigError(f"target has {num_pixels} samples, not the {math.prod(shape)} of a grid of shape {shape}")
    return shape


def grey255(values: torch.Tensor, *, luma: bool = True) -> torch.Tensor:
    """(N, C) values in [-1, 1] -> (N,) grey level in 0-255 units (RGB(A) with ``luma``: luma of RGB; else: mean)."""
    values = (values + 1.0) * 127.5
    if luma and values.shape[1] in (3, 4):
        w = values.new_tensor(GREY_WEIGHTS)
        return values[:, :3] @ w
    return values.mean(dim=1)


def signal_grey255(values: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """grey255 for a signal on a grid of ``shape``: the luma only for images and videos (audio channels are no RGB)."""
    return grey255(values, luma=len(shape) >= 2)


def laplacian(grey: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(N,) grey values on a grid of ``shape`` -> (N,) Laplacian, zero padding: the 3x3 kernel on an image (H, W) and
    on each frame of a video (T, H, W), the second difference [1, -2, 1] on a 1-D signal (T,)."""
    if len(shape) == 1:
        signal = rearrange(grey, "t -> 1 1 t")  # (1, 1, T)
        kernel = SECOND_DIFFERENCE.to(grey)[None, None]  # (1, 1, 3)
        return rearrange(F.conv1d(signal, kernel, padding=1), "1 1 t -> t")  # (N,)
    frames = rearrange(grey, "(t h w) -> t 1 h w", h=shape[-2], w=shape[-1])  # (T, 1, H, W); an image is one frame
    kernel = LAPLACIAN.to(grey)[None, None]  # (1, 1, 3, 3)
    return rearrange(F.conv2d(frames, kernel, padding=1), "t 1 h w -> (t h w)")  # (N,)


# ---------------------------------------------------------------------------------------------------- selectors


class Sampler:
    """Base selector: the ratio schedule, the generator, the trainer hooks, and the state that a checkpoint keeps."""

    name = "base"
    #: True: the trainer makes the selected coordinates require grad and hands their gradient to ``observe``.
    wants_coordinate_grad = False
    #: Constructor keywords that :func:`build_sampler` passes on from a run's options (others are not this one's).
    options: tuple[str, ...] = ()

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
        """r_t, the fraction of samples trained at ``step``."""
        return RATIO_SCHEDULERS[self.scheduler](step, total_steps=self.total_steps, ratio=self.ratio)

    def prepare(self, step: int, *, model, coords: torch.Tensor) -> None:
        """Before ``select``: look at ``model`` on all (N, D) ``coords`` if the rule needs it (no gradients)."""

    def select(self, step: int) -> torch.Tensor | None:
        """The (n,) sample indices to train at ``step``, or None for every sample."""
        raise NotImplementedError

    def loss_weights(self, step: int, indices: torch.Tensor | None, pred: torch.Tensor) -> torch.Tensor | None:
        """(n,) detached weights of each selected sample's squared error, from its (n, C) prediction; None: MSE."""
        return None

    def extra_loss(self, step: int, indices: torch.Tensor | None, pred: torch.Tensor) -> torch.Tensor | None:
        """See the (n, C) prediction at the selected samples; return a loss term to add to the MSE, or None."""
        return None

    def observe(self, step: int, indices: torch.Tensor | None, coords_grad: torch.Tensor) -> None:
        """After ``backward`` (only if ``wants_coordinate_grad``): d loss / d coordinates of the selection, (n, D)."""

    def uniform(self, n: int, k: int) -> torch.Tensor:
        """k distinct indices drawn uniformly from range(n), from this selector's generator (on the CPU)."""
        return torch.randperm(n, generator=self.generator)[:k]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class FullSampler(Sampler):
    """Every sample, every step (EVOS's *Standard*)."""

    name = "full"

    def select(self, step: int) -> None:
        return None


class RandomSampler(Sampler):
    """floor(r_t N) samples drawn uniformly without replacement, afresh each step (EVOS's *Uniform*)."""

    name = "random"

    def select(self, step: int) -> torch.Tensor:
        return self.uniform(self.num_pixels, count(self.ratio_at(step), self.num_pixels))


CROSSOVERS = ("select", "sum", "none")


class EvosSampler(Sampler):
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
        super().__init__(num_pixels=target.shape[0], total_steps=total_steps, ratio=ratio, scheduler=scheduler,
                         seed=seed)
        self.shape = check_shape(shape, target.shape[0])
        self.mutation_ratio = 0.5 * ratio if mutation_ratio is None else mutation_ratio  # m = r_0 / 2
        if not 0.0 <= self.mutation_ratio < ratio:
            raise ConfigError(f"mutation ratio must be in [0, ratio = {ratio}), got {self.mutation_ratio}")
        if not interval_start >= interval_end >= 2:
            raise ConfigError(f"need interval_start >= interval_end >= 2, got {interval_start}, {interval_end}")
        if crossover not in CROSSOVERS:
            raise ConfigError(f"unknown EVOS crossover {crossover!r}; choose one of {', '.join(CROSSOVERS)}")
        self.interval_start, self.interval_end = interval_start, interval_end
        self.freq_weight = freq_weight
        self.cfs_steps = cfs_steps
        self.crossover = crossover
        self.target = target
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


# The peers subclass Sampler and use the helpers above, so they are imported once those exist.
from visionlab.components.sampling_peers import (  # noqa: E402
    EdgeGuidedSampler,
    ExpansiveSampler,
    IntDenseSampler,
    IntSampler,
    SoftMiningSampler,
)

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
    shape = check_shape(shape, target.shape[0])
    common = {"total_steps": total_steps, "ratio": ratio, "scheduler": scheduler, "seed": seed}
    own = {key: value for key, value in options.items() if key in cls.options}
    if cls in (FullSampler, RandomSampler):  # they need only the number of samples
        return cls(num_pixels=target.shape[0], **common, **own)
    return cls(target=target, shape=shape, **common, **own)
