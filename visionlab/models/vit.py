"""Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021).

ViT reads an image as a sentence of patches. With N = (H/P)(W/P) patches x_p^i of P x P pixels, a patch embedding E,
a learned [CLS] token x_class and positional embeddings E_pos (the paper's Eq. 1-4)::

    z_0  = [x_class; x_p^1 E; ...; x_p^N E] + E_pos          (1)  (B, 1 + N, D)
    z'_l = MSA(LN(z_{l-1})) + z_{l-1},   l = 1 .. depth      (2)
    z_l  = MLP(LN(z'_l)) + z'_l                               (3)
    y    = LN(z_depth^0)                                      (4)  the [CLS] token's output -> linear head

Every step is a named submodule, so forward hooks see the shapes the notes derive by hand (ViT-B/16, 224 x 224)::

    input                          (1, 3, 224, 224)
    patch_embed.proj      conv     (1, 768, 14, 14)     kernel = stride = P = 16
    patch_embed.flatten            (1, 768, 196)
    patch_embed.transpose          (1, 196, 768)
    cls_token             [CLS]    (1, 197, 768)        L = (H/P)(W/P) + 1
    pos_embed             + E_pos  (1, 197, 768)
    encoder.blocks.0 .. 11         (1, 197, 768)
    encoder.norm          LN       (1, 197, 768)
    pool                  token 0  (1, 768)
    head                           (1, 1000)

Other input sizes (also non-square) work as long as they are multiples of P: the learned positional embedding is
resized bicubically to the new patch grid. ``pool="mean"`` drops the [CLS] token and averages the patch tokens;
``pos="sincos"`` uses fixed 2-D sine-cosine positions instead of learned ones.

Shape legend: B batch, C channels, H, W height and width, P patch size, L tokens, D embedding dim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from visionlab.components.attention import POOLS, TokenPool, TransformerEncoder, init_vit_weights
from visionlab.components.embeddings import (ClassToken, LearnedPositionalEmbedding, PatchEmbed,
                                             SinCosPositionalEmbedding)
from visionlab.util.errors import ConfigError
from visionlab.util.presets import from_preset

POSITIONAL = ("learned", "sincos")


def image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """224 -> (224, 224); (H, W) stays (H, W)."""
    return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)


@dataclass
class ViTConfig:
    """Every hyper-parameter of a ViT; the defaults are ViT-B/16 for ImageNet-1k at 224 x 224."""

    image_size: int | tuple[int, int] = 224  # (H, W) the positional embedding is built for; other sizes interpolate
    patch_size: int = 16  # P: square patches of P x P pixels
    in_channels: int = 3  # C: 3 for RGB, 1 for grey
    num_classes: int = 1000  # 0: no head, forward returns the pooled features (B, D)
    dim: int = 768  # D: token width
    depth: int = 12  # transformer blocks
    num_heads: int = 12  # attention heads; D must be divisible by it
    mlp_dim: int = 3072  # hidden width of each block's MLP (4 D)
    dropout: float = 0.0  # after the positional embedding, in the MLP and after attention's projection
    attn_dropout: float = 0.0  # on the attention weights
    pos: str = "learned"  # "learned" (ViT) or "sincos" (fixed 2-D sine-cosine, MAE)
    pool: str = "cls"  # "cls": classify from the [CLS] token; "mean": average the patch tokens, no [CLS]
    qkv_bias: bool = True  # bias in the q, k, v projection (ViT, timm)
    gelu: str = "exact"  # "exact" or "tanh" approximation
    norm_eps: float = 1e-6  # LayerNorm epsilon (ViT / timm)

    def __post_init__(self):
        h, w = image_hw(self.image_size)
        p = self.patch_size
        if min(h, w, p, self.in_channels, self.dim, self.num_heads, self.mlp_dim) < 1 or self.num_classes < 0:
            raise ConfigError(f"ViT sizes must be positive (num_classes >= 0), got {self}")
        if h % p or w % p:
            raise ConfigError(f"image_size {(h, w)} is not divisible by patch_size {p}")
        if self.dim % self.num_heads:
            raise ConfigError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.pos not in POSITIONAL:
            raise ConfigError(f"pos must be one of {POSITIONAL}, got {self.pos!r}")
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {POOLS}, got {self.pool!r}")


# The paper's Table 1 (H uses 14 x 14 patches), and a model that trains on a laptop CPU in seconds.
VIT_PRESETS: dict[str, dict] = {
    "tiny": dict(image_size=16, patch_size=4, dim=32, depth=2, num_heads=4, mlp_dim=64, num_classes=10),
    "Ti": dict(dim=192, depth=12, num_heads=3, mlp_dim=768),
    "S": dict(dim=384, depth=12, num_heads=6, mlp_dim=1536),
    "B": dict(dim=768, depth=12, num_heads=12, mlp_dim=3072),
    "L": dict(dim=1024, depth=24, num_heads=16, mlp_dim=4096),
    "H": dict(patch_size=14, dim=1280, depth=32, num_heads=16, mlp_dim=5120),
}


DEFAULT_PRESET = "tiny"  # ViT() and vit_config(): the command line's default (visionlab train vit --preset)


def vit_config(preset: str = DEFAULT_PRESET, **overrides) -> ViTConfig:
    """A preset's config with some fields changed, e.g. ``vit_config("B", patch_size=32)`` for ViT-B/32."""
    return from_preset(ViTConfig, VIT_PRESETS, preset, "ViT", **overrides)


