"""Gaussian diffusion: noise schedules, the forward process, the posterior, losses and bits per dimension.

This file knows nothing about networks: a model is any callable ``model(x_t, t)`` or ``model(x_t, t, y)`` returning
a tensor of x_t's shape (twice the channels when it also predicts the variance), such as
:class:`~visionlab.models.unet.DiffusionUNet` or :class:`~visionlab.models.dit.DiT`.

**Forward process** (Ho et al. 2020, "DDPM"). With a schedule beta_1 .. beta_T, alpha_t = 1 - beta_t and
abar_t = prod_{s <= t} alpha_s, noise is added step by step, and in closed form for any t::

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)                                 (DDPM Eq. 2)
    q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I):  x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps   (Eq. 4)

**Posterior.** Given x_0, one step back is Gaussian too (Eq. 6-7)::

    q(x_{t-1} | x_t, x_0) = N(c1 x_0 + c2 x_t, beta~_t I),
    c1 = beta_t sqrt(abar_{t-1}) / (1 - abar_t),  c2 = sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t),
    beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)

**Reverse process.** The network predicts eps (or x_0, or v = sqrt(abar) eps - sqrt(1 - abar) x_0, Salimans & Ho
2022); every choice gives an estimate x0_hat, and p(x_{t-1} | x_t) = N(c1 x0_hat + c2 x_t, sigma_t^2 I), which for
eps prediction is Eq. 11: mu = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t). sigma_t^2 is beta_t
("fixed_large") or beta~_t ("fixed_small"), or learned: the network's extra output v in [-1, 1] interpolates
log sigma^2 = (v + 1)/2 log beta_t + (1 - v)/2 log beta~_t (Nichol & Dhariwal 2021, Eq. 15; DiT).

**Sampling** (DDPM's ancestral steps, DDIM's jumps, classifier-free guidance) is in :mod:`visionlab.models.samplers`,
whose :class:`~visionlab.models.samplers.DiffusionSamplers` this class inherits: ``ddpm_sample``, ``ddim_sample``,
``ddpm_step``, ``ddim_step``, ``ddim_timesteps``.

**Training.** L_simple = E_{t, x_0, eps} || target - model(x_t, t) ||^2 (DDPM Eq. 14). With a learned variance the
hybrid loss adds lambda L_vlb, lambda = 0.001, through the variance only (Nichol & Dhariwal Eq. 16).

**Likelihood.** The variational bound in bits per dimension (DDPM Eq. 5)::

    L = KL(q(x_T | x_0) || N(0, I)) + sum_{t > 1} KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) - log p(x_0 | x_1)

where the last term is a discretised Gaussian over 256 bins of [-1, 1] (Eq. 13); divided by D ln 2.

Time steps are 0-based here (t = 0 .. T-1, as in the reference code and diffusers): index t holds beta_{t+1}.
Shape legend: B batch, C channels, H, W height and width; coefficients are gathered to (B, 1, 1, 1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch.special import log_ndtr, ndtr

from visionlab.models.samplers import DiffusionSamplers, Model, progress_bar, randn
from visionlab.opt.generate import check_min_snr
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.presets import from_preset

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("epsilon", "x0", "v")
VARIANCES = ("fixed_small", "fixed_large", "learned_range")


# ---------------------------------------------------------------------------------------------------------------------
# helpers: schedules, Gaussian KL, discretised likelihood
# ---------------------------------------------------------------------------------------------------------------------

def linear_beta_schedule(timesteps: int, *, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's schedule: beta rises linearly from 1e-4 to 0.02 over T = 1000 steps; (T,) float64."""
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


