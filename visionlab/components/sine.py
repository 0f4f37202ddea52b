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
autocast dtype, as ``nn.Linear`` would; the sine and cosine are computed on that product.

On the CPU in fp32 the layers run a native kernel (``sine_kernel.cpp``, compiled once per machine by
:mod:`visionlab.util.native`): :func:`sine_stack` takes a SIREN's or FINER's layers and head at once, in 512-row blocks
that stay in cache, with one vectorised pass for bias, sine and cosine (one range reduction) and one in backward for
dL/dz and the bias sum. On one thread of this lab's CPU it takes the SIREN 3x256 step at 65,536 points from 0.63 s to
0.50 s (``benchmarks/fit_step.py``). Elsewhere (CUDA, bf16, float64, no compiler, ``VISIONLAB_NATIVE=0``, a model
with hooks) the PyTorch path below computes the same. Written by hand because no library offers a fused SIREN layer
for the CPU (oneDNN's post-ops have no sine); ``torch.compile`` of the plain layers fuses the element-wise work but
calls the same products (4-6 % faster than the PyTorch path here, after 5 to 16 s of compilation), so the fit has no
``--compile``.
Shape legend: N points, I input features, W output features (width).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from visionlab.util import native

KERNEL = "sine"
KERNEL_SOURCE = Path(__file__).with_name("sine_kernel.cpp")


def kernel(announce: Callable[[str], None] | None = None):
    """The compiled CPU kernel, built on first use; None where it cannot be (the PyTorch path runs)."""
    return native.load(KERNEL, KERNEL_SOURCE, announce=announce)


def kernel_status() -> str:
    """Which path the CPU's fp32 sine layers take: ``native (...)`` or ``pytorch (why)``."""
    return native.describe(KERNEL)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast would give a matrix product on this device now, or None outside autocast."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


class _SineLinear(torch.autograd.Function):
    """y = sin(z), z = x W'^T + b' (SIREN), or y = sin(a z) with a = omega_0 (|z| + 1) (FINER, ``finer=True``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, omega0: float, finer: bool):
        dtype = _autocast_dtype(x.device.type) or x.dtype
        x, w, b = x.to(dtype), weight.to(dtype), bias.to(dtype)
        ctx.param_dtype = weight.dtype
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


def _split(params: tuple[torch.Tensor, ...] | list[torch.Tensor], head: bool):
    """The kernel's arguments from w'_0, b'_0, w'_1, b'_1, ... (then the head's weight and bias): the layers'
    weights, their biases, and the head's [weight, bias] or []; all contiguous."""
    params = [p.contiguous() for p in params]
    stack, out = (params[:-2], params[-2:]) if head else (params, [])
    return stack[0::2], stack[1::2], out


class _SineStack(torch.autograd.Function):
    """The native kernel's stack of sine layers, (N, I) -> (N, W), and, with ``head``, the linear output layer after
    it, -> (N, C); parameters w'_0, b'_0, w'_1, b'_1, ... (then the head's weight and bias)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, compiled, omegas: list[float], finer: bool, head: bool, *params: torch.Tensor):
        ws, bs, out = _split(params, head)
        y, *kept = compiled.forward(x, ws, bs, omegas, finer, True, out)  # y, the layers' inputs, slopes
        ctx.save_for_backward(x, *kept, *ws, *out[:1])
        ctx.sizes, ctx.compiled = (len(kept) - len(ws), len(ws)), compiled
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (a, n), saved = ctx.sizes, ctx.saved_tensors
        x, inputs, slopes = saved[0], saved[1:1 + a], saved[1 + a:1 + a + n]
        ws, out = saved[1 + a + n:1 + a + 2 * n], saved[1 + a + 2 * n:]
        grad_x, *grads = ctx.compiled.backward(grad.float().contiguous(), x, list(inputs), list(slopes), list(ws),
                                               ctx.needs_input_grad[0], list(out))
        per_param = [g for pair in zip(grads[:n], grads[n:2 * n]) for g in pair]  # dL/dW'_0, dL/db'_0, ...
        return (grad_x, None, None, None, None, *per_param, *grads[2 * n:])


def sine_stack(x: torch.Tensor, linears: list[nn.Linear], omegas: list[float], finer: bool,
               head: nn.Linear | None = None) -> torch.Tensor | None:
    """Sine layers one after another, ``sin(omega_l (linear_l(.)))`` (FINER's with ``finer``), then ``head`` if
    given, by the native kernel: (N, I) -> (N, W) or (N, C); None where it cannot run them (not fp32 on the CPU,
    under autocast, no kernel), and the caller runs its layers one by one."""
    every = [*linears, *([head] if head is not None else [])]
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_autocast_enabled("cpu") \
            or any(linear.weight.dtype != torch.float32 or linear.bias is None for linear in every):
        return None
    compiled = kernel()
    if compiled is None:
        return None
    params = []
    for linear, omega0 in zip(linears, omegas):  # SIREN: omega_0 moves into W' and b'; FINER needs it apart
        params += [linear.weight, linear.bias] if finer else [linear.weight * omega0, linear.bias * omega0]
    if head is not None:
        params += [head.weight, head.bias]
    x, omegas = x.contiguous(), [float(o) for o in omegas]
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return _SineStack.apply(x, compiled, omegas, finer, head is not None, *params)
    with torch.no_grad():  # no backward: nothing kept but the output
        ws, bs, out = _split(params, head is not None)
        return compiled.forward(x, ws, bs, omegas, finer, False, out)[0]


def sine_linear(x: torch.Tensor, linear: nn.Linear, omega0: float) -> torch.Tensor:
    """SIREN's ``sin(omega_0 (linear(x)))``, fused: (N, I) -> (N, W)."""
    y = sine_stack(x, [linear], [omega0], False)
    return y if y is not None else _SineLinear.apply(x, linear.weight * omega0, linear.bias * omega0, omega0, False)


def finer_linear(x: torch.Tensor, linear: nn.Linear, omega0: float) -> torch.Tensor:
    """FINER's ``sin(omega_0 (|z| + 1) z)``, z = linear(x), fused: (N, I) -> (N, W)."""
    y = sine_stack(x, [linear], [omega0], True)
    return y if y is not None else _SineLinear.apply(x, linear.weight, linear.bias, omega0, True)
