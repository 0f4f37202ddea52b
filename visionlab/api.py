"""Interpreter mode: the commands as Python functions (``import visionlab as vl; vl.fit("coffee", steps=300)``).

Each task's module is imported when its function is first called, so that ``import visionlab`` stays quick and does
not load scikit-learn or OpenCV for a user who only fits neural fields.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from visionlab.manager import fit_preset
from visionlab.opt import FeaturesConfig, FitConfig, from_dict
from visionlab.util.checkpoint import load_state
from visionlab.util.errors import ConfigError

RESUME_MAY_CHANGE = ("device", "threads", "quiet")  # options that do not change what a resumed run computes


def fit(image: str | None = None, *, preset: str | None = None, resume: str | Path | None = None,
        callbacks=(), **options) -> dict:
    """Fit an image with a neural field and return its metrics (PSNR, SSIM, wall seconds, steps, pixels trained).

    ``image`` is a file or a built-in sample name; ``options`` are the fields of :class:`visionlab.opt.FitConfig`
    (``steps``, ``sampler``, ``ratio``, ``model``, ...), applied over ``preset``. ``resume`` continues an earlier
    run (its folder or checkpoint) with its own config; only ``device``, ``threads`` and ``quiet`` may be changed.

    >>> metrics = fit("coffee", preset="tiny", quiet=True, out="/tmp/runs")  # doctest: +SKIP
    >>> round(metrics["psnr"]) > 10  # doctest: +SKIP
    True
    """
    return fit_run(image, preset=preset, resume=resume, callbacks=callbacks, **options)["metrics"]


def fit_run(image: str | None = None, *, preset: str | None = None, resume: str | Path | None = None,
            callbacks=(), **options) -> dict:
    """Like :func:`fit`, but return the whole run summary (status, run folder, metrics)."""
    from visionlab.trainer import fit as fit_task

    if resume is not None:
        path = Path(resume)
        state = load_state(path)
        fixed = sorted(k for k, v in options.items() if k not in RESUME_MAY_CHANGE and v is not None)
        if fixed or preset or image:
            raise ConfigError(f"a resumed run keeps its own options; only device, threads and quiet may change "
                              f"(got {', '.join(fixed or ['preset' if preset else 'image'])})")
        overrides = {k: v for k, v in options.items() if v is not None}
        config = from_dict(FitConfig, {**state["config"], **overrides})
        return fit_task.fit(config, resume=(state, path if path.is_dir() else path.parent), callbacks=callbacks)
    _check_options(FitConfig, options)
    values = fit_preset(preset)
    if image is not None:
        values["image"] = image
    values.update(options)
    return fit_task.fit(FitConfig(**values), callbacks=callbacks)


def features(data: str = "digits", *, extractor: str = "hog", classifier: str = "svm", **options) -> dict:
    """Classify a data set with hand-made features and a classic learner; return the run summary.

    ``data`` is a built-in set (digits, faces, textures) or a folder of class sub-folders; ``options`` are the fields
    of :class:`visionlab.opt.FeaturesConfig` (``encoding``, ``vocabulary``, ``grid_search``, ``compare``, ...).
    The summary's ``metrics`` hold the accuracy (``rows`` with ``compare=True``); the fitted pipeline is saved in
    the run folder (``visionlab.models.classic.load_pipeline``).

    >>> vl.features("digits", extractor="hog", classifier="svm")["metrics"]["accuracy"]  # doctest: +SKIP
    0.9955...
    """
    from visionlab.trainer import features as features_task

    _check_options(FeaturesConfig, options)
    return features_task.run_features(FeaturesConfig(data=data, extractor=extractor, classifier=classifier,
                                                     **options))


def _check_options(cls, options: dict) -> None:
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
