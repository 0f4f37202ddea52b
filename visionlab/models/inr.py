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

Each class carries its usual learning rate as ``default_lr`` (SIREN 1e-4, FINER 5e-4, Fourier features 1e-3).
Shape legend: N coordinates, D_in coordinate dimensions (2 for images), C output channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SineLayer(nn.Module):
    """Linear layer followed by sin(omega_0 * (W x + b)), SIREN's building block."""

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
        return torch.sin(self.omega0 * z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class FinerLayer(SineLayer):
    """FINER's variable-periodic sine, sin(omega_0 (|z| + 1) z)."""

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
        # (|z| + 1) is a scale, not a path for gradients: FINER detaches it.
        return torch.sin(self.omega0 * (torch.abs(z).detach() + 1.0) * z)


class Siren(nn.Module):
    """SIREN: ``depth`` hidden sine layers of ``width`` after a first sine layer, then a linear output.

    The EVOS / Sym-Power backbone "SIREN 3x256" is ``Siren(out_features=3, width=256, depth=3)``: 198,915 parameters.

    >>> model = Siren(out_features=3)
    >>> model(torch.zeros(5, 2)).shape
    torch.Size([5, 3])
    """

    default_lr = 1e-4
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
        return self.head(self.net(coords))


class Finer(Siren):
    """FINER: SIREN with variable-periodic sines and a wider first-layer bias."""

    default_lr = 5e-4
    layer_cls = FinerLayer

    def __init__(self, *, first_bias_scale: float = 1.0, **kwargs):
        super().__init__(first_bias_scale=first_bias_scale, **kwargs)


class FourierFeatureMLP(nn.Module):
    """Random Fourier features followed by a ReLU MLP (Tancik et al. 2020)."""

    default_lr = 1e-3

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
        return self.head(self.net(self.encode(coords)))


INR_MODELS: dict[str, type[nn.Module]] = {"siren": Siren, "finer": Finer, "fourier": FourierFeatureMLP}

# Sizes: the papers' backbone, and a tiny one that trains on a laptop CPU in seconds (tests, quick looks).
INR_PRESETS: dict[str, dict] = {
    "paper": dict(width=256, depth=3),  # "SIREN 3x256" of EVOS and Sym-Power
    "tiny": dict(width=32, depth=2),
}


def build_inr(name: str, *, in_features: int, out_features: int, width: int, depth: int) -> nn.Module:
    """The INR called ``name`` (a key of :data:`INR_MODELS`)."""
    if name not in INR_MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(INR_MODELS)}")
    return INR_MODELS[name](in_features=in_features, out_features=out_features, width=width, depth=depth)


@torch.no_grad()
def predict_in_chunks(model: nn.Module, coords: torch.Tensor, *, chunk: int = 65536) -> torch.Tensor:
    """(N, D_in) -> (N, C) without gradients, ``chunk`` coordinates at a time to bound memory on large signals."""
    return torch.cat([model(coords[i:i + chunk]) for i in range(0, coords.shape[0], chunk)], dim=0)
