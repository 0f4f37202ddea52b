"""Named experiment presets: a name -> the options of a config (explicit dicts, no registry magic), and
:func:`build_config`, the one place where a config is made from its defaults, a preset and the options given.

``visionlab fit IMAGE --preset paper`` starts from a preset; flags given on the command line override it.
"""

from __future__ import annotations

import dataclasses

from visionlab.opt import ClassifyConfig, DiffuseConfig, FitConfig, GanConfig, SegmentConfig, from_dict
from visionlab.util.errors import ConfigError

FIT_PRESETS: dict[str, dict] = {
    # The one-command demo: SIREN 3x256 + EVOS (step-wise from 0.2) sized for about a minute on a 2-core CPU.
    # Measured: 35.8 dB PSNR after 34 s of training on a 2-core CPU (fresh clone, chunked fused steps).
    "demo": dict(image="astronaut", size="160", steps=400, sampler="evos", ratio=0.2, scheduler="step",
                 eval_every=25, checkpoint_every=100),
    # EVOS (CVPR 2025) Table 1, last row: SIREN 3x256, lr 1e-4, 512x512, 5,000 steps, step-wise ratio from 0.2.
    "paper": dict(size="512x512", steps=5000, model="siren", width=256, depth=3, sampler="evos", ratio=0.2,
                  scheduler="step", cfs_steps=1500, eval_every=250, checkpoint_every=1000),
    # The same table's constant-ratio block (r = 0.5) and its Standard baseline.
    "paper-constant": dict(size="512x512", steps=5000, sampler="evos", ratio=0.5, scheduler="constant",
                           eval_every=250, checkpoint_every=1000),
    "paper-full": dict(size="512x512", steps=5000, sampler="full", eval_every=250, checkpoint_every=1000),
    # The fast path for full-size images on a CPU (benchmarks/results/fit_fast.md chose each value): the hash grid
    # with 2^19 entries per level (every level of a 512 px grid dense, no collisions: 40 dB in 27 s on astronaut
    # where 2^16 took 49 s), EVOS without CFS on half the pixels (40 dB first or level on all three photos, the best
    # final PSNR; CFS's Laplacian term holds the hash grid back: 2-3x later to 40 dB), lr 1e-2 decayed to 1e-3
    # (a constant 1e-2 ends 5.8 dB below its own best), 400 steps: under 2 minutes on 2 cores.
    "fast": dict(model="hashgrid", hash_table=19, sampler="evos-no-cfs", ratio=0.5, lr_final=1e-3, steps=400,
                 eval_every=25, checkpoint_every=200),
    # Seconds on any CPU: a tiny SIREN on a small image (tests, a first look).
    "tiny": dict(size="32", width=32, depth=2, steps=50, eval_every=10, checkpoint_every=25, ratio=0.5),
}


def _lookup(table: dict[str, dict], name: str | None, kind: str) -> dict:
    """A copy of ``table[name]`` (an empty dict for None); an unknown name lists the known ones."""
    if name is None:
        return {}
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of {', '.join(table)}")
    return dict(table[name])


# Training recipes for `visionlab train --recipe NAME` (flags override them). Chosen on the validation split (10 % of
# the training split, stratified, seed 0) by benchmarks/recipe_search.py: a grid around the earlier recipes, each cell
# scored by its final epoch's validation accuracy, ties to the cell nearest the earlier recipe, then to fewer
# parameters; the test split chose nothing (results/recipe_search.md). digits-vit: lr x depth x width (12 cells);
# width 32 (99.26 %, 1 of 136 validation images wrong) over the earlier width 64 (98.53 %), tied with two others at lr
# 4e-3. moving-digits-vivit: lr 5e-4 / 1e-3 / 2e-3 all 100 % on validation, so the earlier 1e-3 stays.
# Data-efficient training (small patches, affine augmentation, label smoothing, warm-up + cosine, no decay on norms
# and tokens) is what lets a ViT learn from 1,211 digit images.
CLASSIFY_RECIPES: dict[str, dict] = {
    # ViT on scikit-learn's 8 x 8 digits: 16 tokens of 2 x 2 pixels, 4 blocks of width 32 (35k parameters).
    "digits-vit": dict(model="vit", data="digits", preset="tiny", patch_size=2, dim=32, depth=4, num_heads=4,
                       mlp_dim=64, pool="cls", epochs=100, batch_size=32, lr=2e-3, weight_decay=0.05,
                       warmup_epochs=5, label_smoothing=0.1, augment=True, grad_clip=1.0),
    # ViViT (factorised encoder) on moving digits: 8 frames of 16 x 16, tubelets 2 x 4 x 4.
    "moving-digits-vivit": dict(model="vivit", data="moving-digits", preset="tiny", vivit_model=2, frames=8,
                                image_size=16, patch_size=4, dim=64, depth=4, num_heads=4, mlp_dim=128,
                                epochs=15, batch_size=32, lr=1e-3, weight_decay=0.05, warmup_epochs=2,
                                label_smoothing=0.1, grad_clip=1.0),
    # The same ViT on frame T // 2 of each clip alone: the control showing that one frame cannot tell the direction
    # of motion (it should stay near chance, 1 / 8). Not searched: the ViViT recipe's settings, where they are shared.
    "moving-digits-frame-vit": dict(model="vit", data="moving-digits", preset="tiny", frames=8, image_size=16,
                                    patch_size=4, dim=64, depth=4, num_heads=4, mlp_dim=128, epochs=15,
                                    batch_size=32, lr=1e-3, weight_decay=0.05, warmup_epochs=2,
                                    label_smoothing=0.1, grad_clip=1.0),
}


