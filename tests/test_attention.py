"""Multi-head attention (both paths), MLP, the pre-norm block, the encoder stack, pooling and ViT's init."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from visionlab.components.attention import (Mlp, MultiHeadAttention, TokenPool, TransformerBlock,
                                            TransformerEncoder, init_vit_weights)
from visionlab.util.errors import ConfigError


def count(module):
    return sum(p.numel() for p in module.parameters())


def manual_attention(attn, x):
    """softmax(Q K^T / sqrt(d)) V per head, from the qkv weights, written out with a loop."""
    b, length, dim = x.shape
    h = attn.num_heads
    d = dim // h
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias  # (B, L, 3 D): [q | k | v], each split into heads
    heads, maps = [], []
    for i in range(h):
        q, k, v = (qkv[..., j * dim + i * d: j * dim + (i + 1) * d] for j in range(3))
        a = torch.softmax(q @ k.transpose(1, 2) / d ** 0.5, dim=-1)
        heads.append(a @ v)
        maps.append(a)
    return torch.cat(heads, dim=-1) @ attn.proj.weight.T + attn.proj.bias, torch.stack(maps, 1)


def test_attention_equals_the_formula_head_by_head():
    torch.manual_seed(0)
    attn = MultiHeadAttention(24, num_heads=3).eval()
    x = torch.randn(2, 7, 24)
    expected, expected_maps = manual_attention(attn, x)
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)
    out, maps = attn(x, return_attention=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(maps, expected_maps)


def test_sdpa_and_explicit_paths_agree_with_and_without_a_mask():
    torch.manual_seed(1)
    attn = MultiHeadAttention(32, num_heads=4).eval()
    x = torch.randn(3, 10, 32)
    mask = torch.rand(1, 4, 10, 10) > 0.5
    mask |= torch.eye(10, dtype=torch.bool)  # every token may at least attend to itself
    for m in (None, mask):
        fast = attn(x, attn_mask=m)
        explicit, maps = attn(x, attn_mask=m, return_attention=True)
        torch.testing.assert_close(fast, explicit, atol=1e-6, rtol=1e-5)
        assert maps.shape == (3, 4, 10, 10)
        torch.testing.assert_close(maps.sum(-1), torch.ones(3, 4, 10))  # rows sum to 1
    assert (maps.masked_select(~mask.expand_as(maps)) == 0).all()  # masked pairs get no weight


def test_attention_dropout_only_in_training():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, num_heads=2, attn_dropout=0.5)
    x = torch.randn(2, 6, 16)
    attn.eval()
    torch.testing.assert_close(attn(x), attn(x))
    attn.train()
    assert not torch.allclose(attn(x), attn(x))


def test_attention_parameters_and_errors():
    attn = MultiHeadAttention(768, num_heads=12)
    assert count(attn) == 768 * 2304 + 2304 + 768 * 768 + 768  # qkv with bias + proj
    assert count(MultiHeadAttention(768, num_heads=12, qkv_bias=False)) == count(attn) - 2304
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        MultiHeadAttention(100, num_heads=12)


def test_mlp_gelu_exact_and_tanh():
    torch.manual_seed(0)
    exact = Mlp(8, 32)
    tanh = Mlp(8, 32, gelu="tanh")
    tanh.load_state_dict(exact.state_dict())
    x = torch.randn(4, 8) * 3
    torch.testing.assert_close(exact(x), exact.fc2(F.gelu(exact.fc1(x))))
    assert not torch.equal(exact(x), tanh(x))
    torch.testing.assert_close(exact(x), tanh(x), atol=1e-2, rtol=1e-2)
    with pytest.raises(ConfigError, match="gelu"):
        Mlp(8, 32, gelu="relu")


def test_block_is_pre_norm_with_residuals():
    torch.manual_seed(0)
    block = TransformerBlock(16, num_heads=4, mlp_dim=32).eval()
    init_vit_weights(block)
    with torch.no_grad():  # non-trivial norms, so that a missing or misplaced LayerNorm shows
        for norm in (block.norm1, block.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 5, 16) * 4 + 1
    y = x + block.attn(F.layer_norm(x, (16,), block.norm1.weight, block.norm1.bias, eps=1e-6))
    expected = y + block.mlp(F.layer_norm(y, (16,), block.norm2.weight, block.norm2.bias, eps=1e-6))
    torch.testing.assert_close(block(x), expected)
    assert block.norm1.eps == 1e-6
    out, maps = block(x, return_attention=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert maps.shape == (2, 4, 5, 5)


def test_vit_b_block_parameter_count():
    with torch.device("meta"):
        assert count(TransformerBlock(768, num_heads=12, mlp_dim=3072)) == 7_087_872


def test_encoder_stacks_blocks_and_a_final_norm():
    torch.manual_seed(0)
    enc = TransformerEncoder(16, depth=3, num_heads=2, mlp_dim=32).eval()
    x = torch.randn(2, 5, 16)
    y = x
    for block in enc.blocks:
        y = block(y)
    torch.testing.assert_close(enc(x), enc.norm(y))
    out, maps = enc(x, return_attention=True)
    torch.testing.assert_close(out, enc(x), atol=1e-5, rtol=1e-5)
    assert len(maps) == 3 and all(m.shape == (2, 2, 5, 5) for m in maps)
    assert isinstance(TransformerEncoder(16, depth=1, num_heads=2, mlp_dim=8, final_norm=False).norm, nn.Identity)


def test_token_pool():
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(TokenPool("cls")(x), x[:, 0])
    torch.testing.assert_close(TokenPool("mean", num_prefix_tokens=1)(x), x[:, 1:].mean(1))
    torch.testing.assert_close(TokenPool("mean", num_prefix_tokens=0)(x), x.mean(1))
    with pytest.raises(ConfigError, match="needs a \\[CLS\\]"):
        TokenPool("cls", num_prefix_tokens=0)
    with pytest.raises(ConfigError, match="pool"):
        TokenPool("max")


def test_vit_init():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.LayerNorm(512))
    with torch.no_grad():
        model[1].weight.fill_(3.0)
        model[1].bias.fill_(3.0)
    init_vit_weights(model)
    w = model[0].weight
    assert abs(w.std().item() - 0.02) < 0.0005  # std 0.02 (timm cuts at +-2, far out in the tails)
    assert (model[0].bias == 0).all() and (model[1].weight == 1).all() and (model[1].bias == 0).all()
