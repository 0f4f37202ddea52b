"""INR backbones: exact parameter counts, the paper's initialisation, gradients, and learning a tiny task."""

import math

import pytest
import torch

from visionlab.models.inr import (
    INR_MODELS,
    INR_PRESETS,
    Finer,
    FourierFeatureMLP,
    GaborLayer,
    Gauss,
    GaussLayer,
    Siren,
    Wire,
    build_inr,
)


def count(model):
    """Trainable real numbers: a complex weight holds two."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def tiny_image() -> tuple[torch.Tensor, torch.Tensor]:
    lin = torch.linspace(-1, 1, 16)
    coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)  # (256, 2)
    return coords, torch.sin(3 * coords[:, :1]) * torch.cos(2 * coords[:, 1:])  # a smooth 16x16 pattern, (256, 1)


def test_siren_3x256_parameter_count_matches_reference():
    assert count(Siren(out_features=3, width=256, depth=3)) == 198_915


def test_siren_layers_are_the_specified_shapes():
    model = Siren(out_features=3, width=256, depth=3)
    shapes = [m.linear.weight.shape for m in model.net] + [model.head.weight.shape]
    assert shapes == [(256, 2), (256, 256), (256, 256), (256, 256), (3, 256)]
    assert all(m.omega0 == 30.0 for m in model.net)


def test_siren_initialisation_ranges():
    torch.manual_seed(0)
    model = Siren(out_features=3, width=256, depth=3)
    first = model.net[0].linear.weight
    # First layer U(-1/fan_in, 1/fan_in) with fan_in = 2; later layers U(+-sqrt(6/fan_in)/30).
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.45
    bound = math.sqrt(6 / 256) / 30
    for w in [m.linear.weight for m in model.net[1:]] + [model.head.weight]:
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.95 * bound  # really uniform over the whole range, not a narrower one
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.05 * bound  # std of U(-b, b) is b / sqrt(3)


def test_siren_activations_stay_arcsine_distributed_through_depth():
    # SIREN Sec. 3.2: with this init the hidden sines keep roughly unit-variance-ish arcsine statistics (std 1/sqrt 2).
    torch.manual_seed(0)
    model = Siren(out_features=1, width=256, depth=5)
    x = torch.rand(4096, 2) * 2 - 1
    for layer in model.net:
        x = layer(x)
        assert abs(x.std().item() - 1 / math.sqrt(2)) < 0.05


@pytest.mark.parametrize("name", sorted(INR_MODELS))
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_model_shapes_and_gradients(name, channels):
    torch.manual_seed(0)
    model = build_inr(name, in_features=2, out_features=channels, **INR_PRESETS["tiny"])
    out = model(torch.rand(17, 2) * 2 - 1)
    assert out.shape == (17, channels) and torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {pname}"
        assert torch.isfinite(torch.view_as_real(p.grad) if p.is_complex() else p.grad).all(), pname


def test_fourier_features_are_a_fixed_buffer():
    model = FourierFeatureMLP(out_features=3, width=16, depth=1, num_frequencies=8)
    assert "B" in dict(model.named_buffers()) and "B" not in dict(model.named_parameters())
    assert model.encode(torch.zeros(2, 2)).shape == (2, 16)


def test_finer_widens_the_first_bias_and_keeps_siren_weights():
    torch.manual_seed(0)
    model = Finer(out_features=3, width=64, depth=1, first_bias_scale=1.0)
    assert model.net[0].linear.bias.abs().max() > 0.9  # U(-1, 1), wider than PyTorch's U(-1/sqrt 2, ..)
    assert model.net[1].linear.weight.abs().max() <= math.sqrt(6 / 64) / 30


@pytest.mark.parametrize("name", ["siren", "finer", "fourier"])
def test_tiny_model_learns_a_tiny_image(name):
    torch.manual_seed(0)
    coords, target = tiny_image()
    model = build_inr(name, in_features=2, out_features=1, width=32, depth=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(150):
        loss = (model(coords) - target).square().mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first


# PSNR (peak-to-peak 2) after 0 and 100 steps at each model's own learning rate, as measured: siren 13.2 -> 22.7,
# finer 13.0 -> 57.2, fourier 12.8 -> 42.6, gauss 12.5 -> 67.4, wire 12.1 -> 18.9, hashgrid 13.0 -> 62.5
MIN_GAIN_DB = {"siren": 7, "finer": 30, "fourier": 20, "gauss": 40, "wire": 5, "hashgrid": 35}


@pytest.mark.parametrize("name", sorted(INR_MODELS))
def test_tiny_model_overfits_at_its_own_learning_rate(name):
    torch.manual_seed(0)
    coords, target = tiny_image()
    model = build_inr(name, in_features=2, out_features=1, width=32, depth=2)
    opt = torch.optim.Adam(model.parameters(), lr=model.default_lr, betas=getattr(model, "adam_betas", (0.9, 0.999)),
                           eps=getattr(model, "adam_eps", 1e-8))
    psnr = []
    for _ in range(101):
        loss = (model(coords) - target).square().mean()
        assert torch.isfinite(loss)
        psnr.append(10 * math.log10(4 / loss.item()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert psnr[-1] - psnr[0] > MIN_GAIN_DB[name], psnr[::20]


def test_default_learning_rates_are_the_papers():
    rates = {name: cls.default_lr for name, cls in INR_MODELS.items()}
    assert rates == {"siren": 1e-4, "finer": 5e-4, "fourier": 1e-3, "gauss": 5e-3, "wire": 5e-3, "hashgrid": 1e-2}


# ---------------------------------------------------------------- Gauss and WIRE


def test_gauss_layer_is_a_gaussian_of_the_preactivation():
    torch.manual_seed(0)
    layer = GaussLayer(2, 8, scale=10.0)
    x = torch.rand(5, 2) * 2 - 1
    z = layer.linear(x)
    assert torch.allclose(layer(x), torch.exp(-((10.0 * z) ** 2)))
    assert (layer(x) >= 0).all() and (layer(x) <= 1).all()  # a bump: 1 at z = 0, underflowing to 0 far away


def test_gauss_has_sirens_shapes():
    model = Gauss(out_features=3, width=256, depth=3)
    assert count(model) == 198_915  # the same layers as SIREN 3x256, other activation
    assert all(m.scale == 10.0 for m in model.net)


def test_gabor_layer_is_wires_wavelet():
    torch.manual_seed(0)
    first = GaborLayer(2, 6, omega0=20.0, scale0=10.0, is_first=True)
    hidden = GaborLayer(6, 6, omega0=20.0, scale0=10.0)
    assert not first.linear.weight.is_complex() and hidden.linear.weight.is_complex()
    x = (torch.rand(4, 2) * 2 - 1) * 0.05
    z = first.linear(x)
    expected = torch.exp(1j * 20.0 * z) * torch.exp(-(10.0 * z).abs() ** 2)  # e^{j omega_0 z} e^{-|s_0 z|^2}
    assert torch.allclose(first(x), expected, atol=1e-6)
    h = first(x)
    zc = hidden.linear(h)
    assert torch.allclose(hidden(h), torch.exp(1j * 20.0 * zc - (10.0 * zc).abs() ** 2), atol=1e-6)


def test_wire_width_convention_keeps_the_parameter_count_of_siren():
    model = Wire(out_features=3, width=256, depth=3)
    assert model.complex_width == 181  # int(256 / sqrt 2), WIRE's image setting
    # first layer real 2 -> 181; 3 complex 181 -> 181; complex head 181 -> 3 (two real numbers per complex one)
    assert count(model) == (2 * 181 + 181) + 2 * 3 * (181 * 181 + 181) + 2 * (181 * 3 + 3) == 199_287
    assert abs(count(model) - count(Siren(out_features=3))) / 198_915 < 0.01
    assert Wire(width=256, complex_width=100).complex_width == 100
    out = model(torch.rand(7, 2) * 2 - 1)
    assert out.dtype == torch.float32 and out.shape == (7, 3)  # the real part of the complex output
    assert all(m.omega0 == 20.0 and m.scale0 == 10.0 for m in model.net)


def test_wire_stays_finite_far_from_the_data():
    torch.manual_seed(0)
    model = Wire(out_features=3, width=32, depth=2)
    coords = (torch.rand(64, 2) * 2 - 1) * 100  # the Gaussian window underflows to 0 here, never to NaN
    out = model(coords)
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(torch.view_as_real(p.grad) if p.is_complex() else p.grad).all()
               for p in model.parameters())


def test_unknown_model_name():
    with pytest.raises(KeyError, match="unknown model 'nerf'"):
        build_inr("nerf", in_features=2, out_features=3, width=8, depth=1)
