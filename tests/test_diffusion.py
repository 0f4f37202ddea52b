"""Gaussian diffusion: models.md's reference values, parity with diffusers' DDPM / DDIM schedulers, posterior,
conversions, guidance, losses, bits per dimension of a perfect model, and the sampling loops."""

import math

import diffusers  # a test-only dependency (pyproject.toml): the reference schedulers
import pytest
import torch

from visionlab.models.diffusion import (DIFFUSION_PRESETS, DiffusionConfig, GaussianDiffusion, cosine_beta_schedule,
                                        discretized_gaussian_log_likelihood, linear_beta_schedule, normal_kl)
from visionlab.models.samplers import classifier_free_guidance, guided
from visionlab.util.errors import ConfigError, DataError


LINEAR = GaussianDiffusion()
COSINE = GaussianDiffusion(schedule="cosine")


# ---- models.md's numbers ---------------------------------------------------------------------------------------------

def test_linear_schedule_reference_values():
    abar = LINEAR.alphas_cumprod
    assert abar.dtype == torch.float64
    assert abar[0].item() == pytest.approx(0.9999, abs=1e-12)
    assert abar[99].item() == pytest.approx(0.897018146, abs=1e-9)
    assert abar[499].item() == pytest.approx(0.0785872429, abs=1e-10)
    assert abar[999].item() == pytest.approx(4.03582977e-05, rel=1e-8)
    assert LINEAR.sqrt_alphas_cumprod[500].item() == pytest.approx(0.2789205234, abs=1e-10)
    assert LINEAR.sqrt_one_minus_alphas_cumprod[500].item() == pytest.approx(0.9603141890, abs=1e-10)
    assert LINEAR.posterior_variance[500].item() == pytest.approx(1.005134e-02, abs=1e-8)
    assert LINEAR.posterior_mean_coef1[500].item() == pytest.approx(0.003058, abs=1e-6)
    assert LINEAR.posterior_mean_coef2[500].item() == pytest.approx(0.994104, abs=1e-6)


def test_cosine_schedule_reference_values():
    assert COSINE.betas[0].item() == pytest.approx(4.128422e-05, rel=1e-6)
    assert COSINE.betas[999].item() == 0.999  # capped
    assert COSINE.alphas_cumprod[499].item() == pytest.approx(0.493844, abs=1e-6)
    # abar_t = f(t) / f(0) holds exactly wherever the cap is not hit
    def f(t):
        return math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in (0, 250, 700):
        assert COSINE.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-12)


def test_schedule_helpers_and_config_errors():
    torch.testing.assert_close(linear_beta_schedule(3, beta_start=0.1, beta_end=0.3),
                               torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    assert cosine_beta_schedule(10).shape == (10,)
    with pytest.raises(ConfigError, match="schedule must be one of"):
        DiffusionConfig(schedule="sigmoid")
    with pytest.raises(ConfigError, match="prediction must be one of"):
        GaussianDiffusion(prediction="score")
    with pytest.raises(ConfigError, match="betas must be 10 values"):
        GaussianDiffusion(timesteps=10, betas=torch.full((9,), 0.1))
    with pytest.raises(ConfigError, match="unknown diffusion preset"):
        GaussianDiffusion.from_preset("edm")
    assert {GaussianDiffusion.from_preset(p).config.variance for p in DIFFUSION_PRESETS} == {
        "fixed_large", "learned_range"}


# ---- parity with diffusers -------------------------------------------------------------------------------------------

SCHEDULE_NAMES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules_equal_diffusers(schedule):
    ref = diffusers.DDPMScheduler(beta_schedule=SCHEDULE_NAMES[schedule])  # float32 tables
    ours = LINEAR if schedule == "linear" else COSINE
    torch.testing.assert_close(ours.betas, ref.betas.double(), atol=1e-7, rtol=0)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod.double(), atol=1e-6, rtol=0)