def classify_recipe(name: str | None) -> dict:
    """The options of training recipe ``name`` (an empty dict for None)."""
    return _lookup(CLASSIFY_RECIPES, name, "recipe")


# ------------------------------------------------------------------------------------------------ experiments
# `visionlab experiment NAME`: the cells of a table, as (row, item, task, options) tuples. Rows of the neural-field
# tables follow the papers' Table 1; their columns are fractions of the run (the papers' 1k / 2k / 5k of 5,000 steps).

# scikit-image's photographs, the built-in image set of the neural-field tables (users pass their DIV2K / Kodak).
TABLE_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field")

EVOS_TABLE1_ROWS: dict[str, dict] = {
    # Constant ratio 0.5 (the upper block of EVOS Table 1).
    "Standard (full)": dict(sampler="full"),
    "Uniform (random)": dict(sampler="random", ratio=0.5),
    "EGRA": dict(sampler="egra", ratio=0.5),
    "Expansive": dict(sampler="expansive", ratio=0.5),
    "Soft mining": dict(sampler="soft-mining", ratio=0.5),
    "INT (incremental)": dict(sampler="int", ratio=0.5),
    "INT (dense)": dict(sampler="int-dense", ratio=0.5),
    "EVOS without CFS": dict(sampler="evos-no-cfs", ratio=0.5),
    "EVOS": dict(sampler="evos", ratio=0.5),
    # Step-wise from 0.2 (the lower block).
    "EGRA, step-wise": dict(sampler="egra", ratio=0.2, scheduler="step"),
    "Expansive, step-wise": dict(sampler="expansive", ratio=0.2, scheduler="step"),
    "INT, step-wise": dict(sampler="int", ratio=0.2, scheduler="step"),
    "EVOS without CFS, step-wise": dict(sampler="evos-no-cfs", ratio=0.2, scheduler="step"),
    "EVOS, step-wise": dict(sampler="evos", ratio=0.2, scheduler="step"),
}
# EVOS Table 1 (16 DIV2K images at 512 x 512, RTX 3090): PSNR / SSIM at 1k, 2k, 5k steps, and seconds.
EVOS_TABLE1_PAPER = {
    "Standard (full)": "31.06 / 0.899, 34.34 / 0.944, 37.10 / 0.964, 180.45 s",
    "Uniform (random)": "30.35 / 0.885, 33.33 / 0.932, 36.11 / 0.956, 94.13 s",
    "EGRA": "30.37 / 0.885, 33.40 / 0.932, 36.22 / 0.957, 103.31 s",
    "Expansive": "30.95 / 0.893, 33.70 / 0.933, 36.28 / 0.955, 96.39 s",
    "Soft mining": "31.49 / 0.903, 33.52 / 0.931, 35.31 / 0.948, 100.35 s",
    "INT (incremental)": "31.67 / 0.901, 31.95 / 0.894, 34.62 / 0.923, 110.55 s",
    "INT (dense)": "31.67 / 0.901, 34.53 / 0.938, 37.21 / 0.959, 161.89 s",
    "EVOS without CFS": "31.64 / 0.899, 34.73 / 0.940, 37.49 / 0.960, 95.43 s",
    "EVOS": "32.71 / 0.912, 35.89 / 0.951, 37.81 / 0.962, 97.39 s",
    "EGRA, step-wise": "29.59 / 0.867, 33.01 / 0.927, 37.08 / 0.963, 105.71 s",
    "Expansive, step-wise": "30.58 / 0.883, 33.55 / 0.930, 36.95 / 0.960, 103.09 s",
    "INT, step-wise": "31.52 / 0.880, 30.59 / 0.863, 37.17 / 0.962, 124.35 s",
    "EVOS without CFS, step-wise": "30.99 / 0.873, 34.49 / 0.930, 37.81 / 0.965, 105.82 s",
    "EVOS, step-wise": "31.69 / 0.882, 35.61 / 0.940, 38.43 / 0.968, 108.60 s",
}

