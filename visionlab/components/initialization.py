"""Weight initialisation shared by the networks of diffusion models.

DDPM (Ho et al. 2020, its TensorFlow code) and DiT (Peebles & Xie 2023) both start every convolution and linear layer
from Xavier-uniform weights (TensorFlow's default, "fan_avg": U(-a, a) with a = sqrt(6 / (fan_in + fan_out))) and
zero biases, then zero the ends of their residual paths; the first part is :func:`xavier_uniform_init`.
"""

from __future__ import annotations

from torch import nn


def xavier_uniform_init(module: nn.Module, *, kinds: tuple[type[nn.Module], ...] = (nn.Linear,)) -> None:
    """Every sub-module of ``module`` (itself included) of one of ``kinds``: weight ~ Xavier-uniform, bias = 0.

    Call it under ``torch.no_grad()`` (as an ``initialize_weights`` method does), before any zero-init of parts.
    """
    for m in module.modules():
        if isinstance(m, kinds):
            nn.init.xavier_uniform_(m.weight)  # U(-a, a), a = sqrt(6 / (fan_in + fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
