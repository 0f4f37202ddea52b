"""Named experiment presets: a name -> the options of a config (explicit dicts, no registry magic).

``visionlab fit IMAGE --preset paper`` starts from a preset; flags given on the command line override it.
"""

from __future__ import annotations

from visionlab.util.errors import ConfigError

FIT_PRESETS: dict[str, dict] = {
    # The one-command demo: SIREN 3x256 + EVOS (step-wise from 0.2) sized for about a minute on a 2-core CPU.
    # Measured: 35.8 dB PSNR after 58 s of training on a 2-core CPU.
    "demo": dict(image="astronaut", size="160", steps=400, sampler="evos", ratio=0.2, scheduler="step",
                 eval_every=25, checkpoint_every=100),
    # EVOS (CVPR 2025) Table 1, last row: SIREN 3x256, lr 1e-4, 512x512, 5,000 steps, step-wise ratio from 0.2.
    "paper": dict(size="512x512", steps=5000, model="siren", width=256, depth=3, sampler="evos", ratio=0.2,
                  scheduler="step", cfs_steps=1500, eval_every=250, checkpoint_every=1000),
    # The same table's constant-ratio block (r = 0.5) and its Standard baseline.
    "paper-constant": dict(size="512x512", steps=5000, sampler="evos", ratio=0.5, scheduler="constant",
                           eval_every=250, checkpoint_every=1000),
    "paper-full": dict(size="512x512", steps=5000, sampler="full", eval_every=250, checkpoint_every=1000),
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


def fit_preset(name: str | None) -> dict:
    """The options of fit preset ``name`` (an empty dict for None)."""
    return _lookup(FIT_PRESETS, name, "fit preset")


# Training recipes for `visionlab train --recipe NAME` (flags override them). Found by a search on a 2-core CPU with
# the same models and losses (digits: 99.11 / 99.33 / 98.44 % for seeds 0 / 1 / 2 in 75 s of training on one quiet
# thread; moving digits: 100 % for all four ViViT models in 15 epochs, 8 x 16 x 16 clips of 8 px digits, where a
# single-frame ViT stays at chance). Data-efficient training (small patches, affine augmentation, label smoothing,
# warm-up + cosine, no decay on norms and tokens) is what lets a ViT learn from 1,347 digit images.
CLASSIFY_RECIPES: dict[str, dict] = {
    # ViT on scikit-learn's 8 x 8 digits: 16 tokens of 2 x 2 pixels, 4 blocks of width 64 (136k parameters).
    "digits-vit": dict(model="vit", data="digits", preset="tiny", patch_size=2, dim=64, depth=4, num_heads=4,
                       mlp_dim=128, pool="cls", epochs=100, batch_size=32, lr=2e-3, weight_decay=0.05,
                       warmup_epochs=5, label_smoothing=0.1, augment=True, grad_clip=1.0),
    # ViViT (factorised encoder) on moving digits: 8 frames of 16 x 16, tubelets 2 x 4 x 4.
    "moving-digits-vivit": dict(model="vivit", data="moving-digits", preset="tiny", vivit_model=2, frames=8,
                                image_size=16, patch_size=4, dim=64, depth=4, num_heads=4, mlp_dim=128,
                                epochs=15, batch_size=32, lr=1e-3, weight_decay=0.05, warmup_epochs=2,
                                label_smoothing=0.1, grad_clip=1.0),
}


def classify_recipe(name: str | None) -> dict:
    """The options of training recipe ``name`` (an empty dict for None)."""
    return _lookup(CLASSIFY_RECIPES, name, "recipe")
