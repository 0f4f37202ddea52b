"""Value transforms: round trips, ranges, every step of Sym-Power, state, errors."""

import math

import numpy as np
import pytest
import torch
from skimage import data

from visionlab.components.transforms import TRANSFORMS, MinMax, SymPower, ZScore, make_transform
from visionlab.util.errors import ConfigError, DataError

NAMES = list(TRANSFORMS)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _random(seed: int = 0) -> torch.Tensor:
    return torch.rand(4096, 3, generator=torch.Generator().manual_seed(seed))  # (N, C)


IMAGES = {
    "random": lambda: _random(0),
    "astronaut": lambda: torch.from_numpy(data.astronaut() / 255.0).float().reshape(-1, 3),  # (H*W, 3)
    "camera": lambda: torch.from_numpy(data.camera() / 255.0).float().reshape(-1, 1),  # (H*W, 1)
    "dark": lambda: _random(1) ** 3,  # skewed towards 0: median 1/8
    "bright": lambda: 1 - _random(2) ** 3,  # skewed towards 1: median 7/8
}


def groups(*parts: tuple[int, float]) -> torch.Tensor:
    """A one-channel image (N, 1) made of `count` pixels at each `value`."""
    return torch.cat([torch.full((count, 1), value) for count, value in parts])


def normalised_median(values: torch.Tensor) -> float:
    v = values.double().numpy().ravel()
    return float((np.median(v) - v.min()) / (v.max() - v.min()))