def float64_scheduler(cls, diffusion, **config):
    """A diffusers scheduler whose tables are ours in float64, so that only the step formulas are compared."""
    ref = cls(num_train_timesteps=diffusion.num_timesteps, **config)
    ref.betas = diffusion.betas.clone()
    ref.alphas = 1.0 - ref.betas
    ref.alphas_cumprod = torch.cumprod(ref.alphas, dim=0)
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(ref, "final_alpha_cumprod"):
        ref.final_alpha_cumprod = ref.one
    return ref


def test_add_noise_equals_diffusers():
    """In float64: diffusers' float32 1 - abar_t loses digits near t = 0 (abar ~ 0.9998), ~4e-6 on x_t."""
    ours = LINEAR
    ref = float64_scheduler(diffusers.DDPMScheduler, ours)
    g = torch.Generator().manual_seed(0)
    x0, noise = (torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    torch.testing.assert_close(ours.add_noise(x0, t, noise), ref.add_noise(x0, noise, t), atol=1e-6, rtol=0)
    x_t = ours.q_sample(x0.float(), t, noise.float())  # float32 in, float32 out
    assert x_t.dtype == torch.float32
    torch.testing.assert_close(x_t.double(), ref.add_noise(x0, noise, t), atol=1e-6, rtol=0)



PREDICTION_NAMES = {"epsilon": "epsilon", "x0": "sample", "v": "v_prediction"}


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("clip", [True, False])
def test_ddpm_step_equals_diffusers(prediction, variance, clip):
    ours = GaussianDiffusion(prediction=prediction, variance=variance, clip_denoised=clip)
    ref = float64_scheduler(diffusers.DDPMScheduler, ours, prediction_type=PREDICTION_NAMES[prediction],
                            variance_type=variance, clip_sample=clip)
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    channels = 6 if variance == "learned_range" else 3
    output = torch.randn(2, channels, 4, 4, generator=g, dtype=torch.float64)
    if variance == "learned_range":
        output[:, 3:] = output[:, 3:].tanh()  # the variance output lies in [-1, 1]
    for t in (999, 500, 1, 0):
        expected = ref.step(output, t, x_t, generator=torch.Generator().manual_seed(t))
        x_prev, x0 = ours.ddpm_step(output, x_t, t, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(x0, expected.pred_original_sample, atol=1e-6, rtol=0)
        torch.testing.assert_close(x_prev, expected.prev_sample, atol=1e-6, rtol=0)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip, eps_from_clipped_x0", [(True, True), (True, False), (False, True)])
def test_ddim_step_equals_diffusers(prediction, eta, clip, eps_from_clipped_x0):
    ours = GaussianDiffusion(prediction=prediction, clip_denoised=clip, eps_from_clipped_x0=eps_from_clipped_x0)
    ref = float64_scheduler(diffusers.DDIMScheduler, ours, prediction_type=PREDICTION_NAMES[prediction],
                            clip_sample=clip)
    ref.set_timesteps(50)
    timesteps = ours.ddim_timesteps(50)
    assert timesteps == ref.timesteps.tolist() and timesteps[:2] == [980, 960] and timesteps[-1] == 0
    g = torch.Generator().manual_seed(2)
    x_t = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    for t, t_prev in zip(timesteps, timesteps[1:] + [-1]):
        output, noise = torch.randn_like(x_t), torch.randn_like(x_t)
        expected = ref.step(output, t, x_t, eta=eta, variance_noise=noise if eta else None,
                            use_clipped_model_output=eps_from_clipped_x0)  # diffusers' name for re-deriving eps
        x_prev, x0 = ours.ddim_step(output, x_t, t, t_prev, eta=eta, noise=noise)
        torch.testing.assert_close(x0, expected.pred_original_sample, atol=1e-6, rtol=0)
        torch.testing.assert_close(x_prev, expected.prev_sample, atol=1e-6, rtol=0)
        x_t = x_prev


def test_float32_steps_stay_within_1e6_of_diffusers():
    ref = diffusers.DDPMScheduler(clip_sample=False)  # float32 all the way
    g = torch.Generator().manual_seed(3)
    x_t, eps = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    for t in (999, 600, 50):  # zero noise where the scheduler adds it: compare the means
        expected = ref.step(eps, t, x_t, generator=torch.Generator().manual_seed(0)).prev_sample
        ours, _ = GaussianDiffusion(clip_denoised=False).ddpm_step(
            eps, x_t, t, noise=torch.randn(x_t.shape, generator=torch.Generator().manual_seed(0)))
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)


# ---- the formulas ----------------------------------------------------------------------------------------------------

def test_posterior_matches_the_formula_and_is_the_true_conditional():
    d = LINEAR
    g = torch.Generator().manual_seed(4)
    x0, x_t = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64), torch.randn(3, 2, 4, 4, generator=g,
                                                                                     dtype=torch.float64)
    t = torch.tensor([1, 500, 999])
    mean, var, log_var = d.q_posterior(x0, x_t, t)
    b, abar, abar_prev = d.betas[t], d.alphas_cumprod[t], d.alphas_cumprod[t - 1]
    c1 = (b * abar_prev.sqrt() / (1 - abar)).view(-1, 1, 1, 1)
    c2 = ((1 - b).sqrt() * (1 - abar_prev) / (1 - abar)).view(-1, 1, 1, 1)
    torch.testing.assert_close(mean, c1 * x0 + c2 * x_t)
    torch.testing.assert_close(var.flatten(), b * (1 - abar_prev) / (1 - abar))
    torch.testing.assert_close(log_var.flatten(), var.flatten().log())
    assert d.posterior_variance[0] == 0 and d.posterior_log_variance_clipped[0] == d.posterior_variance[1].log()
    # Bayes in one dimension: q(x_{t-1} | x_t, x_0) ~ q(x_t | x_{t-1}) q(x_{t-1} | x_0) -> product of Gaussians
    a_t, ab_prev = 1 - b, abar_prev
    precision = a_t / b + 1 / (1 - ab_prev)
    bayes_mean = (a_t.sqrt().view(-1, 1, 1, 1) / b.view(-1, 1, 1, 1) * x_t
                  + (ab_prev.sqrt() / (1 - ab_prev)).view(-1, 1, 1, 1) * x0) / precision.view(-1, 1, 1, 1)
    torch.testing.assert_close(mean, bayes_mean)
    torch.testing.assert_close(var.flatten(), 1 / precision)


