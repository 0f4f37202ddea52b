"""U-Nets: exact parameter counts, the paper's 572 -> 388, shapes, gradients, DDPM's zero-init and parity with
diffusers' UNet2DModel."""

import re

import pytest
import torch
import torch.nn.functional as F

from visionlab.models.ddpm_unet import (DIFFUSION_UNET_PRESETS, AttentionBlock, DiffusionUNet, DiffusionUNetConfig,
                                        ResBlock)
from visionlab.models.unet import UNET_PRESETS, UNet, unet_config
from visionlab.util.errors import ConfigError, DataError


def count(module):
    return sum(p.numel() for p in module.parameters())


# models.md (milesial, the original) and DDPM's CIFAR-10 model; celebahq256 is the paper's "114M"; the tiny ones are
# ours, pinned so that a change is noticed.
SEGMENTATION = {"milesial": 31_037_698, "bilinear": 17_263_042, "original": 31_030_658, "tiny": 29_634,
                "small": 482_754}
DIFFUSION = {"cifar10": 35_746_307, "celebahq256": 113_673_219, "digits": 1_114_209, "tiny32": 687_347}


@pytest.mark.parametrize("preset", list(SEGMENTATION))
def test_segmentation_parameter_counts(preset):
    with torch.device("meta"):
        assert count(UNet.from_preset(preset)) == SEGMENTATION[preset]


@pytest.mark.parametrize("preset", list(DIFFUSION))
def test_diffusion_parameter_counts(preset):
    with torch.device("meta"):
        assert count(DiffusionUNet.from_preset(preset)) == DIFFUSION[preset]


def test_every_preset_is_tested():
    assert set(SEGMENTATION) == set(UNET_PRESETS) and set(DIFFUSION) == set(DIFFUSION_UNET_PRESETS)


def test_count_formula_of_the_options():
    with torch.device("meta"):
        base = count(UNet.from_preset("milesial"))
        # the paper's form: conv biases (1 per channel) instead of BatchNorm (2 per channel), 1 input channel
        no_bn = count(UNet.from_preset("milesial", batch_norm=False, in_channels=1))
        channels = 2 * (64 + 128 + 256 + 512 + 1024) + 2 * (512 + 256 + 128 + 64)  # every conv of the DoubleConvs
        assert no_bn == base - 2 * 64 * 9 - channels
        # class conditioning adds (num_classes + 1) x 512; a learned variance 3 more output channels
        cifar = DIFFUSION["cifar10"]
        assert count(DiffusionUNet.from_preset("cifar10", num_classes=10)) == cifar + 11 * 512
        assert count(DiffusionUNet.from_preset("cifar10", learn_sigma=True)) == cifar + 3 * (128 * 9 + 1)


def test_original_unet_maps_572_to_388():
    with torch.device("meta"):
        model = UNet.from_preset("original")
        assert model(torch.empty(1, 1, 572, 572)).shape == (1, 2, 388, 388)
    assert model.output_size(572, 572) == (388, 388)
    assert UNet.from_preset("milesial").output_size(100, 60) == (100, 60)


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_segmentation_shapes_gradients_and_odd_sizes(upsampling):
    torch.manual_seed(0)
    model = UNet.from_preset("tiny", upsampling=upsampling, num_classes=3)
    x = torch.randn(2, 3, 30, 34)  # odd sizes after a pooling: the decoder pads by one pixel
    logits = model(x)
    assert logits.shape == (2, 3, 30, 34) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.randint(0, 3, (2, 30, 34))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0 and torch.isfinite(p.grad).all(), name


def test_unpadded_unet_crops_the_skip_connection():
    torch.manual_seed(0)
    model = UNet.from_preset("original", base_channels=4, depth=2).eval()
    x = torch.randn(1, 1, 44, 44)
    assert model(x).shape == (1, 2, *model.output_size(44, 44)) == (1, 2, 4, 4)
    with pytest.raises(DataError, match="too small"):
        model(torch.randn(1, 1, 30, 30))


def test_segmentation_unet_learns_a_threshold_mask():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    target = (x.mean(1) > 0.5).long()  # (B, H, W)
    model = UNet.from_preset("tiny")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_config_errors():
    with pytest.raises(ConfigError, match="upsampling must be"):
        unet_config("milesial", upsampling="pixelshuffle")
    with pytest.raises(ConfigError, match="unknown U-Net preset"):
        unet_config("resnet")
    with pytest.raises(ConfigError, match="not divisible by norm_groups"):
        DiffusionUNetConfig(base_channels=48)
    with pytest.raises(ConfigError, match="not divisible by 2"):
        DiffusionUNetConfig(image_size=36)
    with pytest.raises(DataError, match="expected images"):
        UNet.from_preset("tiny")(torch.zeros(1, 1, 16, 16))