# ---------------------------------------------------------------- all transforms


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name: str, image: str) -> None:
    values = IMAGES[image]()
    t = make_transform(name).fit(values)
    y = t(values)
    assert y.shape == values.shape and y.dtype == values.dtype
    assert torch.allclose(t.inverse(y), values, rtol=0, atol=1e-5)
    assert torch.allclose(t.inverse(t(values.double())), values.double(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("name", ["minmax", "sympower"])
def test_output_within_minus_one_one(name: str, image: str) -> None:
    y = make_transform(name).fit(IMAGES[image]())(IMAGES[image]())
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6


def test_minmax_reaches_both_ends_and_zscore_is_standard() -> None:
    values = IMAGES["dark"]()
    y = MinMax().fit(values)(values)
    assert y.min().item() == pytest.approx(-1, abs=1e-6) and y.max().item() == pytest.approx(1, abs=1e-6)
    z = ZScore().fit(values)(values.double())
    assert z.mean().item() == pytest.approx(0, abs=1e-9) and z.std(unbiased=False).item() == pytest.approx(1)


@pytest.mark.parametrize("name", NAMES)
def test_constant_image_gives_no_nan(name: str) -> None:
    values = torch.full((100, 3), 0.3)
    t = make_transform(name).fit(values)
    y = t(values)
    assert torch.isfinite(y).all() and torch.allclose(y, torch.zeros_like(y), atol=1e-6)
    assert torch.allclose(t.inverse(y), values, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_reproduces_forward_exactly(name: str) -> None:
    values = IMAGES["astronaut"]()
    fitted = make_transform(name).fit(values)
    state = fitted.state_dict()
    assert state and all(type(v) is float for v in state.values())
    restored = make_transform(name)
    restored.load_state_dict(state)
    assert torch.equal(restored(values), fitted(values))
    assert torch.equal(restored.inverse(fitted(values)), fitted.inverse(fitted(values)))
    with pytest.raises(DataError, match="missing"):
        make_transform(name).load_state_dict({"nonsense": 1.0})


@pytest.mark.parametrize("name", NAMES)
def test_use_before_fit_raises(name: str) -> None:
    t = make_transform(name)
    for call in (t.forward, t.inverse, t):
        with pytest.raises(RuntimeError, match="before fit"):
            call(torch.rand(4, 3))
    assert "not fitted" in repr(t)


@pytest.mark.parametrize("name", NAMES)
def test_fit_checks_its_input(name: str) -> None:
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        make_transform(name).fit(torch.rand(10, 3) * 255)
    with pytest.raises(DataError, match="NaN"):
        make_transform(name).fit(torch.tensor([[0.1], [float("nan")]]))


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="minmax, zscore, sympower"):
        make_transform("boxcox")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_is_differentiable_on_input_device(name: str, device: str) -> None:
    values = IMAGES["random"]()
    t = make_transform(name).fit(values)
    x = values.to(device).requires_grad_()
    y = t(x)
    assert y.device.type == device
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.allclose(t.inverse(y.detach()).cpu(), values, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_inverse_clamps_to_unit_range(name: str) -> None:
    t = make_transform(name).fit(IMAGES["random"]())
    x = t.inverse(torch.linspace(-10, 10, 101)[:, None])
    assert x.min() >= 0 and x.max() <= 1 and x.min() == 0 and x.max() == 1


# ---------------------------------------------------------------- Sym-Power, step by step


@pytest.mark.parametrize("image", IMAGES)
def test_sympower_base_exponent_sends_median_to_half(image: str) -> None:
    values = IMAGES[image]()
    t = SymPower().fit(values)
    # (1): the median, min-max normalised, raised to gamma_0 is 0.5 (up to the width of one of 256 bins)
    assert normalised_median(values) ** t.gamma0 == pytest.approx(0.5, abs=0.01)


def test_sympower_gamma0_direction() -> None:
    dark, bright = SymPower().fit(IMAGES["dark"]()), SymPower().fit(IMAGES["bright"]())
    # a dark image (median low) needs gamma_0 < 1 to lift its median to 0.5, a bright one gamma_0 > 1
    assert dark.gamma0 < 1 < bright.gamma0
    assert dark.gamma0 <= dark.gamma <= 1 <= bright.gamma <= bright.gamma0  # (2) moves gamma towards 1


def test_sympower_ramp_is_left_alone() -> None:
    values = ((torch.arange(1024, dtype=torch.float64) + 0.5) / 1024)[:, None]  # 4 values per bin
    t = SymPower().fit(values)
    assert t.gamma0 == 1.0 and t.gamma == 1.0  # median at b = 128 of 256 -> gamma_0 = ln 0.5 / ln 0.5
    # (4): the first 2 and the last 2 bins hold 8 of the 1024 values each: s = 256 * 8 / 1024
    assert t.s_left == pytest.approx(2.0) and t.s_right == pytest.approx(2.0)


def test_sympower_calibration_by_hand_dark() -> None:
    # 10 000 pixels: min, max, 55 % at 0.1 (bin 25, so b = 26), 2 % at 0.9, 42.98 % at 0.3.
    values = groups((1, 0.0), (1, 1.0), (5500, 0.1), (200, 0.9), (4298, 0.3))
    t = SymPower().fit(values)
    gamma0 = math.log(0.5) / math.log(26 / 256)
    assert t.gamma0 == pytest.approx(gamma0, rel=1e-12)
    # gamma_0 < 1 squeezes the top: the last 12 bins (n >= 244/256) held the max only; after n^gamma_0 they also hold
    # the 2 % at 0.9 (0.9^0.303 = 0.969), so delta = 0.02 / 0.05 = 0.4 and 1/gamma = 1/gamma_0 - (1/gamma_0 - 1) 0.4
    assert t.gamma == pytest.approx(1 / (1 / gamma0 - (1 / gamma0 - 1) * 0.4), rel=1e-9)
    # (4): only the min lies in the first 2 bins, only the max in the last 2
    assert t.s_left == pytest.approx(256 / 10000) and t.s_right == pytest.approx(256 / 10000)
    assert (t.vmin, t.vmax) == (0.0, 255.0)


def test_sympower_calibration_by_hand_bright() -> None:
    # the mirror image: 55 % at 0.9 (bin 230, b = 231) gives gamma_0 > 1, which squeezes the bottom: the first 12 bins
    # gain the 2 % at 0.1 (0.1^6.7 ~ 0) but not the 42.98 % at 0.7 (0.7^6.7 = 0.09 > 12/256), so delta = 0.4 again
    values = groups((1, 0.0), (1, 1.0), (5500, 0.9), (200, 0.1), (4298, 0.7))
    t = SymPower().fit(values)
    gamma0 = math.log(0.5) / math.log(231 / 256)
    assert t.gamma0 == pytest.approx(gamma0, rel=1e-12)
    assert t.gamma == pytest.approx(gamma0 - (gamma0 - 1) * 0.4, rel=1e-9)


def test_sympower_crowded_tail_gives_gamma_one() -> None:
    # as the dark case, but 7 % at 0.9: delta = 1.4 >= 1, so no power at all
    values = groups((1, 0.0), (1, 1.0), (5500, 0.1), (700, 0.9), (3798, 0.3))
    t = SymPower().fit(values)
    assert t.gamma0 < 0.5 and t.gamma == pytest.approx(1.0, abs=1e-12)


def _extreme(kind: str) -> torch.Tensor:
    rest = torch.rand(3998, 1, generator=torch.Generator().manual_seed(0))
    if kind == "dark":  # 60 % in bin 2: gamma_0 = ln 0.5 / ln(3/256) = 0.156; nothing reaches the top 12 bins
        return torch.cat([groups((1, 0.0), (1, 1.0), (6000, 0.008)), 0.01 + 0.49 * rest])
    if kind == "bright":  # 60 % in bin 243: gamma_0 = 14.4; nothing but the min reaches the bottom 12 bins
        return torch.cat([groups((1, 0.0), (1, 1.0), (6000, 0.95)), 0.85 + 0.09 * rest])
    return torch.cat([groups((1, 0.0), (6000, 1.0)), rest])  # over half the pixels in the top bin


@pytest.mark.parametrize("kind", ["dark", "bright", "saturated"])
def test_sympower_gamma_is_clamped(kind: str) -> None:
    values = _extreme(kind)
    t = SymPower().fit(values)
    assert 1 / 5 <= t.gamma <= 5 and math.isfinite(t.gamma0)
    if kind == "dark":
        assert t.gamma0 < 1 / 5 and t.gamma == 1 / 5
    if kind == "bright":
        assert t.gamma0 > 5 and t.gamma == 5
    y = t(values)
    assert torch.isfinite(y).all() and y.abs().max() <= 1
    assert torch.allclose(t.inverse(y), values, atol=1e-5)
