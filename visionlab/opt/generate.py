"""Options of the generative commands: ``visionlab train ddpm|dit|gan``, ``visionlab sample`` and ``visionlab
evaluate-samples``."""

from __future__ import annotations

from dataclasses import dataclass

import visionlab.opt.fields as shared
from visionlab.opt.fields import OnDevice, RunFolder, check_shared, option, positive, positive_if_given
from visionlab.util.errors import ConfigError

DATA_HELP = ("digits (scikit-learn's, upsampled to 16x16), textures (32x32 patches), or a path: a folder of class "
             "sub-folders, MNIST IDX or CIFAR files, .npz")


def check_min_snr(gamma: float) -> float:
    """Min-SNR-gamma's gamma, checked: > 0 (5 in Hang et al. 2023). The one rule for it: DiffuseConfig.validate()
    applies it to a command line before any folder is made, models/diffusion.py's DiffusionConfig to Python code."""
    if not gamma > 0:  # NaN too
        raise ConfigError(f"min_snr_gamma: min snr gamma must be > 0 (5 in the paper; --min-snr 0 or None: off), "
                          f"got {gamma}")
    return gamma


@dataclass
class DiffuseConfig(RunFolder, OnDevice):
    """Train a diffusion model in pixel space: DDPM's U-Net or a DiT (``visionlab train ddpm|dit``)."""

    TASK, RUN_NAME = "diffuse", "DATA-MODEL"

    model: str = option("ddpm", "ddpm (DDPM's time-conditioned U-Net) or dit (Diffusion Transformer)",
                        choices=("ddpm", "dit"), positional=True)
    data: str = option("digits", DATA_HELP)
    image_size: int | None = option(None, "resize images to this size (default: digits 16, others 32)")
    preset: str | None = option(None, "network preset (default: digits for 16x16 grey images, else tiny32; DiT: "
                                "digits, or a paper size S/2, B/4, ...); the data sets size and channels")
    base_channels: int | None = option(None, "U-Net: channels of the first level (default: the preset's)")
    num_res_blocks: int | None = option(None, "U-Net: residual blocks per level (default: the preset's)")
    dropout: float | None = option(None, "U-Net: dropout inside the residual blocks (default: the preset's)")
    dim: int | None = option(None, "DiT: token width D (default: the preset's)")
    depth: int | None = option(None, "DiT: blocks (default: the preset's)")
    num_heads: int | None = option(None, "DiT: attention heads (default: the preset's)")
    patch_size: int | None = option(None, "DiT: patch size P (default: the preset's)")
    unconditional: bool = option(False, "ignore the labels: learn p(x) only (no class choice, no guidance)")
    class_dropout: float = option(0.1, "probability that a training label is replaced by the null class, so that "
                                  "the model also learns p(x) (classifier-free guidance)")
    timesteps: int = option(1000, "diffusion steps T")
    schedule: str = option("linear", "noise schedule: linear (DDPM, beta 1e-4 .. 0.02) or cosine (Nichol & "
                           "Dhariwal)", choices=("linear", "cosine"))
    prediction: str = option("epsilon", "what the network predicts: epsilon, x0 or v", choices=("epsilon", "x0",
                                                                                              "v"))
    variance: str | None = option(None, "reverse-process variance: fixed_small (beta~), fixed_large (beta) or "
                                  "learned_range (hybrid loss) (default: ddpm fixed_small, dit learned_range)",
                                  choices=(None, "fixed_small", "fixed_large", "learned_range"))
    min_snr: float | None = option(None, "weight the loss by min(SNR, gamma) / SNR with this gamma (Min-SNR-gamma, "
                                   "Hang et al. 2023; 5 in the paper) (default: off, plain L_simple)")
    steps: int = option(10000, "optimiser steps")
    batch_size: int = option(64, "images per optimiser step")
    lr: float = option(1e-3, "AdamW learning rate (after the warm-up)")
    lr_schedule: str = option("constant", "after the warm-up: constant (DDPM, DiT) or cosine (a half cosine down to "
                              "0 at the end of the run)", choices=("constant", "cosine"))
    weight_decay: float = option(0.0, "AdamW weight decay")
    warmup_steps: int = option(200, "linear warm-up of the learning rate, in steps")
    grad_clip: float | None = shared.grad_clip()
    ema: float | None = option(0.999, "decay of the exponential moving average of the parameters; samples and "
                               "model.safetensors use the average (0: off)")
    flip: bool = option(False, "random horizontal flips (not for digits: a mirrored digit is another symbol)")
    guidance: float = option(2.0, "classifier-free guidance scale of the sample grids of a class-conditional model "
                             "(1: the conditional model alone)")
    sample_every: int = shared.every(2000, "write a grid of samples (DDIM, EMA weights)", note="0: only at the end")
    sample_steps: int = option(50, "DDIM steps of those grids")
    eval_every: int = shared.every(100, "log the mean training loss and the EMA model's loss on a fixed test batch")
    fid_samples: int = option(0, "at the end, generate this many images (DDIM, --sample-steps) and report FID, "
                              "confidence and class accuracy of the reference classifier (0: off)")
    amp: str = shared.amp()
    test_size: float = shared.test_size()
    seed: int = shared.seed("the split, the weights, the batches, t and the noise")
    checkpoint_every: int | None = shared.checkpoint_every(1000)

    def validate(self) -> "DiffuseConfig":
        for name in ("steps", "batch_size", "lr", "timesteps", "sample_steps"):
            positive(name, getattr(self, name))
        positive_if_given(self, "base_channels", "num_res_blocks", "dim", "depth", "num_heads", "patch_size",
                          "image_size")
        if not 0.0 <= self.class_dropout < 1.0:
            raise ConfigError(f"class dropout must be in [0, 1), got {self.class_dropout}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema decay must be in [0, 1) (0: off), got {self.ema}")
        if self.min_snr:  # 0 is this option's own word for off (the trainer passes None on)
            check_min_snr(self.min_snr)
        for name in ("warmup_steps", "fid_samples", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be >= 0, got {getattr(self, name)}")
        if self.sample_steps > self.timesteps:
            raise ConfigError(f"sample steps ({self.sample_steps}) cannot exceed timesteps ({self.timesteps})")
        if self.fid_samples == 1:
            raise ConfigError("fid samples must be 0 (off) or at least 2")
        check_shared(self)
        return self


@dataclass
class GanConfig(RunFolder, OnDevice):
    """Train a GAN on images: DCGAN's generator and discriminator, optionally class-conditional (``visionlab train
    gan``)."""

    TASK, RUN_NAME = "adversarial", "DATA-gan-LOSS, with -cond when conditional"

    model: str = option("gan", "gan (DCGAN generator and discriminator)", choices=("gan",), positional=True)
    data: str = option("digits", DATA_HELP)
    image_size: int | None = option(None, "resize images to this size, a power of two >= 16 (default: digits 16, "
                                    "others 32)")
    preset: str | None = option(None, "network preset: digits (16x16 grey, ngf = ndf = 32), small (32x32), dcgan "
                                "(PyTorch's 64x64 example, ngf = ndf = 64) (default: digits for 16x16 grey images, "
                                "else small); the data sets size and channels")
    conditional: bool = option(False, "class-conditional: G reads [z, label embedding], D is a projection "
                               "discriminator; samples can then be asked for by class")
    loss: str = option("ns", "ns (non-saturating, DCGAN), hinge, or wgan-gp (critic with gradient penalty, layer "
                       "norm in the critic)", choices=("ns", "hinge", "wgan-gp"))
    nz: int | None = option(None, "length of the noise vector z (default: the preset's)")
    ngf: int | None = option(None, "G's channels before its output layer (default: the preset's)")
    ndf: int | None = option(None, "D's channels after its input layer (default: the preset's)")
    d_norm: str | None = option(None, "D's normalisation: batch, layer or none (default: batch; wgan-gp: layer)",
                                choices=(None, "batch", "layer", "none"))
    gp_weight: float = option(10.0, "wgan-gp: weight lambda of the gradient penalty")
    n_critic: int | None = option(None, "discriminator steps per generator step (default: 1; wgan-gp: 5)")
    steps: int = option(3000, "generator steps (optimiser steps of G)")
    batch_size: int = option(64, "images per step, real and generated")
    lr: float | None = option(None, "Adam learning rate of G and D (default: 2e-4; wgan-gp: 1e-4)")
    lr_d: float | None = option(None, "D's own learning rate (default: --lr)")
    beta1: float | None = option(None, "Adam beta1 (default: 0.5 as DCGAN; wgan-gp: 0.0)")
    beta2: float | None = option(None, "Adam beta2 (default: 0.999; wgan-gp: 0.9)")
    ema: float | None = option(0.999, "decay of the moving average of G's parameters; samples and model.safetensors "
                               "use the average (0: off)")
    sample_every: int = shared.every(500, "write a grid of the EMA generator's images from fixed noise",
                                     note="0: only at the end")
    eval_every: int = shared.every(100, "log the mean losses, D's accuracy and the samples' diversity")
    monitor: str = option("auto", "where the diversity of samples is measured: reference (the reference "
                          "classifier's feature space; trained and cached once), pixels (a proxy), or auto "
                          "(reference when --fid-samples needs the classifier anyway, else pixels)",
                          choices=("auto", "reference", "pixels"))
    collapse_threshold: float = option(0.3, "warn once when the samples' mean pairwise distance falls below this "
                                       "fraction of the real images' (mode collapse)")
    d_win_steps: int = option(500, "warn once when D classifies >= 99 % of real and fake images right for this "
                              "many steps in a row (G then learns little; 0: off; not for wgan-gp)")
    fid_samples: int = option(0, "at the end, generate this many images and report FID, confidence and class "
                              "accuracy of the reference classifier (0: off)")
    test_size: float = shared.test_size()
    seed: int = shared.seed("the split, the weights, the batches and the noise")
    checkpoint_every: int | None = shared.checkpoint_every(500)

    def validate(self) -> "GanConfig":
        for name in ("steps", "batch_size", "gp_weight"):
            positive(name, getattr(self, name))
        positive_if_given(self, "image_size", "nz", "ngf", "ndf", "n_critic", "lr", "lr_d")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema decay must be in [0, 1) (0: off), got {self.ema}")
        for name in ("fid_samples", "d_win_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.collapse_threshold < 1.0:
            raise ConfigError(f"collapse threshold must be in [0, 1), got {self.collapse_threshold}")
        if self.fid_samples == 1:
            raise ConfigError("fid samples must be 0 (off) or at least 2")
        if self.loss == "wgan-gp" and self.d_norm == "batch":
            raise ConfigError("wgan-gp penalises each sample's gradient, which BatchNorm mixes across the batch; "
                              "use --d-norm layer (the default for wgan-gp) or none")
        check_shared(self)
        return self


@dataclass
class SampleConfig(OnDevice):
    """Generate images with a trained diffusion model (``visionlab sample``)."""

    run: str = option(None, "run folder of 'visionlab train ddpm|dit' (or its checkpoint.pt)", positional=True)
    sampler: str = option("ddim", "ddim (deterministic with eta 0, any number of steps) or ddpm (ancestral, all T "
                          "steps)", choices=("ddpm", "ddim"))
    steps: int | None = option(None, "DDIM steps (default 50); ddpm always runs all T")
    eta: float = option(0.0, "DDIM's eta: 0 deterministic, 1 as noisy as DDPM")
    guidance: float = option(1.0, "classifier-free guidance scale s (1: the conditional model, 0: unconditional, "
                             "> 1: more like the class)")
    labels: str | None = option(None, "comma-separated classes (indices or names), repeated to fill --num "
                                "(default: every class in turn)")
    num: int = option(64, "how many images")
    seed: int = shared.seed("the noise")
    batch_size: int = option(256, "images generated at once")
    out: str | None = option(None, "output path without suffix (default: RUN/samples/SAMPLER-STEPS-gS-seedN)")
    quiet: bool = shared.quiet()

    def validate(self) -> "SampleConfig":
        if not self.run:
            raise ConfigError("give the run folder (or checkpoint) to sample from")
        for name in ("num", "batch_size"):
            positive(name, getattr(self, name))
        positive_if_given(self, "steps")
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"eta must be in [0, 1], got {self.eta}")
        check_shared(self)
        return self


@dataclass
class EvaluateSamplesConfig(SampleConfig):
    """FID, confidence and class accuracy of generated images in a reference classifier's feature space
    (``visionlab evaluate-samples``)."""

    samples: str | None = option(None, "a .npy of images written by 'visionlab sample' (default: generate --num "
                                 "images with the sampler options)")
    num: int = option(500, "how many images to generate (and real images per FID set, at most the test split)")
    reference_epochs: int = option(30, "epochs of the reference classifier when it is trained (it is cached)")

    def validate(self) -> "EvaluateSamplesConfig":
        super().validate()
        positive("reference_epochs", self.reference_epochs)
        if self.num < 2:
            raise ConfigError(f"FID needs at least 2 images, got num {self.num}")
        return self
