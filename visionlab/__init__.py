"""visionlab: computer-vision models to run, read and extend.

Interpreter mode::

    import visionlab as vl
    metrics = vl.fit("coffee", steps=300, sampler="evos")   # fit an image with SIREN + EVOS
    vl.Siren(out_features=3)                                 # every model is a plain nn.Module
    vl.ViT()                                                 # the command line's default ViT (preset tiny)
    vl.features("digits", extractor="hog", classifier="svm") # HOG + SVM on scikit-learn's digits

Script mode: ``visionlab fit coffee --steps 300`` (or ``python -m visionlab``, ``python main.py``).

The names below are loaded when first used (PEP 562): ``import visionlab`` itself is instant, so that the command
line can answer Ctrl-C in one line while PyTorch loads, and ``vl.fit`` is the function of :mod:`visionlab.api` as
it always was.
"""

from __future__ import annotations

import importlib

from visionlab.util.version import __version__

# Public name -> the module that defines it.
_PUBLIC = {
    **dict.fromkeys(("attention_maps", "diffuse", "evaluate", "evaluate_samples", "experiment", "features",
                     "features_predict", "fit", "fit_run", "forward_process", "gan", "gan_progress",
                     "hog_picture", "keypoint_picture", "patch_picture", "position_similarity", "predict",
                     "reverse_trajectory", "sample", "segment", "selection_masks", "shapes", "show", "train",
                     "tubelet_picture"), "visionlab.api"),
    **dict.fromkeys(("psnr", "ssim"), "visionlab.components.metrics"),
    **dict.fromkeys(("SAMPLERS", "EvosSampler", "build_sampler"), "visionlab.components.sampling"),
    **dict.fromkeys(("TRANSFORMS", "make_transform"), "visionlab.components.transforms"),
    **dict.fromkeys(("SAMPLE_IMAGES", "coordinate_grid", "load_image"), "visionlab.data.images"),
    **dict.fromkeys(("INR_MODELS", "Finer", "FourierFeatureMLP", "Siren", "build_inr"), "visionlab.models.inr"),
    "ViT": "visionlab.models.vit",  # each model family's constructor builds the command line's default preset
    "ViViT": "visionlab.models.vivit",
    "DiT": "visionlab.models.dit",
    "UNet": "visionlab.models.unet",
    "FitConfig": "visionlab.opt",
    "pick_device": "visionlab.util.device",
}
# The package's own sub-packages and modules, reachable as attributes too (vl.api, vl.models, ...).
_MODULES = ("api", "cli", "components", "data", "manager", "models", "opt", "trainer", "util")

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(f"visionlab.{name}")
    else:
        raise AttributeError(f"module 'visionlab' has no attribute {name!r}")
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_MODULES})
