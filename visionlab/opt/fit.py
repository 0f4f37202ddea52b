"""Options of the neural-field commands: ``visionlab fit`` and the tables of ``visionlab experiment``."""

from __future__ import annotations

from dataclasses import dataclass

import visionlab.opt.fields as shared
from visionlab.opt.fields import (OnDevice, RunFolder, TensorBoard, check_shared, option, positive,
                                  positive_if_given)
from visionlab.util.errors import ConfigError


# The sample ratio's rules, stated once: FitConfig.validate() checks a command line before any folder is made, and
# every selector (components/sampling_base.py) checks what Python code hands it, through these same two functions.

def check_ratio(ratio: float) -> float:
    """The sample ratio r_0, checked: a number in (0, 1] (NaN is not)."""
    if not 0.0 < ratio <= 1.0:
        raise ConfigError(f"sample ratio must be in (0, 1], got {ratio}")
    return ratio


def check_mutation_ratio(mutation_ratio: float | None, *, ratio: float) -> float:
    """EVOS's mutation ratio m, checked against r_0: in [0, r_0), since the kept fittest are (r_t - m) N > 0 samples;
    None gives the paper's m = r_0 / 2."""
    if mutation_ratio is None:
        return 0.5 * ratio
    if not 0.0 <= mutation_ratio < ratio:
        raise ConfigError(f"mutation ratio must be in [0, ratio = {ratio}), got {mutation_ratio}")
    return mutation_ratio


@dataclass
class FitConfig(TensorBoard, RunFolder, OnDevice):
    """Fit one image with an implicit neural representation (``visionlab fit``)."""

    TASK, RUN_NAME = "fit", "IMAGE-MODEL-SAMPLER"

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
    # -- sample selection. components/sampling.py owns these names and ranges and checks them when a fit builds its
    # selector; they are checked here as well because that happens only once the image is loaded (a folder fit makes
    # its table folder first) and tests pin this schema's own refusal. tests/test_sampling.py keeps the lists equal.
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
    seed: int = shared.seed("the weights and the sample selection")
    eval_every: int = shared.every(100, "evaluate PSNR / SSIM on the whole image")
    checkpoint_every: int = shared.checkpoint_every(500)
    record_selection: int = option(0, "images: every this many steps, record the pixels the selector trains on and "
                                   "the error map (RUN/selection/), drawn at the end as selection.gif, errors.gif "
                                   "and selection.png (0: off; a record costs one forward pass over the image, left "
                                   "out of the training time)")

    def validate(self) -> "FitConfig":
        """Raise ConfigError naming the first bad value; return self."""
        positive("steps", self.steps)
        positive_if_given(self, "width", "lr", "lr_final", "seconds", "frames", "chunk", "hash_resolution")
        check_ratio(self.ratio)
        check_mutation_ratio(self.mutation_ratio, ratio=self.ratio)
        if self.depth is not None and self.depth < 0:
            raise ConfigError(f"depth must be >= 0, got {self.depth}")
        if not 1 <= self.hash_table <= 30:
            raise ConfigError(f"hash table must be in [1, 30] (log2 of the entries), got {self.hash_table}")
        if self.cfs_steps is not None and self.cfs_steps < 0:
            raise ConfigError(f"cfs steps must be >= 0, got {self.cfs_steps}")
        if self.record_selection < 0:
            raise ConfigError(f"--record-selection must be >= 0 (0: off), got {self.record_selection}")
        check_shared(self)
        return self


@dataclass
class ExperimentConfig(RunFolder, OnDevice):
    """Run every cell of a table and write it (``visionlab experiment``); rerunning continues an unfinished one."""

    TASK, RUN_NAME = "experiment", "the experiment's"

    experiment: str = option("evos-table1", "evos-table1, sympower-table1, digits-vit, moving-digits or "
                             "gan-augment (see manager.py)", positional=True)
    images: str | None = option(None, "neural-field tables: a folder of images, or comma-separated image files / "
                                "built-in names (default: six of scikit-image's photographs)")
    size: str | None = option(None, "neural-field tables: resize each image to this (default: 256x256)")
    steps: int | None = option(None, "neural-field tables: steps of each fit (default: the papers' 5,000; a "
                               "multiple of 20)")
    seed: int = shared.seed("every run")
    shard: str | None = option(None, "K/N: run only every N-th cell, starting at the K-th (K = 1..N), so that N "
                               "processes, GPUs or cluster jobs (a Slurm array: --shard $((SLURM_ARRAY_TASK_ID+1))/N) "
                               "share a table through its folder; a rerun without --shard gathers the table")

    def validate(self) -> "ExperimentConfig":
        positive_if_given(self, "steps")
        if self.shard is not None:
            parse_shard(self.shard)
        check_shared(self)
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
