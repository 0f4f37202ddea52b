"""Fused sine layers for SIREN and FINER: ``sin(omega_0 (W x + b))`` as one autograd step that keeps only what
backward needs.

Written as plain PyTorch, a SIREN layer is four passes over its (N, W) activations: the linear layer, the product
with omega_0, the sine, and in backward the cosine, two more products and the bias sum, each allocating an (N, W)
temporary. Two rearrangements make the layer cost little beyond its two matrix products:

- omega_0 moves into the weights: ``sin(omega_0 (W x + b)) = sin(W' x + b')`` with W' = omega_0 W, b' = omega_0 b,
  a (W, W) product instead of an (N, W) one. Autograd sees ``omega_0 * weight``, so the parameters and their
  gradients are those of the plain layer (d/dW = omega_0 d/dW').
- forward computes z = W' x + b', y = sin(z) and, while z is still in the cache, cos(z) in z's own buffer; it saves
  the layer's input x and cos(z), nothing else, and backward needs one product for dL/dz:

      y = sin(z),   dL/dz = dL/dy cos(z),   dL/dW' = (dL/dz)^T x,   dL/db' = sum_n dL/dz,   dL/dx = (dL/dz) W'

FINER's ``sin(omega_0 (|z| + 1) z)`` with (|z| + 1) treated as a constant scale (as FINER detaches it) fuses the
same way: with a = omega_0 (|z| + 1), y = sin(a z) and dL/dz = dL/dy cos(a z) a.

Under ``torch.autocast`` (bf16 on CPUs with AVX512-BF16 / AMX, and on CUDA) the two matrix products run in the
autocast dtype, as ``nn.Linear`` would; the sine and cosine are computed on that product. Written by hand because
no library offers a fused SIREN layer for the CPU. ``torch.compile`` of the plain layers (measured on this CPU, one
thread, 65,536 points in chunks: 0.60 s per fp32 step against 0.62 s for this layer, 0.32 s in bf16 against 0.32 s,
after 9 to 16 s of compilation) gains nothing here, so the fit has no ``--compile``.
Shape legend: N points, I input features, W output features (width).
"""

from __future__ import annotations

import torch
from torch import nn


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast would give a matrix product on this device now, or None outside autocast."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


class _SineLinear(torch.autograd.Function):
    """y = sin(z), z = x W'^T + b' (SIREN), or y = sin(a z) with a = omega_0 (|z| + 1) (FINER, ``finer=True``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, omega0: float, finer: bool):
        dtype = _autocast_dtype(x.device.type) or x.dtype
        x, w, b = x.to(dtype), weight.to(dtype), bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            z = torch.addmm(b, x, w.t())  # (N, W): z = W' x + b' (SIREN: omega_0 is already in W' and b')
            if finer:  # a = omega_0 (|z| + 1), y = sin(a z), dy/dz = cos(a z) a
                scale = z.abs().add_(1.0).mul_(omega0)
                z.mul_(scale)  # a z
                y = torch.sin(z)
                slope = z.cos_().mul_(scale)
            else:  # y = sin(z), dy/dz = cos(z), computed while z is still in the cache, in z's own buffer
                y = torch.sin(z)
                slope = z.cos_()
        ctx.save_for_backward(x, w, slope)
        ctx.param_dtype = weight.dtype
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, w, slope = ctx.saved_tensors
        with torch.autocast(x.device.type, enabled=False):
            grad_z = grad.to(slope.dtype) * slope  # dL/dz = dL/dy dy/dz, (N, W)
            grad_x = grad_z @ w if ctx.needs_input_grad[0] else None  # (N, I)
            grad_w = (grad_z.t() @ x).to(ctx.param_dtype)  # (W, I)
            grad_b = grad_z.sum(0).to(ctx.param_dtype)  # (W,); a bf16 sum accumulates in fp32 all the same
        return grad_x, grad_w, grad_b, None, None


def sine_linear(x: torch.Tensor, linear: nn.Linear, omega0: float) -> torch.Tensor:
    """SIREN's ``sin(omega_0 (linear(x)))``, fused: (N, I) -> (N, W)."""
    return _SineLinear.apply(x, linear.weight * omega0, linear.bias * omega0, omega0, False)


def finer_linear(x: torch.Tensor, linear: nn.Linear, omega0: float) -> torch.Tensor:
    """FINER's ``sin(omega_0 (|z| + 1) z)``, z = linear(x), fused: (N, I) -> (N, W)."""
    return _SineLinear.apply(x, linear.weight, linear.bias, omega0, True)
