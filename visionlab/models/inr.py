"""Implicit neural representations: an MLP that *is* the signal, f(coordinates) -> values.

A picture of H x W pixels with C channels is a function f(y, x) -> colour. An INR learns that function from the pixel
grid: inputs are coordinates in [-1, 1]^2, targets are the (transformed) pixel values. Plain ReLU MLPs are biased to
low frequencies (the "spectral bias"), so INRs change the activation or the input encoding:

- **SIREN** (Sitzmann et al., NeurIPS 2020): every hidden layer computes ``sin(omega_0 (W x + b))``. With the
  initialisation ``W ~ U(-1/n, 1/n)`` in the first layer and ``W ~ U(-sqrt(6/n)/omega_0, sqrt(6/n)/omega_0)`` in the
  others (n = fan-in), the pre-activations stay standard-normal-like through depth (the paper's Sec. 3.2).
- **FINER** (Liu et al., CVPR 2024): a variable-periodic sine ``sin(omega_0 (|z| + 1) z)``, z = W x + b; a wider
  first-layer bias spreads the neurons over more frequencies.
- **Fourier features** (Tancik et al., NeurIPS 2020): ``gamma(v) = [cos(2 pi B v), sin(2 pi B v)]``, B ~ N(0, sigma^2),
  then a ReLU MLP.
- **Gauss** (Ramasinghe & Lucey, ECCV 2022): the activation ``exp(-(s z)^2)``, a bump of width ~1/s around z = 0.
- **WIRE** (Saragadam et al., CVPR 2023): the complex Gabor wavelet ``exp(j omega_0 z - |s_0 z|^2)``, an oscillation
  (frequency omega_0) under a Gaussian window (width ~1/s_0): localised in space *and* in frequency. Every layer after
  the first has complex weights; the output is the real part of the last (complex) linear layer.
- **Hash grid** (Instant-NGP, Müller et al., SIGGRAPH 2022): trainable features on multiresolution grids, looked up
  by a spatial hash and interpolated, then a small ReLU MLP (:mod:`visionlab.models.hashgrid`).

Each class carries its usual learning rate as ``default_lr`` (SIREN 1e-4, FINER 5e-4, Fourier features 1e-3, Gauss and
WIRE 5e-3, hash grid 1e-2); a model that needs other Adam settings says so with ``adam_betas`` / ``adam_eps``.
Shape legend: N coordinates, D_in coordinate dimensions (2 for images), C output channels, W width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visionlab.components.sine import finer_linear, sine_linear, sine_stack
from visionlab.models.hashgrid import HashGrid
from visionlab.util.precision import full_precision


def fp32_ends(layers: nn.Sequential, head: nn.Module, coords: torch.Tensor) -> torch.Tensor:
    """(N, D_in) -> (N, C) through ``layers`` then ``head``, the first layer and the head in fp32 under bf16
    autocast (coordinates and outputs need fp32: :mod:`visionlab.util.precision`), the hidden layers as it says."""
    first, *hidden = layers
    with full_precision(coords.device.type):
        x = first(coords.float())  # (N, W)
    for layer in hidden:
        x = layer(x)  # (N, W)
    with full_precision(coords.device.type):
        return head(x.float())  # (N, C)


def hooked(layers: nn.Module) -> bool:
    """Whether a forward hook waits on ``layers`` or a module in them (the native stack would not call it)."""
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in layers.modules())


class SineLayer(nn.Module):
    """Linear layer followed by sin(omega_0 * (W x + b)), SIREN's building block."""

    finer = False  # the native kernel's flag for this activation (components/sine.py)

    def __init__(self, in_features: int, out_features: int, *, omega0: float = 30.0, is_first: bool = False):
        super().__init__()
        self.omega0 = omega0
        self.is_first = is_first
        self.linear = nn.Linear(in_features, out_features)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # SIREN Sec. 3.2: U(-1/n, 1/n) for the first layer, U(-sqrt(6/n)/omega_0, +) after it; biases keep the default.
        n = self.linear.in_features
        bound = 1.0 / n if self.is_first else math.sqrt(6.0 / n) / self.omega0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        """The reference formula of the layer's activation, sin(omega_0 z); ``forward`` computes it fused."""
        return torch.sin(self.omega0 * z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sine_linear(x, self.linear, self.omega0)  # sin(omega_0 (W x + b)), one fused step


class FinerLayer(SineLayer):
    """FINER's variable-periodic sine, sin(omega_0 (|z| + 1) z)."""

    finer = True

    def __init__(self, in_features: int, out_features: int, *, omega0: float = 30.0, is_first: bool = False,
                 first_bias_scale: float = 1.0):
        self.first_bias_scale = first_bias_scale
        super().__init__(in_features, out_features, omega0=omega0, is_first=is_first)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.is_first:  # FINER Sec. 3.3: a wider first-layer bias U(-k, k) widens the frequency support
            with torch.no_grad():
                self.linear.bias.uniform_(-self.first_bias_scale, self.first_bias_scale)

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        """The reference formula; (|z| + 1) is a scale, not a path for gradients: FINER detaches it."""
        return torch.sin(self.omega0 * (torch.abs(z).detach() + 1.0) * z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return finer_linear(x, self.linear, self.omega0)


class Siren(nn.Module):
    """SIREN: ``depth`` hidden sine layers of ``width`` after a first sine layer, then a linear output.

    The EVOS / Sym-Power backbone "SIREN 3x256" is ``Siren(out_features=3, width=256, depth=3)``: 198,915 parameters.

    >>> model = Siren(out_features=3)
    >>> model(torch.zeros(5, 2)).shape
    torch.Size([5, 3])
    """

    default_lr = 1e-4
    # points per chunk of a step: the fastest measured with the native kernel, forward and backward one chunk at a
    # time (benchmarks/results/fit_step.md: 2,048 to 65,536 within 2 % of each other at 256 px on one thread,
    # 0.50-0.52 s, the order changing from run to run; 1,024 is 4 % slower, each chunk's call costs ~0.4 ms)
    default_chunk = 4096
    # PSNR cost of --precision bf16, the worst of three photos (benchmarks/results/fit_precision.md: 0.26, 1.07 and
    # 0.74 dB after 1,000 steps at 128 px): the rounding of the pre-activations (|omega_0 z| up to tens of radians)
    bf16_cost_db = 1.07
    layer_cls = SineLayer

    def __init__(self, *, in_features: int = 2, out_features: int = 3, width: int = 256, depth: int = 3,
                 omega0: float = 30.0, first_omega0: float = 30.0, **layer_kwargs):
        super().__init__()
        assert depth >= 0 and width > 0, f"depth must be >= 0 and width > 0, got depth={depth}, width={width}"
        first = self.layer_cls(in_features, width, omega0=first_omega0, is_first=True, **layer_kwargs)
        hidden = [self.layer_cls(width, width, omega0=omega0) for _ in range(depth)]
        self.net = nn.Sequential(first, *hidden)
        self.head = nn.Linear(width, out_features)
        # The output layer uses the hidden layers' bound too (SIREN's reference initialisation).
        bound = math.sqrt(6.0 / width) / omega0
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, D_in) coordinates in [-1, 1] -> (N, C) values."""
        out = None if hooked(self) else sine_stack(coords, [layer.linear for layer in self.net],
                                                   [layer.omega0 for layer in self.net], self.layer_cls.finer,
                                                   head=self.head)
        if out is None:  # not fp32 on the CPU (bf16 autocast, CUDA, float64), no native kernel, or hooks to call
            return fp32_ends(self.net, self.head, coords)
        return out


class Finer(Siren):
    """FINER: SIREN with variable-periodic sines and a wider first-layer bias."""

    default_lr = 5e-4
    bf16_cost_db = None  # not measured: --precision auto keeps FINER in fp32
    layer_cls = FinerLayer

    def __init__(self, *, first_bias_scale: float = 1.0, **kwargs):
        super().__init__(first_bias_scale=first_bias_scale, **kwargs)


class FourierFeatureMLP(nn.Module):
    """Random Fourier features followed by a ReLU MLP (Tancik et al. 2020)."""

    default_lr = 1e-3
    default_chunk = 8192  # points per chunk of a step: the fastest measured (benchmarks/results/fit_step.md)
    bf16_cost_db = None  # not measured: --precision auto keeps it in fp32 (benchmarks/fit_precision.py measures)

    def __init__(self, *, in_features: int = 2, out_features: int = 3, width: int = 256, depth: int = 3,
                 num_frequencies: int = 256, sigma: float = 10.0):
        super().__init__()
        # B ~ N(0, sigma^2): fixed, so it is a buffer (saved with the weights, never trained).
        self.register_buffer("B", torch.randn(num_frequencies, in_features) * sigma)
        layers: list[nn.Module] = [nn.Linear(2 * num_frequencies, width), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, D_in) -> (N, 2F): gamma(v) = [cos(2 pi B v), sin(2 pi B v)]."""
        proj = 2 * math.pi * coords @ self.B.T  # (N, F)
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, D_in) coordinates in [-1, 1] -> (N, C) values."""
        with full_precision(coords.device.type):  # sines of 2 pi B v (|B| ~ 10) need fp32 arguments
            features = self.encode(coords.float())  # (N, 2F)
        x = self.net(features)  # (N, W)
        with full_precision(coords.device.type):
            return self.head(x.float())  # (N, C)


class GaussLayer(nn.Module):
    """Linear layer followed by the Gaussian exp(-(s (W x + b))^2)."""

    def __init__(self, in_features: int, out_features: int, *, scale: float = 10.0):
        super().__init__()
        self.scale = scale
        self.linear = nn.Linear(in_features, out_features)  # PyTorch's default init, as the Gauss / WIRE code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(self.scale * self.linear(x)) ** 2)  # exp(-(s z)^2)


class Gauss(nn.Module):
    """Gaussian-activation MLP: a first Gaussian layer, ``depth`` hidden ones of ``width``, then a linear output."""

    default_lr = 5e-3
    default_chunk = 8192  # points per chunk of a step: the fastest measured (benchmarks/results/fit_step.md)
    bf16_cost_db = None  # not measured: --precision auto keeps it in fp32 (benchmarks/fit_precision.py measures)

    def __init__(self, *, in_features: int = 2, out_features: int = 3, width: int = 256, depth: int = 3,
                 scale: float = 10.0):
        super().__init__()
        assert depth >= 0 and width > 0, f"depth must be >= 0 and width > 0, got depth={depth}, width={width}"
        layers = [GaussLayer(in_features, width, scale=scale)]
        layers += [GaussLayer(width, width, scale=scale) for _ in range(depth)]
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, D_in) coordinates in [-1, 1] -> (N, C) values."""
        return fp32_ends(self.net, self.head, coords)


