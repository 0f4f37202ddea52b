"""What every sample selector shares: the ratio schedules, the checks of a run's options, the grid helpers and the base
class whose hooks the neural-field trainer calls.

A selector trains on a fraction r_t of the N samples at step t (of T); all counts are floor(r_t N). The ratio
schedulers give r_t:

- ``constant`` r_t = r_0;
- ``step`` (ten stages) r_t = min(r_0 + floor(t / (T/10)) (1 - r_0)/10, 1): r_0 = 0.2, T = 5000 gives 0.20, ..., 0.92;
- ``linear`` r_t = r_0 + (1 - r_0) t / T;
- ``cosine`` r_t = r_0 + (1 - r_0) (1 - cos(pi t / T)) / 2 (flat at both ends).

The options of a run that every selector shares are checked when the selector is built (before any training step):
r_0 in (0, 1] and the scheduler's name in :class:`Sampler`, EVOS's mutation ratio m in [0, r_0); the rules for r_0
and m are the schema's own (:func:`~visionlab.opt.fit.check_ratio`, :func:`~visionlab.opt.fit.check_mutation_ratio`),
the selector's name is checked in :func:`~visionlab.components.sampling.build_sampler`.

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

``couples_rows(step)`` says, before the forward, whether the step's loss needs the whole prediction in one autograd
graph (weights or an extra term from 3 or 4). Where it does not, the trainer runs forward and backward one chunk of
samples at a time, so that each chunk's activations are still in cache for its backward, and calls ``extra_loss``
with the detached prediction afterwards (EVOS's fitness is read there); it must then return None.

Shape legend: N samples, n selected, C channels, H, W, T; steps t are 0-based in the code unless said otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from visionlab.opt.fit import check_ratio  # the option's rule, stated once
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


# ---------------------------------------------------------------------------------------------------- checks


def check_scheduler(scheduler: str) -> str:
    """The ratio scheduler's name, checked: one of RATIO_SCHEDULERS."""
    if scheduler not in RATIO_SCHEDULERS:
        raise ConfigError(f"unknown ratio scheduler {scheduler!r}; choose one of {', '.join(RATIO_SCHEDULERS)}")
    return scheduler


def check_shape(shape: tuple[int, ...], num_pixels: int) -> tuple[int, ...]:
    """The grid shape as a tuple, checked: 1 to 3 positive sizes whose product is the number of samples N."""
    shape = tuple(int(s) for s in shape)
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise ConfigError(f"a signal grid is (T,), (H, W) or (T, H, W) with positive sizes, got {shape}")
    if math.prod(shape) != num_pixels:
        raise ConfigError(f"target has {num_pixels} samples, not the {math.prod(shape)} of a grid of shape {shape}")
    return shape


# ---------------------------------------------------------------------------------------------------- grid helpers

# The 3x3 Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] of EVOS's frequency error, applied with zero padding.
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
SECOND_DIFFERENCE = torch.tensor([1.0, -2.0, 1.0])  # its 1-D counterpart, for audio
GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as the EVOS code


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


# ---------------------------------------------------------------------------------------------------- base classes


class Sampler:
    """Base selector: the ratio schedule, the generator, the trainer hooks, and the state that a checkpoint keeps."""

    name = "base"
    #: True: the trainer makes the selected coordinates require grad and hands their gradient to ``observe``.
    wants_coordinate_grad = False
    #: Constructor keywords that :func:`build_sampler` passes on from a run's options (others are not this one's).
    options: tuple[str, ...] = ()

    def __init__(self, *, num_pixels: int, total_steps: int, ratio: float = 1.0, scheduler: str = "constant",
                 seed: int = 0):
        if num_pixels < 1 or total_steps < 1:
            raise ConfigError(f"need at least one pixel and one step, got N={num_pixels}, T={total_steps}")
        self.num_pixels = num_pixels
        self.total_steps = total_steps
        self.ratio = check_ratio(ratio)
        self.scheduler = check_scheduler(scheduler)
        self.generator = torch.Generator().manual_seed(seed)

    def ratio_at(self, step: int) -> float:
        """r_t, the fraction of samples trained at ``step``."""
        return RATIO_SCHEDULERS[self.scheduler](step, total_steps=self.total_steps, ratio=self.ratio)

    def prepare(self, step: int, *, model, coords: torch.Tensor) -> None:
        """Before ``select``: look at ``model`` on all (N, D) ``coords`` if the rule needs it (no gradients)."""

    def select(self, step: int) -> torch.Tensor | None:
        """The (n,) sample indices to train at ``step``, or None for every sample."""
        raise NotImplementedError

    def couples_rows(self, step: int) -> bool:
        """Whether this step's ``loss_weights`` or ``extra_loss`` may give something (then the loss couples the
        rows: one graph for the whole prediction). A selector that overrides either says when, or always."""
        cls = type(self)
        return cls.loss_weights is not Sampler.loss_weights or cls.extra_loss is not Sampler.extra_loss

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


class TargetSampler(Sampler):
    """Base of the selectors that look at the signal: its (N, C) ``target`` in model space ([-1, 1]), row-major over
    a grid of ``shape`` (checked); N is the target's length."""

    def __init__(self, *, target: torch.Tensor, shape: tuple[int, ...], total_steps: int, ratio: float = 0.5,
                 scheduler: str = "constant", seed: int = 0):
        super().__init__(num_pixels=target.shape[0], total_steps=total_steps, ratio=ratio, scheduler=scheduler,
                         seed=seed)
        self.shape = check_shape(shape, target.shape[0])
        self.target = target
