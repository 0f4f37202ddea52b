"""The peers of EVOS in its Table 1: full and uniform training, EGRA, expansive supervision, soft mining and INT
(nonparametric teaching).

Each trains on floor(r_t N) samples at step t, with r_t from a ratio scheduler of :mod:`.sampling_base`:

- **full** (the *Standard* row) trains on all N samples;
- **random** (*Uniform*) draws floor(r_t N) samples uniformly, afresh each step;
- **EGRA** (edge-guided random sampling, as compared in the EVOS paper, CVPR 2025): Canny edges of the grey image
  (thresholds 30 / 40 on 0-255 data); each step the edge positions are jittered by up to ``jitter`` pixels and
  r_t N pixels are drawn without replacement with P(i) proportional to 1 + beta [i on a jittered edge], beta small
  (0.5), so edges are only slightly more likely;
- **expansive supervision** (Zhang et al., "Expansive Supervision for Neural Radiance Field", 2024): a fixed anchor
  set of A = floor(0.5 r_0 N) pixels taken from Canny edges whose thresholds (s tau / 2, s tau), tau the Otsu
  threshold, are scaled until the 2x2-dilated edge area is the smallest one >= A, then pruned at random to exactly A;
  each step trains on all anchors plus floor(r_t N) - A pixels drawn uniformly from the others;
- **soft mining** (Kheradmand et al., "Accelerating Neural Field Training via Soft Mining", CVPR 2024): a persistent
  batch of floor(r_t N) continuous positions x_i, trained at their nearest pixel (flat index y W + x), moved after each
  step by the Langevin update x <- x + eps grad_x log L(x) + sigma xi, xi ~ N(0, I) (eps = 0.5, sigma = 0.5 pixel,
  the drift clipped to 2 pixels), so that they drift towards high loss (the gradient comes from the training step's
  own backward pass: the trainer hands d loss / d coordinates to ``observe``); the lowest-loss tenth and the
  out-of-bounds samples are re-drawn from the Sobel edge distribution P(i) proportional to |grad I|_i, another tenth
  uniformly. The loss is importance-weighted: w_i = min((mean_j e_j / e_i)^alpha_t, w_max = 10), e_i the L1 error,
  alpha_t = min(t / 1000, 0.6) (alpha = 0: plain MSE, alpha = 1: full importance sampling; the constant factor
  (mean e)^alpha keeps the loss on the MSE's scale);
- **INT** (Zhang, Luo and Wong, "Nonparametric Teaching of Implicit Neural Representations", ICML 2024): on profiling
  steps a no-gradient forward pass over all N samples scores each by its squared error; the top floor(r_t N) are
  trained until the next profile. Incremental profiling: every step in the first quarter of the run, then the rest in
  five equal stages that profile every 10, 20, 30, 40 and 50 steps (stage k covers [ceil((5 + 3(k-1)) T / 20),
  ceil((5 + 3k) T / 20)) and profiles on its first step and every 10 k steps after; T = 5000 gives 1,422 profiles).
  ``int-dense`` profiles every step.

Grids (see :mod:`.sampling_base`): full, random and INT work on any grid; the edge-based three work on images (H, W)
and, frame by frame, videos (T, H, W), and refuse 1-D signals. Edges are found on the grey target (0-255 units,
clipped), as EVOS's Laplacian is. Each selector seeds its own CPU ``torch.Generator`` and keeps everything it needs
in ``state_dict``.
Shape legend: N samples, n selected, E edge pixels, D grid dimensions, F frames (1 for an image), H, W, C.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from einops import rearrange

from visionlab.components.sampling_base import Sampler, TargetSampler, count, signal_grey255
from visionlab.util.errors import ConfigError

# ---------------------------------------------------------------------------------------------------- helpers


def grey_frames(target: torch.Tensor, shape: tuple[int, ...], sampler: str) -> np.ndarray:
    """(N, C) target on a grid of ``shape`` -> (F, H, W) uint8 grey frames; 1-D signals have no edges: ConfigError."""
    if len(shape) < 2:
        raise ConfigError(f"the {sampler} sampler finds edges in images and video frames; a 1-D signal of shape "
                          f"{shape} has none (use random, int or evos)")
    grey = signal_grey255(target.detach().float().cpu(), shape).clamp(0, 255).round()  # (N,)
    return rearrange(grey, "(f h w) -> f h w", h=shape[-2], w=shape[-1]).numpy().astype(np.uint8)  # (F, H, W)


def canny(frames: np.ndarray, low: float, high: float) -> np.ndarray:
    """(F, H, W) uint8 -> (F, H, W) bool Canny edges of each frame (OpenCV, 3x3 Sobel, L1 gradient norm)."""
    return np.stack([cv2.Canny(frame, low, high) > 0 for frame in frames])


def sobel_magnitude(frames: np.ndarray) -> np.ndarray:
    """(F, H, W) uint8 -> (F, H, W) float64 gradient magnitude sqrt(gx^2 + gy^2) of 3x3 Sobel filters, per frame."""
    out = []
    for frame in frames.astype(np.float32):
        gx, gy = cv2.Sobel(frame, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(frame, cv2.CV_32F, 0, 1, ksize=3)
        out.append(np.sqrt(gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2))
    return np.stack(out)


def weighted_draw(weights: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct indices drawn without replacement with probability proportional to ``weights`` (N,) > 0.

    Efraimidis and Spirakis (2006): the k largest keys log(u_i) / w_i, u_i ~ U(0, 1), are such a draw, in one pass.
    """
    u = torch.rand(weights.shape[0], generator=generator, dtype=torch.float64)
    return torch.topk(u.log() / weights.double(), k).indices


