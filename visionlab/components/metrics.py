"""Metrics: image quality (MSE, PSNR, SSIM), segmentation (IoU, Dice) and FID in a given feature space.

For a prediction x and a target y with values in a range of width R (R = 1 for [0, 1] images):

    MSE  = mean over all pixels and channels of (x - y)^2
    PSNR = 10 log10(R^2 / MSE)                              in dB; identical images give +inf

The peak is the data range R (1 on [0, 1] data), not the image's own maximum (which some reference code used).
SSIM (Wang et al., 2004) compares local statistics taken under a Gaussian window w (11 x 11, sigma = 1.5):

    mu_x = w * x,   sigma_x^2 = w * x^2 - mu_x^2,   sigma_xy = w * (x y) - mu_x mu_y       (* a 2-D convolution)
    SSIM = (2 mu_x mu_y + C1) (2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2)),
    C1 = (0.01 R)^2,   C2 = (0.03 R)^2,

averaged over every pixel whose window lies inside the image (a 'valid' convolution), then over channels, then over
the batch. This is what scikit-image's ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=...)`` computes (it filters the whole image, then crops
(window_size - 1) // 2 pixels at each border before averaging), to within 1e-4 — the value papers report.

Why by hand and not scikit-image: these functions run on the tensors' own device, the GPU included, inside a training
loop, with no copy to NumPy; they are differentiable too. The Gaussian window is separable (a 1-D pass along W, then
along H), and all statistics are computed in float64 (float32 on Apple's MPS, which has no float64).

Shapes: images are (H, W), (C, H, W) or (B, C, H, W); prediction and target must have the same shape.

Example::

    >>> psnr(recon, image)                 # recon, image (3, 512, 512) in [0, 1] -> tensor(31.2, dtype=torch.float64)
    >>> ssim(recon, image)                 # -> tensor(0.91, dtype=torch.float64)
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from visionlab.util.errors import ConfigError, DataError

K1, K2 = 0.01, 0.03  # SSIM's stabilising constants, C1 = (K1 R)^2, C2 = (K2 R)^2 (Wang et al., 2004)


class MetricInputError(DataError, ValueError):
    """Images a metric cannot compare (shapes differ, too small); a ValueError as well as a visionlab DataError."""


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise MetricInputError(
            f"pred and target must have the same shape, got pred {tuple(pred.shape)} and target {tuple(target.shape)}"
        )
    if pred.numel() == 0:
        raise MetricInputError(f"pred and target are empty (shape {tuple(pred.shape)})")


def _check_range(data_range: float) -> None:
    if not data_range > 0:
        raise ConfigError(f"data_range must be > 0 (1 for [0, 1] images, 255 for 8-bit), got {data_range}")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements of two same-shape tensors: a scalar tensor (float64)."""
    _check_pair(pred, target)
    dtype = _work_dtype(pred.device)
    return (pred.to(dtype) - target.to(dtype)).square().mean()  # MSE = mean (x - y)^2


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB over the whole input: a scalar tensor; +inf for identical inputs."""
    _check_range(data_range)
    error = mse(pred, target)
    return 10 * torch.log10(data_range**2 / error)  # PSNR = 10 log10(R^2 / MSE); MSE = 0 gives inf


def _as_bchw(image: torch.Tensor) -> torch.Tensor:
    """(H, W), (C, H, W) or (B, C, H, W) -> (B, C, H, W)."""
    if image.ndim == 2:
        return image[None, None]  # (1, 1, H, W)
    if image.ndim == 3:
        return image[None]  # (1, C, H, W)
    if image.ndim == 4:
        return image
    raise MetricInputError(f"images must have shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(image.shape)}")


def _gaussian_window(window_size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1-D Gaussian weights exp(-t^2 / (2 sigma^2)) at t = -r..r, r = (window_size - 1) // 2, normalised: (k,)."""
    radius = (window_size - 1) // 2
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    weights = torch.exp(-(t**2) / (2 * sigma**2))
    return weights / weights.sum()


