"""ViViT models 1-4: exact parameter counts, the notes' shape flow, factorisation properties, init from a ViT."""

import pytest
import torch
from einops import rearrange

from visionlab.models.vit import ViT
from visionlab.models.vivit import VIVIT_MODELS, ViViT, ViViTConfig, factorised_attention_mask, vivit_config
from visionlab.util.errors import ConfigError, DataError


def count(module):
    return sum(p.numel() for p in module.parameters())


# models.md: ViViT-B, 32 frames, 224, tubelets 2x16x16, 400 classes.
EXPECTED = {
    "model 1": (dict(model=1), 88_954_000),
    "model 2": (dict(model=2), 115_062_928),
    "model 3": (dict(model=3), 117_320_080),  # with its video [CLS], as the reference counts it
    "model 2, average pooling": (dict(model=2, temporal_depth=0), 86_696_080),
    "model 4": (dict(model=4), 88_954_000),  # = model 1
    "model 3 as in the paper's text (no [CLS])": (dict(model=3, pool="mean"), 117_320_080 - 768),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_parameter_counts_match_the_reference(name):
    overrides, expected = EXPECTED[name]
    with torch.device("meta"):
        assert count(ViViT.from_preset("B", **overrides)) == expected


def test_larger_presets_build():
    with torch.device("meta"):
        large, huge = ViViT.from_preset("L"), ViViT.from_preset("H", model=2)
    assert count(large) > 300e6 and count(huge) > count(large)


def test_hooks_reproduce_the_notes_tubelet_shape_flow():
    seen = []
    steps = ["patch_embed.proj", "patch_embed.flatten", "patch_embed.transpose", "cls_token", "pos_embed",
             "encoder", "pool", "head"]
    with torch.device("meta"):
        model = ViViT.from_preset("B", num_frames=16)
        for name in steps:
            model.get_submodule(name).register_forward_hook(
                lambda m, i, o, name=name: seen.append((name, tuple(o.shape))))
        model(torch.empty(1, 3, 16, 224, 224))
    assert seen == [("patch_embed.proj", (1, 768, 8, 14, 14)), ("patch_embed.flatten", (1, 768, 1568)),
                    ("patch_embed.transpose", (1, 1568, 768)), ("cls_token", (1, 1569, 768)),
                    ("pos_embed", (1, 1569, 768)), ("encoder", (1, 1569, 768)), ("pool", (1, 768)),
                    ("head", (1, 400))]


def test_model_2_shape_flow_and_frame_sampling_on_meta():
    seen = {}
    with torch.device("meta"):
        model = ViViT.from_preset("B", model=2, num_frames=16)
        for name in ("encoder", "spatial_pool", "temporal_encoder", "pool"):
            model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: seen.update({name: o.shape}))
        model(torch.empty(1, 3, 16, 224, 224))
        frames = ViViT.from_preset("B", embedding="frame", num_frames=8).patch_embed(torch.empty(1, 3, 8, 224, 224))
    assert seen == {"encoder": (8, 197, 768), "spatial_pool": (8, 768), "temporal_encoder": (1, 9, 768),
                    "pool": (1, 768)}
    assert frames.shape == (1, 8 * 196, 768)


def tiny(**overrides):
    torch.manual_seed(0)
    return ViViT.from_preset("tiny", **overrides)


CASES = [(m, pool) for m in VIVIT_MODELS for pool in ("cls", "mean")]


@pytest.mark.parametrize("model_id, pool", CASES)
def test_tiny_shapes_gradients_and_no_nans(model_id, pool):
    model = tiny(model=model_id, pool=pool)
    if model_id == 3:  # the zero-initialised temporal projection blocks the gradient to temporal q, k, v at first
        with torch.no_grad():
            for block in model.encoder.blocks:
                block.temporal_attn.proj.weight.normal_(std=0.02)
    x = torch.randn(2, 3, 4, 16, 16)
    logits = model(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0 and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("model_id, pool", CASES)
def test_attention_maps_and_both_attention_paths_agree(model_id, pool):
    model = tiny(model=model_id, pool=pool).eval()
    x = torch.randn(2, 3, 4, 16, 16)
    logits, maps = model(x, return_attention=True)
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)
    for kind, per_block in maps.items():
        assert len(per_block) == (1 if kind == "temporal" and model_id == 2 else 2)
        for m in per_block:
            torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]))


def test_model_4_heads_attend_within_a_time_index_or_a_position():
    model = tiny(model=4).eval()
    _, maps = model(torch.randn(1, 3, 4, 16, 16), return_attention=True)
    a = maps["spatiotemporal"][0][0]  # (h, 1 + 2*16, 1 + 2*16): [CLS], then time-major tokens
    time = torch.arange(2).repeat_interleave(16)
    pos = torch.arange(16).repeat(2)
    other_time = time[:, None] != time[None]
    other_pos = pos[:, None] != pos[None]
    assert (a[:2, 1:, 1:][:, other_time] == 0).all() and (a[:2, 1:, 1:][:, ~other_time] > 0).all()  # spatial
    assert (a[2:, 1:, 1:][:, other_pos] == 0).all() and (a[2:, 1:, 1:][:, ~other_pos] > 0).all()  # temporal
    assert (a[:, 0] > 0).all() and (a[:, :, 0] > 0).all()  # the [CLS] sees and is seen by every token
    mask = factorised_attention_mask(2, 3, 4)
    assert mask.shape == (1, 4, 6, 6) and mask[0, 0].sum() == 18 and mask[0, 3].sum() == 12


def test_model_4_has_model_1s_parameters():
    one, four = tiny(model=1), tiny(model=4)
    four.load_state_dict(one.state_dict())  # same names and shapes
    x = torch.randn(1, 3, 4, 16, 16)
    assert not torch.allclose(one(x), four(x))  # but not the same attention


