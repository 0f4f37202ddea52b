"""ViViT: A Video Vision Transformer (Arnab et al., ICCV 2021) - its four models.

A video (B, C, T, H, W) becomes tokens either by **tubelet embedding** (a Conv3d with kernel = stride = (t, h, w)) or
by **uniform frame sampling** (each frame cut into 2-D patches). The notes' example, 16 x 224 x 224, tubelets
2 x 16 x 16, D = 768::

    (1, 3, 16, 224, 224) -conv-> (1, 768, 8, 14, 14) -flatten-> (1, 768, 1568) -transpose-> (1, 1568, 768)
    -[CLS]-> (1, 1569, 768) -+ E_pos-> (1, 1569, 768)            L = (T/t)(H/h)(W/w) + 1

With n_t = T/t time indices and n = (H/h)(W/w) positions, the four ways to attend over the n_t n tokens are:

1. **spatio-temporal** (``model=1``): one encoder, every token attends to every other: cost O((n_t n)^2).
2. **factorised encoder** (``model=2``): a spatial ViT encodes each time index on its own (with its own [CLS]);
   its n_t outputs go through a temporal encoder of L_t = 4 layers (with its own [CLS]) -> head ("late fusion").
   ``temporal_depth=0`` is the paper's baseline that averages the frame outputs over time instead.
3. **factorised self-attention** (``model=3``): each block attends spatially (the n tokens of one time index),
   then temporally (the n_t tokens at one position), then applies the MLP::

       y_s = MSA_s(LN(z)) + z,   y_t = MSA_t(LN(y_s)) + y_s,   z' = MLP(LN(y_t)) + y_t

   The temporal attention's output projection starts at zero, so the model starts as a per-frame image model.
   By default it has one video [CLS], as every model here and as the reference count (117,320,080 parameters at
   ViViT-B, 32 frames) has it: a copy joins every group (each time index in spatial attention, each position in
   temporal attention) and the copies are averaged back. The paper's text has no [CLS]: ``pool="mean"``.
4. **factorised dot-product** (``model=4``): model 1's layers, but half the heads may only attend within the same
   time index and half only within the same spatial position (an attention mask per head; the [CLS] sees and is
   seen by all). Same parameters as model 1; here computed with a mask, so the same maths, not the same speed.

:meth:`ViViT.init_from_vit` starts a ViViT from an image ViT: the patch kernel becomes a tubelet kernel
("central-frame" or "inflate", see :class:`~visionlab.components.embeddings.TubeletEmbed`), positional embeddings
are repeated over time, and the transformer layers are copied.

Shape legend: B batch, C channels, T frames, H, W height and width, L tokens, D embedding dim.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from einops import rearrange, reduce, repeat
from torch import nn

from visionlab.components.attention import (POOLS, Mlp, MultiHeadAttention, TokenPool, TransformerEncoder,
                                            init_vit_weights)
from visionlab.components.embeddings import (ClassToken, FrameEmbed, LearnedPositionalEmbedding, TubeletEmbed)
from visionlab.util.errors import ConfigError
from visionlab.util.presets import from_preset

if TYPE_CHECKING:  # models import components and util only; a ViT is just passed in
    from visionlab.models.vit import ViT

VIVIT_MODELS = {1: "spatio-temporal", 2: "factorised-encoder", 3: "factorised-self-attention",
                4: "factorised-dot-product"}
EMBEDDINGS = ("tubelet", "frame")


@dataclass
class ViViTConfig:
    """Every hyper-parameter of a ViViT; the defaults are ViViT-B, model 1, 32 x 224 x 224, Kinetics-400."""

    model: int | str = 1  # 1..4 or its name: "spatio-temporal", "factorised-encoder", ... (see VIVIT_MODELS)
    image_size: int | tuple[int, int] = 224  # (H, W) the positional embeddings are built for
    num_frames: int = 32  # T the positional embeddings are built for
    in_channels: int = 3  # C
    num_classes: int = 400  # 0: no head
    embedding: str = "tubelet"  # "tubelet" (Conv3d over t frames) or "frame" (uniform frame sampling, 2-D patches)
    patch_size: int = 16  # h = w: spatial size of a patch / tubelet
    tubelet_time: int = 2  # t: frames per tubelet (tubelet embedding only)
    dim: int = 768  # D
    depth: int = 12  # layers of the (spatial) encoder
    temporal_depth: int = 4  # L_t, model 2's temporal encoder; 0: average the frame outputs instead
    num_heads: int = 12  # model 4 needs an even number
    mlp_dim: int = 3072
    dropout: float = 0.0
    attn_dropout: float = 0.0
    pool: str = "cls"  # "cls" ([CLS] token) or "mean" (mean of the tokens; model 3 as the paper's text has it)
    qkv_bias: bool = True
    gelu: str = "exact"
    norm_eps: float = 1e-6

    def __post_init__(self):
        names = {v: k for k, v in VIVIT_MODELS.items()}
        if self.model not in VIVIT_MODELS and self.model not in names:
            raise ConfigError(f"model must be 1..4 or one of {tuple(names)}, got {self.model!r}")
        self.model = names.get(self.model, self.model)
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.embedding not in EMBEDDINGS:
            raise ConfigError(f"embedding must be one of {EMBEDDINGS}, got {self.embedding!r}")
        h, w = self.image_hw
        if h % self.patch_size or w % self.patch_size or self.num_frames % self.frames_per_token:
            raise ConfigError(f"video size {(self.num_frames, h, w)} is not divisible by the tubelet size "
                              f"{(self.frames_per_token, self.patch_size, self.patch_size)}")
        if self.dim % self.num_heads or (self.model == 4 and self.num_heads % 2):
            raise ConfigError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads}); "
                              "model 4 also needs an even num_heads")

    @property
    def image_hw(self) -> tuple[int, int]:
        """(H, W) of a frame."""
        return (self.image_size,) * 2 if isinstance(self.image_size, int) else tuple(self.image_size)

    @property
    def frames_per_token(self) -> int:
        return self.tubelet_time if self.embedding == "tubelet" else 1


# ViViT-B / L / H as in the paper (ViT's widths; H with 14 x 14 patches), and one for a laptop CPU.
VIVIT_PRESETS: dict[str, dict] = {
    "tiny": dict(image_size=16, num_frames=4, patch_size=4, dim=32, depth=2, temporal_depth=1, num_heads=4,
                 mlp_dim=64, num_classes=10),
    "B": dict(dim=768, depth=12, num_heads=12, mlp_dim=3072),
    "L": dict(dim=1024, depth=24, num_heads=16, mlp_dim=4096),
    "H": dict(patch_size=14, dim=1280, depth=32, num_heads=16, mlp_dim=5120),
}


DEFAULT_PRESET = "tiny"  # ViViT() and vivit_config(): the command line's default (visionlab train vivit --preset)


def vivit_config(preset: str = DEFAULT_PRESET, **overrides) -> ViViTConfig:
    """A preset's config with some fields changed, e.g. ``vivit_config("B", model=2, num_frames=16)``."""
    return from_preset(ViViTConfig, VIVIT_PRESETS, preset, "ViViT", **overrides)