def _filter_valid(maps: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of each channel, 'valid' part only: (B, C, H, W) -> (B, C, H - k + 1, W - k + 1)."""
    channels, k = maps.shape[1], window.numel()
    along_w = window.view(1, 1, 1, k).repeat(channels, 1, 1, 1)  # (C, 1, 1, k): one filter per channel
    along_h = window.view(1, 1, k, 1).repeat(channels, 1, 1, 1)  # (C, 1, k, 1)
    maps = F.conv2d(maps, along_w, groups=channels)  # (B, C, H, W - k + 1)
    return F.conv2d(maps, along_h, groups=channels)  # (B, C, H - k + 1, W - k + 1)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    reduction: Literal["mean", "none"] = "mean",
) -> torch.Tensor:
    """Structural similarity with a Gaussian window, as scikit-image's (see the module docstring).

    pred, target: (H, W), (C, H, W) or (B, C, H, W), both at least window_size x window_size.
    Returns a scalar tensor: the mean over channels (and over the batch); with reduction="none" and a batch, (B,).
    """
    _check_pair(pred, target)
    _check_range(data_range)
    if window_size < 1 or window_size % 2 == 0:
        raise ConfigError(f"window_size must be a positive odd number, got {window_size}")
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0, got {sigma}")
    if reduction not in ("mean", "none"):
        raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    dtype = _work_dtype(pred.device)
    x, y = _as_bchw(pred).to(dtype), _as_bchw(target).to(dtype)  # (B, C, H, W)
    height, width = x.shape[-2:]
    if height < window_size or width < window_size:
        raise MetricInputError(
            f"SSIM needs images of at least {window_size}x{window_size} pixels (its window), got {height}x{width}"
        )

    channels = x.shape[1]
    window = _gaussian_window(window_size, sigma, dtype=dtype, device=x.device)
    # one filter call for the five local statistics: w * x, w * y, w * x^2, w * y^2, w * (x y)
    stats = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)  # (B, 5C, H', W')
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(channels, dim=1)  # each (B, C, H', W')
    var_x = e_xx - mu_x**2  # sigma_x^2 = w * x^2 - mu_x^2 (population variance, no n / (n - 1))
    var_y = e_yy - mu_y**2  # sigma_y^2 = w * y^2 - mu_y^2
    cov_xy = e_xy - mu_x * mu_y  # sigma_xy = w * (x y) - mu_x mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2  # C1 = (0.01 R)^2, C2 = (0.03 R)^2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )  # SSIM(x, y) per pixel, (B, C, H', W')

    # every channel has the same number of pixels, so the mean over (C, H', W') is the mean of per-channel means
    per_image = ssim_map.mean(dim=(1, 2, 3))  # (B,)
    if reduction == "none" and pred.ndim == 4:
        return per_image
    return per_image.mean()


# ---------------------------------------------------------------------------------------------------------------------
# Segmentation: IoU and Dice per class, from one confusion matrix over a whole split
# ---------------------------------------------------------------------------------------------------------------------
#
#   IoU_k  = |P_k ∩ T_k| / |P_k ∪ T_k| = TP / (TP + FP + FN)          (Jaccard index of class k)
#   Dice_k = 2 |P_k ∩ T_k| / (|P_k| + |T_k|) = 2 TP / (2 TP + FP + FN)  (= F1; Dice = 2 IoU / (1 + IoU))
#
# Counted over every pixel of the split at once (not averaged per image), the usual protocol (PASCAL VOC). A class that
# occurs neither in the prediction nor in the truth has no score (NaN) and is left out of the means.

def segmentation_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixel counts (num_classes, num_classes), rows: true class, columns: predicted; labels (...) int in [0, K)."""
    _check_pair(pred, target)
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    for name, labels in (("prediction", pred), ("target", target)):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise MetricInputError(f"{name} labels must lie in [0, {num_classes}), got {labels.min().item()} .. "
                                   f"{labels.max().item()}")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu()


def segmentation_scores(confusion: torch.Tensor) -> dict:
    """IoU and Dice of each class and their means (over classes that occur) from a confusion matrix (K, K)."""
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    tp = confusion.diagonal()
    fp = confusion.sum(dim=0) - tp  # predicted k, truly another class
    fn = confusion.sum(dim=1) - tp  # truly k, predicted another class
    union = tp + fp + fn
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))  # TP / (TP + FP + FN)
    dice = torch.where(union > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.full_like(tp, float("nan")))
    present = union > 0
    return {"iou": iou.tolist(), "dice": dice.tolist(),
            "mean_iou": iou[present].mean().item() if present.any() else float("nan"),
            "mean_dice": dice[present].mean().item() if present.any() else float("nan"),
            "pixel_accuracy": (tp.sum() / confusion.sum().clamp(min=1)).item()}


