"""Interpreter mode: the commands as Python functions (``import visionlab as vl; vl.fit("coffee", steps=300)``).

Each task's module is imported when its function is first called, so that ``import visionlab`` stays quick and does
not load scikit-learn or OpenCV for a user who only fits neural fields.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from visionlab.manager import fit_preset
from visionlab.opt import (ClassifyConfig, ExperimentConfig, FeaturesConfig, FitConfig, ShapesConfig, from_dict,
                           parse_shard)
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
        return _resume(FitConfig, fit_task.fit, resume, task_name="fit", image=image, preset=preset,
                       callbacks=callbacks, **options)
    _check_options(FitConfig, options)
    values = fit_preset(preset)
    if image is not None:
        values["image"] = image
    values.update(options)
    config = FitConfig(**values)
    if Path(config.image).is_dir() and config.kind in (None, "image"):
        return _fit_folder(config)
    return fit_task.fit(config, callbacks=callbacks)


def _fit_folder(config: FitConfig) -> dict:
    """Fit every image of folder ``config.image`` with the same options, then write one table of their PSNR / SSIM
    (``OUT/fit/NAME/table.md``); running it again continues where it stopped."""
    from visionlab.data.datasets import image_files
    from visionlab.trainer.experiment import Cell, run_experiment

    config.validate()
    files = image_files(config.image)
    cells = [Cell(row=f.name, item="", task="fit", config=dataclasses.replace(config, image=str(f), kind="image"))
             for f in files]
    record = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUME_MAY_CHANGE + ("out", "name")}
    name = config.name or f"{Path(config.image).name}-{config.model}-{config.sampler}"
    result = run_experiment(name, cells, out=config.out, table={"kind": "items"}, options=record,
                            quiet=config.quiet, task="fit")
    return {"status": result["status"], "run_dir": result["folder"], "table": result.get("markdown", ""),
            "rows": result.get("rows", []), "metrics": result.get("mean", {})}


def train(model: str = "vit", *, resume: str | Path | None = None, callbacks=(), **options) -> dict:
    """Train a ViT (images) or ViViT (videos) classifier; return the run summary (``metrics``: test accuracy,
    best accuracy, seconds per epoch, ...). ``options`` are the fields of :class:`visionlab.opt.ClassifyConfig`.

    >>> vl.train("vit", data="digits", epochs=5)["metrics"]["accuracy"]  # doctest: +SKIP
    """
    from visionlab.trainer import classify as classify_task

    if resume is not None:
        return _resume(ClassifyConfig, classify_task.train, resume, task_name="classify", callbacks=callbacks,
                       **options)
    _check_options(ClassifyConfig, options)
    return classify_task.train(ClassifyConfig(model=model, **options), callbacks=callbacks)


def _resume(config_cls, task, resume: str | Path, *, task_name: str, callbacks=(), image=None, preset=None,
            **options) -> dict:
    """Continue the run in folder (or checkpoint) ``resume``, a run of task ``task_name``, with its own config."""
    from visionlab.util.checkpoint import CHECKPOINT_NAME
    from visionlab.util.errors import DataError

    path = Path(resume)
    state = load_state(path)  # before any data is loaded: a wrong checkpoint is refused at once
    if state.get("task") != task_name:
        raise DataError(f"{resume} holds a {state.get('task')!r} run, not a {task_name!r} one")
    if not isinstance(state.get("config"), dict):
        where = path / CHECKPOINT_NAME if path.is_dir() else path
        raise DataError(f"{where} has no run options (its 'config' is missing): not a checkpoint that visionlab "
                        f"wrote")
    fixed = sorted(k for k, v in options.items() if k not in RESUME_MAY_CHANGE and v is not None)
    if fixed or preset or image:
        raise ConfigError(f"a resumed run keeps its own options; only device, threads and quiet may change "
                          f"(got {', '.join(fixed or ['preset' if preset else 'image'])})")
    overrides = {k: v for k, v in options.items() if v is not None}
    config = from_dict(config_cls, {**state["config"], **overrides})
    return task(config, resume=(state, path if path.is_dir() else path.parent), callbacks=callbacks)


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


def experiment(experiment: str = "evos-table1", /, **options) -> dict:
    """Run every cell of a table (see ``manager.EXPERIMENTS``) and return it: ``markdown`` and ``rows``.
    ``options`` are the fields of :class:`visionlab.opt.ExperimentConfig`. Calling it again with the same
    options skips the finished runs and continues an interrupted one.

    >>> print(vl.experiment("evos-table1", steps=1000, images="astronaut,camera")["markdown"])  # doctest: +SKIP
    """
    from visionlab.data.datasets import image_files
    from visionlab.manager import experiment_plan
    from visionlab.trainer.experiment import Cell, run_experiment

    _check_options(ExperimentConfig, options)
    o = ExperimentConfig(experiment=experiment, **options).validate()
    if experiment == "gan-augment":  # not a list of runs: see gan_augment below
        return gan_augment(o)
    images = None
    if o.images is not None:
        images = [str(f) for f in image_files(o.images)] if Path(o.images).is_dir() else \
            [i.strip() for i in o.images.split(",") if i.strip()]
    plan, table = experiment_plan(experiment, images=images, steps=o.steps, size=o.size)
    common = dict(seed=o.seed, device=o.device, threads=o.threads)
    configs = {"fit": FitConfig, "classify": ClassifyConfig, "features": FeaturesConfig}
    cells = []
    for row, item, task, values in plan:
        values = {**values, **{k: v for k, v in common.items() if k in {f.name for f in dataclasses.fields(
            configs[task])}}}
        cells.append(Cell(row=row, item=Path(item).stem if item else "", task=task,
                          config=from_dict(configs[task], values).validate()))
    options_record = {"images": images, "size": o.size, "steps": o.steps, "seed": o.seed}
    return run_experiment(o.name or experiment, cells, out=o.out, table=table, options=options_record, quiet=o.quiet,
                          shard=parse_shard(o.shard) if o.shard else None)


def _check_options(cls, options: dict) -> None:
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}")


# What each hooked module does, in the words of the notes' shape walk-through.
SHAPE_STEPS = {
    "patch_embed.proj": "patch embedding: conv, kernel = stride = patch size, D output channels",
    "patch_embed.flatten": "flatten the patch grid: L = number of patches",
    "patch_embed.transpose": "transpose to tokens (B, L, D)",
    "cls_token": "prepend the [CLS] token: L + 1",
    "pos_embed": "+ positional embedding (same shape)",
    "encoder.blocks": "transformer block",
    "encoder.norm": "LayerNorm",
    "spatial_pool": "one vector per time index (its [CLS])",
    "temporal_cls_token": "prepend the temporal [CLS]",
    "temporal_pos_embed": "+ temporal positional embedding",
    "temporal_encoder.blocks": "temporal transformer block",
    "temporal_encoder.norm": "LayerNorm",
    "pool": "pool: the [CLS] token (token 0) or the mean of the tokens",
    "head": "linear head -> class scores",
}


def shapes(model: str = "vit", **options) -> str:
    """Each step's tensor shape through a ViT or ViViT, recorded by forward hooks on PyTorch's meta device
    (instant and memory-free at any size); returns the table that ``visionlab shapes`` prints.

    >>> print(vl.shapes("vit", preset="B", image_size=224, patch_size=16))  # doctest: +SKIP
    (1, 3, 224, 224)  input
    (1, 768, 14, 14)  <- patch embedding: conv, kernel = stride = patch size, D output channels
    ...
    """
    import torch

    from visionlab.models.vit import ViT, vit_config
    from visionlab.models.vivit import ViViT, vivit_config
    from visionlab.util.shapes import format_steps, trace_shapes

    _check_options(ShapesConfig, options)
    o = ShapesConfig(model=model, **options).validate()
    preset, image_size, patch_size, channels = o.preset, o.image_size, o.patch_size, o.channels
    frames, tubelet, vivit_model = o.frames, o.tubelet, o.vivit_model
    sizes = {} if o.num_classes is None else {"num_classes": o.num_classes}
    if model == "vit":
        config = vit_config(preset, image_size=image_size, in_channels=channels,
                            **({"patch_size": patch_size} if patch_size is not None else {}), **sizes)
        with torch.device("meta"):
            network = ViT(config=config)
        inputs = torch.empty(1, channels, image_size, image_size, device="meta")  # (B, C, H, W)
    elif model == "vivit":
        t, p = (tubelet[0], tubelet[1]) if tubelet else (2, patch_size if patch_size is not None else 16)
        if tubelet and tubelet[1] != tubelet[2]:
            raise ConfigError(f"tubelets have square patches: got h = {tubelet[1]}, w = {tubelet[2]}")
        config = vivit_config(preset, model=vivit_model, image_size=image_size, num_frames=frames, tubelet_time=t,
                              patch_size=p, in_channels=channels, **sizes)
        with torch.device("meta"):
            network = ViViT(config=config)
        inputs = torch.empty(1, channels, frames, image_size, image_size, device="meta")  # (B, C, T, H, W)
    else:
        raise ConfigError(f"shapes knows vit and vivit, not {model!r}")
    steps = trace_shapes(network, inputs, list(SHAPE_STEPS))
    return format_steps(steps, SHAPE_STEPS)


def evaluate(run: str | Path, *, data: str | None = None, split: str = "test", device: str = "auto") -> dict:
    """Test a trained classifier (a run folder of ``train``) on its own test split, or on ``data`` (a built-in set or
    a path whose classes are among the model's); ``split="all"`` uses every example. Returns accuracy, the per-class
    report and the confusion matrix, also written into the run folder.

    >>> vl.evaluate("runs/classify/digits-vit")["accuracy"]  # doctest: +SKIP
    0.9888...
    """
    from visionlab.trainer import classify as classify_task

    return classify_task.evaluate_run(run, data=data, split=split, device=device)


def predict(run: str | Path, files: list[str], *, device: str = "auto") -> list[dict]:
    """Classify image files (a ViT run) or clips (a ViViT run) with the model of run folder ``run``:
    ``[{"file", "class", "probability"}, ...]``."""
    from visionlab.trainer import classify as classify_task

    if not files:
        raise ConfigError("no files to predict")
    return classify_task.predict_files(run, list(files), device=device)


# ------------------------------------------------------------------------------------------------ generative models

def diffuse(model: str = "ddpm", *, resume: str | Path | None = None, callbacks=(), **options) -> dict:
    """Train a diffusion model in pixel space (``"ddpm"``: DDPM's U-Net, ``"dit"``: a Diffusion Transformer) and
    return the run summary; ``options`` are the fields of :class:`visionlab.opt.DiffuseConfig`. The run folder holds
    sample grids, the loss curve and the EMA weights; :func:`sample` draws from it.

    >>> run = vl.diffuse("ddpm", data="digits", steps=3000)["run_dir"]  # doctest: +SKIP
    >>> vl.sample(run, sampler="ddim", steps=50, guidance=2.0, labels="7")  # doctest: +SKIP
    """
    from visionlab.opt import DiffuseConfig
    from visionlab.trainer import diffuse as diffuse_task

    if resume is not None:
        return _resume(DiffuseConfig, diffuse_task.train, resume, task_name="diffuse", callbacks=callbacks, **options)
    _check_options(DiffuseConfig, options)
    return diffuse_task.train(DiffuseConfig(model=model, **options), callbacks=callbacks)


def segment(data: str = "shapes", *, resume: str | Path | None = None, callbacks=(), **options) -> dict:
    """Train the segmentation U-Net on ``shapes`` (built in) or a folder with images/ and masks/; return the run
    summary (``metrics``: mean IoU and Dice on the test split, per class too). ``options`` are the fields of
    :class:`visionlab.opt.SegmentConfig`.

    >>> vl.segment("shapes", epochs=20)["metrics"]["mean_iou"]  # doctest: +SKIP
    """
    from visionlab.opt import SegmentConfig
    from visionlab.trainer import segment as segment_task

    if resume is not None:
        return _resume(SegmentConfig, segment_task.train, resume, task_name="segment", callbacks=callbacks, **options)
    _check_options(SegmentConfig, options)
    options.pop("model", None)
    return segment_task.train(SegmentConfig(data=data, **options), callbacks=callbacks)


def sample(run: str | Path, **options) -> dict:
    """Generate images with a diffusion run (its folder or ``checkpoint.pt``): DDPM (all T steps) or DDIM (any
    number), with classifier-free guidance and chosen labels. Writes a grid (.png) and the images (.npy, (N, C, H, W)
    in [0, 1]) and returns their paths and the time taken. ``options``: the fields of
    :class:`visionlab.opt.SampleConfig`.

    >>> vl.sample("runs/diffuse/digits-ddpm", sampler="ddim", steps=50, labels="3", num=16)  # doctest: +SKIP
    """
    import torch

    from visionlab.opt import SampleConfig
    from visionlab.trainer import generative_runs as diffuse_task

    _check_options(SampleConfig, options)
    o = SampleConfig(run=str(run), **options).validate()
    if o.threads:
        torch.set_num_threads(o.threads)
    return diffuse_task.sample_run(o.run, sampler=o.sampler, steps=o.steps, eta=o.eta, guidance=o.guidance,
                                   labels=o.labels, num=o.num, seed=o.seed, batch_size=o.batch_size, out=o.out,
                                   device=o.device, progress=not o.quiet)


def evaluate_samples(run: str | Path, **options) -> dict:
    """FID between a diffusion run's samples and the real test images in the feature space of a reference CNN that
    visionlab trains on the same data (and caches), with the floor FID of real training images, the share of
    confidently recognised samples and, for class-conditional runs, the accuracy on the requested labels.
    ``options``: the fields of :class:`visionlab.opt.EvaluateSamplesConfig` (``samples`` evaluates a .npy written
    by :func:`sample`; otherwise ``num`` images are generated).

    >>> vl.evaluate_samples("runs/diffuse/digits-ddpm", num=500, steps=50)["fid"]  # doctest: +SKIP
    """
    import torch

    from visionlab.opt import EvaluateSamplesConfig
    from visionlab.trainer import generative_runs as evaluate_task

    _check_options(EvaluateSamplesConfig, options)
    o = EvaluateSamplesConfig(run=str(run), **options).validate()
    if o.threads:
        torch.set_num_threads(o.threads)
    return evaluate_task.evaluate_samples(o.run, samples=o.samples, num=o.num, sampler=o.sampler, steps=o.steps,
                                          eta=o.eta, guidance=o.guidance, labels=o.labels, seed=o.seed,
                                          batch_size=o.batch_size, reference_epochs=o.reference_epochs,
                                          device=o.device, quiet=o.quiet)


def gan(data: str = "digits", *, resume: str | Path | None = None, callbacks=(), **options) -> dict:
    """Train a GAN (DCGAN's generator and discriminator; ``conditional=True`` for a class-conditional pair with a
    projection discriminator) on images and return the run summary; ``options`` are the fields of
    :class:`visionlab.opt.GanConfig` (``loss``: ns, hinge or wgan-gp; ``steps``, ...). The run folder holds sample
    grids from fixed noise, the loss curves and the EMA generator; :func:`sample` and :func:`evaluate_samples` take it.

    >>> run = vl.api.gan("digits", conditional=True, steps=1500)["run_dir"]  # doctest: +SKIP
    >>> vl.sample(run, labels="7", num=16)  # doctest: +SKIP
    """
    from visionlab.opt import GanConfig
    from visionlab.trainer import adversarial as adversarial_task

    if resume is not None:
        return _resume(GanConfig, adversarial_task.train, resume, task_name="adversarial", callbacks=callbacks,
                       **options)
    _check_options(GanConfig, options)
    return adversarial_task.train(GanConfig(data=data, **options), callbacks=callbacks)


def gan_augment(options: ExperimentConfig) -> dict:
    """``experiment("gan-augment")``: a classifier on a small fraction of the digits, alone, with affine
    augmentation and with images of a class-conditional GAN trained on the same fraction (``manager.GAN_AUGMENT``);
    ``steps`` sets the GAN's steps. Returns the table (``markdown``, ``rows``), written to OUT/experiment/NAME."""
    from visionlab.manager import GAN_AUGMENT
    from visionlab.trainer.gan_augment import gan_augment as run_gan_augment

    if options.images is not None or options.size is not None:
        raise ConfigError("gan-augment works on the digits: --images and --size do not apply")
    seeds = tuple(options.seed + k for k in range(len(GAN_AUGMENT["seeds"])))
    return run_gan_augment(settings=GAN_AUGMENT, seeds=seeds, gan_steps=options.steps, out=options.out,
                           name=options.name or "gan-augment", device=options.device, threads=options.threads,
                           quiet=options.quiet)
