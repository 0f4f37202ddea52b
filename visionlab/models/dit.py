"""Diffusion Transformer, DiT (Peebles & Xie, "Scalable Diffusion Models with Transformers", ICCV 2023).

DiT replaces the U-Net of a diffusion model by a ViT on patches of the (latent) image. It predicts the noise (and,
with ``learn_sigma``, the variance) from x_t, the time step t and the class label y::

    tokens = PatchEmbed(x_t) + E_pos                 (B, L, D)   L = (H/P)(W/P), E_pos fixed 2-D sin-cos
    c      = TimestepEmbedder(t) + LabelEmbedding(y)  (B, D)      y dropped to the null class with p = 0.1
    tokens = Block(tokens, c)  x depth                (B, L, D)
    out    = Linear(adaLN(LN(tokens), c))            (B, L, P P C_out) -> unpatchify -> (B, C_out, H, W)

**adaLN-Zero block** (Sec. 3.2). Instead of LayerNorm's learned scale and shift, a regression from c gives, per
block, six vectors of D: shift, scale and a residual gate for the attention and for the MLP::

    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = Linear(SiLU(c)).chunk(6)
    x = x + gate_msa * MSA(LN(x) (1 + scale_msa) + shift_msa)
    x = x + gate_mlp * MLP(LN(x) (1 + scale_mlp) + shift_mlp)

The regression is zero-initialised ("-Zero"), so every gate starts at 0 and every block starts as the identity; the
final layer is zero-initialised too, so a fresh DiT outputs 0. Hence the first backward pass reaches only the final
linear layer; after one step the patch embedding and the adaLN regressions get gradients too, and from the third pass
(after two steps) every parameter does.

**Guidance.** :func:`visionlab.models.samplers.guided` wraps any class-conditional network (this one included): it runs
the batch with its labels and with the null class (:attr:`DiT.null_class`) and returns uncond + s (cond - uncond) on
all output channels (the reference code guides only the first three).

Shape legend: B batch, C channels, H, W height and width, P patch size, L tokens, D embedding dim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from einops import rearrange
from torch import nn

from visionlab.components.attention import Mlp, MultiHeadAttention
from visionlab.components.embeddings import LabelEmbedding, PatchEmbed, TimestepEmbedder, sincos_2d
from visionlab.components.initialization import xavier_uniform_init
from visionlab.util.errors import ConfigError
from visionlab.util.presets import from_preset


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Adaptive LayerNorm's affine part: x (B, L, D) * (1 + scale (B, D)) + shift (B, D)."""
    return x * (1 + scale[:, None]) + shift[:, None]  # (B, L, D)


@dataclass
class DiTConfig:
    """Every hyper-parameter of a DiT; the defaults are DiT-XL/2 on 32 x 32 x 4 latents (256 x 256 ImageNet)."""

    input_size: int = 32  # H = W of the input (latent) image; the positional embedding is built for it
    patch_size: int = 2  # P: 2, 4 or 8 in the paper
    in_channels: int = 4  # C: 4 for Stable Diffusion's VAE latents, 1 or 3 for pixels
    dim: int = 1152  # D: token width
    depth: int = 28  # DiT blocks
    num_heads: int = 16  # attention heads; D must be divisible by it
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * D
    num_classes: int = 1000  # class labels 0 .. num_classes - 1, plus the null class num_classes; 0: unconditional
    class_dropout: float = 0.1  # probability of dropping a training label to the null class (guidance)
    learn_sigma: bool = True  # output 2C channels: eps and the variance interpolation v
    frequency_dim: int = 256  # sinusoidal frequencies of the time-step embedding

    def __post_init__(self):
        if min(self.input_size, self.patch_size, self.in_channels, self.dim, self.depth, self.num_heads,
               self.frequency_dim) < 1 or self.num_classes < 0 or self.mlp_ratio <= 0:
            raise ConfigError(f"DiT sizes must be positive (num_classes >= 0), got {self}")
        if self.input_size % self.patch_size:
            raise ConfigError(f"input_size {self.input_size} is not divisible by patch_size {self.patch_size}")
        if self.dim % self.num_heads:
            raise ConfigError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.dim % 4:
            raise ConfigError(f"dim must be divisible by 4 for the 2-D sin-cos embedding, got {self.dim}")

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)


# Table 1 of the paper (S, B, L, XL), each with patch 2, 4 and 8 ("XL/2"), and a CPU model for 16 x 16 digits.
_SIZES = {"S": dict(depth=12, dim=384, num_heads=6), "B": dict(depth=12, dim=768, num_heads=12),
          "L": dict(depth=24, dim=1024, num_heads=16), "XL": dict(depth=28, dim=1152, num_heads=16)}
DIT_PRESETS: dict[str, dict] = {
    **{f"{size}/{p}": dict(**kw, patch_size=p) for size, kw in _SIZES.items() for p in (2, 4, 8)},
    "digits": dict(input_size=16, patch_size=2, in_channels=1, dim=128, depth=4, num_heads=4, num_classes=10),
}


DEFAULT_PRESET = "digits"  # DiT() and dit_config(): the command line's default (visionlab train dit)