def cosine_beta_schedule(timesteps: int, *, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's schedule (Eq. 17): abar(t) = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2); (T,) float64.

    beta_t = min(1 - abar(t) / abar(t - 1), max_beta), the cap avoiding a singularity at t = T.
    """
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps  # t / T, 0 .. 1
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2  # f(t)
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)  # f(0) cancels in the ratio


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (logvar2 - logvar1 - 1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, *, mean: torch.Tensor, log_scale: torch.Tensor,
                                        bins: int = 256) -> torch.Tensor:
    """log P(x) per element, x on a grid of ``bins`` values in [-1, 1] (DDPM Eq. 13); the end bins reach to -+inf.

    P(x) = Phi((x + d - mean) / sigma) - Phi((x - d - mean) / sigma), d = 1 / (bins - 1) half a bin.
    """
    half = 1.0 / (bins - 1)
    inv_std = torch.exp(-log_scale)
    upper = inv_std * (x - mean + half)  # standardised bin edges
    lower = inv_std * (x - mean - half)
    # subtract upper tails when the bin lies right of the mean: no cancellation of two numbers near 1
    mid = torch.where(lower > 0, ndtr(-lower) - ndtr(-upper), ndtr(upper) - ndtr(lower))
    log_mid = torch.log(mid.clamp(min=1e-12))
    first, last = x < -1 + half / 2, x > 1 - half / 2
    return torch.where(first, log_ndtr(upper), torch.where(last, log_ndtr(-lower), log_mid))


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the batch: (B, ...) -> (B,)."""
    return x.flatten(1).mean(dim=1)


# ---------------------------------------------------------------------------------------------------------------------
# the process
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class DiffusionConfig:
    """The diffusion process; the defaults are DDPM's (linear schedule, T = 1000, eps prediction)."""

    timesteps: int = 1000  # T
    schedule: str = "linear"  # "linear" (DDPM) or "cosine" (Nichol & Dhariwal)
    beta_start: float = 1e-4  # linear schedule: beta_1
    beta_end: float = 0.02  # linear schedule: beta_T
    cosine_s: float = 0.008  # cosine schedule: offset s that keeps beta_1 from being tiny
    prediction: str = "epsilon"  # what the network outputs: "epsilon", "x0" or "v"
    variance: str = "fixed_small"  # "fixed_small" (beta~), "fixed_large" (beta) or "learned_range" (2C outputs)
    clip_denoised: bool = True  # clip x0_hat to [-1, 1] while sampling (data in [-1, 1])
    # DDIM with clipping: re-derive eps_hat from the clipped x0_hat (GLIDE, ADM and DiT's samplers) so that both
    # terms of Eq. 12 describe the same x_t; False keeps the network's eps (diffusers' default), which lets x_t drift
    # off the data wherever x0_hat leaves [-1, 1], as it does under classifier-free guidance.
    eps_from_clipped_x0: bool = True
    vb_weight: float = 0.001  # lambda of the hybrid loss, used with variance="learned_range"
    min_snr_gamma: float | None = None  # weight L_simple by min(SNR_t, gamma) / SNR_t (Hang et al. 2023); None: off

    def __post_init__(self):
        if self.timesteps < 1:
            raise ConfigError(f"timesteps must be >= 1, got {self.timesteps}")
        for name, value, allowed in (("schedule", self.schedule, SCHEDULES), ("prediction", self.prediction,
                                      PREDICTIONS), ("variance", self.variance, VARIANCES)):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")
        if self.min_snr_gamma is not None:
            check_min_snr(self.min_snr_gamma)
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ConfigError(f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")

    @property
    def learn_sigma(self) -> bool:
        return self.variance == "learned_range"


DIFFUSION_PRESETS: dict[str, dict] = {
    "ddpm": dict(variance="fixed_large"),  # Ho et al.'s CIFAR-10 sampler
    "improved": dict(schedule="cosine", variance="learned_range"),  # Nichol & Dhariwal (hybrid loss)
    "dit": dict(variance="learned_range"),  # Peebles & Xie: linear schedule, learned sigma
}


def diffusion_config(preset: str = "ddpm", **overrides) -> DiffusionConfig:
    """A preset's config with some fields changed, e.g. ``diffusion_config("ddpm", timesteps=200)``."""
    return from_preset(DiffusionConfig, DIFFUSION_PRESETS, preset, "diffusion", **overrides)


class GaussianDiffusion(DiffusionSamplers):
    """Schedule, forward process, posterior, samplers and losses of a Gaussian diffusion (float64 tables).

    >>> diffusion = GaussianDiffusion(timesteps=1000)
    >>> x_t = diffusion.q_sample(x0, t, noise)                                  # (B, C, H, W)
    >>> loss = diffusion.training_loss(model, x0)["loss"]
    >>> images = diffusion.ddim_sample(model, (16, 3, 32, 32), steps=50, generator=g)
    """

    def __init__(self, *, config: DiffusionConfig | None = None, betas: torch.Tensor | None = None, **overrides):
        cfg = self.config = replace(config or DiffusionConfig(), **overrides)
        if betas is None:
            betas = (linear_beta_schedule(cfg.timesteps, beta_start=cfg.beta_start, beta_end=cfg.beta_end)
                     if cfg.schedule == "linear" else cosine_beta_schedule(cfg.timesteps, s=cfg.cosine_s))
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten().cpu()
        if len(betas) != cfg.timesteps or not ((betas > 0) & (betas <= 1)).all():
            raise ConfigError(f"betas must be {cfg.timesteps} values in (0, 1]")
        self.num_timesteps = cfg.timesteps
        self.betas = betas  # beta_t
        self.alphas = 1.0 - betas  # alpha_t = 1 - beta_t
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # abar_t = prod_{s<=t} alpha_s
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()  # the signal's scale in q(x_t | x_0)
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()  # the noise's scale
        abar, abar_prev = self.alphas_cumprod, self.alphas_cumprod_prev
        self.posterior_variance = betas * (1 - abar_prev) / (1 - abar)  # beta~_t (Eq. 7); 0 at t = 0
        # log beta~_t with the 0 at t = 0 replaced by beta~ of the next step (finite, used by the decoder term)
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]) if len(betas) > 1
            else betas)
        self.posterior_mean_coef1 = betas * abar_prev.sqrt() / (1 - abar)  # c1 (Eq. 7)
        self.posterior_mean_coef2 = self.alphas.sqrt() * (1 - abar_prev) / (1 - abar)  # c2 (Eq. 7)
        # "fixed_large": sigma^2 = beta_t, with beta~_1 at t = 0 so that the decoder's scale is the same as above
        self.large_log_variance = torch.log(torch.cat([self.posterior_variance[1:2], betas[1:]])
                                            if len(betas) > 1 else betas)
        self._cache: dict = {}

    @classmethod
    def from_preset(cls, preset: str = "ddpm", **overrides) -> "GaussianDiffusion":
        """``GaussianDiffusion.from_preset("dit")``; presets: see :data:`DIFFUSION_PRESETS`."""
        return cls(config=diffusion_config(preset, **overrides))

    def __repr__(self) -> str:
        return f"GaussianDiffusion({', '.join(f'{k}={v}' for k, v in asdict(self.config).items())})"

    # ---- indexing ---------------------------------------------------------------------------------------------------

    def _table(self, name: str, device: torch.device) -> torch.Tensor:
        key = (name, device)
        if key not in self._cache:
            table = getattr(self, name)
            self._cache[key] = table.to(device, torch.float32 if device.type == "mps" else torch.float64)
        return self._cache[key]

    def _timesteps(self, t, x: torch.Tensor) -> torch.Tensor:
        """An int, a 0-D or a (B,) tensor of time steps -> (B,) long on x's device."""
        t = torch.as_tensor(t, device=x.device).reshape(-1)
        if t.dtype.is_floating_point:
            raise DataError(f"time steps must be integers 0 .. {self.num_timesteps - 1}, got {t.dtype}")
        return t.long().expand(x.shape[0])

    def _gather(self, name: str, t, x: torch.Tensor) -> torch.Tensor:
        """table[t] as (B, 1, 1, 1) (as many 1s as x has axes after B), in x's dtype."""
        t = self._timesteps(t, x)
        values = self._table(name, x.device)[t]  # (B,)
        return values.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))

    def _abar(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """abar_t as (B, 1, 1, 1), with abar_{-1} = 1 (the clean image, DDIM's last jump)."""
        t = self._timesteps(t, x)
        table = self._table("alphas_cumprod", x.device)
        values = torch.where(t >= 0, table[t.clamp(min=0)], torch.ones_like(table[0]))
        return values.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))

    # ---- forward process and posterior ------------------------------------------------------------------------------

    def q_mean_variance(self, x0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I): mean, variance, log variance (Eq. 4)."""
        mean = self._gather("sqrt_alphas_cumprod", t, x0) * x0
        var = 1.0 - self._gather("alphas_cumprod", t, x0)
        return mean, var, torch.log(var)

    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Eq. 4): (B, C, H, W)."""
        return self._gather("sqrt_alphas_cumprod", t, x0) * x0 + \
            self._gather("sqrt_one_minus_alphas_cumprod", t, x0) * noise

    add_noise = q_sample

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q(x_{t-1} | x_t, x_0): mean c1 x_0 + c2 x_t, variance beta~_t, clipped log variance (Eq. 6-7)."""
        mean = self._gather("posterior_mean_coef1", t, x_t) * x0 + self._gather("posterior_mean_coef2", t, x_t) * x_t
        return mean, self._gather("posterior_variance", t, x_t), self._gather("posterior_log_variance_clipped", t, x_t)

    # ---- conversions between what a network may predict -------------------------------------------------------------

    def x0_from_eps(self, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) (Eq. 4 solved for x_0)."""
        return (x_t - self._gather("sqrt_one_minus_alphas_cumprod", t, x_t) * eps) / \
            self._gather("sqrt_alphas_cumprod", t, x_t)

    def eps_from_x0(self, x_t: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
        """eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)."""
        return (x_t - self._gather("sqrt_alphas_cumprod", t, x_t) * x0) / \
            self._gather("sqrt_one_minus_alphas_cumprod", t, x_t)

    def velocity(self, x0: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022)."""
        return self._gather("sqrt_alphas_cumprod", t, x0) * eps - \
            self._gather("sqrt_one_minus_alphas_cumprod", t, x0) * x0

    def x0_from_v(self, x_t: torch.Tensor, t, v: torch.Tensor) -> torch.Tensor:
        """x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v."""
        return self._gather("sqrt_alphas_cumprod", t, x_t) * x_t - \
            self._gather("sqrt_one_minus_alphas_cumprod", t, x_t) * v

    def eps_from_v(self, x_t: torch.Tensor, t, v: torch.Tensor) -> torch.Tensor:
        """eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v."""
        return self._gather("sqrt_one_minus_alphas_cumprod", t, x_t) * x_t + \
            self._gather("sqrt_alphas_cumprod", t, x_t) * v

    def predict_x0(self, x_t: torch.Tensor, t, output: torch.Tensor) -> torch.Tensor:
        """x0_hat from the network's (mean) output, whatever it predicts."""
        if self.config.prediction == "epsilon":
            return self.x0_from_eps(x_t, t, output)
        return output if self.config.prediction == "x0" else self.x0_from_v(x_t, t, output)

    def predict_eps(self, x_t: torch.Tensor, t, output: torch.Tensor) -> torch.Tensor:
        """eps_hat from the network's (mean) output, whatever it predicts."""
        if self.config.prediction == "epsilon":
            return output
        return self.eps_from_x0(x_t, t, output) if self.config.prediction == "x0" else self.eps_from_v(x_t, t, output)

    def target(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """What the network should output for x_t = q_sample(x0, t, noise): eps, x_0 or v."""
        if self.config.prediction == "epsilon":
            return noise
        return x0 if self.config.prediction == "x0" else self.velocity(x0, t, noise)

    def split_output(self, output: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Network output -> (mean part (B, C, H, W), variance part (B, C, H, W) or None)."""
        c = x_t.shape[1]
        expected = 2 * c if self.config.learn_sigma else c
        if output.shape[1] != expected:
            raise DataError(f"the model returned {output.shape[1]} channels, expected {expected} "
                            f"(variance={self.config.variance!r}, input has {c})")
        return (output[:, :c], output[:, c:]) if self.config.learn_sigma else (output, None)

    # ---- reverse process --------------------------------------------------------------------------------------------

    def p_mean_variance(self, output: torch.Tensor, x_t: torch.Tensor, t, *,
                        clip_denoised: bool | None = None) -> dict[str, torch.Tensor]:
        """p(x_{t-1} | x_t) from a network output: mean, variance, log_variance, x0 (x0_hat) and eps (eps_hat)."""
        clip = self.config.clip_denoised if clip_denoised is None else clip_denoised
        out, var_out = self.split_output(output, x_t)
        if self.config.variance == "fixed_small":
            log_var = self._gather("posterior_log_variance_clipped", t, x_t).expand_as(x_t)  # log beta~_t
        elif self.config.variance == "fixed_large":
            log_var = self._gather("large_log_variance", t, x_t).expand_as(x_t)  # log beta_t
        else:  # Nichol & Dhariwal Eq. 15: log sigma^2 = frac log beta_t + (1 - frac) log beta~_t
            frac = (var_out + 1) / 2
            log_var = frac * self._gather("large_log_variance", t, x_t) + \
                (1 - frac) * self._gather("posterior_log_variance_clipped", t, x_t)
        x0 = self.predict_x0(x_t, t, out)
        eps = self.predict_eps(x_t, t, out)
        if clip:
            x0 = x0.clamp(-1, 1)
        mean, _, _ = self.q_posterior(x0, x_t, t)  # c1 x0_hat + c2 x_t; with eps and no clip this is Eq. 11
        return dict(mean=mean, variance=log_var.exp(), log_variance=log_var, x0=x0, eps=eps)

    def _noise(self, x: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        return noise if noise is not None else randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    # ---- training and likelihood ------------------------------------------------------------------------------------

    def sample_timesteps(self, batch: int, *, device: torch.device | str | None = None,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """t ~ Uniform{0 .. T-1}: (B,) long."""
        where = generator.device if generator is not None else device
        return torch.randint(0, self.num_timesteps, (batch,), device=where, generator=generator).to(device)

    def training_loss(self, model: Model, x0: torch.Tensor, *, y: torch.Tensor | None = None,
                      t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """L_simple (+ lambda L_vlb with a learned variance) for a batch x_0 (B, C, H, W) in [-1, 1].

        Returns ``loss`` (what to minimise), ``mse`` and ``vb`` (0 without a learned variance), scalars, and ``t``.
        """
        if t is None:
            t = self.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
        noise = self._noise(x0, noise, generator)  # eps ~ N(0, I)
        x_t = self.q_sample(x0, t, noise)  # Eq. 4
        output = model(x_t, t) if y is None else model(x_t, t, y)
        out, var_out = self.split_output(output, x_t)
        mse = mean_flat((self.target(x0, t, noise) - out) ** 2)  # L_simple (Eq. 14), per sample
        weighted = mse * self.loss_weight(t, x0) if self.config.min_snr_gamma is not None else mse
        vb = torch.zeros_like(mse)
        if var_out is not None:  # the bound trains the variance only: the mean is frozen (Nichol & Dhariwal Eq. 16)
            frozen = torch.cat([out.detach(), var_out], dim=1)
            # L_vlb = T E_t[L_t]: lambda L_vlb = lambda T L_t for the one t drawn
            vb = self.vb_terms_bpd(frozen, x0, x_t, t, clip_denoised=False) * self.num_timesteps * \
                self.config.vb_weight
        loss = (weighted + vb).mean()
        return dict(loss=loss, mse=mse.mean(), vb=vb.mean(), t=t)

    def loss_weight(self, t, x: torch.Tensor) -> torch.Tensor:
        """Min-SNR-gamma weights (B,) of the per-sample L_simple (Hang et al. 2023, Eq. 10 and its eps / v forms).

        In x_0 terms every step's loss is SNR_t ||x_0 - x0_hat||^2 (eps) or (SNR_t + 1) ||x_0 - x0_hat||^2 (v), with
        SNR_t = abar_t / (1 - abar_t): the nearly clean steps dominate and pull the gradient against the noisy ones.
        Clamping that factor at gamma gives the weights min(SNR, gamma) / SNR (eps), min(SNR, gamma) / (SNR + 1) (v)
        and min(SNR, gamma) (x0). The reported ``mse`` stays unweighted, so runs with and without it compare.
        """
        abar = self._gather("alphas_cumprod", t, x).reshape(-1)  # (B,)
        snr = abar / (1.0 - abar)
        clamped = snr.clamp(max=self.config.min_snr_gamma)
        if self.config.prediction == "epsilon":
            return clamped / snr
        return clamped / (snr + 1.0) if self.config.prediction == "v" else clamped

    def prior_bpd(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) || N(0, I)) in bits per dimension: (B,). Not trained; near 0 for a good schedule."""
        mean, _, log_var = self.q_mean_variance(x0, self.num_timesteps - 1)
        return mean_flat(normal_kl(mean, log_var, torch.zeros_like(mean), torch.zeros_like(mean))) / math.log(2.0)

    def vb_terms_bpd(self, output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t, *,
                     clip_denoised: bool | None = None) -> torch.Tensor:
        """One term of the bound, bits per dimension (B,): L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for
        t > 0, the decoder's -log p(x_0 | x_1) at t = 0 (Eq. 5)."""
        true_mean, _, true_log_var = self.q_posterior(x0, x_t, t)
        p = self.p_mean_variance(output, x_t, t, clip_denoised=clip_denoised)
        kl = mean_flat(normal_kl(true_mean, true_log_var, p["mean"], p["log_variance"])) / math.log(2.0)
        nll = -mean_flat(discretized_gaussian_log_likelihood(x0, mean=p["mean"], log_scale=0.5 * p["log_variance"]))
        nll = nll / math.log(2.0)
        return torch.where(self._timesteps(t, x0) == 0, nll, kl)

    @torch.no_grad()
    def bits_per_dim(self, model: Model, x0: torch.Tensor, *, y: torch.Tensor | None = None,
                     generator: torch.Generator | None = None,
                     progress: bool = False) -> dict[str, torch.Tensor]:
        """The variational bound on -log p(x_0) in bits per dimension, with one noise draw per time step.

        x_0 (B, C, H, W) must lie on the 256-level grid of [-1, 1]. Returns ``total`` (B,), ``prior`` (B,) (L_T) and
        ``terms`` (B, T) (column t: L_{t-1} for t > 0, the decoder term for t = 0).
        """
        if x0.min() < -1 or x0.max() > 1:
            raise DataError(f"bits per dim needs data in [-1, 1], got {x0.min().item():.3g} .. {x0.max().item():.3g}")
        terms = torch.zeros(x0.shape[0], self.num_timesteps, dtype=x0.dtype, device=x0.device)  # (B, T)
        for t in progress_bar(range(self.num_timesteps - 1, -1, -1), progress, "bits/dim"):
            x_t = self.q_sample(x0, t, self._noise(x0, None, generator))
            terms[:, t] = self.vb_terms_bpd(self._call(model, x_t, t, y), x0, x_t, t)
        prior = self.prior_bpd(x0)
        return dict(total=terms.sum(dim=1) + prior, prior=prior, terms=terms)
