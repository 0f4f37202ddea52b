"""DCGAN generator and discriminator: the reference parameter counts, DCGAN's architecture rules, the conditional
variants (projection discriminator), the losses against hand computations and WGAN-GP's per-sample penalty."""

import math

import pytest
import torch
from torch import nn

from visionlab.models.gan import (DCGAN_PRESETS, Discriminator, Generator, dcgan_config, discriminator_loss,
                                  generator_loss, gradient_penalty)
from visionlab.util.errors import ConfigError, DataError


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_dcgan_64_matches_the_reference_counts_exactly():
    # PyTorch's DCGAN example at 64 x 64 x 3, nz = 100, ngf = ndf = 64 (reference/models.md).
    assert count(Generator.from_preset("dcgan")) == 3_576_704
    assert count(Discriminator.from_preset("dcgan")) == 2_765_568


@pytest.mark.parametrize("preset", sorted(DCGAN_PRESETS))
@pytest.mark.parametrize("num_classes", [0, 10])
def test_every_preset_maps_noise_to_images_and_images_to_one_logit(preset, num_classes):
    torch.manual_seed(0)
    cfg = dcgan_config(preset, num_classes=num_classes)
    g, d = Generator(config=cfg), Discriminator(config=cfg)
    y = torch.tensor([0, 9, 3]) if num_classes else None
    x = g(torch.randn(3, cfg.nz), y)
    assert x.shape == (3, cfg.channels, cfg.image_size, cfg.image_size)
    assert x.abs().max() <= 1  # Tanh output
    assert d(x, y).shape == (3,)
    assert g(torch.randn(3, cfg.nz, 1, 1), y).shape == x.shape  # (B, nz, 1, 1) noise as in the DCGAN example


@pytest.mark.parametrize("size", [16, 32, 128])
def test_the_networks_grow_with_the_image_size(size):
    cfg = dcgan_config("digits", image_size=size, channels=3)
    stages = int(math.log2(size)) - 2
    g, d = Generator(config=cfg), Discriminator(config=cfg)
    ups = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    downs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(ups) == stages + 1 and len(downs) == stages + 1  # 1 -> 4 -> ... -> size; size -> ... -> 4 -> 1
    assert g(torch.randn(2, cfg.nz)).shape == (2, 3, size, size)


def test_dcgan_architecture_rules():
    g, d = Generator.from_preset("dcgan"), Discriminator.from_preset("dcgan")
    for net in (g, d):  # strided convolutions, no pooling, no fully connected layer
        assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Linear))
                       for m in net.modules())
    # BatchNorm everywhere but G's output layer and D's input layer
    assert isinstance(g.to_image[0], nn.ConvTranspose2d) and isinstance(g.to_image[1], nn.Tanh)
    assert len(g.to_image) == 2 and len(d.from_image) == 2 and isinstance(d.from_image[1], nn.LeakyReLU)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 4
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, nn.LeakyReLU) for m in g.modules())
    assert any(isinstance(m, nn.ReLU) for m in g.modules())
    # N(0, 0.02) weights (the largest layer has 2M of them: the sample std is within 1 %)
    w = g.blocks[0][0].weight
    assert abs(w.std().item() - 0.02) < 2e-4 and abs(w.mean().item()) < 2e-4
    bn = g.stem[1]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and torch.all(bn.bias == 0)


def test_wgan_gp_critic_uses_layer_norm_and_never_mixes_samples():
    cfg = dcgan_config("digits", d_norm="layer")
    d = Discriminator(config=cfg)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert count(d) == count(Discriminator(config=dcgan_config("digits")))  # same affine parameters as BatchNorm
    x = torch.randn(4, 1, 16, 16)
    alone = torch.cat([d(x[i:i + 1]) for i in range(4)])
    assert torch.allclose(d(x), alone, atol=1e-6)


def test_conditional_generator_reads_its_label():
    torch.manual_seed(0)
    g = Generator(config=dcgan_config("digits", num_classes=10)).eval()
    z = torch.randn(1, 64).repeat(2, 1)
    a, b = g(z, torch.tensor([1, 7]))
    assert g.stem[0].in_channels == 64 + 50  # [z, embed(y)]: nz + label_dim
    assert not torch.allclose(a, b)


def test_projection_discriminator_adds_the_inner_product_with_the_class_embedding():
    torch.manual_seed(0)
    d = Discriminator(config=dcgan_config("digits", num_classes=10))
    x, y = torch.randn(3, 1, 16, 16), torch.tensor([2, 5, 9])
    phi = d.forward_features(x)  # (B, 8 ndf, 4, 4) -> here (3, 64, 4, 4)
    assert phi.shape == (3, 64, 4, 4)
    psi = (d.head.weight[0] * phi).sum(dim=(1, 2, 3))  # the 4x4 "valid" conv = a dot product with its kernel
    projection = (d.label_embed.weight[y] * phi.sum(dim=(2, 3))).sum(dim=1)  # <embed(y), sum_hw phi(x)>
    assert torch.allclose(d(x, y), psi + projection, atol=1e-5)


