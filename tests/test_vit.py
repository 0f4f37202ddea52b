"""ViT: exact parameter counts of every preset, the notes' shape flow via hooks, and behaviour on the tiny preset."""

import math

import pytest
import torch

from visionlab.components.losses import cross_entropy
from visionlab.models.vit import VIT_PRESETS, ViT, ViTConfig, vit_config
from visionlab.util.errors import ConfigError, DataError


def count(module):
    return sum(p.numel() for p in module.parameters())


# models.md: timm's counts at 224, patch 16, 1000 classes (H: patch 14, no head).
EXPECTED = {
    ("Ti", ()): 5_717_416,
    ("S", ()): 22_050_664,
    ("B", ()): 86_567_656,
    ("B", (("patch_size", 32),)): 88_224_232,
    ("L", ()): 304_326_632,
    ("H", (("num_classes", 0),)): 630_764_800,
}


@pytest.mark.parametrize("preset, overrides", list(EXPECTED), ids=lambda v: str(v))
def test_parameter_counts_match_the_reference(preset, overrides):
    with torch.device("meta"):  # nothing is allocated: ViT-H costs no memory here
        model = ViT.from_preset(preset, **dict(overrides))
    assert count(model) == EXPECTED[(preset, overrides)]


def test_every_preset_is_tested():
    assert {p for p, _ in EXPECTED} | {"tiny"} == set(VIT_PRESETS)


STEPS = ["patch_embed.proj", "patch_embed.flatten", "patch_embed.transpose", "cls_token", "pos_embed",
         *[f"encoder.blocks.{i}" for i in range(12)], "encoder.norm", "pool", "head"]


def test_hooks_reproduce_the_notes_shape_flow_of_vit_b16():
    seen = []
    with torch.device("meta"):
        model = ViT.from_preset("B")
        for name in STEPS:
            model.get_submodule(name).register_forward_hook(
                lambda m, i, o, name=name: seen.append((name, tuple(o.shape))))
        out = model(torch.empty(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    assert seen == [("patch_embed.proj", (1, 768, 14, 14)), ("patch_embed.flatten", (1, 768, 196)),
                    ("patch_embed.transpose", (1, 196, 768)), ("cls_token", (1, 197, 768)),
                    ("pos_embed", (1, 197, 768)),
                    *[(f"encoder.blocks.{i}", (1, 197, 768)) for i in range(12)],
                    ("encoder.norm", (1, 197, 768)), ("pool", (1, 768)), ("head", (1, 1000))]


def tiny(**overrides):
    torch.manual_seed(0)
    return ViT.from_preset("tiny", **overrides)


@pytest.mark.parametrize("pool, pos", [("cls", "learned"), ("mean", "learned"), ("cls", "sincos"), ("mean", "sincos")])
def test_tiny_shapes_gradients_and_no_nans(pool, pos):
    model = tiny(pool=pool, pos=pos)
    x = torch.randn(4, 3, 16, 16)
    tokens = model.forward_features(x)
    assert tokens.shape == (4, 16 + (pool == "cls"), 32)
    assert model.forward_head(tokens, pre_logits=True).shape == (4, 32)
    logits = model(x)
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0 and torch.isfinite(p.grad).all(), name


def test_pool_and_positions_change_the_parameters_as_expected():
    full = count(tiny())
    assert count(tiny(pool="mean")) == full - 32 - 32  # no [CLS] token, no positional slot for it
    assert count(tiny(pos="sincos")) == full - 17 * 32  # fixed positions: no parameters
    assert isinstance(tiny(pool="mean").cls_token, torch.nn.Identity)


def test_initialisation_follows_timm():
    model = ViT.from_preset("Ti", num_classes=10)
    assert abs(model.pos_embed.weight.std().item() - 0.02) < 0.001
    assert model.cls_token.token.abs().max() < 1e-5
    assert (model.head.bias == 0).all() and (model.encoder.blocks[0].attn.qkv.bias == 0).all()
    assert model.encoder.norm.eps == 1e-6


def test_attention_maps_and_both_attention_paths_agree():
    model = tiny().eval()
    x = torch.randn(2, 3, 16, 16)
    logits, maps = model(x, return_attention=True)
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)
    assert len(maps) == 2 and all(m.shape == (2, 4, 17, 17) for m in maps)
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(2, 4, 17))


def test_other_and_non_square_input_sizes_interpolate_the_positions():
    model = tiny().eval()
    assert model(torch.randn(2, 3, 16, 24)).shape == (2, 10)
    assert model.forward_features(torch.randn(2, 3, 8, 32)).shape == (2, 1 + 2 * 8, 32)
    # the resized embedding is what forward adds: check through the pos_embed hook
    seen = {}
    model.pos_embed.register_forward_hook(lambda m, i, o: seen.update(out=o, inp=i[0]))
    model(torch.randn(1, 3, 24, 24))
    expected = seen["inp"] + model.pos_embed.interpolate((6, 6))
    torch.testing.assert_close(seen["out"], expected)
    torch.testing.assert_close(model.pos_embed.interpolate((6, 6))[:, 0], model.pos_embed.weight[:, 0])  # [CLS]


def test_non_square_config():
    model = ViT.from_preset("tiny", image_size=(8, 16))
    assert model.pos_embed.weight.shape == (1, 1 + 2 * 4, 32)
    assert model(torch.randn(1, 3, 8, 16)).shape == (1, 10)


def test_clear_errors():
    model = tiny()
    with pytest.raises(DataError, match="height = 18 is not divisible by the patch size 4"):
        model(torch.randn(1, 3, 18, 16))
    with pytest.raises(DataError, match="expected 3 channels"):
        model(torch.randn(1, 1, 16, 16))
    with pytest.raises(ConfigError, match="not divisible by patch_size"):
        ViTConfig(image_size=30, patch_size=16)
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        vit_config("tiny", num_heads=5)
    with pytest.raises(ConfigError, match="unknown ViT preset"):
        vit_config("XL")
    with pytest.raises(ConfigError, match="pos must be"):
        tiny(pos="rope")


def test_num_classes_zero_returns_features():
    model = tiny(num_classes=0)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 32)


def test_tiny_vit_learns_a_tiny_task():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 4, (32,))
    model = ViT.from_preset("tiny", image_size=8, patch_size=2, num_classes=4)
    first = cross_entropy(model(x), y).item()
    assert first == pytest.approx(math.log(4), abs=0.3)  # a fresh model guesses
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(300):
        loss = cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    model.eval()
    assert (model(x).argmax(1) == y).float().mean().item() == 1.0  # 32 random images memorised