SYMPOWER_TABLE1_ROWS: dict[str, dict] = {
    "0-1 norm": dict(transform="unit"), "z-score": dict(transform="zscore"),
    "gamma 0.5": dict(transform="gamma0.5"), "gamma 2.0": dict(transform="gamma2"),
    "scale x0.5": dict(transform="scale0.5"), "scale x1": dict(transform="scale1"),
    "scale x2": dict(transform="scale2"), "inverse": dict(transform="inverse"), "RPP": dict(transform="rpp"),
    "Box-Cox": dict(transform="boxcox"), "Sym-Power": dict(transform="sympower"),
}
# Sym-Power Table 1 (DIV2K, SIREN): PSNR at 0.5k, 1k, 3k, 5k steps (its SSIM column is not standard SSIM).
SYMPOWER_TABLE1_PAPER = {
    "0-1 norm": "24.46, 27.95, 31.95, 33.60", "z-score": "26.49, 29.63, 33.71, 35.64",
    "gamma 0.5": "26.14, 29.88, 33.89, 35.41", "gamma 2.0": "24.34, 27.45, 30.59, 31.81",
    "scale x0.5": "26.01, 30.56, 34.28, 35.51", "scale x1": "26.25, 30.23, 34.70, 36.18",
    "scale x2": "26.19, 29.11, 33.02, 34.99", "inverse": "26.51, 30.44, 34.88, 36.37",
    "RPP": "13.86, 17.04, 20.27, 21.09", "Box-Cox": "26.00, 30.03, 34.15, 35.47",
    "Sym-Power": "26.96, 31.18, 35.41, 36.75",
}

EXPERIMENTS: dict[str, str] = {
    "evos-table1": "EVOS (CVPR 2025) Table 1: every sample selector, SIREN 3x256, over an image set",
    "sympower-table1": "Sym-Power (AAAI 2025) Table 1: every value transform, SIREN 3x256, full batches",
    "digits-vit": "the digits-vit recipe beside HOG + SVM on the same split of scikit-learn's digits",
    "moving-digits": "the four ViViT models on moving digits, and a single-frame ViT control",
    "gan-augment": "a CNN on 5 % and 10 % of the digits: real images only, + affine augmentation, + images of a "
                   "class-conditional GAN trained on the same fraction (3 seeds)",
}