def test_bad_inputs_give_clear_visionlab_errors():
    for size in (8, 24, 48, 100):
        with pytest.raises(ConfigError, match="power of two of at least 16"):
            dcgan_config("digits", image_size=size)
    with pytest.raises(ConfigError, match="unknown DCGAN preset"):
        dcgan_config("huge")
    with pytest.raises(ConfigError, match="d_norm"):
        dcgan_config("digits", d_norm="instance")
    g = Generator(config=dcgan_config("digits", num_classes=10))
    d = Discriminator(config=dcgan_config("digits", num_classes=10))
    z, x = torch.randn(2, 64), torch.randn(2, 1, 16, 16)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 9\] for 10 classes, got 3 .. 10"):
        g(z, torch.tensor([3, 10]))
    with pytest.raises(DataError, match="got -1 .. 0"):
        d(x, torch.tensor([-1, 0]))
    with pytest.raises(DataError, match="class-conditional: give labels"):
        g(z)
    with pytest.raises(DataError, match="1-D integer tensor"):
        d(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(DataError, match="unconditional; it takes no labels"):
        Generator(config=dcgan_config("digits"))(z, torch.tensor([0, 1]))
    with pytest.raises(DataError, match=r"reads images \(B, 1, 16, 16\)"):
        d(torch.randn(2, 3, 16, 16), torch.tensor([0, 1]))
    with pytest.raises(DataError, match="64 numbers per sample"):
        g(torch.randn(2, 100), torch.tensor([0, 1]))


# ------------------------------------------------------------------------------------------------ losses

D_REAL, D_FAKE = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])


def sp(v):  # softplus by hand: log(1 + e^v)
    return math.log1p(math.exp(v))


def test_non_saturating_loss_by_hand():
    expected_d = (sp(-2.0) + sp(1.0)) / 2 + (sp(0.5) + sp(-3.0)) / 2  # -log D(x) - log(1 - D(G(z)))
    expected_g = (sp(-0.5) + sp(3.0)) / 2  # -log D(G(z))
    assert discriminator_loss("ns", D_REAL, D_FAKE).item() == pytest.approx(expected_d, rel=1e-6)
    assert generator_loss("ns", D_FAKE).item() == pytest.approx(expected_g, rel=1e-6)
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731  the same through probabilities
    assert expected_g == pytest.approx(-(math.log(sigmoid(0.5)) + math.log(sigmoid(-3.0))) / 2)
    # stable where the naive form overflows
    assert math.isfinite(generator_loss("ns", torch.tensor([-200.0])).item())


def test_hinge_and_wasserstein_losses_by_hand():
    # hinge: mean(max(0, 1 - [2, -1])) + mean(max(0, 1 + [0.5, -3])) = (0 + 2) / 2 + (1.5 + 0) / 2
    assert discriminator_loss("hinge", D_REAL, D_FAKE).item() == pytest.approx(1.75)
    assert generator_loss("hinge", D_FAKE).item() == pytest.approx(1.25)  # -mean([0.5, -3])
    # WGAN critic: mean(d_fake) - mean(d_real) = -1.25 - 0.5
    assert discriminator_loss("wgan-gp", D_REAL, D_FAKE).item() == pytest.approx(-1.75)
    assert generator_loss("wgan-gp", D_FAKE).item() == pytest.approx(1.25)
    with pytest.raises(ConfigError, match="ns, hinge, wgan-gp"):
        generator_loss("lsgan", D_FAKE)


def test_gradient_penalty_of_a_linear_critic_is_known():
    # d(x) = <w, x>: the gradient is w everywhere, so GP = (||w|| - 1)^2 for any x_hat.
    w = nn.Parameter(torch.full((1, 1, 2, 2), 1.5))  # ||w||_2 = sqrt(4 * 2.25) = 3
    critic = lambda x: (w * x).sum(dim=(1, 2, 3))  # noqa: E731
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(4.0, rel=1e-6)  # (3 - 1)^2
    gp.backward()  # the penalty trains the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(w.grad, torch.full_like(w, 2 * 2 * 1.5 / 3))


def test_gradient_penalty_uses_one_interpolation_weight_per_sample():
    # d(x) = ||x||^2 / 2 has gradient x_hat, so each sample's norm is ||x_hat_i||: the mean is over per-sample terms.
    seen = {}

    def critic(x):
        seen["x_hat"] = x.detach().clone()
        return 0.5 * (x ** 2).sum(dim=(1, 2, 3))

    real = torch.zeros(4, 1, 3, 3)
    fake = torch.arange(1.0, 5.0).reshape(4, 1, 1, 1).expand(4, 1, 3, 3)  # sample i: all pixels i + 1
    eps = torch.tensor([0.0, 0.25, 0.5, 1.0])
    gp = gradient_penalty(critic, real, fake, eps=eps)
    norms = (1 - eps) * torch.arange(1.0, 5.0) * 3  # ||(1 - eps_i) fake_i|| = (1 - eps_i) (i + 1) sqrt(9)
    assert gp.item() == pytest.approx(((norms - 1) ** 2).mean().item(), rel=1e-6)
    # drawn: eps ~ U[0, 1] from the generator, one per sample (every pixel of a sample shares it)
    gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    ratio = seen["x_hat"] / fake  # = 1 - eps_i, constant within a sample
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio))
    drawn = torch.rand(4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(ratio[:, 0, 0, 0], 1 - drawn)
    with pytest.raises(DataError, match="differ in shape"):
        gradient_penalty(critic, real, fake[:2])


def test_gradient_penalty_of_a_batch_is_the_mean_of_its_samples_with_a_layer_norm_critic():
    torch.manual_seed(0)
    d = Discriminator(config=dcgan_config("digits", num_classes=10, d_norm="layer"))
    real, fake, y = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16), torch.tensor([0, 3, 3, 9])
    eps = torch.rand(4)
    batch = gradient_penalty(lambda x: d(x, y), real, fake, eps=eps)
    alone = [gradient_penalty(lambda x, i=i: d(x, y[i:i + 1]), real[i:i + 1], fake[i:i + 1], eps=eps[i:i + 1])
             for i in range(4)]
    assert batch.item() == pytest.approx(torch.stack(alone).mean().item(), rel=1e-5)
