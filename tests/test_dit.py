"""DiT: the paper's parameter counts, adaLN-Zero, the order in which gradients wake up, guidance, the time-step and
label embeddings, and parity with diffusers' DiTTransformer2DModel."""

import pytest
import torch
from einops import rearrange

from visionlab.components.embeddings import LabelEmbedding, TimestepEmbedder, sincos_2d, timestep_embedding
from visionlab.models.diffusion import GaussianDiffusion
from visionlab.models.dit import DIT_PRESETS, DiT, DiTBlock, dit_config, modulate
from visionlab.models.samplers import guided
from visionlab.util.errors import ConfigError, DataError


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# models.md: trainable counts for 32 x 32 x 4 latents, 1000 classes (+ null), learned sigma.
EXPECTED = {
    "S/2": 32_865_056, "S/4": 32_920_448, "S/8": 33_142_016,
    "B/2": 130_315_808, "B/4": 130_426_496, "B/8": 130_869_248,
    "L/2": 457_840_672, "L/4": 457_988_224, "L/8": 458_578_432,
    "XL/2": 674_834_720, "XL/4": 675_000_704, "XL/8": 675_664_640,
    "digits": 1_272_840,  # ours (16 x 16 x 1, D 128, depth 4, 10 classes), counted by hand: see the test below
}


@pytest.mark.parametrize("preset", list(EXPECTED))
def test_parameter_counts_match_the_paper(preset):
    with torch.device("meta"):
        model = DiT.from_preset(preset)
    assert trainable(model) == sum(p.numel() for p in model.parameters()) == EXPECTED[preset]


def test_digits_count_by_hand():
    d, blocks = 128, 4
    patch = 1 * 2 * 2 * d + d
    time = 256 * d + d + d * d + d  # Linear(256, D) - SiLU - Linear(D, D)
    labels = 11 * d  # 10 classes + null
    block = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + (d * 6 * d + 6 * d)
    final = (d * 2 * d + 2 * d) + (d * 2 * 2 * 2 + 8)  # adaLN (shift, scale), Linear(D, P P 2C)
    assert patch + time + labels + blocks * block + final == EXPECTED["digits"]


def test_every_preset_is_tested_and_the_frozen_positions_add_256_dim():
    assert set(EXPECTED) == set(DIT_PRESETS)
    with torch.device("meta"):
        model = DiT.from_preset("XL/2")
    assert model.pos_embed.shape == (1, 256, 1152) and not model.pos_embed.requires_grad
    assert trainable(model) + model.pos_embed.numel() == 675_129_632  # models.md, with the frozen embedding
    assert "pos_embed" not in model.state_dict()  # rebuilt, not saved


def tiny(**overrides):
    torch.manual_seed(0)
    return DiT.from_preset("digits", **overrides)


@pytest.mark.parametrize("learn_sigma", [True, False])
def test_shapes_and_no_nans(learn_sigma):
    model = tiny(learn_sigma=learn_sigma)
    x = torch.randn(3, 1, 16, 16)
    out = model(x, torch.tensor([0, 500, 999]), torch.tensor([0, 9, 10]))
    assert out.shape == (3, 2 if learn_sigma else 1, 16, 16) and torch.isfinite(out).all()
    assert model(x[:1], 3, None).shape[0] == 1  # scalar t; no label: the null class
    assert model(torch.randn(2, 1, 8, 12), torch.tensor([1, 2]), torch.tensor([1, 2])).shape == (2, out.shape[1], 8, 12)


def test_fixed_positions_are_the_2d_sincos_embedding():
    model = tiny()
    torch.testing.assert_close(model.pos_embed[0], sincos_2d(128, 8, 8))
    assert "pos_embed" not in dict(model.named_parameters())


def test_adaln_zero_makes_every_block_an_identity_and_the_output_zero():
    model = tiny()
    x, c = torch.randn(2, 64, 128), torch.randn(2, 128)
    for block in model.blocks:
        torch.testing.assert_close(block(x, c), x)
    out = model(torch.randn(2, 1, 16, 16), torch.tensor([3, 4]), torch.tensor([1, 2]))
    assert out.abs().max() == 0
    assert (model.final_layer.linear.weight == 0).all() and (model.final_layer.adaLN_modulation[1].weight == 0).all()
    assert model.y_embedder.table.weight.std().item() == pytest.approx(0.02, abs=0.003)


