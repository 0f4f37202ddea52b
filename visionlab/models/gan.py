"""Generative adversarial networks: DCGAN's generator and discriminator, their class-conditional variants and losses.

A GAN (Goodfellow et al. 2014) trains two networks against each other: a generator G maps noise z ~ N(0, I) to an
image, a discriminator D scores images as real or fake. With D's logit d(x) and D(x) = sigmoid(d(x)) the game is::

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]                                            (Eq. 1)

**DCGAN** (Radford et al. 2016) made it train on images with a few rules, followed here: strided convolutions in D
and fractionally-strided (transposed) ones in G instead of pooling; BatchNorm everywhere except G's output layer and
D's input layer; ReLU in G with a Tanh output (images in [-1, 1]); LeakyReLU(0.2) in D; weights N(0, 0.02); Adam with
lr 2e-4 and beta1 0.5. The network grows with the image size, one factor of two per layer::

    G: z (B, nz) -> (B, nz, 1, 1) -> ConvT 4x4 -> (B, 8 ngf, 4, 4) -> ConvT 4x4/2 ... -> (B, ngf, H/2, W/2)
                  -> ConvT 4x4/2 -> Tanh -> (B, C, H, W)
    D: x (B, C, H, W) -> Conv 4x4/2, LReLU -> (B, ndf, H/2, W/2) -> Conv 4x4/2, BN, LReLU ... -> (B, 8 ndf, 4, 4)
                  -> Conv 4x4 -> logit (B,)

At 64 x 64 x 3 with nz = 100 and ngf = ndf = 64 (PyTorch's DCGAN example) G has 3,576,704 parameters and D 2,765,568.

**Conditioning** (Mirza & Osindero 2014): G reads [z, embed(y)], its noise concatenated with a learned label vector.
D is a **projection discriminator** (Miyato & Koyama 2018, Eq. 3): with phi(x) its features summed over positions,
logit = psi(phi(x)) + <embed(y), phi(x)>, the inner product with a class embedding added to the unconditional head.

**Losses** on D's logits d (no sigmoid inside D: softplus is the stable log-sigmoid, -log sigmoid(d) = softplus(-d)):

- ``ns`` (non-saturating, Goodfellow et al. Sec. 3): L_D = softplus(-d(x)) + softplus(d(G(z))) (Eq. 1 for D, as a
  loss); L_G = softplus(-d(G(z))) = -log D(G(z)), which keeps G's gradient alive when D rejects its samples.
- ``hinge`` (Lim & Ye 2017; Miyato et al. 2018): L_D = relu(1 - d(x)) + relu(1 + d(G(z))); L_G = -d(G(z)).
- ``wgan-gp`` (Gulrajani et al. 2017, Alg. 1): a critic without sigmoid, L_D = d(G(z)) - d(x) + lambda GP,
  L_G = -d(G(z)), GP = (||grad_x_hat d(x_hat)||_2 - 1)^2 at x_hat = eps x + (1 - eps) G(z), with **one eps ~ U[0, 1]
  per sample** (not per pixel) and the norm taken per sample, lambda = 10. The penalty is per sample, so the critic
  must not mix samples: it uses layer normalisation instead of BatchNorm (the paper's recommendation).

Shape legend: B batch, C channels, H, W height and width, nz noise dim, K classes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from visionlab.util.errors import ConfigError, DataError
from visionlab.util.presets import from_preset

LOSSES = ("ns", "hinge", "wgan-gp")
NORMS = ("batch", "layer", "none")


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------

def num_stages(image_size: int) -> int:
    """Up-samplings of G (= down-samplings of D) from 4 x 4 to ``image_size``: log2(size) - 2; the size must be a
    power of two of at least 16."""
    if not isinstance(image_size, int) or image_size < 16 or image_size & (image_size - 1):
        raise ConfigError(f"a DCGAN needs a square image size that is a power of two of at least 16 (16, 32, 64, "
                          f"...), got {image_size}; pass --image-size")
    return int(math.log2(image_size)) - 2


def check_labels(y: torch.Tensor | None, num_classes: int, batch: int) -> None:
    """Labels of a conditional network: a (B,) integer tensor in [0, K); none for an unconditional one."""
    if num_classes == 0:
        if y is not None:
            raise DataError("this GAN is unconditional; it takes no labels")
        return
    if y is None:
        raise DataError(f"this GAN is class-conditional: give labels (B,) in [0, {num_classes})")
    if y.dtype.is_floating_point or y.dim() != 1 or len(y) != batch:
        raise DataError(f"labels must be a 1-D integer tensor of {batch} entries, got {y.dtype} of shape "
                        f"{tuple(y.shape)}")
    if not y.is_meta and len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"labels must lie in [0, {num_classes - 1}] for {num_classes} classes, got "
                        f"{int(y.min())} .. {int(y.max())}")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """D's normalisation: BatchNorm on the batch statistics (never running ones: D is never used in eval mode, and
    a G step then leaves D untouched), layer norm over (C, H, W) per sample (WGAN-GP), or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, track_running_stats=False)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group: mean and variance over C, H, W of each sample
    return nn.Identity()


