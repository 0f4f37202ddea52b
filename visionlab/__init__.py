"""visionlab: computer-vision models to run, read and extend.

Interpreter mode::

    import visionlab as vl
    metrics = vl.fit("coffee", steps=300, sampler="evos")   # fit an image with SIREN + EVOS
    vl.Siren(out_features=3)                                 # every model is a plain nn.Module
    vl.features("digits", extractor="hog", classifier="svm") # HOG + SVM on scikit-learn's digits

Script mode: ``visionlab fit coffee --steps 300`` (or ``python -m visionlab``, ``python main.py``).
"""

from visionlab.util.version import __version__  # noqa: E402

from visionlab.api import (attention_maps, diffuse, evaluate, evaluate_samples, experiment, features,  # noqa: E402
                           features_predict, fit, fit_run, forward_process, gan, gan_progress, hog_picture,
                           keypoint_picture, patch_picture, position_similarity, predict, reverse_trajectory, sample,
                           segment, selection_masks, shapes, show, train, tubelet_picture)
from visionlab.components.metrics import psnr, ssim  # noqa: E402
from visionlab.components.sampling import SAMPLERS, EvosSampler, build_sampler  # noqa: E402
from visionlab.components.transforms import TRANSFORMS, make_transform  # noqa: E402
from visionlab.data.images import SAMPLE_IMAGES, coordinate_grid, load_image  # noqa: E402
from visionlab.models.inr import INR_MODELS, Finer, FourierFeatureMLP, Siren, build_inr  # noqa: E402
from visionlab.opt import FitConfig  # noqa: E402
from visionlab.util.device import pick_device  # noqa: E402

__all__ = ["diffuse", "gan", "evaluate", "evaluate_samples", "sample", "segment", "experiment", "features",
           "features_predict", "fit", "fit_run", "predict", "shapes", "train", "show", "attention_maps",
           "position_similarity", "patch_picture", "tubelet_picture", "forward_process", "reverse_trajectory",
           "keypoint_picture", "hog_picture", "gan_progress", "selection_masks",
           "psnr", "ssim", "SAMPLERS", "EvosSampler", "build_sampler",
           "TRANSFORMS", "make_transform", "SAMPLE_IMAGES", "coordinate_grid", "load_image", "INR_MODELS", "Finer",
           "FourierFeatureMLP", "Siren", "build_inr", "FitConfig", "pick_device", "__version__"]