def dit_config(preset: str = DEFAULT_PRESET, **overrides) -> DiTConfig:
    """A preset's config with some fields changed, e.g. ``dit_config("S/2", num_classes=10)``."""
    return from_preset(DiTConfig, DIT_PRESETS, preset, "DiT", **overrides)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning: gated, modulated attention and MLP."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)  # scale and shift come from c
        self.attn = MultiHeadAttention(dim, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), gelu="tanh")
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), c (B, D) -> (B, L, D)."""
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa[:, None] * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))  # (B, L, D)
        x = x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))  # (B, L, D)
        return x


class FinalLayer(nn.Module):
    """adaLN (shift, scale from c), then a linear map of every token to its P x P x C_out patch."""

    def __init__(self, dim: int, *, patch_size: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), c (B, D) -> (B, L, P P C_out)."""
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """Diffusion Transformer: patches + sin-cos positions -> adaLN-Zero blocks conditioned on (t, y) -> patches.

    ``DiT()`` is the command line's default network, the preset digits (16 x 16 grey, 10 classes); the paper's by
    name, e.g. ``DiT.from_preset("XL/2")``.

    >>> model = DiT.from_preset("digits")
    >>> model(torch.zeros(2, 1, 16, 16), torch.tensor([0, 999]), torch.tensor([3, 10])).shape
    torch.Size([2, 2, 16, 16])
    """

    def __init__(self, *, config: DiTConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = replace(config or dit_config(), **overrides)
        self.x_embedder = PatchEmbed(in_channels=cfg.in_channels, dim=cfg.dim, patch_size=cfg.patch_size)
        self.t_embedder = TimestepEmbedder(dim=cfg.dim, frequency_dim=cfg.frequency_dim)
        self.y_embedder = (LabelEmbedding(num_classes=cfg.num_classes, dim=cfg.dim, dropout=cfg.class_dropout)
                           if cfg.num_classes else None)
        grid = cfg.input_size // cfg.patch_size
        # fixed, not trained; rebuilt rather than saved, so it follows the code and any input size
        self.register_buffer("pos_embed", sincos_2d(cfg.dim, grid, grid)[None], persistent=False)  # (1, L, D)
        self.blocks = nn.ModuleList(DiTBlock(cfg.dim, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio)
                                    for _ in range(cfg.depth))
        self.final_layer = FinalLayer(cfg.dim, patch_size=cfg.patch_size, out_channels=cfg.out_channels)
        self.initialize_weights()

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides) -> "DiT":
        """``DiT.from_preset("S/2", num_classes=10)``; presets: see :data:`DIT_PRESETS`."""
        return cls(config=dit_config(preset, **overrides))

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """The paper's init: Xavier-uniform, biases 0; N(0, 0.02) embeddings; adaLN and output layer zero."""
        xavier_uniform_init(self, kinds=(nn.Linear,))
        w = self.x_embedder.proj.weight  # the patch conv is a Linear on flattened patches
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for layer in [*(b.adaLN_modulation[-1] for b in self.blocks), self.final_layer.adaLN_modulation[-1],
                      self.final_layer.linear]:  # adaLN-Zero: gates 0 -> identity blocks; output 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def null_class(self) -> int | None:
        """The label that asks for the unconditional output (``num_classes``), None if unconditional."""
        return self.config.num_classes if self.config.num_classes else None

    def positions(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """The sin-cos embedding for a grid of patches: (1, L, D); the stored buffer for the built size."""
        if (grid_h, grid_w) == (self.config.input_size // self.config.patch_size,) * 2:
            return self.pos_embed
        return sincos_2d(self.config.dim, grid_h, grid_w)[None].to(self.pos_embed)

    def condition(self, t: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        """c = t_emb + y_emb: (B, D). No labels (or an unconditional model): the null class."""
        device = self.pos_embed.device
        t = torch.as_tensor(t, device=device).reshape(-1).expand(batch)  # (B,)
        c = self.t_embedder(t)  # (B, D)
        if self.y_embedder is not None:
            if y is None:
                y = torch.full((batch,), self.config.num_classes, dtype=torch.long, device=device)
            c = c + self.y_embedder(y)  # training: labels dropped to the null class with p = class_dropout
        return c

    def unpatchify(self, x: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        """(B, L, P P C_out) -> (B, C_out, H, W)."""
        p = self.config.patch_size
        return rearrange(x, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=grid_h, w=grid_w, p1=p, p2=p)  # (B, C, H, W)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B, C, H, W), t (B,), labels y (B,) or None -> (B, C_out, H, W), C_out = 2C with learned sigma."""
        grid_h, grid_w = self.x_embedder.grid_size(*x.shape[-2:])  # checks divisibility by P
        tokens = self.x_embedder(x) + self.positions(grid_h, grid_w)  # (B, L, D)
        c = self.condition(t, y, x.shape[0])  # (B, D)
        for block in self.blocks:
            tokens = block(tokens, c)  # (B, L, D)
        out = self.final_layer(tokens, c)  # (B, L, P P C_out)
        return self.unpatchify(out, grid_h, grid_w)  # (B, C_out, H, W)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