@torch.no_grad()
def dcgan_init(module: nn.Module) -> None:
    """DCGAN's init: (transposed) convolutions N(0, 0.02); normalisation scales N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------------------------------
# config and presets
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class DCGANConfig:
    """Sizes of a DCGAN pair; the defaults are PyTorch's DCGAN example (64 x 64 RGB, nz = 100, ngf = ndf = 64)."""

    image_size: int = 64  # H = W, a power of two >= 16: log2(H) - 2 up-samplings from 4 x 4
    channels: int = 3  # C of the images
    nz: int = 100  # length of the noise vector z
    ngf: int = 64  # G's channels before its output layer; x2 per layer towards the 4 x 4 input
    ndf: int = 64  # D's channels after its input layer; x2 per layer towards the 4 x 4 output
    num_classes: int = 0  # K > 0: class-conditional G (label concatenated to z) and projection D; 0: unconditional
    label_dim: int = 50  # conditional G: length of the label embedding concatenated to z
    d_norm: str = "batch"  # D's normalisation: batch (DCGAN), layer (WGAN-GP: no mixing of samples) or none

    def __post_init__(self):
        num_stages(self.image_size)
        if min(self.channels, self.nz, self.ngf, self.ndf, self.label_dim) < 1 or self.num_classes < 0:
            raise ConfigError(f"DCGAN sizes must be positive (num_classes >= 0), got {self}")
        if self.d_norm not in NORMS:
            raise ConfigError(f"d_norm must be one of {', '.join(NORMS)}, got {self.d_norm!r}")

    @property
    def stages(self) -> int:
        return num_stages(self.image_size)


DCGAN_PRESETS: dict[str, dict] = {
    # PyTorch's DCGAN example, the paper's LSUN / ImageNet size: G 3,576,704 and D 2,765,568 parameters.
    "dcgan": dict(image_size=64, channels=3, nz=100, ngf=64, ndf=64),
    # The same rules at a CPU size for 32 x 32 images (textures, CIFAR).
    "small": dict(image_size=32, channels=3, nz=100, ngf=32, ndf=32),
    # scikit-learn's digits upsampled to 16 x 16 grey: G ~0.14M, D ~0.03M parameters, milliseconds per step.
    "digits": dict(image_size=16, channels=1, nz=64, ngf=32, ndf=32),
}


def dcgan_config(preset: str = "dcgan", **overrides) -> DCGANConfig:
    """A preset's config with some fields changed, e.g. ``dcgan_config("digits", num_classes=10)``."""
    return from_preset(DCGANConfig, DCGAN_PRESETS, preset, "DCGAN", **overrides)


# ---------------------------------------------------------------------------------------------------------------------
# generator
# ---------------------------------------------------------------------------------------------------------------------

