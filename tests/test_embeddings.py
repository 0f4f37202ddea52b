"""Patch, tubelet and frame embeddings, [CLS], positional embeddings (learned, interpolated, sin-cos), time steps."""

import math

import pytest
import torch
from einops import rearrange

from visionlab.components.embeddings import (ClassToken, FrameEmbed, LearnedPositionalEmbedding, PatchEmbed,
                                             SinCosPositionalEmbedding, TubeletEmbed, sincos_2d, timestep_embedding,
                                             uniform_frame_sampling)
from visionlab.util.errors import ConfigError, DataError


def shapes_of(module, x, names):
    """Run module(x) and record each named submodule's output shape, in call order."""
    seen, handles = [], []
    for name in names:
        sub = module.get_submodule(name)
        handles.append(sub.register_forward_hook(lambda m, i, o, name=name: seen.append((name, tuple(o.shape)))))
    module(x)
    for h in handles:
        h.remove()
    return seen


def test_patch_embed_steps_are_observable_with_hooks():
    with torch.device("meta"):
        embed = PatchEmbed(in_channels=3, dim=768, patch_size=16)
        steps = shapes_of(embed, torch.empty(1, 3, 224, 224), ["proj", "flatten", "transpose"])
    assert steps == [("proj", (1, 768, 14, 14)), ("flatten", (1, 768, 196)), ("transpose", (1, 196, 768))]


def test_patch_embed_is_a_linear_map_of_flattened_patches_in_row_major_order():
    torch.manual_seed(0)
    embed = PatchEmbed(in_channels=2, dim=5, patch_size=4)
    x = torch.randn(3, 2, 8, 12)
    patches = rearrange(x, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=4, p2=4)  # (B, L, C P^2)
    expected = patches @ embed.proj.weight.reshape(5, -1).T + embed.proj.bias
    torch.testing.assert_close(embed(x), expected)
    assert embed.grid_size(8, 12) == (2, 3)


def test_patch_embed_errors():
    embed = PatchEmbed(in_channels=3, dim=8, patch_size=4)
    with pytest.raises(DataError, match="width = 10 is not divisible by the patch size 4"):
        embed(torch.zeros(1, 3, 8, 10))
    with pytest.raises(DataError, match="expected 3 channels"):
        embed(torch.zeros(1, 1, 8, 8))
    with pytest.raises(DataError, match="4-D"):
        embed(torch.zeros(3, 8, 8))


def test_tubelet_embed_notes_shapes_and_time_major_order():
    with torch.device("meta"):
        embed = TubeletEmbed(in_channels=3, dim=768, tubelet_size=(2, 16, 16))
        steps = shapes_of(embed, torch.empty(1, 3, 16, 224, 224), ["proj", "flatten", "transpose"])
    assert steps == [("proj", (1, 768, 8, 14, 14)), ("flatten", (1, 768, 1568)), ("transpose", (1, 1568, 768))]
    torch.manual_seed(0)
    embed = TubeletEmbed(in_channels=3, dim=4, tubelet_size=(2, 2, 2))
    x = torch.randn(2, 3, 4, 4, 6)
    tubes = rearrange(x, "b c (t p0) (h p1) (w p2) -> b (t h w) (c p0 p1 p2)", p0=2, p1=2, p2=2)
    torch.testing.assert_close(embed(x), tubes @ embed.proj.weight.reshape(4, -1).T + embed.proj.bias)
    with pytest.raises(DataError, match="frames = 5 is not divisible"):
        embed(torch.zeros(1, 3, 5, 4, 4))