# ---------------------------------------------------------------------------------------------------- full, random


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


# ---------------------------------------------------------------------------------------------------- EGRA


class EdgeGuidedSampler(TargetSampler):
    """EGRA: floor(r_t N) pixels without replacement, P(i) proportional to 1 + beta [i on a jittered Canny edge]."""

    name = "egra"
    options = ("low", "high", "jitter", "edge_weight")

    def __init__(self, *, target: torch.Tensor, shape: tuple[int, ...], total_steps: int, ratio: float = 0.5,
                 scheduler: str = "constant", seed: int = 0, low: float = 30, high: float = 40, jitter: int = 2,
                 edge_weight: float = 0.5):
        super().__init__(target=target, shape=shape, total_steps=total_steps, ratio=ratio, scheduler=scheduler,
                         seed=seed)
        edges = canny(grey_frames(target, self.shape, self.name), low, high)  # (F, H, W)
        self.edges = torch.from_numpy(np.argwhere(edges))  # (E, 3): frame, y, x
        self.height, self.width = self.shape[-2:]
        self.jitter, self.edge_weight = jitter, edge_weight

    def weights(self) -> torch.Tensor:
        """(N,) this step's sampling weights: 1 everywhere (the floor), 1 + beta on the freshly jittered edges."""
        weights = torch.ones(self.num_pixels, dtype=torch.float64)
        if self.edges.shape[0]:
            # Jitter each edge pixel by up to `jitter` pixels in y and x, so the edge band varies from step to step.
            offsets = torch.randint(-self.jitter, self.jitter + 1, (self.edges.shape[0], 2), generator=self.generator)
            y = (self.edges[:, 1] + offsets[:, 0]).clamp(0, self.height - 1)
            x = (self.edges[:, 2] + offsets[:, 1]).clamp(0, self.width - 1)
            weights[(self.edges[:, 0] * self.height + y) * self.width + x] = 1.0 + self.edge_weight
        return weights

    def select(self, step: int) -> torch.Tensor:
        return weighted_draw(self.weights(), count(self.ratio_at(step), self.num_pixels), self.generator)


# ---------------------------------------------------------------------------------------------------- expansive


