"""Samplers of a Gaussian diffusion: DDPM's ancestral steps, DDIM's jumps and classifier-free guidance.

The process itself (schedule, forward process, posterior, what the network predicts, losses) is
:class:`~visionlab.models.diffusion.GaussianDiffusion`, which inherits these samplers from
:class:`DiffusionSamplers`; this file only walks its reverse process. A model is any callable ``model(x_t, t)`` or
``model(x_t, t, y)``.

**DDPM** (Ho et al. 2020, Algorithm 2): x_T ~ N(0, I), then for t = T .. 1 one ancestral step::

    x_{t-1} = mu(x_t, x0_hat) + sigma_t z,   z ~ N(0, I) (none at the last step)        (Alg. 2, line 4)

with mu and sigma_t from :meth:`GaussianDiffusion.p_mean_variance`.

**DDIM** (Song et al. 2021) jumps along any decreasing subsequence of time steps t -> s (Eq. 12 and 16)::

    x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z,
    sigma = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s)          eta = 0: deterministic

**Classifier-free guidance** (Ho & Salimans 2022, Eq. 6): out = out(x, null) + s (out(x, y) - out(x, null)) on every
output channel; s = 1 is the conditional model. :func:`guided` wraps a network so that any sampler guides it.

Time steps are 0-based (t = 0 .. T-1): index t holds beta_{t+1}. Shape legend: B batch, C channels, H, W height and
width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from tqdm.auto import tqdm

from visionlab.util.errors import ConfigError

Model = Callable[..., torch.Tensor]


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """uncond + scale (cond - uncond), on every channel (Ho & Salimans 2022, Eq. 6 with scale = 1 + w)."""
    return uncond + scale * (cond - uncond)


def guided(model: Model, *, scale: float, null_class: int) -> Model:
    """Wrap ``model(x, t, y)`` into a guided model: one batched call with the labels and with the null class.

    >>> eps = guided(net, scale=4.0, null_class=10)(x_t, t, y)     # (B, C, H, W)

    This is the one place that checks that guidance has a class-conditional model to guide: ``null_class`` None
    (what an unconditional network's ``null_class`` is) raises a :class:`ConfigError`.
    """
    if null_class is None:
        raise ConfigError("guidance needs a class-conditional model; this one is unconditional")

    def guided_model(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)  # (B,)
        null = torch.full_like(y, null_class)
        out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))  # (2B, C_out, H, W)
        return classifier_free_guidance(out[:b], out[b:], scale)  # (B, C_out, H, W)
    return guided_model



def randn(shape: Sequence[int], *, generator: torch.Generator | None = None, device: torch.device | str | None = None,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, then moved: a CPU generator gives the same numbers for
    a CUDA run as for a CPU run."""
    where = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=where, dtype=dtype).to(device)



def progress_bar(iterable, enabled: bool, desc: str):
    """``iterable`` with a transient progress bar when ``enabled``."""
    return tqdm(iterable, desc=desc, leave=False) if enabled else iterable


class DiffusionSamplers:
    """DDPM and DDIM on the tables and conversions of a :class:`~visionlab.models.diffusion.GaussianDiffusion`."""

    def ddpm_step(self, output: torch.Tensor, x_t: torch.Tensor, t, *, noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One ancestral step x_t -> x_{t-1} (Algorithm 2, line 4): (x_{t-1}, x0_hat); no noise at t = 0."""
        p = self.p_mean_variance(output, x_t, t)
        z = self._noise(x_t, noise, generator)  # z ~ N(0, I)
        nonzero = (self._timesteps(t, x_t) != 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
        return p["mean"] + nonzero * torch.exp(0.5 * p["log_variance"]) * z, p["x0"]  # mu + sigma_t z

    def ddim_timesteps(self, steps: int) -> list[int]:
        """``steps`` evenly spaced time steps, from high to low, starting at 0: 50 of 1000 -> 980, 960, ..., 0."""
        if not 1 <= steps <= self.num_timesteps:
            raise ConfigError(f"steps must be in [1, {self.num_timesteps}], got {steps}")
        ratio = self.num_timesteps // steps
        return [i * ratio for i in reversed(range(steps))]

    def ddim_step(self, output: torch.Tensor, x_t: torch.Tensor, t, t_prev, *, eta: float = 0.0,
                  noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDIM jump x_t -> x_{t_prev} (t_prev < t; -1: the clean image): (x_{t_prev}, x0_hat).

        x0_hat is clipped (``clip_denoised``) and eps_hat then re-derived from it (``eps_from_clipped_x0``).
        """
        out, _ = self.split_output(output, x_t)  # a learned variance is not used by DDIM
        abar, abar_prev = self._abar(t, x_t), self._abar(t_prev, x_t)
        x0 = self.predict_x0(x_t, t, out)
        eps = self.predict_eps(x_t, t, out)
        if self.config.clip_denoised:
            x0 = x0.clamp(-1, 1)
            if self.config.eps_from_clipped_x0:
                eps = self.eps_from_x0(x_t, t, x0)  # x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, solved for eps
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()  # DDIM Eq. 16
        x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma ** 2).clamp(min=0).sqrt() * eps  # Eq. 12
        if eta > 0:
            x_prev = x_prev + sigma * self._noise(x_t, noise, generator)  # + sigma_t z
        return x_prev, x0

    # ---- sampling loops ---------------------------------------------------------------------------------------------

    @staticmethod
    def _call(model: Model, x: torch.Tensor, t: int, y: torch.Tensor | None) -> torch.Tensor:
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)  # (B,)
        return model(x, tt) if y is None else model(x, tt, y)

    @torch.no_grad()
    def ddpm_sample(self, model: Model, shape: Sequence[int], *, y: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, device: torch.device | str | None = None,
                    x_T: torch.Tensor | None = None, progress: bool = False) -> torch.Tensor:
        """Algorithm 2: x_T ~ N(0, I), then T ancestral steps -> x_0 (B, C, H, W)."""
        x = x_T if x_T is not None else randn(shape, generator=generator, device=device)
        for t in progress_bar(range(self.num_timesteps - 1, -1, -1), progress, "DDPM"):
            x, _ = self.ddpm_step(self._call(model, x, t, y), x, t, generator=generator)
        return x

    @torch.no_grad()
    def ddim_sample(self, model: Model, shape: Sequence[int], *, steps: int = 50, eta: float = 0.0,
                    timesteps: Sequence[int] | None = None, y: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, device: torch.device | str | None = None,
                    x_T: torch.Tensor | None = None, progress: bool = False) -> torch.Tensor:
        """DDIM: x_T ~ N(0, I), then jumps along ``timesteps`` (default: :meth:`ddim_timesteps`) -> x_0."""
        timesteps = list(timesteps) if timesteps is not None else self.ddim_timesteps(steps)
        if any(a <= b for a, b in pairwise(timesteps)) or not 0 <= timesteps[-1] < self.num_timesteps \
                or timesteps[0] >= self.num_timesteps:
            raise ConfigError(f"DDIM time steps must decrease within [0, {self.num_timesteps}), got {timesteps}")
        x = x_T if x_T is not None else randn(shape, generator=generator, device=device)
        for t, t_prev in progress_bar(list(zip(timesteps, timesteps[1:] + [-1])), progress, "DDIM"):
            x, _ = self.ddim_step(self._call(model, x, t, y), x, t, t_prev, eta=eta, generator=generator)
        return x