def experiment_plan(name: str, *, images: list[str] | None = None, steps: int | None = None,
                    size: str | None = None) -> tuple[list[tuple[str, str, str, dict]], dict]:
    """The cells of experiment ``name`` as (row, item, task, options) and the table's description."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    if name == "gan-augment":  # its cells train a GAN and then classifiers on its images: not a list of runs
        raise ConfigError("gan-augment has no plan of runs; it is run by visionlab.trainer.gan_augment.gan_augment "
                          "with the settings GAN_AUGMENT ('visionlab experiment gan-augment')")
    if name in ("evos-table1", "sympower-table1"):
        steps = steps or 5000
        if name == "evos-table1":  # columns at the paper's 1k, 2k and 5k of 5,000 steps
            rows, paper, fractions = EVOS_TABLE1_ROWS, EVOS_TABLE1_PAPER, (0.2, 0.4, 1.0)
            # CFS covers the first 30 % of the run, as the paper's 1,500 of 5,000 steps.
            common = dict(model="siren", width=256, depth=3, lr=1e-4, cfs_steps=int(0.3 * steps))
        else:  # the paper's 0.5k, 1k, 3k and 5k of 5,000; its code decays the learning rate to 1e-5
            rows, paper, fractions = SYMPOWER_TABLE1_ROWS, SYMPOWER_TABLE1_PAPER, (0.1, 0.2, 0.6, 1.0)
            common = dict(model="siren", width=256, depth=3, lr=1e-4, lr_final=1e-5, sampler="full")
        if steps % 20:
            raise ConfigError(f"table steps must be a multiple of 20 (its columns are 10 % and 20 % of the run), "
                              f"got {steps}")
        columns = [round(f * steps) for f in fractions]
        common.update(steps=steps, size=size or "256x256", eval_every=steps // 20, checkpoint_every=steps // 5)
        cells = [(row, image, "fit", {**common, **options, "image": image})
                 for row, options in rows.items() for image in (images or TABLE_IMAGES)]
        return cells, {"kind": "fit", "columns": columns, "reference": paper}
    if name == "digits-vit":
        cells = [("ViT (recipe digits-vit)", "", "classify", classify_recipe("digits-vit")),
                 ("HOG + SVM (same split)", "", "features",
                  dict(data="digits", extractor="hog", classifier="svm"))]
    else:
        vivit = classify_recipe("moving-digits-vivit")
        labels = {1: "spatio-temporal", 2: "factorised encoder", 3: "factorised self-attention",
                  4: "factorised dot-product"}
        cells = [(f"ViViT model {k} ({label})", "", "classify", {**vivit, "vivit_model": k})
                 for k, label in labels.items()]
        cells.append(("ViT on one frame (control)", "", "classify", classify_recipe("moving-digits-frame-vit")))
    return cells, {"kind": "classify"}


# ------------------------------------------------------------------------------------------------ generative models
# `visionlab train ddpm|dit|unet --recipe NAME` (flags override them). Sized for a CPU; the numbers are what one
# run measured on a shared 2-core CPU with --threads 1 ('visionlab evaluate-samples' for the FIDs).
DIFFUSE_RECIPES: dict[str, dict] = {
    # DDPM's U-Net (32 channels, 3 levels, attention at 8 x 8), class-conditional, on 16 x 16 digits.
    # About 28 minutes on one CPU thread (0.24 s per step). Measured: 1,667 s of training; 500 DDIM-50 samples give a
    # reference FID of 0.59 against a real-data floor of 0.56 (ratio 1.05), 96.0 % classified as the digit asked
    # for. (The same recipe stopped at 1,200 steps with EMA 0.995: FID 11.3, ratio 20, 15.6 %: stop early at your
    # peril.)
    "digits-ddpm": dict(model="ddpm", data="digits", preset="digits", steps=7000, batch_size=32, lr=1e-3,
                        warmup_steps=100, ema=0.999, sample_every=2000, eval_every=100, checkpoint_every=500),
    # DiT (4 blocks of width 128, 2 x 2 patches), class-conditional, learned variance, on 16 x 16 digits, with
    # Min-SNR-5 loss weights and a cosine decay of the learning rate: about 25 minutes on one CPU thread (0.19 s per
    # step). Measured: 1,522 s of training; 500 DDIM-50 samples: FID 1.14 (2.0x the floor), 95.8 % classified as the
    # digit asked for; with guidance 2: 99.8 % (FID 3.60). The same network with DiT's own recipe (plain L_simple,
    # constant learning rate, 7,000 steps, 1,640 s): FID 4.92 (8.7x); the cosine decay alone: FID 4.09.
    # Those FIDs are against the test digits; judged instead against held-out training digits (benchmarks/
    # dit_recipe_blind.py) the variants rank the same: 2.16, 2.12, and 0.72 for this recipe (7,000 steps: 0.82;
    # label dropout 0.2: 0.78; lr 2e-3: 2.55).
    "digits-dit": dict(model="dit", data="digits", preset="digits", steps=8000, batch_size=32, lr=1e-3,
                       lr_schedule="cosine", min_snr=5.0, warmup_steps=100, ema=0.999, sample_every=2000,
                       eval_every=100, checkpoint_every=500),
    # The small 32 x 32 U-Net on grey texture patches (brick, grass, gravel), class-conditional.
    "textures-ddpm": dict(model="ddpm", data="textures", preset="tiny32", steps=4000, batch_size=64, lr=1e-3,
                          warmup_steps=200, ema=0.995, flip=True, sample_every=1000, eval_every=100,
                          checkpoint_every=500),
}

SEGMENT_RECIPES: dict[str, dict] = {
    # The small U-Net (16 channels, 3 poolings) on 32 x 32 shapes: background, rectangle, circle, triangle.
    # About 70 s on one quiet CPU thread. The learning rate was chosen on the validation split (100 of the 1,000
    # training images) by benchmarks/recipe_search.py: final-epoch validation mean IoU 0.937 / 0.959 / 0.963 / 0.958
    # for lr 1.5e-3 / 3e-3 (the earlier recipe) / 6e-3 / 1.2e-2; the test split chose nothing.
    # Measured with it: test mean IoU 0.970 (Dice 0.985; background 0.995, rectangle 0.967, circle 0.987, triangle
    # 0.933; chance 0.216) after 30 epochs (best validation epoch 24: test IoU 0.969); 68 s of training.
    "shapes-unet": dict(model="unet", data="shapes", preset="small", epochs=30, batch_size=32, lr=6e-3,
                        warmup_epochs=1, augment=True, dice_weight=0.5),
}


# `visionlab train gan --recipe NAME` (flags override them). Measured on a shared 2-core CPU with one thread.
GAN_RECIPES: dict[str, dict] = {
    # DCGAN (ngf = ndf = 32), class-conditional (label concatenated to z, projection D), non-saturating loss, on
    # 16 x 16 digits. Measured: 53 s of training (36 ms per step); every row of samples.png shows its class, with
    # little variety within a class; D accuracy about 0.96, pixel diversity 0.67 of the real images', no warning.
    "digits-gan": dict(model="gan", data="digits", preset="digits", conditional=True, loss="ns", steps=1500,
                       batch_size=64, ema=0.995, sample_every=500, eval_every=100, checkpoint_every=500),
    # WGAN-GP (critic with layer norm, 5 critic steps per G step, Adam (0, 0.9), lr 1e-4), unconditional. About 0.18 s
    # per step on one thread (the double backward of the penalty): some 6 minutes. Not measured to the end yet
    # (after 300 steps: digit-like strokes, pixel diversity 0.80).
    "digits-wgan-gp": dict(model="gan", data="digits", preset="digits", loss="wgan-gp", steps=2000, batch_size=64,
                           ema=0.995, sample_every=500, eval_every=100, checkpoint_every=500),
}


# ------------------------------------------------------------------------------------------------ building a config
# The presets and recipes of each config, and what a wrong name is called in the error.
RECIPES: dict[type, tuple[dict[str, dict], str]] = {
    FitConfig: (FIT_PRESETS, "fit preset"),
    ClassifyConfig: (CLASSIFY_RECIPES, "recipe"),
    DiffuseConfig: (DIFFUSE_RECIPES, "diffusion recipe"),
    SegmentConfig: (SEGMENT_RECIPES, "segmentation recipe"),
    GanConfig: (GAN_RECIPES, "GAN recipe"),
}


def build_config(cls, base: str | dict | None = None, /, **options):
    """The config of class ``cls``, made once: its defaults, then ``base``, then ``options``.

    ``base`` is the name of a preset or recipe of ``cls`` (the tables above), or the options of an earlier run (a
    checkpoint's ``config``: keys that this version does not know are dropped); ``options`` are the flags given on
    the command line or an API call's keywords, and a name that ``cls`` does not have is refused. Ranges are checked
    by the config's ``validate()`` when the run is built.
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
    if isinstance(base, str):
        table, kind = RECIPES.get(cls, ({}, f"{cls.__name__} preset"))
        base = _lookup(table, base, kind)
    return from_dict(cls, {**(base or {}), **options})


# `visionlab experiment gan-augment` (trainer/adversarial.py: gan_augment). For every fraction and seed: a stratified
# subset of the training split; a class-conditional GAN trained on that subset only (no peeking at the rest);
# the reference CNN trained for the same number of steps on (a) the subset, (b) the subset with random affine maps,
# (c) batches half from the subset, half from GAN images (synthetic_per_class per class); test accuracy on the whole
# test split. Estimated from timed parts at about 2.5 minutes per cell on one CPU thread (GAN ~55 s, each
# classifier ~30 s), 15 minutes for the 6 cells; not run to the end yet.
GAN_AUGMENT: dict = dict(
    data="digits", fractions=(0.05, 0.10), seeds=(0, 1, 2),
    gan=dict(preset="digits", loss="ns", steps=1500, batch_size=64, ema=0.995, eval_every=100),
    synthetic_per_class=100, synthetic_share=0.5,
    classifier_steps=500, classifier_batch=64, classifier_lr=2e-3,
)
