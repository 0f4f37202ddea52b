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


def fit_preset(name: str | None) -> dict:
    """The options of fit preset ``name`` (an empty dict for None)."""
    if name is None:
        return {}
    if name not in FIT_PRESETS:
        raise ConfigError(f"unknown fit preset {name!r}; choose one of {', '.join(FIT_PRESETS)}")
    return dict(FIT_PRESETS[name])
