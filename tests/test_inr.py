"""INR backbones: exact parameter counts, the paper's initialisation, gradients, and learning a tiny task."""

import math

import pytest
import torch

from visionlab.models.inr import INR_MODELS, INR_PRESETS, Finer, FourierFeatureMLP, Siren, build_inr


def count(model):
    return sum(p.numel() for p in model.parameters())


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


def test_fourier_features_are_a_fixed_buffer():
    model = FourierFeatureMLP(out_features=3, width=16, depth=1, num_frequencies=8)
    assert "B" in dict(model.named_buffers()) and "B" not in dict(model.named_parameters())
    assert model.encode(torch.zeros(2, 2)).shape == (2, 16)


def test_finer_widens_the_first_bias_and_keeps_siren_weights():
    torch.manual_seed(0)
    model = Finer(out_features=3, width=64, depth=1, first_bias_scale=1.0)
    assert model.net[0].linear.bias.abs().max() > 0.9  # U(-1, 1), wider than PyTorch's U(-1/sqrt 2, ..)
    assert model.net[1].linear.weight.abs().max() <= math.sqrt(6 / 64) / 30


@pytest.mark.parametrize("name", sorted(INR_MODELS))
def test_tiny_model_learns_a_tiny_image(name):
    torch.manual_seed(0)
    lin = torch.linspace(-1, 1, 16)
    coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)
    target = torch.sin(3 * coords[:, :1]) * torch.cos(2 * coords[:, 1:])  # a smooth 16x16 pattern
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


def test_unknown_model_name():
    with pytest.raises(KeyError, match="unknown model 'nerf'"):
        build_inr("nerf", in_features=2, out_features=3, width=8, depth=1)