def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """Fractionally-strided conv 4x4 / 2 - BatchNorm - ReLU: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True))


class Generator(nn.Module):
    """DCGAN generator: z (and a label embedding) -> 4 x 4 -> transposed convs -> Tanh image in [-1, 1].

    >>> Generator(config=dcgan_config("digits"))(torch.zeros(2, 64)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, *, config: DCGANConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = replace(config or DCGANConfig(), **overrides)
        width = [cfg.ngf * 2 ** k for k in reversed(range(cfg.stages))]  # channels at 4x4, 8x8, ...: 8 ngf .. ngf
        self.label_embed = nn.Embedding(cfg.num_classes, cfg.label_dim) if cfg.num_classes else None
        z_in = cfg.nz + (cfg.label_dim if cfg.num_classes else 0)
        self.stem = nn.Sequential(nn.ConvTranspose2d(z_in, width[0], 4, 1, 0, bias=False), nn.BatchNorm2d(width[0]),
                                  nn.ReLU(True))  # (B, z_in, 1, 1) -> (B, 8 ngf, 4, 4)
        self.blocks = nn.Sequential(*(up_block(a, b) for a, b in zip(width, width[1:])))
        # The output layer: no BatchNorm (DCGAN), Tanh for images in [-1, 1].
        self.to_image = nn.Sequential(nn.ConvTranspose2d(width[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh())
        dcgan_init(self)  # the label table keeps nn.Embedding's N(0, 1): the same scale as z

    @classmethod
    def from_preset(cls, preset: str = "dcgan", **overrides) -> "Generator":
        return cls(config=dcgan_config(preset, **overrides))

    def noise(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I): (n, nz), drawn on the CPU (the same numbers on every device)."""
        return torch.randn(n, self.config.nz, generator=generator)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Noise z (B, nz) or (B, nz, 1, 1) and labels y (B,) (conditional only) -> images (B, C, H, W) in [-1, 1]."""
        z = z.flatten(1)  # (B, nz)
        if z.shape[1] != self.config.nz:
            raise DataError(f"noise must have {self.config.nz} numbers per sample, got shape {tuple(z.shape)}")
        check_labels(y, self.config.num_classes, len(z))
        if self.label_embed is not None:
            z = torch.cat([z, self.label_embed(y)], dim=1)  # [z, embed(y)] (Mirza & Osindero): (B, nz + label_dim)
        z = rearrange(z, "b d -> b d 1 1")  # (B, nz + label_dim, 1, 1): a 1 x 1 "image"
        h = self.stem(z)  # (B, 8 ngf, 4, 4)
        h = self.blocks(h)  # (B, ngf, H/2, W/2)
        return self.to_image(h)  # (B, C, H, W)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


# ---------------------------------------------------------------------------------------------------------------------
# discriminator
# ---------------------------------------------------------------------------------------------------------------------

def down_block(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """Strided conv 4x4 / 2 - norm - LeakyReLU(0.2): (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm == "none"), norm_layer(norm, c_out),
                         nn.LeakyReLU(0.2, True))


class Discriminator(nn.Module):
    """DCGAN discriminator: strided convs -> 4 x 4 -> one logit; class-conditional: a projection discriminator.

    >>> d = Discriminator(config=dcgan_config("digits", num_classes=10))
    >>> d(torch.zeros(2, 1, 16, 16), torch.tensor([0, 9])).shape
    torch.Size([2])
    """

    def __init__(self, *, config: DCGANConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = replace(config or DCGANConfig(), **overrides)
        width = [cfg.ndf * 2 ** k for k in range(cfg.stages)]  # ndf at H/2 .. 8 ndf at 4x4
        # The input layer: no normalisation (DCGAN).
        self.from_image = nn.Sequential(nn.Conv2d(cfg.channels, width[0], 4, 2, 1, bias=cfg.d_norm == "none"),
                                        nn.LeakyReLU(0.2, True))
        self.blocks = nn.Sequential(*(down_block(a, b, cfg.d_norm) for a, b in zip(width, width[1:])))
        self.head = nn.Conv2d(width[-1], 1, 4, 1, 0, bias=False)  # psi: (B, 8 ndf, 4, 4) -> (B, 1, 1, 1)
        self.label_embed = nn.Embedding(cfg.num_classes, width[-1]) if cfg.num_classes else None
        dcgan_init(self)
        if self.label_embed is not None:
            nn.init.normal_(self.label_embed.weight, 0.0, 0.02)  # the projection starts small, like psi

    @classmethod
    def from_preset(cls, preset: str = "dcgan", **overrides) -> "Discriminator":
        return cls(config=dcgan_config(preset, **overrides))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> phi(x), the last feature map (B, 8 ndf, 4, 4)."""
        size, c = self.config.image_size, self.config.channels
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, size, size):
            raise DataError(f"this discriminator reads images (B, {c}, {size}, {size}), got shape {tuple(x.shape)}")
        return self.blocks(self.from_image(x))  # (B, ndf, H/2, W/2) -> (B, 8 ndf, 4, 4)

    def forward_head(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Features (B, 8 ndf, 4, 4) and labels (B,) -> logits (B,)."""
        check_labels(y, self.config.num_classes, len(h))
        logit = self.head(h).flatten()  # psi(phi(x)): (B,)
        if self.label_embed is not None:
            pooled = h.sum(dim=(2, 3))  # phi(x) summed over positions: (B, 8 ndf)
            logit = logit + (self.label_embed(y) * pooled).sum(dim=1)  # + <embed(y), phi(x)> (Miyato & Koyama Eq. 3)
        return logit

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] and labels y (B,) (conditional only) -> logits d(x) (B,)."""
        return self.forward_head(self.forward_features(x), y)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


# ---------------------------------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------------------------------

def _check_loss(kind: str) -> None:
    if kind not in LOSSES:
        raise ConfigError(f"GAN loss must be one of {', '.join(LOSSES)}, got {kind!r}")


def discriminator_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """D's loss from its logits on real (B,) and generated (B',) images, averaged over each batch (GP not included)."""
    _check_loss(kind)
    if kind == "ns":  # -log D(x) - log(1 - D(G(z))), with -log sigmoid(d) = softplus(-d)
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if kind == "hinge":  # E[max(0, 1 - d(x))] + E[max(0, 1 + d(G(z)))]
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    return d_fake.mean() - d_real.mean()  # WGAN critic: E[d(G(z))] - E[d(x)] (+ lambda GP, added by the caller)


def generator_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    """G's loss from D's logits on its images (B,)."""
    _check_loss(kind)
    if kind == "ns":  # non-saturating: -log D(G(z)) = softplus(-d(G(z)))
        return F.softplus(-d_fake).mean()
    return -d_fake.mean()  # hinge and WGAN: -E[d(G(z))]


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, *,
                     eps: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's penalty E[(||grad d(x_hat)||_2 - 1)^2] (Gulrajani et al. Alg. 1, lines 6-8), a scalar with graph.

    ``eps`` (B,) are the interpolation weights, one per sample; by default drawn from U[0, 1] with ``generator`` (on
    the CPU). The critic must treat samples independently (no BatchNorm): then the gradient of sum_i d(x_hat_i)
    with respect to x_hat_i is the gradient of d(x_hat_i) alone.
    """
    if real.shape != fake.shape:
        raise DataError(f"real and generated batches differ in shape: {tuple(real.shape)} and {tuple(fake.shape)}")
    b = real.shape[0]
    if eps is None:
        eps = torch.rand(b, generator=generator)  # eps ~ U[0, 1], one per sample
    eps = eps.to(real).reshape(b, *[1] * (real.dim() - 1))  # (B, 1, 1, 1)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)  # on the line from G(z) to x
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)  # (B, C, H, W)
    norms = grad.flatten(1).norm(2, dim=1)  # ||grad_x_hat d(x_hat)||_2 per sample: (B,)
    return ((norms - 1) ** 2).mean()
