"""Numeric precision of a training step: fp32, or bf16 autocast where the hardware runs bf16 matrix products fast.

bf16 keeps fp32's exponent range with an 8-bit mantissa (relative step 2^-8), so a product of bf16 matrices,
accumulated in fp32 by the hardware, is safe for the wide hidden layers of a network, but not for everything:

- coordinates in [-1, 1] are 2 / (S - 1) apart on a grid of S pixels; bf16 has 2^-8 = 0.0039 between 0.5 and 1,
  so at 512 pixels neighbouring pixels would share a coordinate: input layers stay fp32 (:func:`full_precision`);
- outputs rounded to bf16 would cap PSNR near 50 dB: output layers stay fp32 too;
- weights, optimiser state, value transforms and metrics are never touched by autocast.

bf16 is fast on CUDA and on CPUs with AVX512-BF16 or AMX (``torch.ops.mkldnn._is_mkldnn_bf16_supported``); on other
CPUs autocast would emulate it, slower than fp32, so it is refused there.
"""

from __future__ import annotations

import contextlib

import torch

from visionlab.util.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "auto")


def bf16_is_fast(device: torch.device) -> bool:
    """True where bf16 matrix products run natively: CUDA with bf16 support, CPUs with AVX512-BF16 / AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def check_bf16(device: torch.device) -> None:
    """ConfigError unless bf16 runs natively on ``device``."""
    if not bf16_is_fast(device):
        raise ConfigError(f"--precision bf16 needs CUDA or a CPU with AVX512-BF16 / AMX; {device} has neither "
                          f"(use --precision fp32 or auto)")


def autocast(device: torch.device, precision: str):
    """The context a forward pass runs in: bf16 autocast for ``"bf16"``, nothing for ``"fp32"``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def full_precision(device_type: str):
    """Inside autocast, a block that runs in fp32 (give it fp32 tensors: ``x.float()``)."""
    with torch.autocast(device_type, enabled=False):
        yield