def test_ddpm_step_is_equation_11_and_adds_no_noise_at_t0():
    d = GaussianDiffusion(clip_denoised=False, variance="fixed_large")
    g = torch.Generator().manual_seed(5)
    x_t, eps, z = (torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (0, 10, 999):
        x_prev, _ = d.ddpm_step(eps, x_t, t, noise=z)
        b, abar = d.betas[t], d.alphas_cumprod[t]
        mu = (x_t - b / (1 - abar).sqrt() * eps) / (1 - b).sqrt()  # Eq. 11
        torch.testing.assert_close(x_prev, mu + (b.sqrt() * z if t else 0))


def test_conversions_between_eps_x0_and_v():
    d = COSINE
    g = torch.Generator().manual_seed(6)
    x0, eps = torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64), torch.randn(4, 3, 4, 4, generator=g,
                                                                                     dtype=torch.float64)
    t = torch.tensor([0, 7, 500, 998])
    x_t = d.q_sample(x0, t, eps)
    v = d.velocity(x0, t, eps)
    torch.testing.assert_close(d.x0_from_eps(x_t, t, eps), x0)
    torch.testing.assert_close(d.eps_from_x0(x_t, t, x0), eps)
    torch.testing.assert_close(d.x0_from_v(x_t, t, v), x0)
    torch.testing.assert_close(d.eps_from_v(x_t, t, v), eps)
    for prediction in ("epsilon", "x0", "v"):
        dp = GaussianDiffusion(schedule="cosine", prediction=prediction)
        target = dp.target(x0, t, eps)
        torch.testing.assert_close(dp.predict_x0(x_t, t, target), x0)
        torch.testing.assert_close(dp.predict_eps(x_t, t, target), eps)