def test_block_follows_the_adaln_equations():
    torch.manual_seed(0)
    block = DiTBlock(32, num_heads=4)
    torch.nn.init.normal_(block.adaLN_modulation[1].weight, std=0.1)
    x, c = torch.randn(2, 5, 32), torch.randn(2, 32)
    shift1, scale1, gate1, shift2, scale2, gate2 = (block.adaLN_modulation[1](torch.nn.functional.silu(c))
                                                    .chunk(6, dim=1))
    def ln(h):
        return torch.nn.functional.layer_norm(h, (32,), eps=1e-6)  # no affine
    h = x + gate1[:, None] * block.attn(ln(x) * (1 + scale1[:, None]) + shift1[:, None])
    h = h + gate2[:, None] * block.mlp(ln(h) * (1 + scale2[:, None]) + shift2[:, None])
    torch.testing.assert_close(block(x, c), h)
    torch.testing.assert_close(modulate(x, shift1, scale1), x * (1 + scale1[:, None]) + shift1[:, None])


def nonzero_grads(model):
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_gradients_wake_up_layer_by_layer_and_reach_every_parameter_by_the_third_pass():
    """At init only the final linear layer has a gradient (everything else is behind its zero weight). After one
    step, the patch embedding and the adaLN regressions (through the gates) get one; the attention, MLP and the
    embeddings of t and y sit behind zero gates and a zero final modulation until the second step."""
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, t, y = torch.randn(4, 1, 16, 16), torch.tensor([1, 200, 500, 999]), torch.tensor([0, 3, 7, 10])
    target = torch.randn(4, 2, 16, 16)
    seen = []
    for _ in range(3):
        opt.zero_grad()
        (model(x, t, y) - target).square().mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        seen.append(nonzero_grads(model))
        opt.step()
    assert seen[0] == {"final_layer.linear.weight", "final_layer.linear.bias"}
    assert {"x_embedder.proj.weight", "blocks.0.adaLN_modulation.1.weight",
            "final_layer.adaLN_modulation.1.weight"} <= seen[1]
    assert not {"blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight", "t_embedder.mlp.0.weight",
                "y_embedder.table.weight"} & seen[1]
    assert seen[2] == {n for n, _ in model.named_parameters()}


def test_without_the_zero_init_one_backward_pass_reaches_every_parameter():
    model = tiny()
    for layer in [*(b.adaLN_modulation[1] for b in model.blocks), model.final_layer.adaLN_modulation[1],
                  model.final_layer.linear]:
        torch.nn.init.normal_(layer.weight, std=0.02)
    model(torch.randn(4, 1, 16, 16), torch.tensor([1, 200, 500, 999]), torch.tensor([0, 3, 7, 10])).square() \
        .mean().backward()
    assert nonzero_grads(model) == {n for n, _ in model.named_parameters()}


def randomised(**overrides):
    model = tiny(**overrides).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model


def test_guidance_applies_to_all_channels_and_scale_one_is_the_conditional_output():
    model = randomised()
    x, t, y = torch.randn(3, 1, 16, 16), torch.tensor([5, 50, 500]), torch.tensor([1, 2, 3])
    cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, 10))
    cfg = lambda m, scale: guided(m, scale=scale, null_class=m.null_class)(x, t, y)  # noqa: E731
    torch.testing.assert_close(cfg(model, 1.0), cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cfg(model, 0.0), uncond, atol=1e-5, rtol=1e-5)
    out = cfg(model, 4.0)
    torch.testing.assert_close(out, uncond + 4 * (cond - uncond), atol=1e-5, rtol=1e-5)  # both channels
    assert (cond - uncond).abs().max() > 1e-3  # the label matters
    with pytest.raises(ConfigError, match="class-conditional"):
        cfg(tiny(num_classes=0), 2.0)


def test_label_embedding_drops_to_the_null_class():
    torch.manual_seed(0)
    embed = LabelEmbedding(num_classes=10, dim=4, dropout=0.25)
    assert embed.table.num_embeddings == 11 and embed.null_class == 10
    y = torch.randint(0, 10, (4000,))
    kept = embed.drop(y)  # training mode: about a quarter become the null class, the rest stay
    dropped = kept == 10
    assert 0.22 < dropped.float().mean().item() < 0.28 and torch.equal(kept[~dropped], y[~dropped])
    embed.eval()
    assert torch.equal(embed.drop(y), y)
    force = torch.tensor([True, False])
    torch.testing.assert_close(embed(torch.tensor([3, 3]), force_drop=force), embed.table.weight[[10, 3]])
    with pytest.raises(DataError, match=r"labels must lie in \[0, 10\]"):
        embed(torch.tensor([11]))
    with pytest.raises(ConfigError):
        LabelEmbedding(num_classes=0, dim=4)