@pytest.mark.parametrize("mode", ["central-frame", "inflate"])
def test_tubelets_from_a_2d_kernel_embed_a_static_video_as_the_image(mode):
    torch.manual_seed(0)
    image_embed = PatchEmbed(in_channels=3, dim=6, patch_size=4)
    tubelet = TubeletEmbed(in_channels=3, dim=6, tubelet_size=(3, 4, 4))
    tubelet.init_from_2d(image_embed.proj.weight, image_embed.proj.bias, mode=mode)
    frame = torch.randn(2, 3, 8, 8)
    video = frame[:, :, None].expand(-1, -1, 6, -1, -1)  # all 6 frames equal
    tokens = rearrange(tubelet(video), "b (t n) d -> b t n d", t=2)
    for t in range(2):
        torch.testing.assert_close(tokens[:, t], image_embed(frame))
    moving = torch.randn(2, 3, 3, 8, 8)  # one tubelet in time: three different frames
    if mode == "central-frame":  # only the middle frame (index floor(3/2) = 1) is seen
        torch.testing.assert_close(tubelet(moving), image_embed(moving[:, :, 1]))
    else:  # inflation sees the mean frame
        torch.testing.assert_close(tubelet(moving), image_embed(moving.mean(2)))


def test_tubelet_init_options():
    tubelet = TubeletEmbed(in_channels=3, dim=6, tubelet_size=(2, 4, 4))
    with torch.no_grad():
        tubelet.proj.weight.zero_()
    tubelet.init_from_2d(torch.ones(6, 3, 4, 4), mode="random")
    assert tubelet.proj.weight.abs().sum() > 0  # a fresh random kernel
    tubelet.init_from_2d(torch.ones(6, 3, 4, 4), mode="central-frame")
    assert tubelet.proj.weight[:, :, 0].abs().sum() == 0 and (tubelet.proj.weight[:, :, 1] == 1).all()
    with pytest.raises(ConfigError, match="must be one of"):
        tubelet.init_from_2d(torch.ones(6, 3, 4, 4), mode="centre")
    with pytest.raises(ConfigError, match="shape"):
        tubelet.init_from_2d(torch.ones(6, 3, 8, 8))


def test_frame_embedding_cuts_each_frame_with_the_image_patch_embedding():
    torch.manual_seed(0)
    embed = FrameEmbed(in_channels=3, dim=8, patch_size=4)
    video = torch.randn(2, 3, 5, 8, 12)
    tokens = rearrange(embed(video), "b (t n) d -> b t n d", t=5)  # (B, T, N, D)
    for t in range(5):
        torch.testing.assert_close(tokens[:, t], embed.patch(video[:, :, t]))
    assert embed.grid_size(5, 8, 12) == (5, 2, 3)


def test_uniform_frame_sampling():
    video = torch.arange(32.0).reshape(1, 1, 32, 1, 1).expand(2, 3, -1, 4, 4)
    picked = uniform_frame_sampling(video, 8)
    assert picked.shape == (2, 3, 8, 4, 4)
    assert picked[0, 0, :, 0, 0].tolist() == [2, 6, 10, 14, 18, 22, 26, 30]  # the middle of each 4-frame segment
    with pytest.raises(DataError, match="cannot sample 40 frames"):
        uniform_frame_sampling(video, 40)


def test_class_token_prepends_a_small_learned_vector():
    torch.manual_seed(0)
    cls = ClassToken(384)
    x = torch.randn(3, 5, 384)
    out = cls(x)
    assert out.shape == (3, 6, 384)
    torch.testing.assert_close(out[:, 1:], x)
    assert (out[:, 0] == cls.token[0]).all()
    assert 0.5e-6 < cls.token.std().item() < 2e-6  # normal, std 1e-6


def test_learned_positional_embedding_init_and_add():
    torch.manual_seed(0)
    pos = LearnedPositionalEmbedding(grid_size=(14, 14), dim=192, num_prefix_tokens=1)
    assert pos.weight.shape == (1, 197, 192)
    assert abs(pos.weight.std().item() - 0.02) < 0.001
    x = torch.randn(2, 197, 192)
    torch.testing.assert_close(pos(x), x + pos.weight)
    with pytest.raises(DataError, match="197 tokens, input has 196"):
        pos(x[:, 1:])