def expansive_edges(frames: np.ndarray, area: int, *, iterations: int = 24) -> np.ndarray:
    """(F, H, W) bool: Canny edges with thresholds (s tau / 2, s tau), tau the Otsu threshold of all frames, dilated
    by 2x2, for the largest scale s in [1/64, 16] whose edge area is still >= ``area`` (bisection on log s); if even
    s = 1/64 gives fewer pixels, those edges."""
    tau = max(cv2.threshold(rearrange(frames, "f h w -> (f h) w"), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0], 1.0)
    kernel = np.ones((2, 2), np.uint8)

    def region(scale: float) -> np.ndarray:
        edges = canny(frames, 0.5 * scale * tau, scale * tau)
        return np.stack([cv2.dilate(e.astype(np.uint8), kernel) > 0 for e in edges])

    lo, hi = math.log(1 / 64), math.log(16)  # area(lo) >= area(hi): higher thresholds keep fewer edges
    best = region(math.exp(lo))
    if best.sum() < area:
        return best
    top = region(math.exp(hi))
    if top.sum() >= area:
        return top
    for _ in range(iterations):  # invariant: area(lo) >= area > area(hi)
        mid = 0.5 * (lo + hi)
        candidate = region(math.exp(mid))
        if candidate.sum() >= area:
            lo, best = mid, candidate
        else:
            hi = mid
    return best


class ExpansiveSampler(TargetSampler):
    """Expansive supervision: floor(0.5 r_0 N) fixed edge anchors every step, plus uniform others up to r_t N."""

    name = "expansive"
    options = ("anchor_fraction",)

    def __init__(self, *, target: torch.Tensor, shape: tuple[int, ...], total_steps: int, ratio: float = 0.5,
                 scheduler: str = "constant", seed: int = 0, anchor_fraction: float = 0.5):
        super().__init__(target=target, shape=shape, total_steps=total_steps, ratio=ratio, scheduler=scheduler,
                         seed=seed)
        self.num_anchors = count(anchor_fraction * ratio, self.num_pixels)  # A = 0.5 r_0 N
        region = torch.from_numpy(expansive_edges(grey_frames(target, self.shape, self.name), self.num_anchors))
        on_edges = torch.nonzero(region.flatten()).flatten()  # (E,) flat indices, (f h w) order
        anchors = on_edges[self.uniform(on_edges.shape[0], self.num_anchors)]  # pruned at random to exactly A
        if anchors.shape[0] < self.num_anchors:  # a flat signal has too few edges: top up uniformly
            rest = torch.nonzero(~region.flatten()).flatten()
            anchors = torch.cat([anchors, rest[self.uniform(rest.shape[0], self.num_anchors - anchors.shape[0])]])
        self._set_anchors(anchors)

    def _set_anchors(self, anchors: torch.Tensor) -> None:
        self.anchors = anchors.sort().values  # (A,)
        is_anchor = torch.zeros(self.num_pixels, dtype=torch.bool)
        is_anchor[self.anchors] = True
        self.others = torch.nonzero(~is_anchor).flatten()  # (N - A,)

    def select(self, step: int) -> torch.Tensor:
        extra = max(count(self.ratio_at(step), self.num_pixels) - self.num_anchors, 0)  # (r_t - A / N) N
        return torch.cat([self.anchors, self.others[self.uniform(self.others.shape[0], extra)]])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "anchors": self.anchors}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._set_anchors(state["anchors"].cpu())


# ---------------------------------------------------------------------------------------------------- soft mining