def test_learned_range_interpolates_between_log_beta_tilde_and_log_beta():
    d = GaussianDiffusion(variance="learned_range", clip_denoised=False)
    x_t = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    t = torch.tensor([5, 5, 5])
    v = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    log_var = d.p_mean_variance(torch.cat([torch.zeros_like(x_t), v], dim=1), x_t, t)["log_variance"][:, 0, 0, 0]
    lo, hi = d.posterior_variance[5].log(), d.betas[5].log()
    torch.testing.assert_close(log_var, torch.stack([lo, (lo + hi) / 2, hi]))


def test_normal_kl_and_the_discretised_likelihood():
    g = torch.Generator().manual_seed(7)
    m1, m2, lv1, lv2 = (torch.randn(10, generator=g, dtype=torch.float64) for _ in range(4))
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()),
                                                 torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected)
    # the 256 bins of [-1, 1] hold all the probability, for any mean and scale
    grid = torch.linspace(-1, 1, 256, dtype=torch.float64)
    for mean, log_scale in ((0.0, -3.0), (0.9, -1.0), (-2.5, 0.5), (0.3, -7.0)):
        logp = discretized_gaussian_log_likelihood(grid, mean=torch.tensor(mean, dtype=torch.float64),
                                                   log_scale=torch.tensor(log_scale, dtype=torch.float64))
        assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-9)


def test_bits_per_dim_of_a_perfect_model_of_one_image():
    """Data = one image x0: the ideal network predicts its noise exactly, every KL term of the bound vanishes, and
    the bound is the prior term plus the decoder's -log2 P(bin) at sigma = sqrt(beta~_1)."""
    d = GaussianDiffusion(timesteps=1000)
    x0 = (torch.tensor([0, 1, 128, 255], dtype=torch.float64) / 127.5 - 1).view(1, 1, 2, 2).repeat(2, 1, 1, 1)

    def perfect(x_t, t):  # eps* = (x_t - sqrt(abar) x0) / sqrt(1 - abar): the only x0 there is
        abar = d.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    out = d.bits_per_dim(perfect, x0, generator=torch.Generator().manual_seed(0))
    assert out["terms"].shape == (2, 1000)
    assert out["terms"][:, 1:].abs().max() < 1e-6  # L_1 .. L_{T-1}
    sigma = d.posterior_variance[1].sqrt().item()
    def phi(z):
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))
    half = 1 / 255
    p_edge, p_inner = phi(half / sigma), phi(half / sigma) - phi(-half / sigma)  # end bins reach to -+inf
    decoder = -(2 * math.log2(p_edge) + 2 * math.log2(p_inner)) / 4
    assert out["terms"][:, 0].tolist() == pytest.approx([decoder] * 2, rel=1e-6)
    abar_T = d.alphas_cumprod[-1].item()
    # KL(N(sqrt(abar) x, 1 - abar) || N(0, 1)) per pixel, averaged, in bits
    prior = sum(0.5 * (-1 - math.log(1 - abar_T) + (1 - abar_T) + abar_T * v ** 2)
                for v in x0[0].flatten().tolist()) / 4 / math.log(2)
    assert out["prior"].tolist() == pytest.approx([prior] * 2, rel=1e-9)
    assert out["total"].tolist() == pytest.approx([decoder + prior] * 2, rel=1e-6)
    # a worse model costs more bits
    worse = d.bits_per_dim(lambda x_t, t: perfect(x_t, t) + 0.1, x0, generator=torch.Generator().manual_seed(0))
    assert (worse["total"] > out["total"] + 0.1).all()
    with pytest.raises(DataError, match=r"data in \[-1, 1\]"):
        d.bits_per_dim(perfect, x0 * 2)


# ---- guidance, losses, sampling loops --------------------------------------------------------------------------------