# ---- DDPM U-Net ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset, shape", [("digits", (2, 1, 16, 16)), ("tiny32", (2, 3, 32, 32))])
@pytest.mark.parametrize("learn_sigma", [False, True])
def test_diffusion_unet_shapes_and_no_nans(preset, shape, learn_sigma):
    torch.manual_seed(0)
    model = DiffusionUNet.from_preset(preset, learn_sigma=learn_sigma, zero_init=False)
    y = torch.tensor([3, 10]) if model.config.num_classes else None  # 10: the null class
    out = model(torch.randn(shape), torch.tensor([0, 999]), y)
    assert out.shape == (shape[0], shape[1] * (2 if learn_sigma else 1), *shape[2:]) and torch.isfinite(out).all()
    assert model(torch.randn(1, *shape[1:]), 5, None if y is None else y[:1]).shape[0] == 1  # scalar t broadcasts


def test_zero_init_starts_every_block_as_identity_and_the_output_at_zero():
    torch.manual_seed(0)
    model = DiffusionUNet.from_preset("digits")
    x = torch.randn(2, 1, 16, 16)
    assert model(x, torch.tensor([1, 2]), torch.tensor([0, 1])).abs().max() == 0
    block = ResBlock(16, 16, temb_dim=8, dropout=0.0, groups=8)
    torch.nn.init.zeros_(block.conv2.weight), torch.nn.init.zeros_(block.conv2.bias)
    h = torch.randn(2, 16, 4, 4)
    torch.testing.assert_close(block(h, torch.randn(2, 8)), h)
    attn = model.mid[1]
    h = torch.randn(2, 64, 4, 4)
    torch.testing.assert_close(attn(h), h)


def nonzero_grads(model):
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_gradients_reach_every_parameter_within_three_backward_passes():
    """Zero-init: pass 1 reaches only the output conv (everything else sits behind its zero weight); after one step,
    pass 2 reaches everything not behind a still-zero conv2 / attention output; after two steps, pass 3 reaches all."""
    torch.manual_seed(0)
    model = DiffusionUNet.from_preset("digits")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, t, y = torch.randn(4, 1, 16, 16), torch.tensor([1, 200, 500, 999]), torch.tensor([0, 3, 7, 10])
    everything = {n for n, _ in model.named_parameters()}
    seen = []
    for _ in range(3):
        opt.zero_grad()
        (model(x, t, y) - x).square().mean().backward()  # a fresh model outputs 0: the target must not be 0
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        seen.append(nonzero_grads(model))
        opt.step()
    assert seen[0] == {"conv_out.weight", "conv_out.bias"}
    assert "down.0.blocks.0.conv2.weight" in seen[1] and "down.0.blocks.0.conv1.weight" not in seen[1]
    assert "time_embed.mlp.0.weight" not in seen[1]
    assert seen[2] == everything


def test_without_zero_init_one_backward_pass_reaches_every_parameter():
    torch.manual_seed(0)
    model = DiffusionUNet.from_preset("digits", zero_init=False)
    model(torch.randn(4, 1, 16, 16), torch.tensor([1, 200, 500, 999]), torch.tensor([0, 3, 7, 10])).square() \
        .mean().backward()
    assert nonzero_grads(model) == {n for n, _ in model.named_parameters()}


def test_attention_block_is_single_head_softmax_attention():
    torch.manual_seed(0)
    block = AttentionBlock(16, groups=4)
    torch.nn.init.normal_(block.attn.proj.weight)
    x = torch.randn(2, 16, 3, 5)
    h = block.norm(x).flatten(2).transpose(1, 2)  # (B, L, C)
    q, k, v = (h @ w.T + b for w, b in zip(block.attn.qkv.weight.chunk(3), block.attn.qkv.bias.chunk(3)))
    out = torch.softmax(q @ k.transpose(1, 2) / 16 ** 0.5, dim=-1) @ v  # softmax(Q K^T / sqrt(C)) V
    out = out @ block.attn.proj.weight.T + block.attn.proj.bias
    torch.testing.assert_close(block(x), x + out.transpose(1, 2).reshape(2, 16, 3, 5), atol=1e-5, rtol=1e-5)