class SoftMiningSampler(TargetSampler):
    """Soft mining: Langevin-moved samples towards high loss, re-drawn tenths, importance weights (1/e)^alpha_t.

    Positions are continuous, in pixel units per grid axis (the pixel centre i at i); coordinates are the
    ``coordinate_grid`` convention c = -1 + 2 i / (S - 1), so d/di = 2 / (S - 1) d/dc.
    """

    name = "soft-mining"
    wants_coordinate_grad = True
    options = ("step_size", "noise", "max_drift", "redraw_low", "redraw_uniform", "alpha_max", "alpha_steps",
               "max_weight")

    def __init__(self, *, target: torch.Tensor, shape: tuple[int, ...], total_steps: int, ratio: float = 0.5,
                 scheduler: str = "constant", seed: int = 0, step_size: float = 0.5, noise: float = 0.5,
                 max_drift: float = 2.0, redraw_low: float = 0.1, redraw_uniform: float = 0.1,
                 alpha_max: float = 0.6, alpha_steps: int = 1000, max_weight: float = 10.0):
        super().__init__(target=target, shape=shape, total_steps=total_steps, ratio=ratio, scheduler=scheduler,
                         seed=seed)
        magnitude = torch.from_numpy(sobel_magnitude(grey_frames(target, self.shape, self.name)).ravel())  # (N,)
        if magnitude.sum() <= 0:  # a flat signal: no edges to prefer
            magnitude = torch.ones_like(magnitude)
        self.edge_cdf = torch.cumsum(magnitude / magnitude.sum(), 0)  # (N,) of the Sobel distribution
        self.sizes = torch.tensor(self.shape, dtype=torch.float32)  # (D,)
        self.strides = torch.tensor([math.prod(self.shape[d + 1:]) for d in range(len(self.shape))])  # e.g. (W, 1)
        # (D,) dc/di = 2 / (S - 1) per axis; an axis of one pixel (c = 0 there) never moves: 0.
        self.coord_per_pixel = torch.tensor([2 / (s - 1) if s > 1 else 0.0 for s in self.shape])
        self.step_size, self.noise, self.max_drift = step_size, noise, max_drift
        self.redraw_low, self.redraw_uniform = redraw_low, redraw_uniform
        self.alpha_max, self.alpha_steps, self.max_weight = alpha_max, alpha_steps, max_weight
        self.positions = self.draw_uniform(count(ratio, self.num_pixels))  # (n, D)
        self._loss = self._weights = None  # (n,) this step's per-sample loss and weights, from loss_weights

    # -- drawing positions ----------------------------------------------------------------------------------------
    def to_positions(self, flat: torch.Tensor) -> torch.Tensor:
        """(k,) flat indices -> (k, D) positions, each jittered uniformly inside its pixel."""
        grid = torch.stack([(flat // s) % n for s, n in zip(self.strides, self.shape)], dim=1).float()  # (k, D)
        return grid + torch.rand(grid.shape, generator=self.generator) - 0.5

    def draw_uniform(self, k: int) -> torch.Tensor:
        return self.to_positions(torch.randint(self.num_pixels, (k,), generator=self.generator))

    def draw_edges(self, k: int) -> torch.Tensor:
        """k positions from the Sobel distribution P(i) proportional to |grad I|_i (inverse CDF, with replacement)."""
        u = torch.rand(k, generator=self.generator, dtype=torch.float64)
        return self.to_positions(torch.searchsorted(self.edge_cdf, u).clamp(max=self.num_pixels - 1))

    def flat_index(self, positions: torch.Tensor) -> torch.Tensor:
        """(n, D) positions -> (n,) flat index of the nearest pixel: y W + x on an image (not H y + x)."""
        pixel = torch.minimum(torch.floor(positions + 0.5).clamp(min=0), self.sizes - 1).long()  # (n, D)
        return (pixel * self.strides).sum(dim=1)

    # -- the trainer hooks ----------------------------------------------------------------------------------------
    def select(self, step: int) -> torch.Tensor:
        n = count(self.ratio_at(step), self.num_pixels)
        if n > self.positions.shape[0]:  # the ratio grew: new samples join uniformly
            self.positions = torch.cat([self.positions, self.draw_uniform(n - self.positions.shape[0])])
        self.positions = self.positions[:n]
        return self.flat_index(self.positions)

    def exponent(self, step: int) -> float:
        """alpha_t = min(t / 1000, 0.6): from plain MSE towards importance sampling during the first steps."""
        return min(step / self.alpha_steps, self.alpha_max)

    def loss_weights(self, step: int, indices: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        error = pred.detach() - self.target[indices]  # (n, C)
        self._loss = (error ** 2).mean(dim=1)  # (n,) each sample's term of the trainer's loss
        l1 = error.abs().mean(dim=1).clamp_min(1e-12)  # (n,) e_i
        # Importance weights 1 / Q(x_i) with Q proportional to the error, softened by alpha_t and clamped.
        self._weights = ((l1.mean() / l1) ** self.exponent(step)).clamp(max=self.max_weight)
        return self._weights

    def observe(self, step: int, indices: torch.Tensor, coords_grad: torch.Tensor | None) -> None:
        n = self.positions.shape[0]
        loss, weights = self._loss.float().cpu(), self._weights.float().cpu()
        if coords_grad is None:  # a model that ignores its input: no gradient, only noise and re-draws
            coords_grad = torch.zeros(self.positions.shape)
        # The trainer's loss is (1/n) sum_i w_i L_i: dL_i/dc_i = (n / w_i) d loss/dc_i, and dL_i/di = dc/di dL_i/dc_i.
        grad_loss = coords_grad.detach().float().cpu() * (n / weights)[:, None] * self.coord_per_pixel  # (n, D)
        drift = self.step_size * grad_loss / loss.clamp_min(1e-12)[:, None]  # eps grad log L = eps grad L / L
        length = drift.norm(dim=1, keepdim=True)
        drift = drift * (self.max_drift / length.clamp_min(self.max_drift))  # at most max_drift pixels per step
        noise = self.noise * torch.randn(self.positions.shape, generator=self.generator)  # sigma xi
        moved = (self.positions + drift + noise) * (self.coord_per_pixel > 0)  # a one-pixel axis stays at 0
        # The lowest-loss tenth and the samples that left the grid go back to the edges; another tenth anywhere.
        low = torch.argsort(loss)[:math.floor(self.redraw_low * n)]
        outside = ((moved < -0.5) | (moved >= self.sizes - 0.5)).any(dim=1)
        to_edges = outside.clone()
        to_edges[low] = True
        kept = torch.nonzero(~to_edges).flatten()
        to_uniform = kept[self.uniform(kept.shape[0], min(math.floor(self.redraw_uniform * n), kept.shape[0]))]
        moved[to_edges] = self.draw_edges(int(to_edges.sum()))
        moved[to_uniform] = self.draw_uniform(to_uniform.shape[0])
        self.positions = moved

    def state_dict(self) -> dict:
        return {**super().state_dict(), "positions": self.positions}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.positions = state["positions"].cpu()


# ---------------------------------------------------------------------------------------------------- INT


class IntSampler(TargetSampler):
    """INT, incremental profiling: the top floor(r_t N) samples by the last profile's squared error."""

    name = "int"
    options = ("chunk",)

    def __init__(self, *, target: torch.Tensor, shape: tuple[int, ...], total_steps: int, ratio: float = 0.5,
                 scheduler: str = "constant", seed: int = 0, chunk: int = 65536):
        super().__init__(target=target, shape=shape, total_steps=total_steps, ratio=ratio, scheduler=scheduler,
                         seed=seed)
        self.chunk = chunk
        # Stage boundaries b_k = ceil((5 + 3k) T / 20), k = 0..5: a quarter, then five equal stages.
        self.boundaries = [-(-(5 + 3 * k) * total_steps // 20) for k in range(6)]
        self.order: torch.Tensor | None = None  # (N,) samples by falling profiled error

    def is_profile_step(self, step: int) -> bool:
        """Every step before b_0 = ceil(T / 4); in stage k = 1..5, [b_(k-1), b_k), its first step and every 10 k."""
        b = self.boundaries
        if step < b[0]:
            return True
        k = next((k for k in range(1, 5) if step < b[k]), 5)  # steps past T stay in the last stage
        return (step - b[k - 1]) % (10 * k) == 0

    def prepare(self, step: int, *, model, coords: torch.Tensor) -> None:
        if not self.is_profile_step(step):
            return
        with torch.no_grad():  # profiling needs no graph: it only ranks the samples
            pred = torch.cat([model(part) for part in coords.split(self.chunk)])  # (N, C)
        error = ((pred - self.target) ** 2).mean(dim=1)  # (N,) squared error, averaged over channels
        self.order = torch.argsort(error, descending=True)

    def select(self, step: int) -> torch.Tensor:
        if self.order is None:
            raise RuntimeError("INT has no profile yet: call prepare() on a profiling step (the first one is)")
        return self.order[:count(self.ratio_at(step), self.num_pixels)]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "order": self.order}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.order = None if state["order"] is None else state["order"].to(self.target.device)


class IntDenseSampler(IntSampler):
    """INT, dense profiling: a fresh profile every step."""

    name = "int-dense"

    def is_profile_step(self, step: int) -> bool:
        return True
