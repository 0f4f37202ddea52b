"""Every option of every command, as dataclass configs with help text.

A config is a plain ``@dataclass``: the command line is generated from its fields (``--snake-case`` flags, the help
text from each field's ``help`` metadata), and interpreter mode builds the same object, e.g.
``FitConfig(image="coffee", steps=500)``. ``validate()`` checks ranges once, for both modes.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from visionlab.util.errors import ConfigError


def option(default: Any, help: str, *, choices: tuple | None = None, positional: bool = False) -> Any:
    """A dataclass field that also describes its command-line flag."""
    return field(default=default, metadata={"help": help, "choices": choices, "positional": positional})


@dataclass
class FitConfig:
    """Fit one image with an implicit neural representation (``visionlab fit``)."""

    # -- data
    image: str = option("astronaut", "what to fit: an image file (PNG, JPEG, TIFF, BMP; 8/16 bit; grey, RGB, RGBA) "
                        "or built-in sample (astronaut, camera, coffee, chelsea, ...); a folder of images (each is "
                        "fitted, then one table); a sound (.wav, or the built-in 'chirp'); a video (.gif, .npy, a "
                        "folder of frames with --kind video, or the built-in 'no-time-for-that')", positional=True)
    kind: str | None = option(None, "image, audio or video (default: from the name: .wav is audio, .gif / .npy "
                              "video; a folder is many images unless this says video)",
                              choices=(None, "image", "audio", "video"))
    size: str | None = option(None, "images and video frames: resize first: N makes the shorter side N pixels, HxW "
                              "resizes exactly")
    crop: str | None = option(None, "images: then take a centred crop of HxW pixels")
    seconds: float | None = option(None, "audio: fit only the first this many seconds")
    frames: int | None = option(None, "video: fit only the first this many frames")
    transform: str = option("minmax", "value transform of the targets: minmax ([-1, 1]), unit ([0, 1]), zscore, "
                            "sympower (symmetric power transformation, Sym-Power AAAI 2025), or one of the transforms "
                            "that paper compares: gamma0.5, gamma2 (fixed powers), scale0.5, scale1, scale2 (the "
                            "[-1, 1] range times 0.5, 1, 2), inverse (1 - x), rpp (random pixel permutation), boxcox",
                            choices=("minmax", "unit", "zscore", "sympower", "gamma0.5", "gamma2", "scale0.5",
                                     "scale1", "scale2", "inverse", "rpp", "boxcox"))
    # -- model
    model: str = option("siren", "network: siren, finer, fourier (Fourier-feature ReLU MLP), gauss (Gaussian "
                        "activations), wire (complex Gabor wavelets) or hashgrid (Instant-NGP's multiresolution hash "
                        "encoding + a small ReLU MLP)",
                        choices=("siren", "finer", "fourier", "gauss", "wire", "hashgrid"))
    width: int | None = option(None, "hidden units per layer (default 256; hashgrid: 64, the MLP after the encoding "
                               "as Instant-NGP; wire: the real width it replaces, int(width / sqrt 2) complex units)")
    depth: int | None = option(None, "hidden (width -> width) layers (default 3: SIREN 3x256 of the papers is depth "
                               "3, width 256; hashgrid: 1, Instant-NGP's two hidden layers of 64)")
    hash_table: int = option(16, "hashgrid: log2 of the hash table's entries per level, T = 2^N (Instant-NGP: 14 "
                             "to 24)")
    hash_resolution: int | None = option(None, "hashgrid: the finest grid's resolution N_max (default: the image's "
                                         "longer side, at least 512, so that every pixel has a cell)")
    # -- optimisation
    steps: int = option(5000, "optimiser steps (one step is one 'epoch' in the INR papers)")
    lr: float | None = option(None, "Adam learning rate (default: the model's usual one: siren 1e-4, finer 5e-4, "
                              "fourier 1e-3, gauss and wire 5e-3, hashgrid 1e-2)")
    lr_final: float | None = option(None, "decay the learning rate exponentially to this value at the last step "
                                    "(the Sym-Power code decays 1e-4 -> 1e-5; default: constant, as EVOS)")
    # -- sample selection
    sampler: str = option("evos", "which pixels to train each step: full (all), random (uniform), egra "
                          "(edge-guided random), expansive (expansive supervision: edge anchors + uniform), "
                          "soft-mining (Langevin soft mining), int / int-dense (nonparametric teaching, incremental "
                          "/ every-step profiling), evos (evolutionary selector, EVOS CVPR 2025) or evos-no-cfs "
                          "(EVOS without cross-frequency supervision)",
                          choices=("full", "random", "egra", "expansive", "soft-mining", "int", "int-dense", "evos",
                                   "evos-no-cfs"))
    ratio: float = option(0.5, "sample ratio r_0 in (0, 1]: the fraction of pixels trained per step")
    scheduler: str = option("constant", "ratio schedule: constant, step (ten stages from r_0 to 1), linear or "
                            "cosine (ramps from r_0 to 1 over the run)", choices=("constant", "step", "linear",
                                                                                  "cosine"))
    mutation_ratio: float | None = option(None, "EVOS: fraction of pixels drawn uniformly each step "
                                          "(default r_0 / 2)")
    cfs_steps: int | None = option(None, "EVOS: cross-frequency supervision during this many first steps (0: EVOS "
                                   "without CFS; default: 1500 as the paper for images and videos, 0 for audio, "
                                   "where the Laplacian against the stale cached prediction held a 50 Hz tone at "
                                   "30 dB while EVOS without CFS reached 57 dB)")
    crossover: str = option("select", "EVOS: how the kept pixels are chosen: select (the paper's frequency-guided "
                            "crossover), sum (rank by squared + frequency error) or none (squared error only)",
                            choices=("select", "sum", "none"))
    # -- speed
    chunk: int | None = option(None, "points per chunk: a step runs the network over its selection this many "
                               "points at a time inside one graph (same gradient as one batch, cache-sized "
                               "temporaries); evaluation uses the same chunks (default: the model's measured best, "
                               "benchmarks/fit_step.py)")
    precision: str = option("auto", "fp32, bf16 (autocast for the hidden layers; needs CUDA or a CPU with "
                            "AVX512-BF16 / AMX; weights, Adam, transforms and metrics stay fp32) or auto (bf16 "
                            "only where it is fast here and its measured PSNR cost for this model is below 0.1 dB, "
                            "benchmarks/results/fit_precision.md; else fp32)", choices=("fp32", "bf16", "auto"))
    # -- run
    seed: int = option(0, "random seed (weights, sample selection); the same seed repeats the run")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = option(None, "CPU threads for PyTorch (default: PyTorch's choice)")
    eval_every: int = option(100, "evaluate PSNR / SSIM on the whole image every this many steps")
    checkpoint_every: int = option(500, "write the training checkpoint every this many steps")
    out: str = option("runs", "root folder of runs; this run goes to OUT/fit/NAME")
    name: str | None = option(None, "run name (default: IMAGE-MODEL-SAMPLER); an existing folder is never "
                              "overwritten")
    quiet: bool = option(False, "no progress bar")

    def validate(self) -> "FitConfig":
        """Raise ConfigError naming the first bad value; return self."""
        for name in ("steps", "eval_every", "checkpoint_every"):
            _positive(name, getattr(self, name))
        if self.width is not None:
            _positive("width", self.width)
        if self.depth is not None and self.depth < 0:
            raise ConfigError(f"depth must be >= 0, got {self.depth}")
        if not 0.0 < self.ratio <= 1.0:
            raise ConfigError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.mutation_ratio is not None and not 0.0 <= self.mutation_ratio < self.ratio:
            raise ConfigError(f"mutation ratio must be in [0, ratio = {self.ratio}), got {self.mutation_ratio}")
        if not 1 <= self.hash_table <= 30:
            raise ConfigError(f"hash table must be in [1, 30] (log2 of the entries), got {self.hash_table}")
        for name in ("lr", "lr_final", "threads", "seconds", "frames", "chunk", "hash_resolution"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.cfs_steps is not None and self.cfs_steps < 0:
            raise ConfigError(f"cfs steps must be >= 0, got {self.cfs_steps}")
        _check_choices(self)
        return self



@dataclass
class FeaturesConfig:
    """Classify images with hand-made features and a classic learner (``visionlab features``)."""

    data: str = option("digits", "built-in data set (digits, faces, textures) or a folder with one sub-folder of "
                       "images per class")
    extractor: str = option("hog", "features: hog, sift (keypoints), dense-sift (a grid) or surf",
                            choices=("hog", "sift", "dense-sift", "surf"))
    classifier: str = option("svm", "learner: svm (RBF kernel) or knn (k nearest neighbours)", choices=("svm", "knn"))
    encoding: str = option("bow", "pooling of keypoint descriptors: bow (bag of visual words) or vlad",
                           choices=("bow", "vlad"))
    vocabulary: int = option(200, "visual words of the bag of words / VLAD (k-means clusters)")
    grid_search: bool = option(False, "tune the classifier by 5-fold cross-validation on the training set")
    compare: bool = option(False, "run every extractor with both classifiers on the data set; print one table")
    image_size: str = option("64x64", "folders: every image is resized to HxW (grey)")
    test_size: float = option(0.25, "fraction of each class held out for testing (stratified; textures have a "
                              "fixed split)")
    seed: int = option(0, "seed of the split, k-means and the SVM")
    out: str = option("runs", "root folder of runs; this run goes to OUT/features/NAME")
    name: str | None = option(None, "run name (default: DATA-EXTRACTOR-CLASSIFIER, or DATA-compare)")
    quiet: bool = option(False, "no progress bar")

    def validate(self) -> "FeaturesConfig":
        _positive("vocabulary", self.vocabulary)
        if not 0.0 < self.test_size < 1.0:
            raise ConfigError(f"test size must be in (0, 1), got {self.test_size}")
        _check_choices(self)
        return self




@dataclass
class ClassifyConfig:
    """Train a classifier (ViT on images, ViViT on videos) (``visionlab train``)."""

    model: str = option("vit", "vit (images) or vivit (videos)", choices=("vit", "vivit"), positional=True)
    data: str = option("digits", "digits, faces, textures, moving-digits, or a path: a folder of class sub-folders "
                       "(images, or videos as .npy / frame folders with --video), MNIST IDX or CIFAR files, .npz")
    video: bool = option(False, "read a folder as videos (implied by vivit)")
    preset: str = option("tiny", "model size: tiny, or a paper size (Ti, S, B, L, H); see also the recipes in "
                         "manager.py")
    image_size: int | None = option(None, "resize images / frames to this size first (default: as stored; "
                                    "videos: 32)")
    patch_size: int | None = option(None, "patch size P (default: the preset's)")
    frames: int = option(16, "videos: frames per clip T (clips with fewer are refused)")
    frame: int | None = option(None, "vit on video data: classify frame K of each clip alone, the single-frame "
                               "control (default: the middle frame, T // 2)")
    vivit_model: int = option(2, "ViViT model: 1 spatio-temporal, 2 factorised encoder, 3 factorised "
                              "self-attention, 4 factorised dot-product", choices=(1, 2, 3, 4))
    dim: int | None = option(None, "token width D (default: the preset's)")
    depth: int | None = option(None, "transformer blocks (default: the preset's)")
    num_heads: int | None = option(None, "attention heads (default: the preset's)")
    mlp_dim: int | None = option(None, "hidden width of each block's MLP (default: 4 D, or the preset's)")
    pool: str | None = option(None, "cls ([CLS] token) or mean (average of the tokens)", choices=(None, "cls",
                                                                                                 "mean"))
    epochs: int = option(30, "passes over the training set")
    batch_size: int = option(64, "examples per optimiser step")
    lr: float = option(1e-3, "peak AdamW learning rate (after warm-up, then cosine decay to 0)")
    weight_decay: float = option(0.05, "AdamW weight decay")
    warmup_epochs: float = option(2.0, "linear warm-up of the learning rate, in epochs")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy")
    augment: bool = option(False, "random affine maps: shifts up to 10 %, rotations up to 10 and shears up to 5 "
                           "degrees, zoom +-10 % (never flips: digits)")
    grad_clip: float | None = option(1.0, "clip the gradient norm to this (0: off)")
    ema: float | None = option(None, "keep an exponential moving average of the weights with this decay (e.g. "
                               "0.999) and evaluate with it")
    amp: str = option("auto", "mixed precision: auto (bf16 on GPUs that support it, else off), bf16 or off",
                      choices=("auto", "bf16", "off"))
    test_size: float = option(0.25, "fraction held out when the data has no fixed split (stratified)")
    seed: int = option(0, "seed of the split, the weights and the batches")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = option(None, "CPU threads for PyTorch")
    checkpoint_every: int | None = option(None, "write the training checkpoint every this many steps (default: "
                                          "every epoch)")
    out: str = option("runs", "root folder of runs; this run goes to OUT/classify/NAME")
    name: str | None = option(None, "run name (default: DATA-MODEL)")
    quiet: bool = option(False, "no progress bar")

    def validate(self) -> "ClassifyConfig":
        for name in ("epochs", "batch_size", "lr", "frames"):
            _positive(name, getattr(self, name))
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.frame is not None and not 0 <= self.frame < self.frames:
            raise ConfigError(f"frame must be in [0, {self.frames}) for clips of {self.frames} frames, "
                              f"got {self.frame}")
        if self.frame is not None and self.model != "vit":
            raise ConfigError("--frame picks one frame per clip for a vit; a vivit reads whole clips")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"ema decay must be in (0, 1), got {self.ema}")
        if not 0.0 < self.test_size < 1.0:
            raise ConfigError(f"test size must be in (0, 1), got {self.test_size}")
        _check_choices(self)
        return self


@dataclass
class ExperimentConfig:
    """Run every cell of a table and write it (``visionlab experiment``); rerunning continues an unfinished one."""

    experiment: str = option("evos-table1", "evos-table1, sympower-table1, digits-vit, moving-digits or "
                             "gan-augment (see manager.py)", positional=True)
    images: str | None = option(None, "neural-field tables: a folder of images, or comma-separated image files / "
                                "built-in names (default: six of scikit-image's photographs)")
    size: str | None = option(None, "neural-field tables: resize each image to this (default: 256x256)")
    steps: int | None = option(None, "neural-field tables: steps of each fit (default: the papers' 5,000; a "
                               "multiple of 20)")
    seed: int = option(0, "seed of every run")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = option(None, "CPU threads for PyTorch")
    out: str = option("runs", "root folder; the experiment goes to OUT/experiment/NAME, each run inside it")
    name: str | None = option(None, "experiment folder name (default: the experiment's)")
    quiet: bool = option(False, "no progress bars (one line per run is still printed)")
    shard: str | None = option(None, "K/N: run only every N-th cell, starting at the K-th (K = 1..N), so that N "
                               "processes, GPUs or cluster jobs (a Slurm array: --shard $((SLURM_ARRAY_TASK_ID+1))/N) "
                               "share a table through its folder; a rerun without --shard gathers the table")

    def validate(self) -> "ExperimentConfig":
        if self.steps is not None:
            _positive("steps", self.steps)
        if self.shard is not None:
            parse_shard(self.shard)
        return self


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" -> (K, N) with 1 <= K <= N; anything else: ConfigError."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard takes K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


@dataclass
class ShapesConfig:
    """Print each step's tensor shape through a model (``visionlab shapes``), as the notes derive it by hand."""

    model: str = option("vit", "vit or vivit", choices=("vit", "vivit"), positional=True)
    preset: str = option("B", "model size: tiny, Ti, S, B, L or H (ViViT: tiny, B, L, H)")
    image_size: int = option(224, "input height = width in pixels")
    patch_size: int | None = option(None, "patch size P (default: the preset's, 16; H: 14)")
    frames: int = option(16, "ViViT: frames T of the input video")
    tubelet: tuple[int, int, int] | None = option(None, "ViViT: tubelet size t h w (default 2 P P)")
    vivit_model: int = option(1, "ViViT model: 1 spatio-temporal, 2 factorised encoder, 3 factorised "
                              "self-attention, 4 factorised dot-product", choices=(1, 2, 3, 4))
    channels: int = option(3, "input channels C")
    num_classes: int | None = option(None, "classes of the head (default: the preset's, 1000 / 400)")

    def validate(self) -> "ShapesConfig":
        for name in ("image_size", "frames", "channels"):
            _positive(name, getattr(self, name))
        for name in ("patch_size", "num_classes"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.tubelet is not None and (len(self.tubelet) != 3 or min(self.tubelet) <= 0):
            raise ConfigError(f"tubelet must be three sizes t h w > 0, got {self.tubelet}")
        return self


@dataclass
class DiffuseConfig:
    """Train a diffusion model in pixel space: DDPM's U-Net or a DiT (``visionlab train ddpm|dit``)."""

    model: str = option("ddpm", "ddpm (DDPM's time-conditioned U-Net) or dit (Diffusion Transformer)",
                        choices=("ddpm", "dit"), positional=True)
    data: str = option("digits", "digits (scikit-learn's, upsampled to 16x16), textures (32x32 patches), or a path: "
                       "a folder of class sub-folders, MNIST IDX or CIFAR files, .npz")
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
    grad_clip: float | None = option(1.0, "clip the gradient norm to this (0: off)")
    ema: float | None = option(0.999, "decay of the exponential moving average of the parameters; samples and "
                               "model.safetensors use the average (0: off)")
    flip: bool = option(False, "random horizontal flips (not for digits: a mirrored digit is another symbol)")
    guidance: float = option(2.0, "classifier-free guidance scale of the sample grids of a class-conditional model "
                             "(1: the conditional model alone)")
    sample_every: int = option(2000, "write a grid of samples (DDIM, EMA weights) every this many steps (0: only "
                               "at the end)")
    sample_steps: int = option(50, "DDIM steps of those grids")
    eval_every: int = option(100, "log the mean training loss and the EMA model's loss on a fixed test batch every "
                             "this many steps")
    fid_samples: int = option(0, "at the end, generate this many images (DDIM, --sample-steps) and report FID, "
                              "confidence and class accuracy of the reference classifier (0: off)")
    amp: str = option("auto", "mixed precision: auto (bf16 on GPUs that support it, else off), bf16 or off",
                      choices=("auto", "bf16", "off"))
    test_size: float = option(0.25, "fraction held out when the data has no fixed split (stratified)")
    seed: int = option(0, "seed of the split, the weights, the batches, t and the noise")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = option(None, "CPU threads for PyTorch")
    checkpoint_every: int | None = option(1000, "write the training checkpoint every this many steps")
    out: str = option("runs", "root folder of runs; this run goes to OUT/diffuse/NAME")
    name: str | None = option(None, "run name (default: DATA-MODEL)")
    quiet: bool = option(False, "no progress bar")

    def validate(self) -> "DiffuseConfig":
        for name in ("steps", "batch_size", "lr", "timesteps", "sample_steps", "eval_every"):
            _positive(name, getattr(self, name))
        for name in ("base_channels", "num_res_blocks", "dim", "depth", "num_heads", "patch_size", "image_size",
                     "threads", "checkpoint_every"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if not 0.0 <= self.class_dropout < 1.0:
            raise ConfigError(f"class dropout must be in [0, 1), got {self.class_dropout}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema decay must be in [0, 1) (0: off), got {self.ema}")
        if self.min_snr is not None and not self.min_snr >= 0.0:
            raise ConfigError(f"min snr gamma must be > 0 (0: off), got {self.min_snr}")
        for name in ("warmup_steps", "sample_every", "fid_samples", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be >= 0, got {getattr(self, name)}")
        if self.sample_steps > self.timesteps:
            raise ConfigError(f"sample steps ({self.sample_steps}) cannot exceed timesteps ({self.timesteps})")
        if self.fid_samples == 1:
            raise ConfigError("fid samples must be 0 (off) or at least 2")
        if not 0.0 < self.test_size < 1.0:
            raise ConfigError(f"test size must be in (0, 1), got {self.test_size}")
        _check_choices(self)
        return self


@dataclass
class SegmentConfig:
    """Train the segmentation U-Net (``visionlab train unet``)."""

    model: str = option("unet", "unet (Ronneberger et al.)", choices=("unet",), positional=True)
    data: str = option("shapes", "shapes (built in: random rectangles, circles and triangles with masks) or a "
                       "folder with images/ and masks/ (same file names; mask values are class indices)")
    image_size: int | None = option(None, "resize images and masks to this size (default: shapes 32, folders as "
                                    "stored)")
    train_images: int = option(1000, "shapes: training images")
    test_images: int = option(200, "shapes: test images (drawn with a seed of their own)")
    max_shapes: int = option(3, "shapes: at most this many shapes per image")
    shape_kinds: str = option("rectangle,circle,triangle", "shapes: the kinds drawn, comma-separated, one class "
                              "each after the background (rectangle, circle, triangle, ellipse)")
    preset: str = option("small", "U-Net size: small (16 channels, 3 poolings), tiny (8, 2), or a paper one: "
                         "milesial, bilinear")
    base_channels: int | None = option(None, "channels of the first level (default: the preset's)")
    depth: int | None = option(None, "number of poolings (default: the preset's)")
    epochs: int = option(20, "passes over the training set")
    batch_size: int = option(32, "images per optimiser step")
    lr: float = option(3e-3, "peak AdamW learning rate (after warm-up, then cosine decay to 0)")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    warmup_epochs: float = option(1.0, "linear warm-up of the learning rate, in epochs")
    dice_weight: float = option(0.0, "add this times the soft Dice loss to the cross-entropy")
    augment: bool = option(False, "random flips and quarter turns of image and mask together")
    grad_clip: float | None = option(1.0, "clip the gradient norm to this (0: off)")
    amp: str = option("auto", "mixed precision: auto (bf16 on GPUs that support it, else off), bf16 or off",
                      choices=("auto", "bf16", "off"))
    test_size: float = option(0.2, "folders: fraction of the images held out for testing")
    seed: int = option(0, "seed of the data, the split, the weights and the batches")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = option(None, "CPU threads for PyTorch")
    checkpoint_every: int | None = option(None, "write the training checkpoint every this many steps (default: "
                                          "every epoch)")
    out: str = option("runs", "root folder of runs; this run goes to OUT/segment/NAME")
    name: str | None = option(None, "run name (default: DATA-unet)")
    quiet: bool = option(False, "no progress bar")

    def validate(self) -> "SegmentConfig":
        for name in ("epochs", "batch_size", "lr", "train_images", "test_images", "max_shapes"):
            _positive(name, getattr(self, name))
        for name in ("base_channels", "depth", "image_size", "threads", "checkpoint_every"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.dice_weight < 0 or self.warmup_epochs < 0 or self.weight_decay < 0:
            raise ConfigError("dice weight, warm-up epochs and weight decay must be >= 0")
        if not 0.0 < self.test_size < 1.0:
            raise ConfigError(f"test size must be in (0, 1), got {self.test_size}")
        _check_choices(self)
        return self


@dataclass
class SampleConfig:
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
    seed: int = option(0, "seed of the noise: the same seed gives the same images")
    batch_size: int = option(256, "images generated at once")
    out: str | None = option(None, "output path without suffix (default: RUN/samples/SAMPLER-STEPS-gS-seedN)")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = option(None, "CPU threads for PyTorch")
    quiet: bool = option(False, "no progress bar")

    def validate(self) -> "SampleConfig":
        if not self.run:
            raise ConfigError("give the run folder (or checkpoint) to sample from")
        for name in ("num", "batch_size"):
            _positive(name, getattr(self, name))
        for name in ("steps", "threads"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"eta must be in [0, 1], got {self.eta}")
        _check_choices(self)
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
        _positive("reference_epochs", self.reference_epochs)
        if self.num < 2:
            raise ConfigError(f"FID needs at least 2 images, got num {self.num}")
        return self


@dataclass
class GanConfig:
    """Train a GAN on images: DCGAN's generator and discriminator, optionally class-conditional (``visionlab train
    gan``)."""

    model: str = option("gan", "gan (DCGAN generator and discriminator)", choices=("gan",), positional=True)
    data: str = option("digits", "digits (scikit-learn's, upsampled to 16x16), textures (32x32 patches), or a path: "
                       "a folder of class sub-folders, MNIST IDX or CIFAR files, .npz")
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
    sample_every: int = option(500, "write a grid of the EMA generator's images from fixed noise every this many "
                               "steps (0: only at the end)")
    eval_every: int = option(100, "log the mean losses, D's accuracy and the samples' diversity every this many "
                             "steps")
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
    test_size: float = option(0.25, "fraction held out when the data has no fixed split (stratified)")
    seed: int = option(0, "seed of the split, the weights, the batches and the noise")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    threads: int | None = option(None, "CPU threads for PyTorch")
    checkpoint_every: int | None = option(500, "write the training checkpoint every this many steps")
    out: str = option("runs", "root folder of runs; this run goes to OUT/adversarial/NAME")
    name: str | None = option(None, "run name (default: DATA-gan-LOSS, with -cond when conditional)")
    quiet: bool = option(False, "no progress bar")

    def validate(self) -> "GanConfig":
        for name in ("steps", "batch_size", "eval_every", "gp_weight"):
            _positive(name, getattr(self, name))
        for name in ("image_size", "nz", "ngf", "ndf", "n_critic", "lr", "lr_d", "threads", "checkpoint_every"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema decay must be in [0, 1) (0: off), got {self.ema}")
        for name in ("sample_every", "fid_samples", "d_win_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.collapse_threshold < 1.0:
            raise ConfigError(f"collapse threshold must be in [0, 1), got {self.collapse_threshold}")
        if self.fid_samples == 1:
            raise ConfigError("fid samples must be 0 (off) or at least 2")
        if self.loss == "wgan-gp" and self.d_norm == "batch":
            raise ConfigError("wgan-gp penalises each sample's gradient, which BatchNorm mixes across the batch; "
                              "use --d-norm layer (the default for wgan-gp) or none")
        if not 0.0 < self.test_size < 1.0:
            raise ConfigError(f"test size must be in (0, 1), got {self.test_size}")
        _check_choices(self)
        return self


def _check_choices(config) -> None:
    for f in dataclasses.fields(config):
        choices = f.metadata.get("choices")
        if choices and getattr(config, f.name) not in choices:
            raise ConfigError(f"{f.name} must be one of {', '.join(choices)}, got {getattr(config, f.name)!r}")


def _positive(name: str, value) -> None:
    if value is None or value <= 0:
        raise ConfigError(f"{name.replace('_', ' ')} must be > 0, got {value}")


def from_dict(cls, values: dict):
    """Build a config from a dict (e.g. a checkpoint's), ignoring keys that this version does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def add_options(parser: argparse.ArgumentParser, cls, *, positional_optional: bool = False, skip=(),
                overrides: dict[str, dict] | None = None) -> set[str]:
    """Add one flag per field of the dataclass ``cls`` (except the names in ``skip``; ``overrides`` replaces a
    field's ``choices`` or ``help``) and return the names added. Defaults are left unset (None) so that explicit
    flags can be told apart from defaults (see :func:`config_from_args`)."""
    hints = get_type_hints(cls)
    added = set()
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        added.add(f.name)
        meta = {**f.metadata, **(overrides or {}).get(f.name, {})}
        # argparse formats help text with %: a plain "10 %" would break --help, so every % is written as %%.
        meta["help"] = meta["help"].replace("%", "%%")
        kind = _base_type(hints[f.name])
        default_text = "" if f.default is None else f" (default: {f.default})"
        if meta.get("positional"):
            parser.add_argument(f.name, nargs="?" if positional_optional else None, default=None,
                                choices=meta.get("choices"), help=meta["help"] + default_text)
            continue
        flags = [f"--{f.name.replace('_', '-')}"]
        if kind is bool:
            parser.add_argument(*flags, dest=f.name, action="store_true", default=None, help=meta["help"])
        elif getattr(kind, "__origin__", None) is tuple:  # tuple[int, int, int] -> three values after the flag
            parser.add_argument(*flags, dest=f.name, type=kind.__args__[0], nargs=len(kind.__args__), default=None,
                                metavar=f.name.upper(), help=meta["help"] + default_text)
        else:
            parser.add_argument(*flags, dest=f.name, type=kind, default=None, choices=meta.get("choices"),
                                metavar=f.name.upper() if not meta.get("choices") else None,
                                help=meta["help"] + default_text)
    return added


def config_from_args(cls, args: argparse.Namespace, base: dict | None = None):
    """``base`` (e.g. a preset) overridden by the flags given explicitly on the command line."""
    values = dict(base or {})
    for f in dataclasses.fields(cls):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return from_dict(cls, values)


def _base_type(hint) -> type:
    """int | None -> int, etc."""
    args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
    return args[0] if args else hint
