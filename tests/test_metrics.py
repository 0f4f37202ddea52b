"""MSE, PSNR and SSIM against scikit-image's reference implementations."""

import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from visionlab.components.metrics import mse, psnr, ssim
from visionlab.util.errors import ConfigError, DataError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def noisy_pair(shape: tuple[int, ...], seed: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A random target in [0, 1] and a prediction = target + Gaussian noise, clipped to [0, 1] (float64)."""
    rng = np.random.default_rng(seed)
    target = rng.random(shape)
    pred = np.clip(target + noise * rng.standard_normal(shape), 0, 1)
    return pred, target


def sk_ssim(pred: np.ndarray, target: np.ndarray, channel_axis: int | None = None, sigma: float = 1.5) -> float:
    return structural_similarity(
        pred, target, gaussian_weights=True, sigma=sigma, use_sample_covariance=False, data_range=1,
        channel_axis=channel_axis,
    )


def photo_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A non-square crop of scikit-image's astronaut (H, W, 3) in [0, 1] and a noisy, blurred-looking copy."""
    target = data.astronaut()[100:180, 150:250] / 255.0  # (80, 100, 3)
    rng = np.random.default_rng(seed)
    pred = np.clip(0.9 * target + 0.05 + 0.05 * rng.standard_normal(target.shape), 0, 1)
    return pred, target


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)


# ---------------------------------------------------------------- MSE / PSNR


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(32, 32), (24, 40, 3)])
def test_psnr_matches_skimage(seed: int, shape: tuple[int, ...]) -> None:
    pred, target = noisy_pair(shape, seed, noise=0.02 + 0.05 * seed)
    expected = peak_signal_noise_ratio(target, pred, data_range=1)
    got = psnr(torch.from_numpy(pred), torch.from_numpy(target))
    assert got.ndim == 0
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # float32 inputs give the same number to float32 accuracy
    got32 = psnr(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    assert got32.item() == pytest.approx(expected, rel=1e-5)


def test_psnr_uses_data_range_as_peak() -> None:
    pred, target = noisy_pair((16, 16, 3), seed=7)
    expected = peak_signal_noise_ratio(target * 255, pred * 255, data_range=255)
    got = psnr(torch.from_numpy(pred * 255), torch.from_numpy(target * 255), data_range=255)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_psnr_of_identical_images_is_inf_and_mse_is_mean_square() -> None:
    image = torch.rand(3, 8, 8)
    assert math.isinf(psnr(image, image.clone()).item()) and psnr(image, image).item() > 0
    pred, target = noisy_pair((5, 6), seed=1)
    assert mse(torch.from_numpy(pred), torch.from_numpy(target)).item() == pytest.approx(np.mean((pred - target) ** 2))


# ---------------------------------------------------------------- SSIM


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", [(32, 32), (23, 47), (64, 11)])
def test_ssim_grey_matches_skimage(seed: int, shape: tuple[int, int]) -> None:
    pred, target = noisy_pair(shape, seed)
    got = ssim(torch.from_numpy(pred), torch.from_numpy(target))
    assert got.ndim == 0
    assert got.item() == pytest.approx(sk_ssim(pred, target), abs=1e-4)


def test_ssim_real_photo_grey_and_rgb() -> None:
    pred, target = photo_pair()  # (80, 100, 3), non-square
    expected_rgb = sk_ssim(pred, target, channel_axis=2)
    assert 0.2 < expected_rgb < 0.99  # a pair that is neither identical nor unrelated
    assert ssim(chw(pred), chw(target)).item() == pytest.approx(expected_rgb, abs=1e-4)
    # float32 photo input
    assert ssim(chw(pred).float(), chw(target).float()).item() == pytest.approx(expected_rgb, abs=1e-4)
    grey_pred, grey_target = pred.mean(axis=2), target.mean(axis=2)
    got = ssim(torch.from_numpy(grey_pred), torch.from_numpy(grey_target))
    assert got.item() == pytest.approx(sk_ssim(grey_pred, grey_target), abs=1e-4)


def test_ssim_rgb_is_mean_over_channels() -> None:
    # channels with very different noise, so a wrong channel handling would show
    rng = np.random.default_rng(3)
    target = rng.random((3, 30, 41))
    pred = np.clip(target + np.array([0.01, 0.1, 0.4])[:, None, None] * rng.standard_normal(target.shape), 0, 1)
    got = ssim(torch.from_numpy(pred), torch.from_numpy(target))
    assert got.item() == pytest.approx(sk_ssim(pred, target, channel_axis=0), abs=1e-4)


def test_ssim_batch_mean_and_none() -> None:
    pairs = [noisy_pair((3, 20, 28), seed, noise=0.05 * (seed + 1)) for seed in range(4)]
    pred = torch.from_numpy(np.stack([p for p, _ in pairs]))  # (4, 3, 20, 28)
    target = torch.from_numpy(np.stack([t for _, t in pairs]))
    expected = np.array([sk_ssim(p, t, channel_axis=0) for p, t in pairs])
    per_image = ssim(pred, target, reduction="none")
    assert per_image.shape == (4,)
    np.testing.assert_allclose(per_image.numpy(), expected, atol=1e-4)
    assert ssim(pred, target).item() == pytest.approx(expected.mean(), abs=1e-4)


def test_ssim_other_sigma_matches_skimage() -> None:
    # skimage's filter radius is int(3.5 sigma + 0.5): sigma 1.0 -> a 9-pixel window
    pred, target = noisy_pair((25, 30), seed=5)
    got = ssim(torch.from_numpy(pred), torch.from_numpy(target), window_size=9, sigma=1.0)
    assert got.item() == pytest.approx(sk_ssim(pred, target, sigma=1.0), abs=1e-4)


def test_ssim_identical_is_one_and_differentiable() -> None:
    image = torch.rand(2, 3, 16, 16)
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-12)
    pred = torch.rand(3, 16, 16, requires_grad=True)
    (1 - ssim(pred, image[0])).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_metrics_run_on_the_input_device(device: str) -> None:
    pred, target = photo_pair(seed=1)
    p, t = chw(pred).float().to(device), chw(target).float().to(device)
    got_ssim, got_psnr = ssim(p, t), psnr(p, t)
    assert got_ssim.device.type == device and got_psnr.device.type == device
    assert got_ssim.item() == pytest.approx(sk_ssim(pred, target, channel_axis=2), abs=1e-4)
    assert got_psnr.item() == pytest.approx(peak_signal_noise_ratio(target, pred, data_range=1), rel=1e-5)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("metric", [mse, psnr, ssim])
def test_shape_mismatch_names_both_shapes(metric) -> None:
    with pytest.raises(ValueError, match=r"\(3, 16, 16\).*\(16, 16, 3\)") as info:
        metric(torch.rand(3, 16, 16), torch.rand(16, 16, 3))
    assert isinstance(info.value, DataError)


@pytest.mark.parametrize("shape", [(8, 8), (3, 10, 32), (2, 1, 32, 10)])
def test_ssim_rejects_images_smaller_than_window(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(shape), torch.rand(shape))


def test_ssim_rejects_bad_options_and_dims() -> None:
    a = torch.rand(16, 16)
    with pytest.raises(ConfigError, match="odd"):
        ssim(a, a, window_size=10)
    with pytest.raises(ConfigError, match="reduction"):
        ssim(a, a, reduction="sum")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="data_range"):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        ssim(torch.rand(1, 1, 1, 16, 16), torch.rand(1, 1, 1, 16, 16))