class ViT(nn.Module):
    """Vision Transformer: patches -> [CLS] + positions -> pre-norm transformer -> LayerNorm -> head.

    ``ViT()`` is the command line's default model, the preset tiny (16 x 16 RGB, 10 classes), with any field
    changed by keyword; the paper's sizes by name: ``ViT.from_preset("B")`` is ViT-B/16 (85.8 M parameters).

    >>> model = ViT()
    >>> model(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """

    def __init__(self, *, config: ViTConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = replace(config or vit_config(), **overrides)
        grid = tuple(s // cfg.patch_size for s in image_hw(cfg.image_size))  # (H/P, W/P)
        self.num_prefix_tokens = 1 if cfg.pool == "cls" else 0

        self.patch_embed = PatchEmbed(in_channels=cfg.in_channels, dim=cfg.dim, patch_size=cfg.patch_size)
        self.cls_token = ClassToken(cfg.dim) if self.num_prefix_tokens else nn.Identity()
        pos_cls = LearnedPositionalEmbedding if cfg.pos == "learned" else SinCosPositionalEmbedding
        self.pos_embed = pos_cls(grid_size=grid, dim=cfg.dim, num_prefix_tokens=self.num_prefix_tokens)
        self.pos_drop = nn.Dropout(cfg.dropout)
        self.encoder = TransformerEncoder(cfg.dim, depth=cfg.depth, num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim,
                                          qkv_bias=cfg.qkv_bias, dropout=cfg.dropout, attn_dropout=cfg.attn_dropout,
                                          gelu=cfg.gelu, norm_eps=cfg.norm_eps)
        self.pool = TokenPool(cfg.pool, num_prefix_tokens=self.num_prefix_tokens)
        self.head = nn.Linear(cfg.dim, cfg.num_classes) if cfg.num_classes else nn.Identity()
        init_vit_weights(self.encoder)
        init_vit_weights(self.head)

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides) -> "ViT":
        """``ViT.from_preset("B", num_classes=10)``; presets: see :data:`VIT_PRESETS`."""
        return cls(config=vit_config(preset, **overrides))

    def forward_features(self, x: torch.Tensor, *, return_attention: bool = False):
        """Images (B, C, H, W) -> normalised tokens (B, L, D), L = (H/P)(W/P) + 1 with [CLS].

        With ``return_attention`` also the list of ``depth`` attention maps (B, num_heads, L, L).
        """
        tokens = self.patch_embed(x)  # (B, N, D): conv -> flatten -> transpose; checks C and divisibility
        grid = self.patch_embed.grid_size(*x.shape[-2:])  # (H/P, W/P)
        tokens = self.cls_token(tokens)  # (B, 1 + N, D)
        tokens = self.pos_drop(self.pos_embed(tokens, grid))  # Eq. 1: + E_pos, (B, L, D)
        return self.encoder(tokens, return_attention=return_attention)  # Eq. 2-4: (B, L, D)

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        """Tokens (B, L, D) -> logits (B, num_classes), or the pooled features (B, D) with ``pre_logits``."""
        x = self.pool(x)  # [CLS] token or mean of patch tokens: (B, D)
        return x if pre_logits else self.head(x)  # (B, num_classes)

    def forward(self, x: torch.Tensor, *, return_attention: bool = False):
        """Images (B, C, H, W) -> logits (B, num_classes); with ``return_attention`` also the maps per block."""
        if return_attention:
            tokens, maps = self.forward_features(x, return_attention=True)
            return self.forward_head(tokens), maps
        return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