def factorised_attention_mask(frames: int, positions: int, num_heads: int, *, num_prefix_tokens: int = 0,
                              device=None) -> torch.Tensor:
    """Model 4's mask (1, h, L, L), True = may attend: first h/2 heads within a time index, the rest within a position.

    Tokens are time-major (token i is at time i // n, position i % n); prefix tokens ([CLS]) attend and are attended
    by all.
    """
    time = torch.arange(frames, device=device).repeat_interleave(positions)  # (n_t n,)
    pos = torch.arange(positions, device=device).repeat(frames)  # (n_t n,)
    spatial = time[:, None] == time[None, :]  # same time index: (n_t n, n_t n)
    temporal = pos[:, None] == pos[None, :]  # same spatial position
    mask = torch.stack([spatial] * (num_heads // 2) + [temporal] * (num_heads // 2))  # (h, n_t n, n_t n)
    mask = nn.functional.pad(mask, (num_prefix_tokens, 0, num_prefix_tokens, 0), value=True)  # (h, L, L)
    return mask[None]  # (1, h, L, L)


class FactorisedSelfAttentionBlock(nn.Module):
    """Model 3's block: spatial MSA, then temporal MSA (output projection zero-initialised), then the MLP."""

    def __init__(self, dim: int, *, num_heads: int, mlp_dim: int, qkv_bias: bool = True, dropout: float = 0.0,
                 attn_dropout: float = 0.0, gelu: str = "exact", norm_eps: float = 1e-6):
        super().__init__()
        kw = dict(num_heads=num_heads, qkv_bias=qkv_bias, attn_dropout=attn_dropout, proj_dropout=dropout)
        # Names norm1 / attn / norm2 / mlp as in TransformerBlock, so an image ViT's block loads into them.
        self.norm1, self.attn = nn.LayerNorm(dim, eps=norm_eps), MultiHeadAttention(dim, **kw)
        self.temporal_norm, self.temporal_attn = nn.LayerNorm(dim, eps=norm_eps), MultiHeadAttention(dim, **kw)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=norm_eps), Mlp(dim, mlp_dim, gelu=gelu, dropout=dropout)
        init_vit_weights(self)
        nn.init.zeros_(self.temporal_attn.proj.weight)  # ViViT Sec. 3.4: start as the image model
        nn.init.zeros_(self.temporal_attn.proj.bias)

    @staticmethod
    def _attend(attn, norm, x, cls, groups: int, maps: list | None):
        """x + MSA(LN(x)) within each of the B G groups x (B G, m, D); a copy of the [CLS] (B, p, D) joins every
        group and the copies' outputs are averaged back into one."""
        x = torch.cat([repeat(cls, "b p d -> (b g) p d", g=groups), x], dim=1)  # (B G, p + m, D)
        if maps is None:
            x = x + attn(norm(x))
        else:
            y, a = attn(norm(x), return_attention=True)
            maps.append(a)
            x = x + y
        p = cls.shape[1]
        return reduce(x[:, :p], "(b g) p d -> b p d", "mean", g=groups), x[:, p:]  # (B, p, D), (B G, m, D)

    def forward(self, x: torch.Tensor, *, frames: int, num_prefix_tokens: int = 0, maps: dict | None = None):
        """(B, p + n_t n, D) -> (B, p + n_t n, D); ``maps`` (a dict of lists) collects the attention maps."""
        b, p = x.shape[0], num_prefix_tokens
        cls, x = x[:, :p], x[:, p:]  # (B, p, D), (B, n_t n, D)
        n = x.shape[1] // frames
        spatial_maps, temporal_maps = (None, None) if maps is None else (maps["spatial"], maps["temporal"])
        x = rearrange(x, "b (t n) d -> (b t) n d", t=frames)  # (B n_t, n, D): the tokens of one time index
        cls, x = self._attend(self.attn, self.norm1, x, cls, frames, spatial_maps)  # y_s
        x = rearrange(x, "(b t) n d -> (b n) t d", b=b)  # (B n, n_t, D): one position over time
        cls, x = self._attend(self.temporal_attn, self.temporal_norm, x, cls, n, temporal_maps)  # y_t
        x = rearrange(x, "(b n) t d -> b (t n) d", b=b)  # (B, n_t n, D)
        x = torch.cat([cls, x], dim=1)  # (B, p + n_t n, D)
        return x + self.mlp(self.norm2(x))  # z' = MLP(LN(y_t)) + y_t


class FactorisedSelfAttentionEncoder(nn.Module):
    """Model 3's encoder: ``depth`` factorised self-attention blocks and a final LayerNorm."""

    def __init__(self, dim: int, *, depth: int, norm_eps: float = 1e-6, **block_kw):
        super().__init__()
        self.blocks = nn.ModuleList(FactorisedSelfAttentionBlock(dim, norm_eps=norm_eps, **block_kw)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor, *, frames: int, num_prefix_tokens: int = 0, return_attention: bool = False):
        """(B, L, D) -> (B, L, D); with ``return_attention`` also {"spatial": [...], "temporal": [...]}."""
        maps = {"spatial": [], "temporal": []} if return_attention else None
        for block in self.blocks:
            x = block(x, frames=frames, num_prefix_tokens=num_prefix_tokens, maps=maps)
        x = self.norm(x)
        return (x, maps) if return_attention else x


class ViViT(nn.Module):
    """Video Vision Transformer, models 1-4 of Arnab et al.: video (B, C, T, H, W) -> logits (B, num_classes).

    Submodules (hook names): ``patch_embed`` (``.proj``, ``.flatten``, ``.transpose`` for tubelets), ``cls_token``,
    ``pos_embed``, ``encoder`` (model 2: the spatial encoder; then ``temporal_cls_token``, ``temporal_pos_embed``,
    ``temporal_encoder``), ``pool``, ``head``. ``ViViT()`` is the command line's default, the preset tiny; the
    paper's by name, e.g. ``ViViT.from_preset("B")``.

    >>> model = ViViT.from_preset("tiny", model=2)
    >>> model(torch.zeros(2, 3, 4, 16, 16)).shape
    torch.Size([2, 10])
    """

    def __init__(self, *, config: ViViTConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = replace(config or vivit_config(), **overrides)
        self.model = cfg.model
        p = self.num_prefix_tokens = 1 if cfg.pool == "cls" else 0
        h, w = cfg.image_hw
        grid = (cfg.num_frames // cfg.frames_per_token, h // cfg.patch_size, w // cfg.patch_size)  # (n_t, n_h, n_w)
        if cfg.embedding == "tubelet":
            size = (cfg.tubelet_time, cfg.patch_size, cfg.patch_size)
            self.patch_embed = TubeletEmbed(in_channels=cfg.in_channels, dim=cfg.dim, tubelet_size=size)
        else:
            self.patch_embed = FrameEmbed(in_channels=cfg.in_channels, dim=cfg.dim, patch_size=cfg.patch_size)
        block_kw = dict(num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim, qkv_bias=cfg.qkv_bias, dropout=cfg.dropout,
                        attn_dropout=cfg.attn_dropout, gelu=cfg.gelu, norm_eps=cfg.norm_eps)
        self.cls_token = ClassToken(cfg.dim) if p else nn.Identity()
        if self.model == 2:  # positions within a frame; the [CLS] of each time index has a slot
            self.pos_embed = LearnedPositionalEmbedding(grid_size=grid[1:], dim=cfg.dim, num_prefix_tokens=p)
        else:  # model 3: no slot, its [CLS] (if any) is added after the positions
            self.pos_embed = LearnedPositionalEmbedding(grid_size=grid, dim=cfg.dim,
                                                        num_prefix_tokens=p if self.model != 3 else 0)
        self.pos_drop = nn.Dropout(cfg.dropout)
        if self.model == 3:
            self.encoder = FactorisedSelfAttentionEncoder(cfg.dim, depth=cfg.depth, **block_kw)
        else:
            self.encoder = TransformerEncoder(cfg.dim, depth=cfg.depth, **block_kw)
            init_vit_weights(self.encoder)
        if self.model == 2:
            self.spatial_pool = TokenPool(cfg.pool, num_prefix_tokens=p)
            if cfg.temporal_depth:
                self.temporal_cls_token = ClassToken(cfg.dim) if p else nn.Identity()
                self.temporal_pos_embed = LearnedPositionalEmbedding(grid_size=grid[:1], dim=cfg.dim,
                                                                     num_prefix_tokens=p)
                self.temporal_encoder = TransformerEncoder(cfg.dim, depth=cfg.temporal_depth, **block_kw)
                init_vit_weights(self.temporal_encoder)
            else:  # the paper's average-pooling baseline: mean of the frame outputs, no temporal encoder
                p = 0
        self.pool = TokenPool(cfg.pool if p else "mean", num_prefix_tokens=p)
        self.head = nn.Linear(cfg.dim, cfg.num_classes) if cfg.num_classes else nn.Identity()
        init_vit_weights(self.head)

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides) -> "ViViT":
        """``ViViT.from_preset("B", model=3, num_frames=16)``; presets: see :data:`VIVIT_PRESETS`."""
        return cls(config=vivit_config(preset, **overrides))

    def forward_features(self, x: torch.Tensor, *, return_attention: bool = False):
        """Video (B, C, T, H, W) -> normalised tokens (B, L, D) of the last encoder.

        Models 1, 4: L = 1 + n_t n; model 2: L = 1 + n_t (temporal tokens; n_t frame vectors if temporal_depth=0);
        model 3: L = n_t n (+1 with [CLS]). With ``return_attention`` also a dict of lists of maps (B, h, L', L').
        """
        b, p = x.shape[0], self.num_prefix_tokens
        tokens = self.patch_embed(x)  # (B, n_t n, D); checks C and divisibility
        grid = self.patch_embed.grid_size(*x.shape[-3:])  # (n_t, n_h, n_w)
        n_t, n = grid[0], grid[1] * grid[2]
        maps = {}
        if self.model in (1, 4):
            tokens = self.pos_drop(self.pos_embed(self.cls_token(tokens), grid))  # (B, 1 + n_t n, D)
            mask = None
            if self.model == 4:
                mask = factorised_attention_mask(n_t, n, self.config.num_heads, num_prefix_tokens=p, device=x.device)
            out = self.encoder(tokens, attn_mask=mask, return_attention=return_attention)  # (B, 1 + n_t n, D)
            tokens, maps["spatiotemporal"] = out if return_attention else (out, None)
        elif self.model == 3:
            tokens = self.pos_drop(self.cls_token(self.pos_embed(tokens, grid)))  # (B, p + n_t n, D)
            out = self.encoder(tokens, frames=n_t, num_prefix_tokens=p, return_attention=return_attention)
            tokens, maps = out if return_attention else (out, {})
        else:  # model 2: each time index is an image for the spatial encoder
            tokens = rearrange(tokens, "b (t n) d -> (b t) n d", t=n_t)  # (B n_t, n, D)
            tokens = self.pos_drop(self.pos_embed(self.cls_token(tokens), grid[1:]))  # (B n_t, 1 + n, D)
            out = self.encoder(tokens, return_attention=return_attention)  # (B n_t, 1 + n, D)
            tokens, maps["spatial"] = out if return_attention else (out, None)
            tokens = rearrange(self.spatial_pool(tokens), "(b t) d -> b t d", b=b)  # one vector per time: (B, n_t, D)
            if self.config.temporal_depth:
                tokens = self.temporal_cls_token(tokens)  # (B, 1 + n_t, D)
                tokens = self.pos_drop(self.temporal_pos_embed(tokens, (n_t,)))  # (B, 1 + n_t, D)
                out = self.temporal_encoder(tokens, return_attention=return_attention)  # (B, 1 + n_t, D)
                tokens, maps["temporal"] = out if return_attention else (out, None)
        return (tokens, maps) if return_attention else tokens

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        """Tokens (B, L, D) -> logits (B, num_classes), or the pooled features (B, D) with ``pre_logits``."""
        x = self.pool(x)  # [CLS] token or mean over tokens: (B, D)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor, *, return_attention: bool = False):
        """Video (B, C, T, H, W) -> logits (B, num_classes); with ``return_attention`` also the maps."""
        if return_attention:
            tokens, maps = self.forward_features(x, return_attention=True)
            return self.forward_head(tokens), maps
        return self.forward_head(self.forward_features(x))

    @torch.no_grad()
    def init_from_vit(self, vit: ViT, *, mode: str = "central-frame") -> None:
        """Start from an image ViT of the same width, depth and heads (ViViT Sec. 3.4); the head stays as it is.

        ``mode`` initialises tubelets from the 2-D patch kernel: "central-frame", "inflate" or "random".
        """
        cfg, vcfg = self.config, vit.config
        same = ("dim", "depth", "num_heads", "mlp_dim", "patch_size", "in_channels", "pool")
        if any(getattr(cfg, k) != getattr(vcfg, k) for k in same) or vcfg.pos != "learned":
            raise ConfigError(f"init_from_vit needs a ViT with pos='learned' and the same {', '.join(same)}")
        if isinstance(self.patch_embed, TubeletEmbed):
            self.patch_embed.init_from_2d(vit.patch_embed.proj.weight, vit.patch_embed.proj.bias, mode=mode)
        else:
            self.patch_embed.patch.load_state_dict(vit.patch_embed.state_dict())
        p = self.num_prefix_tokens
        pos = vit.pos_embed.interpolate(self.pos_embed.grid_size[-2:])  # (1, p + n, D)
        if self.model == 2:
            self.pos_embed.weight.copy_(pos)
        else:  # the same spatial positions at every time index
            n_t = self.pos_embed.grid_size[0]
            patches = repeat(pos[:, p:], "1 n d -> 1 (t n) d", t=n_t)  # (1, n_t n, D)
            prefix = pos[:, :p] if self.model != 3 else pos[:, :0]
            self.pos_embed.weight.copy_(torch.cat([prefix, patches], dim=1))
        if p:  # model 3's [CLS] has no positional slot: fold the image model's into the token
            self.cls_token.token.copy_(vit.cls_token.token + (pos[:, :1] if self.model == 3 else 0))
        if self.model == 3:
            for block, image_block in zip(self.encoder.blocks, vit.encoder.blocks):
                block.load_state_dict(image_block.state_dict(), strict=False)  # all but the temporal attention
            self.encoder.norm.load_state_dict(vit.encoder.norm.state_dict())
        else:
            self.encoder.load_state_dict(vit.encoder.state_dict())