def test_conditioning_changes_the_output_and_no_label_means_the_null_class():
    torch.manual_seed(0)
    model = DiffusionUNet.from_preset("digits", zero_init=False).eval()
    x = torch.randn(2, 1, 16, 16)
    t = torch.tensor([10, 10])
    a, b = model(x, t, torch.tensor([1, 1])), model(x, t, torch.tensor([2, 2]))
    assert (a - b).abs().max() > 1e-4
    assert (model(x, torch.tensor([500, 500]), torch.tensor([1, 1])) - a).abs().max() > 1e-4
    torch.testing.assert_close(model(x, t), model(x, t, torch.tensor([10, 10])))
    assert model.null_class == 10 and DiffusionUNet.from_preset("tiny32").null_class is None
    with pytest.raises(DataError, match="labels must lie in"):
        model(x, t, torch.tensor([11, 0]))
    with pytest.raises(DataError, match="multiple of 4"):
        model(torch.randn(1, 1, 18, 18), 0)


# ---- parity with diffusers' UNet2DModel ------------------------------------------------------------------------------

def ddpm_config(**kw):
    return dict(in_channels=3, out_channels=3, layers_per_block=2, down_block_types=(
        "DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"), up_block_types=(
        "UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), block_out_channels=(128, 256, 256, 256),
        attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6, dropout=0.1, sample_size=32, **kw)


def to_diffusers(state: dict) -> dict:
    """Our DiffusionUNet's state dict under diffusers' UNet2DModel names (q, k, v split from our qkv)."""
    rules = [(r"^time_embed\.mlp\.0\.", "time_embedding.linear_1."),
             (r"^time_embed\.mlp\.2\.", "time_embedding.linear_2."),
             (r"^label_embed\.table\.", "class_embedding."),
             (r"^(down|up)\.(\d+)\.blocks\.", r"\1_blocks.\2.resnets."),
             (r"^(down|up)\.(\d+)\.attns\.", r"\1_blocks.\2.attentions."),
             (r"^downsample\.(\d+)\.", r"down_blocks.\1.downsamplers.0."),
             (r"^upsample\.(\d+)\.", r"up_blocks.\1.upsamplers.0."),
             (r"^mid\.0\.", "mid_block.resnets.0."), (r"^mid\.1\.", "mid_block.attentions.0."),
             (r"^mid\.2\.", "mid_block.resnets.1."), (r"temb_proj\.1\.", "time_emb_proj."),
             (r"shortcut\.", "conv_shortcut."), (r"\.norm\.", ".group_norm."), (r"attn\.proj\.", "to_out.0."),
             (r"^norm_out\.", "conv_norm_out.")]
    out = {}
    for name, value in state.items():
        for pattern, repl in rules:
            name = re.sub(pattern, repl, name)
        if "attn.qkv." in name:
            for part, chunk in zip("qkv", value.chunk(3)):
                out[name.replace("attn.qkv.", f"to_{part}.")] = chunk
        else:
            out[name] = value
    return out


def test_ddpm_cifar10_count_equals_diffusers():
    import diffusers
    with torch.device("meta"):
        assert count(diffusers.UNet2DModel(**ddpm_config())) == DIFFUSION["cifar10"]


def test_outputs_equal_diffusers_unet2dmodel():
    import diffusers
    torch.manual_seed(0)
    ours = DiffusionUNet.from_preset("digits", channel_mult=(1, 2), num_res_blocks=2, attention_resolutions=(8,),
                                     base_channels=16, num_classes=10, learn_sigma=True).eval()
    for p in ours.parameters():  # no zeros anywhere: every path counts
        torch.nn.init.normal_(p, std=0.2)
    ref = diffusers.UNet2DModel(
        sample_size=16, in_channels=1, out_channels=2, block_out_channels=(16, 32), layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=None, norm_num_groups=8, norm_eps=1e-6, num_class_embeds=11).eval()
    ref.load_state_dict(to_diffusers(ours.state_dict()), strict=True)
    x, t, y = torch.randn(3, 1, 16, 16), torch.tensor([0, 17, 999]), torch.tensor([0, 9, 10])
    with torch.no_grad():
        torch.testing.assert_close(ours(x, t, y), ref(x, t, class_labels=y).sample, atol=1e-4, rtol=1e-4)