def test_timestep_embedder_is_an_mlp_on_the_sinusoids():
    torch.manual_seed(0)
    embed = TimestepEmbedder(dim=8, frequency_dim=16, hidden_dim=12)
    t = torch.tensor([0, 1, 999])
    mlp = embed.mlp
    expected = mlp[2](torch.nn.functional.silu(mlp[0](timestep_embedding(t, 16))))
    torch.testing.assert_close(embed(t), expected)
    assert embed(t.float() + 0.5).shape == (3, 8)


def test_unpatchify_inverts_the_patch_order():
    model = tiny()
    x = torch.randn(2, 2, 16, 16)
    tokens = rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=2, p2=2)  # (B, L, P P C)
    torch.testing.assert_close(model.unpatchify(tokens, 8, 8), x)


def test_config_errors():
    with pytest.raises(ConfigError, match="not divisible by patch_size"):
        dit_config("digits", patch_size=3)
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        dit_config("digits", num_heads=3)
    with pytest.raises(ConfigError, match="unknown DiT preset"):
        dit_config("XXL/2")
    with pytest.raises(DataError, match="not divisible by the patch size"):
        tiny()(torch.randn(1, 1, 15, 16), 0, None)
    with pytest.raises(DataError, match="expected 1 channels"):
        tiny()(torch.randn(1, 3, 16, 16), 0, None)


def test_a_tiny_dit_fits_a_fixed_batch_with_the_hybrid_loss():
    model = tiny()
    diffusion = GaussianDiffusion.from_preset("dit", timesteps=100)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(8, 1, 16, 16, generator=g) > 0.5).float() * 2 - 1
    y, t = torch.randint(0, 10, (8,), generator=g), torch.randint(0, 100, (8,), generator=g)
    noise = torch.randn(8, 1, 16, 16, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(10):
        out = diffusion.training_loss(model, x0, y=y, t=t, noise=noise)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        assert torch.isfinite(out["loss"]) and out["vb"] > 0
        losses.append(out["mse"].item())
    assert losses[-1] < 0.85 * losses[0]


# ---- parity with diffusers -------------------------------------------------------------------------------------------

def test_outputs_equal_diffusers_dit():
    """diffusers' DiT keeps a copy of the t / y embedders in every block and uses frequencies 10000^(-i/(half-1));
    with our embedders copied in and the original DiT's 10000^(-i/half) the two agree."""
    import diffusers
    model = randomised(depth=2)
    cfg = model.config
    ref = diffusers.DiTTransformer2DModel(
        num_attention_heads=cfg.num_heads, attention_head_dim=cfg.dim // cfg.num_heads, in_channels=1,
        out_channels=2, num_layers=cfg.depth, sample_size=16, patch_size=2, num_embeds_ada_norm=10,
        norm_eps=1e-6).eval()
    ours = dict(model.state_dict())
    state = {"pos_embed.proj.weight": ours["x_embedder.proj.weight"], "pos_embed.proj.bias": ours[
        "x_embedder.proj.bias"], "proj_out_1.weight": ours["final_layer.adaLN_modulation.1.weight"],
        "proj_out_1.bias": ours["final_layer.adaLN_modulation.1.bias"], "proj_out_2.weight": ours[
        "final_layer.linear.weight"], "proj_out_2.bias": ours["final_layer.linear.bias"]}
    for i in range(cfg.depth):
        ref.transformer_blocks[i].norm1.emb.time_proj.downscale_freq_shift = 0
        emb, blk = f"transformer_blocks.{i}.norm1.", f"blocks.{i}."
        for j, k in ((0, 1), (2, 2)):
            for p in ("weight", "bias"):
                state[f"{emb}emb.timestep_embedder.linear_{k}.{p}"] = ours[f"t_embedder.mlp.{j}.{p}"]
        state[f"{emb}emb.class_embedder.embedding_table.weight"] = ours["y_embedder.table.weight"]
        for p in ("weight", "bias"):
            state[f"{emb}linear.{p}"] = ours[f"{blk}adaLN_modulation.1.{p}"]
            for name, chunk in zip("qkv", ours[f"{blk}attn.qkv.{p}"].chunk(3)):
                state[f"transformer_blocks.{i}.attn1.to_{name}.{p}"] = chunk
            state[f"transformer_blocks.{i}.attn1.to_out.0.{p}"] = ours[f"{blk}attn.proj.{p}"]
            state[f"transformer_blocks.{i}.ff.net.0.proj.{p}"] = ours[f"{blk}mlp.fc1.{p}"]
            state[f"transformer_blocks.{i}.ff.net.2.{p}"] = ours[f"{blk}mlp.fc2.{p}"]
    ref.load_state_dict(state, strict=True)
    x, t, y = torch.randn(3, 1, 16, 16), torch.tensor([0, 17, 999]), torch.tensor([0, 9, 10])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y), ref(x, timestep=t, class_labels=y).sample, atol=1e-4, rtol=1e-4)