def test_interpolation_keeps_cls_and_the_row_column_layout():
    pos = LearnedPositionalEmbedding(grid_size=(4, 4), dim=3, num_prefix_tokens=1)
    with torch.no_grad():  # channel 0 = row index, channel 1 = column index, channel 2 = 7 everywhere
        rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
        pos.weight[0, 1:] = torch.stack([rows.flatten(), cols.flatten(), torch.full((16,), 7.0)], 1)
        pos.weight[0, 0] = torch.tensor([-1.0, -2.0, -3.0])
    assert pos.interpolate((4, 4)) is pos.weight
    out = pos.interpolate((3, 6))
    assert out.shape == (1, 1 + 18, 3)
    assert out[0, 0].tolist() == [-1.0, -2.0, -3.0]
    grid = out[0, 1:].reshape(3, 6, 3)  # (h, w, D)
    torch.testing.assert_close(grid[..., 2], torch.full((3, 6), 7.0))  # a constant stays constant
    assert torch.allclose(grid[:, :1, 0], grid[:, :, 0]) and (grid[1:, 0, 0] > grid[:-1, 0, 0]).all()  # rows
    assert torch.allclose(grid[:1, :, 1], grid[:, :, 1]) and (grid[0, 1:, 1] > grid[0, :-1, 1]).all()  # columns
    assert pos(torch.zeros(2, 19, 3), (3, 6)).shape == (2, 19, 3)


def test_interpolation_in_1d_and_3d():
    pos1 = LearnedPositionalEmbedding(grid_size=(4,), dim=8, num_prefix_tokens=1)
    pos3 = LearnedPositionalEmbedding(grid_size=(2, 3, 3), dim=8, num_prefix_tokens=0)
    assert pos1.interpolate((8,)).shape == (1, 9, 8)
    assert pos3.interpolate((4, 2, 5)).shape == (1, 40, 8)
    with pytest.raises(DataError, match="3-D grid"):
        pos3.interpolate((4, 4))


def test_sincos_2d_values():
    dim = 16
    emb = sincos_2d(dim, 3, 4)  # (12, 16), tokens row after row
    assert emb.shape == (12, dim)
    origin = emb[0]
    assert origin[:4].abs().max() == 0 and (origin[4:8] == 1).all()  # sin(0) = 0, cos(0) = 1 (x half)
    omega = 1 / 10000 ** (torch.arange(4) / 4)
    x1 = emb[1]  # row 0, column 1: the first half encodes x = 1, the second half y = 0
    torch.testing.assert_close(x1[:8], torch.cat([torch.sin(omega), torch.cos(omega)]))
    torch.testing.assert_close(x1[8:], origin[8:])
    y1 = emb[4]  # row 1, column 0
    torch.testing.assert_close(y1[8:], torch.cat([torch.sin(omega), torch.cos(omega)]))
    with pytest.raises(ConfigError, match="divisible by 4"):
        sincos_2d(6, 2, 2)


def test_sincos_positional_module_has_no_parameters_and_zero_cls():
    pos = SinCosPositionalEmbedding(grid_size=(2, 2), dim=8, num_prefix_tokens=1)
    assert list(pos.parameters()) == []
    out = pos(torch.zeros(1, 1 + 6, 8), (2, 3))
    assert (out[0, 0] == 0).all()
    torch.testing.assert_close(out[0, 1:], sincos_2d(8, 2, 3))


def test_timestep_embedding():
    t = torch.tensor([0.0, 1.0, 250.5])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8)
    assert (emb[0, :4] == 1).all() and (emb[0, 4:] == 0).all()  # cos 0, sin 0
    assert emb[1, 0].item() == pytest.approx(math.cos(1.0)) and emb[1, 4].item() == pytest.approx(math.sin(1.0))
    f3 = 10000 ** (-3 / 4)  # the slowest frequency
    assert emb[2, 3].item() == pytest.approx(math.cos(250.5 * f3), abs=1e-5)
    odd = timestep_embedding(t, 7)
    assert odd.shape == (3, 7) and (odd[:, -1] == 0).all()
