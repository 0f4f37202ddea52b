"""Multi-head self-attention, the MLP, and the pre-norm transformer block that ViT, ViViT and DiT share.

**Attention** (Vaswani et al. 2017). Every token x_i (a row of X, (L, D)) is projected to a query, a key and a value:
``Q = X W_q, K = X W_k, V = X W_v``. Token i then takes a weighted average of all values, weighted by how well its
query matches each key::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V        # softmax over each row: the weights of a row sum to 1

The ``sqrt(d)`` keeps the dot products near unit variance so the softmax does not saturate. **Multi-head**: D is
split into h heads of d = D/h channels that attend independently; their outputs are concatenated and mixed by one
output projection W_o. One Linear of width 3D computes Q, K and V together (with bias, as ViT).

Two paths compute the same numbers: PyTorch's fused ``F.scaled_dot_product_attention`` (fast, memory-light; the
default), and the explicit formula above, used with ``return_attention=True`` to hand back the (B, h, L, L) maps.
An ``attn_mask`` (True = may attend) restricts who attends to whom (ViViT's model 4 uses one per head).

**Block** (pre-norm, as ViT, Eq. 2-3)::

    x = x + MSA(LN(x))
    x = x + MLP(LN(x))        # MLP: Linear(D, mlp_dim) - GELU - Linear(mlp_dim, D)

A :class:`TransformerEncoder` stacks ``depth`` blocks and ends with a LayerNorm. :func:`init_vit_weights` applies
ViT's (timm's) initialisation: Linear weights trunc-normal std 0.02, biases 0; LayerNorm weight 1, bias 0.

Shape legend: B batch, L tokens, D embedding dim (h heads of d channels each).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from visionlab.util.errors import ConfigError

GELU_APPROXIMATIONS = {"exact": "none", "tanh": "tanh"}
POOLS = ("cls", "mean")


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: one qkv Linear, h heads of softmax(QK^T/sqrt(d))V, an output projection."""

    def __init__(self, dim: int, *, num_heads: int = 8, qkv_bias: bool = True, attn_dropout: float = 0.0,
                 proj_dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5  # 1 / sqrt(d)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_dropout = attn_dropout
        self.attn_drop = nn.Dropout(attn_dropout)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_dropout)

    def forward(self, x: torch.Tensor, *, attn_mask: torch.Tensor | None = None, return_attention: bool = False):
        """(B, L, D) -> (B, L, D); with ``return_attention`` also the maps (B, h, L, L), rows summing to 1.

        ``attn_mask``: bool, broadcastable to (B, h, L, L), True where a query may attend to a key.
        """
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.num_heads)  # (B, h, L, d)
        if return_attention:
            scores = (q @ k.transpose(-2, -1)) * self.scale  # Q K^T / sqrt(d): (B, h, L, L)
            if attn_mask is not None:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            attn = scores.softmax(dim=-1)  # each row sums to 1
            out = self.attn_drop(attn) @ v  # (B, h, L, d)
        else:
            attn = None
            dropout = self.attn_dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)  # (B, h, L, d)
        out = rearrange(out, "b h l d -> b l (h d)")  # concatenate the heads: (B, L, D)
        out = self.proj_drop(self.proj(out))  # W_o
        return (out, attn) if return_attention else out


class Mlp(nn.Module):
    """The block's feed-forward network: Linear(D, hidden) - GELU - Linear(hidden, D)."""

    def __init__(self, dim: int, hidden_dim: int, *, gelu: str = "exact", dropout: float = 0.0):
        super().__init__()
        if gelu not in GELU_APPROXIMATIONS:
            raise ConfigError(f"gelu must be one of {tuple(GELU_APPROXIMATIONS)}, got {gelu!r}")
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU(approximate=GELU_APPROXIMATIONS[gelu])  # exact: x Phi(x); tanh: its approximation
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D)."""
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, *, num_heads: int, mlp_dim: int, qkv_bias: bool = True, dropout: float = 0.0,
                 attn_dropout: float = 0.0, gelu: str = "exact", norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_dropout=attn_dropout,
                                       proj_dropout=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_dim, gelu=gelu, dropout=dropout)

    def forward(self, x: torch.Tensor, *, attn_mask: torch.Tensor | None = None, return_attention: bool = False):
        """(B, L, D) -> (B, L, D); with ``return_attention`` also the block's maps (B, h, L, L)."""
        if return_attention:
            y, attn = self.attn(self.norm1(x), attn_mask=attn_mask, return_attention=True)
        else:
            y, attn = self.attn(self.norm1(x), attn_mask=attn_mask), None
        x = x + y  # ViT Eq. 2: z' = MSA(LN(z)) + z
        x = x + self.mlp(self.norm2(x))  # ViT Eq. 3: z = MLP(LN(z')) + z'
        return (x, attn) if return_attention else x