class GaborLayer(nn.Module):
    """WIRE's layer: z = W x + b, then the complex Gabor wavelet exp(j omega_0 z - |s_0 z|^2).

    The first layer has real weights (its input, the coordinates, is real); later layers are complex.
    """

    def __init__(self, in_features: int, out_features: int, *, omega0: float = 20.0, scale0: float = 10.0,
                 is_first: bool = False):
        super().__init__()
        self.omega0, self.scale0 = omega0, scale0
        # PyTorch's default init (as WIRE's code); for complex weights it draws real and imaginary parts alike
        self.linear = nn.Linear(in_features, out_features, dtype=torch.float32 if is_first else torch.complex64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)  # (N, W), complex after the first layer
        # WIRE's complex Gabor wavelet psi(z) = exp(j omega_0 z) exp(-|s_0 z|^2)
        return torch.exp(1j * self.omega0 * z - (self.scale0 * z).abs().square())  # (N, W) complex


class Wire(nn.Module):
    """WIRE: a first Gabor layer, ``depth`` hidden complex Gabor layers, a complex linear output; real output.

    Width convention: ``width`` is the *real* width it replaces. A complex unit holds two real numbers per weight,
    so WIRE keeps ``int(width / sqrt 2)`` complex units (WIRE's image experiments: 256 -> 181), and its count of real
    numbers stays close to a real network's of the same width: ``Wire(width=256, depth=3)`` has 199,287 against
    SIREN 3x256's 198,915. Pass ``complex_width`` to set the number of complex units directly.

    >>> Wire(out_features=3)(torch.zeros(5, 2)).shape
    torch.Size([5, 3])
    """

    default_lr = 5e-3
    default_chunk = 8192  # points per chunk of a step: the fastest measured (benchmarks/results/fit_step.md)
    bf16_cost_db = None  # not measured: --precision auto keeps it in fp32 (benchmarks/fit_precision.py measures)

    def __init__(self, *, in_features: int = 2, out_features: int = 3, width: int = 256, depth: int = 3,
                 omega0: float = 20.0, scale0: float = 10.0, complex_width: int | None = None):
        super().__init__()
        assert depth >= 0 and width > 0, f"depth must be >= 0 and width > 0, got depth={depth}, width={width}"
        units = complex_width if complex_width is not None else max(1, int(width / math.sqrt(2)))
        self.complex_width = units
        first = GaborLayer(in_features, units, omega0=omega0, scale0=scale0, is_first=True)
        hidden = [GaborLayer(units, units, omega0=omega0, scale0=scale0) for _ in range(depth)]
        self.net = nn.Sequential(first, *hidden)
        self.head = nn.Linear(units, out_features, dtype=torch.complex64)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, D_in) coordinates in [-1, 1] -> (N, C) real values."""
        # complex64 throughout: autocast leaves complex products alone, so WIRE runs the same under --precision bf16
        return self.head(self.net(coords.float())).real  # (N, C): the real part of a complex output, as WIRE


INR_MODELS: dict[str, type[nn.Module]] = {"siren": Siren, "finer": Finer, "fourier": FourierFeatureMLP,
                                          "gauss": Gauss, "wire": Wire, "hashgrid": HashGrid}

# Sizes: the papers' backbone, a tiny one that trains on a laptop CPU in seconds (tests, quick looks), and the MLP
# that Instant-NGP puts after its hash encoding (two hidden ReLU layers of 64: the first, then depth = 1 more).
INR_PRESETS: dict[str, dict] = {
    "paper": {"width": 256, "depth": 3},  # "SIREN 3x256" of EVOS and Sym-Power
    "tiny": {"width": 32, "depth": 2},
    "ngp": {"width": 64, "depth": 1},  # hashgrid as in the Instant-NGP paper
}


def build_inr(name: str, *, in_features: int, out_features: int, width: int, depth: int, **options) -> nn.Module:
    """The INR called ``name`` (a key of :data:`INR_MODELS`).

    ``width`` and ``depth`` mean the same for every model: the first layer maps the input (coordinates, or an
    encoding of them) to ``width`` units, then ``depth`` more (width -> width) layers, then a linear output. For
    ``hashgrid`` that is the MLP after the hash encoding (the paper's: width 64, depth 1; the encoding keeps its
    defaults); for ``wire``, ``width`` is the real width that its complex units replace (see :class:`Wire`).
    ``options`` go to the model's constructor (the hash grid's ``log2_table_size`` and ``max_resolution``).
    """
    if name not in INR_MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(INR_MODELS)}")
    return INR_MODELS[name](in_features=in_features, out_features=out_features, width=width, depth=depth, **options)


class Chunked(nn.Module):
    """``model`` applied ``chunk`` coordinates at a time inside one autograd graph: the same output and gradients as
    one batch (up to fp32 round-off in the sums), with every temporary the size of one chunk.

    A training step over N points as one batch pushes each layer's (N, W) activations through memory several
    times; in chunks that fit the cache the element-wise work (sines, their derivatives, bias sums) runs at the
    core's speed and the allocator reuses its buffers instead of faulting fresh pages in each step. Backward goes
    through the chunks one after the other (autograd runs the graph of the last chunk first), and each parameter's
    gradient sums every chunk's share before its hooks fire once (DDP's all-reduce among them). The loss and the
    selectors see the whole (N, C) prediction, exactly as without chunks.
    """

    def __init__(self, model: nn.Module, *, chunk: int):
        super().__init__()
        assert chunk >= 1, f"chunk must be >= 1, got {chunk}"
        self.model = model
        self.chunk = chunk

    def forward(self, coords: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D_in) -> (N, C); ``rows`` (N,), for a model that precomputed its fixed points (``bind``), goes along."""
        if coords.shape[0] <= self.chunk:
            return self.model(coords) if rows is None else self.model(coords, rows)
        parts = coords.split(self.chunk)
        if rows is None:
            return torch.cat([self.model(part) for part in parts])  # (N, C)
        return torch.cat([self.model(part, part_rows) for part, part_rows in zip(parts, rows.split(self.chunk))])


@torch.no_grad()
def predict_in_chunks(model: nn.Module, coords: torch.Tensor, *, chunk: int = 65536) -> torch.Tensor:
    """(N, D_in) -> (N, C) without gradients, ``chunk`` coordinates at a time to bound memory on large signals."""
    return Chunked(model, chunk=chunk)(coords)