def perturb_first_time_index(x, t=2):
    y = x.clone()
    y[:, :, :t] += torch.randn_like(y[:, :, :t])
    return y


def test_model_2s_spatial_encoder_sees_one_time_index_at_a_time():
    model = tiny(model=2).eval()
    out = {}
    model.encoder.register_forward_hook(lambda m, i, o: out.setdefault("s", []).append(o))
    x = torch.randn(2, 3, 4, 16, 16)
    model(x)
    model(perturb_first_time_index(x))
    a, b = (rearrange(s, "(b t) l d -> b t l d", b=2) for s in out["s"])
    torch.testing.assert_close(a[:, 1], b[:, 1])  # time index 1 is untouched
    assert not torch.allclose(a[:, 0], b[:, 0])


def test_model_2_average_pooling_baseline():
    model = tiny(model=2, temporal_depth=0).eval()
    assert not hasattr(model, "temporal_encoder")
    x = torch.randn(2, 3, 4, 16, 16)
    frames = model.forward_features(x)  # (B, n_t, D): the spatial [CLS] of each time index
    assert frames.shape == (2, 2, 32)
    torch.testing.assert_close(model(x), model.head(frames.mean(1)))


def test_model_3_starts_as_a_per_frame_spatial_model():
    model = tiny(model=3, pool="mean").eval()  # no [CLS]: nothing else could carry information across time
    for block in model.encoder.blocks:
        assert block.temporal_attn.proj.weight.abs().sum() == 0 and block.temporal_attn.proj.bias.abs().sum() == 0
    x = torch.randn(2, 3, 4, 16, 16)
    a = rearrange(model.forward_features(x), "b (t n) d -> b t n d", t=2)
    b = rearrange(model.forward_features(perturb_first_time_index(x)), "b (t n) d -> b t n d", t=2)
    torch.testing.assert_close(a[:, 1], b[:, 1])  # no information crosses time yet
    assert not torch.allclose(a[:, 0], b[:, 0])
    model.train()
    model(x).square().sum().backward()
    assert model.encoder.blocks[0].temporal_attn.proj.weight.grad.abs().sum() > 0  # but it can learn to


@pytest.mark.parametrize("mode", ["central-frame", "inflate"])
@pytest.mark.parametrize("model_id, pool", [(2, "cls"), (2, "mean"), (3, "mean"), (3, "cls")])
def test_init_from_vit_reproduces_the_image_model_on_a_static_video(mode, model_id, pool):
    torch.manual_seed(0)
    vit = ViT.from_preset("tiny", pool=pool).eval()
    video_model = tiny(model=model_id, pool=pool).eval()
    video_model.init_from_vit(vit, mode=mode)
    frame = torch.randn(2, 3, 16, 16)
    video = frame[:, :, None].expand(-1, -1, 4, -1, -1)  # 4 equal frames -> 2 time indices
    image_tokens = vit.forward_features(frame)  # (B, p + 16, D)
    if model_id == 2:
        seen = []
        video_model.encoder.register_forward_hook(lambda m, i, o: seen.append(o))
        video_model(video)
        per_time = rearrange(seen[0], "(b t) l d -> b t l d", b=2)
    else:
        tokens = video_model.forward_features(video)
        if pool == "cls":  # model 3's one video [CLS] is the image's [CLS]
            torch.testing.assert_close(tokens[:, :1], image_tokens[:, :1], atol=1e-5, rtol=1e-4)
            tokens, image_tokens = tokens[:, 1:], image_tokens[:, 1:]
        per_time = rearrange(tokens, "b (t n) d -> b t n d", t=2)
    for t in range(2):
        torch.testing.assert_close(per_time[:, t], image_tokens, atol=1e-5, rtol=1e-4)


def test_frame_embedding_from_vit_matches_each_frame_of_any_video():
    torch.manual_seed(0)
    vit = ViT.from_preset("tiny").eval()
    model = tiny(model=2, embedding="frame").eval()
    model.init_from_vit(vit)
    seen = []
    model.encoder.register_forward_hook(lambda m, i, o: seen.append(o))
    video = torch.randn(1, 3, 4, 16, 16)  # four different frames, each its own time index
    model(video)
    for t in range(4):
        torch.testing.assert_close(seen[0][t], vit.forward_features(video[:, :, t])[0], atol=1e-5, rtol=1e-4)


def test_other_input_sizes_interpolate_the_positions():
    for model_id in VIVIT_MODELS:
        model = tiny(model=model_id).eval()
        assert model(torch.randn(1, 3, 8, 24, 16)).shape == (1, 10)


def test_model_names_and_errors():
    assert ViViTConfig(model="factorised-encoder").model == 2
    assert ViViTConfig(model=3).pool == "cls" and ViViTConfig(model=3, pool="mean").pool == "mean"
    model = tiny()
    with pytest.raises(DataError, match="5-D"):
        model(torch.randn(2, 3, 16, 16))
    with pytest.raises(DataError, match="frames = 3 is not divisible"):
        model(torch.randn(1, 3, 3, 16, 16))
    with pytest.raises(DataError, match="expected 3 channels"):
        model(torch.randn(1, 1, 4, 16, 16))
    with pytest.raises(ConfigError, match="model must be"):
        ViViTConfig(model=5)
    with pytest.raises(ConfigError, match="even num_heads"):
        vivit_config("tiny", model=4, num_heads=1)
    with pytest.raises(ConfigError, match="not divisible by the tubelet"):
        vivit_config("tiny", num_frames=5)
    with pytest.raises(ConfigError, match="same dim"):
        model.init_from_vit(ViT.from_preset("tiny", dim=64))