class TransformerEncoder(nn.Module):
    """``depth`` pre-norm blocks, then a final LayerNorm (ViT Eq. 4's LN)."""

    def __init__(self, dim: int, *, depth: int, num_heads: int, mlp_dim: int, qkv_bias: bool = True,
                 dropout: float = 0.0, attn_dropout: float = 0.0, gelu: str = "exact", norm_eps: float = 1e-6,
                 final_norm: bool = True):
        super().__init__()
        if depth < 0:
            raise ConfigError(f"depth must be >= 0, got {depth}")
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads=num_heads, mlp_dim=mlp_dim, qkv_bias=qkv_bias, dropout=dropout,
                             attn_dropout=attn_dropout, gelu=gelu, norm_eps=norm_eps) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=norm_eps) if final_norm else nn.Identity()

    def forward(self, x: torch.Tensor, *, attn_mask: torch.Tensor | None = None, return_attention: bool = False):
        """(B, L, D) -> (B, L, D); with ``return_attention`` also a list of ``depth`` maps (B, h, L, L)."""
        maps = []
        for block in self.blocks:
            if return_attention:
                x, attn = block(x, attn_mask=attn_mask, return_attention=True)
                maps.append(attn)
            else:
                x = block(x, attn_mask=attn_mask)
        x = self.norm(x)
        return (x, maps) if return_attention else x


class TokenPool(nn.Module):
    """Sequence -> one vector: the [CLS] token (token 0) or the mean of the other tokens."""

    def __init__(self, mode: str = "cls", *, num_prefix_tokens: int = 1):
        super().__init__()
        if mode not in POOLS:
            raise ConfigError(f"pool must be one of {POOLS}, got {mode!r}")
        if mode == "cls" and num_prefix_tokens < 1:
            raise ConfigError("pool='cls' needs a [CLS] token")
        self.mode, self.num_prefix_tokens = mode, num_prefix_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, D)."""
        if self.mode == "cls":
            return x[:, 0]  # (B, D)
        return x[:, self.num_prefix_tokens:].mean(dim=1)  # (B, D)


@torch.no_grad()
def init_vit_weights(module: nn.Module) -> None:
    """ViT / timm init of every Linear (trunc-normal std 0.02, bias 0) and LayerNorm (1, 0) inside ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)  # cut at +-2 (timm), i.e. +-100 std
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)



def attention_rollout(maps: list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020, Eq. 1): how much each token's output draws on each input token
    through all the blocks. Per block, average the heads and add the identity for the residual connection
    (A = 0.5 W_att + 0.5 I), renormalise the rows, then multiply through the layers: A~_l = A_l A~_{l-1}.

    ``maps``: one (B, h, L, L) map per block, first block first -> (B, L, L), rows summing to 1.
    """
    if not maps:
        raise ConfigError("attention rollout needs the maps of at least one block")
    rollout = None
    for attn in maps:
        a = attn.mean(dim=1)  # average the heads: (B, L, L)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)  # the residual: + I
        a = a / a.sum(dim=-1, keepdim=True)  # renormalise each row to 1
        rollout = a if rollout is None else a @ rollout  # A~_l = A_l A~_{l-1}: (B, L, L)
    return rollout


def position_similarity(pos: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every positional embedding with every other (ViT paper, Fig. 7 centre).

    ``pos``: (L, D), one row per grid position (no [CLS]) -> (L, L) in [-1, 1], 1 on the diagonal.
    """
    unit = F.normalize(pos, dim=-1)  # (L, D), rows of length 1
    return unit @ unit.T  # (L, L)