# ---------------------------------------------------------------------------------------------------------------------
# FID: the Fréchet distance between two Gaussians fitted to features (Heusel et al. 2017)
# ---------------------------------------------------------------------------------------------------------------------
#
#   FID = || mu_1 - mu_2 ||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
#
# mu, S: mean and covariance (unbiased, N - 1) of the feature vectors of each set. The features come from a network
# the caller chooses (Inception-v3's pool layer in the paper; visionlab uses a small classifier it trains on the same
# data, so no download). The value depends on that network and on the number of samples (it is biased upwards for
# small N): compare FIDs only within one feature space and at equal N.

def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64 NumPy."""
    x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else \
        np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise MetricInputError(f"features must be (N, D) with N >= 2, got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise MetricInputError("features contain NaN or infinity")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """|| mu1 - mu2 ||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), with scipy.linalg.sqrtm, numerically guarded.

    Guards: if sqrt(S1 S2) is not finite, not accurate (|| X X - S1 S2 ||_F > 1e-5 || S1 S2 ||_F) or clearly complex
    (a singular product, e.g. fewer samples than dimensions), it is computed again with ``eps`` I added to both
    covariances; the tiny imaginary part left by round-off is dropped; a result below 0 by round-off is reported as 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2,
                                                                                                   dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise MetricInputError(f"statistics do not match: means {mu1.shape}, {mu2.shape}; covariances "
                               f"{sigma1.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm_product(sigma1, sigma2)  # (S1 S2)^(1/2)
    if covmean is None:
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm_product(sigma1 + offset, sigma2 + offset, strict=False)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)  # FID
    return float(max(value, 0.0))


def _sqrtm_product(a: np.ndarray, b: np.ndarray, *, strict: bool = True) -> np.ndarray | None:
    """The real square root of a b (two covariances), or None if it is not finite, inaccurate or clearly complex
    (``strict=False``: a complex one is an error, an inaccurate one is accepted)."""
    from scipy import linalg  # here, not at the top: SciPy's linalg costs every 'import visionlab' a third of a second

    product = a @ b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "matrix is singular": checked below instead
        root = linalg.sqrtm(product)
    if not np.isfinite(root).all():
        if strict:
            return None
        raise MetricInputError("the matrix square root of the covariance product is not finite")
    scale = max(np.abs(root).max(), 1e-12)
    if np.iscomplexobj(root) and np.abs(root.imag).max() > 1e-3 * scale:
        if strict:
            return None
        raise MetricInputError(f"the matrix square root has a large imaginary part "
                               f"({np.abs(root.imag).max():.3g}); too few samples for {a.shape[0]} features?")
    root = root.real
    error = np.linalg.norm(root @ root - product) / max(np.linalg.norm(product), 1e-300)
    return None if strict and error > 1e-5 else root


def fid(features_a, features_b, *, eps: float = 1e-6) -> float:
    """FID between two sets of features (N_a, D) and (N_b, D) (tensors or arrays)."""
    mu1, sigma1 = feature_statistics(features_a)
    mu2, sigma2 = feature_statistics(features_b)
    if mu1.shape != mu2.shape:
        raise MetricInputError(f"feature widths differ: {mu1.size} and {mu2.size}")
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)