def conditional_toy(x, t, y):
    """A deterministic stand-in for a network: depends on x, t and the label (10 = null)."""
    return 0.1 * x + 0.01 * t.view(-1, 1, 1, 1) / 1000 + y.view(-1, 1, 1, 1).float() / 10


def test_classifier_free_guidance():
    g = torch.Generator().manual_seed(8)
    x, t, y = torch.randn(3, 2, 4, 4, generator=g), torch.tensor([1, 2, 3]), torch.tensor([0, 4, 9])
    cond, uncond = conditional_toy(x, t, y), conditional_toy(x, t, torch.full_like(y, 10))
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 3.0), uncond + 3 * (cond - uncond))
    torch.testing.assert_close(guided(conditional_toy, scale=1.0, null_class=10)(x, t, y), cond)
    torch.testing.assert_close(guided(conditional_toy, scale=0.0, null_class=10)(x, t, y), uncond)
    torch.testing.assert_close(guided(conditional_toy, scale=4.0, null_class=10)(x, t, y), 4 * cond - 3 * uncond)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_training_loss_is_the_simple_mse(prediction):
    d = GaussianDiffusion(prediction=prediction)
    g = torch.Generator().manual_seed(9)
    x0, noise = torch.randn(4, 1, 4, 4, generator=g), torch.randn(4, 1, 4, 4, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    def model(x_t, t):
        return 0.5 * x_t
    out = d.training_loss(model, x0, t=t, noise=noise)
    expected = ((d.target(x0, t, noise) - 0.5 * d.q_sample(x0, t, noise)) ** 2).mean()
    torch.testing.assert_close(out["loss"], expected)
    assert out["vb"] == 0 and out["t"] is t


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_min_snr_weights_are_the_clamped_x0_loss_factor(prediction):
    """Hang et al. 2023: each step's loss in x_0 terms carries SNR (eps), SNR + 1 (v) or 1 (x0); Min-SNR clamps it."""
    gamma = 5.0
    d = GaussianDiffusion(prediction=prediction, min_snr_gamma=gamma)
    t = torch.tensor([0, 50, 200, 400, 999])
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t]
    snr = abar / (1 - abar)  # SNR_0 = 1e4, SNR_999 = 4e-5
    x = torch.zeros(5, 1, 2, 2, dtype=torch.float64)
    # In x_0 terms the weighted loss must be min(SNR, gamma) ||x_0 - x0_hat||^2 for every parameterisation.
    factor = {"epsilon": snr, "x0": torch.ones_like(snr), "v": snr + 1}[prediction]
    torch.testing.assert_close(d.loss_weight(t, x) * factor, snr.clamp(max=gamma))
    assert d.loss_weight(t, x)[-1] == pytest.approx({"epsilon": 1.0, "x0": snr[-1].item(), "v": snr[-1].item()
                                                     / (snr[-1].item() + 1)}[prediction])

    # The loss is the weighted mean; the reported mse stays the plain one; a gamma above every SNR changes nothing.
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(5, 1, 4, 4, generator=g), torch.randn(5, 1, 4, 4, generator=g)
    def model(x_t, t):
        return 0.5 * x_t
    plain = GaussianDiffusion(prediction=prediction).training_loss(model, x0, t=t, noise=noise)
    weighted = d.training_loss(model, x0, t=t, noise=noise)
    per_sample = ((d.target(x0, t, noise) - 0.5 * d.q_sample(x0, t, noise)) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(weighted["loss"], (per_sample * d.loss_weight(t, x0)).mean())
    torch.testing.assert_close(weighted["mse"], plain["mse"])
    assert not torch.allclose(weighted["loss"], plain["loss"])
    huge = GaussianDiffusion(prediction="epsilon", min_snr_gamma=1e9).training_loss(model, x0, t=t, noise=noise)
    torch.testing.assert_close(huge["loss"], GaussianDiffusion().training_loss(model, x0, t=t, noise=noise)["loss"])
    with pytest.raises(ConfigError, match="min_snr_gamma"):
        DiffusionConfig(min_snr_gamma=0.0)


def test_hybrid_loss_trains_the_variance_through_the_bound_only():
    g = torch.Generator().manual_seed(10)
    x0, noise = torch.rand(4, 1, 4, 4, generator=g) * 2 - 1, torch.randn(4, 1, 4, 4, generator=g)
    t = torch.tensor([0, 3, 400, 999])
    mean_out = torch.randn(4, 1, 4, 4, generator=g).requires_grad_()
    var_out = torch.zeros(4, 1, 4, 4, requires_grad=True)
    grads = {}
    for weight in (0.001, 0.0):
        d = GaussianDiffusion(variance="learned_range", vb_weight=weight)
        out = d.training_loss(lambda x_t, t: torch.cat([mean_out, var_out], 1), x0, t=t, noise=noise)
        assert torch.isfinite(out["loss"]) and (out["vb"] > 0) == (weight > 0)
        grads[weight] = torch.autograd.grad(out["loss"], [mean_out, var_out])
    torch.testing.assert_close(grads[0.001][0], grads[0.0][0])  # the bound sees a frozen mean
    assert grads[0.001][1].abs().sum() > 0 and grads[0.0][1].abs().sum() == 0  # and trains the variance
    with pytest.raises(DataError, match="returned 1 channels, expected 2"):
        d.training_loss(lambda x_t, t: x_t, x0)


def test_ddpm_and_ddim_recover_the_one_image_a_perfect_model_knows():
    d = GaussianDiffusion(timesteps=100)
    x0 = torch.linspace(-0.9, 0.9, 16, dtype=torch.float64).view(1, 1, 4, 4).repeat(2, 1, 1, 1)

    def perfect(x_t, t):
        return d.eps_from_x0(x_t, t, x0)

    g = torch.Generator().manual_seed(11)
    x_T = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(d.ddpm_sample(perfect, x_T.shape, x_T=x_T, generator=g), x0)
    for eta in (0.0, 1.0):
        torch.testing.assert_close(d.ddim_sample(perfect, x_T.shape, steps=10, eta=eta, x_T=x_T, generator=g), x0)
    torch.testing.assert_close(d.ddim_sample(perfect, x_T.shape, timesteps=[99, 42, 41, 7], x_T=x_T), x0)


def test_sampling_loops_are_deterministic_with_a_generator_and_use_labels():
    d = GaussianDiffusion(timesteps=20, variance="learned_range")

    def model(x, t, y):  # 2C channels: a learned variance
        out = conditional_toy(x, t, y)
        return torch.cat([out, torch.tanh(out)], dim=1)

    y = torch.tensor([1, 2, 3])
    runs = [d.ddpm_sample(model, (3, 2, 4, 4), y=y, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert runs[0].shape == (3, 2, 4, 4) and torch.isfinite(runs[0]).all()
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    ddim = [d.ddim_sample(guided(model, scale=2.0, null_class=10), (3, 2, 4, 4), steps=5, eta=eta, y=y,
                          generator=torch.Generator().manual_seed(0)) for eta in (0.0, 0.0, 1.0)]
    assert ddim[0].shape == (3, 2, 4, 4) and torch.equal(ddim[0], ddim[1]) and not torch.equal(ddim[0], ddim[2])
    with pytest.raises(ConfigError, match="must decrease"):
        d.ddim_sample(model, (1, 2, 4, 4), timesteps=[5, 10, 0], y=y[:1])
    with pytest.raises(ConfigError, match="steps must be in"):
        d.ddim_timesteps(21)


def test_sampling_with_a_network():
    from visionlab.models.ddpm_unet import DiffusionUNet
    torch.manual_seed(0)
    net = DiffusionUNet.from_preset("digits").eval()
    d = GaussianDiffusion(timesteps=10)
    out = d.ddim_sample(net, (2, 1, 16, 16), steps=3, y=torch.tensor([3, 10]), generator=torch.Generator()
                        .manual_seed(0))
    assert out.shape == (2, 1, 16, 16) and torch.isfinite(out).all()
