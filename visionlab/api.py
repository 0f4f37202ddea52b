"""Interpreter mode: the commands as Python functions (``import visionlab as vl; vl.fit("coffee", steps=300)``).

Each function makes its config once (``manager.build_config``: defaults, preset or recipe, then the keywords given)
and hands it to :func:`run_config`, which runs the task that the config describes. Script mode (``visionlab.cli``)
calls these functions with the flags given.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from visionlab.data.datasets import image_files
from visionlab.manager import GAN_AUGMENT, build_config, experiment_plan
from visionlab.opt import (ClassifyConfig, DiffuseConfig, EvaluateSamplesConfig, ExperimentConfig,
                           FeaturesConfig, FitConfig, GanConfig, SampleConfig, SegmentConfig, ShapesConfig, ShowConfig,
                           parse_shard)
from visionlab.opt.fields import check_threads
from visionlab.trainer import adversarial as adversarial_task
from visionlab.trainer import classify as classify_task
from visionlab.trainer import diffuse as diffuse_task
from visionlab.trainer import features as features_task
from visionlab.trainer import fit as fit_task
from visionlab.trainer import generative_runs
from visionlab.trainer import pictures
from visionlab.trainer import segment as segment_task
from visionlab.trainer.experiment import Cell, run_experiment
from visionlab.trainer.gan_augment import gan_augment as run_gan_augment
from visionlab.trainer.shapes import shapes_table
from visionlab.util.checkpoint import CHECKPOINT_NAME, load_state
from visionlab.util.device import set_threads
from visionlab.util.errors import ConfigError, DataError

RESUME_MAY_CHANGE = ("device", "threads", "quiet")  # options that do not change what a resumed run computes
RESUME_EXTENDS = ("steps", "epochs")  # a new total: the run goes on to it (trainer/extend.py)


def fit(image: str | None = None, *, preset: str | None = None, resume: str | Path | None = None,
        callbacks=(), **options) -> dict:
    """Fit an image with a neural field and return its metrics (PSNR, SSIM, wall seconds, steps, pixels trained).

    ``image`` is a file or a built-in sample name; ``options`` are the fields of :class:`visionlab.opt.FitConfig`
    (``steps``, ``sampler``, ``ratio``, ``model``, ...), applied over ``preset``. ``resume`` continues an earlier
    run (its folder or checkpoint) with its own config; only ``device``, ``threads`` and ``quiet`` may be changed,
    and ``steps`` to extend it (its schedules are stretched to the new end: ``trainer/extend.py``).

    >>> metrics = fit("coffee", preset="tiny", quiet=True, out="/tmp/runs")  # doctest: +SKIP
    >>> round(metrics["psnr"]) > 10  # doctest: +SKIP
    True
    """
    return fit_run(image, preset=preset, resume=resume, callbacks=callbacks, **options)["metrics"]


def fit_run(image: str | None = None, *, preset: str | None = None, resume: str | Path | None = None,
            callbacks=(), **options) -> dict:
    """Like :func:`fit`, but return the whole run summary (status, run folder, metrics)."""
    if resume is not None:
        return resume_run(FitConfig, resume, callbacks=callbacks, image=image, preset=preset, **options)
    if image is not None:
        options["image"] = image
    return run_config(build_config(FitConfig, preset, **options), callbacks=callbacks)


def train(model: str = "vit", *, recipe: str | None = None, resume: str | Path | None = None, callbacks=(),
          **options) -> dict:
    """Train a ViT (images) or ViViT (videos) classifier; return the run summary (``metrics``: final test accuracy,
    best validation epoch and its test accuracy). ``options`` are the fields of :class:`visionlab.opt.ClassifyConfig`,
    applied over ``recipe`` (a name in ``manager.CLASSIFY_RECIPES``; ``model`` is applied over the recipe's too).

    >>> vl.train("vit", data="digits", epochs=5)["metrics"]["accuracy"]  # doctest: +SKIP
    """
    if resume is not None:
        return resume_run(ClassifyConfig, resume, callbacks=callbacks, **options)
    return run_config(build_config(ClassifyConfig, recipe, model=model, **options), callbacks=callbacks)


def features(data: str = "digits", *, extractor: str = "hog", classifier: str = "svm", **options) -> dict:
    """Classify a data set with hand-made features and a classic learner; return the run summary.

    ``data`` is a built-in set (digits, faces, textures) or a folder of class sub-folders; ``options`` are the fields
    of :class:`visionlab.opt.FeaturesConfig` (``encoding``, ``vocabulary``, ``grid_search``, ``compare``, ...).
    The summary's ``metrics`` hold the accuracy (``rows`` with ``compare=True``); the fitted pipeline is saved in
    the run folder (``visionlab.models.classic.load_pipeline``).

    >>> vl.features("digits", extractor="hog", classifier="svm")["metrics"]["accuracy"]  # doctest: +SKIP
    0.9955...
    """
    return run_config(build_config(FeaturesConfig, data=data, extractor=extractor, classifier=classifier, **options))


def features_predict(files: list[str], data: str = "digits", *, extractor: str = "hog", classifier: str = "svm",
                     **options) -> list[dict]:
    """Classify image files with the pipeline of the features run these options name (OUT/features/NAME, as
    :func:`features` names it): ``[{"file", "class"}, ...]``; ``predict(run, files)`` takes the folder itself.

    >>> vl.features_predict(["seven.png"], "digits", extractor="hog", classifier="svm")  # doctest: +SKIP
    """
    if not files:
        raise ConfigError("no files to predict")
    config = build_config(FeaturesConfig, data=data, extractor=extractor, classifier=classifier, **options)
    return features_task.predict_named(config, list(files))


def experiment(experiment: str = "evos-table1", /, **options) -> dict:
    """Run every cell of a table (see ``manager.EXPERIMENTS``) and return it: ``markdown`` and ``rows``.
    ``options`` are the fields of :class:`visionlab.opt.ExperimentConfig`. Calling it again with the same
    options skips the finished runs and continues an interrupted one.

    >>> print(vl.experiment("evos-table1", steps=1000, images="astronaut,camera")["markdown"])  # doctest: +SKIP
    """
    return run_config(build_config(ExperimentConfig, experiment=experiment, **options))


def shapes(model: str = "vit", **options) -> str:
    """Each step's tensor shape through a ViT or ViViT, recorded by forward hooks on PyTorch's meta device
    (instant and memory-free at any size); returns the table that ``visionlab shapes`` prints.

    >>> print(vl.shapes("vit", preset="B", image_size=224, patch_size=16))  # doctest: +SKIP
    (1, 3, 224, 224)  input
    (1, 768, 14, 14)  <- patch embedding: conv, kernel = stride = patch size, D output channels
    ...
    """
    return run_config(build_config(ShapesConfig, model=model, **options))


def evaluate(run: str | Path, *, data: str | None = None, split: str = "test", device: str = "auto",
             threads: int | None = None) -> dict:
    """Test a trained classifier (a run folder of ``train``) on its own test split, or on ``data`` (a built-in set or
    a path whose classes are among the model's); ``split="all"`` uses every example. Returns accuracy, the per-class
    report and the confusion matrix, also written into the run folder. ``threads``: CPU threads (default: the
    libraries' own choice).

    >>> vl.evaluate("runs/classify/digits-vit")["accuracy"]  # doctest: +SKIP
    0.9888...
    """
    set_threads(check_threads(threads))
    return classify_task.evaluate_run(run, data=data, split=split, device=device)


def predict(run: str | Path, files: list[str], *, device: str = "auto", threads: int | None = None) -> list[dict]:
    """Classify image files (a ViT run) or clips (a ViViT run) with the model of run folder ``run``:
    ``[{"file", "class", "probability"}, ...]``; a ``features`` run (its ``pipeline.joblib``): ``[{"file",
    "class"}, ...]``."""
    if not files:
        raise ConfigError("no files to predict")
    set_threads(check_threads(threads))
    if (Path(run) / "pipeline.joblib").is_file():
        return features_task.predict_files(run, list(files))
    return classify_task.predict_files(run, list(files), device=device)


def diffuse(model: str = "ddpm", *, recipe: str | None = None, resume: str | Path | None = None, callbacks=(),
            **options) -> dict:
    """Train a diffusion model in pixel space (``"ddpm"``: DDPM's U-Net, ``"dit"``: a Diffusion Transformer) and
    return the run summary; ``options`` are the fields of :class:`visionlab.opt.DiffuseConfig`, applied over
    ``recipe`` (``manager.DIFFUSE_RECIPES``; ``model`` over the recipe's too). The run folder holds sample grids, the
    loss curve and the EMA weights; :func:`sample` draws from it.

    >>> run = vl.diffuse("ddpm", data="digits", steps=3000)["run_dir"]  # doctest: +SKIP
    >>> vl.sample(run, sampler="ddim", steps=50, guidance=2.0, labels="7")  # doctest: +SKIP
    """
    if resume is not None:
        return resume_run(DiffuseConfig, resume, callbacks=callbacks, **options)
    return run_config(build_config(DiffuseConfig, recipe, model=model, **options), callbacks=callbacks)


def segment(data: str = "shapes", *, recipe: str | None = None, resume: str | Path | None = None, callbacks=(),
            **options) -> dict:
    """Train the segmentation U-Net on ``shapes`` (built in) or a folder with images/ and masks/; return the run
    summary (``metrics``: mean IoU and Dice on the test split, per class too). ``options`` are the fields of
    :class:`visionlab.opt.SegmentConfig`, applied over ``recipe`` (``manager.SEGMENT_RECIPES``).

    >>> vl.segment("shapes", epochs=20)["metrics"]["mean_iou"]  # doctest: +SKIP
    """
    if resume is not None:
        return resume_run(SegmentConfig, resume, callbacks=callbacks, **options)
    return run_config(build_config(SegmentConfig, recipe, data=data, **options), callbacks=callbacks)


def gan(data: str = "digits", *, recipe: str | None = None, resume: str | Path | None = None, callbacks=(),
        **options) -> dict:
    """Train a GAN (DCGAN's generator and discriminator; ``conditional=True`` for a class-conditional pair with a
    projection discriminator) on images and return the run summary; ``options`` are the fields of
    :class:`visionlab.opt.GanConfig` (``loss``: ns, hinge or wgan-gp; ``steps``, ...), applied over ``recipe``
    (``manager.GAN_RECIPES``). The run folder holds sample
    grids from fixed noise, the loss curves and the EMA generator; :func:`sample` and :func:`evaluate_samples` take it.

    >>> run = vl.api.gan("digits", conditional=True, steps=1500)["run_dir"]  # doctest: +SKIP
    >>> vl.sample(run, labels="7", num=16)  # doctest: +SKIP
    """
    if resume is not None:
        return resume_run(GanConfig, resume, callbacks=callbacks, **options)
    return run_config(build_config(GanConfig, recipe, data=data, **options), callbacks=callbacks)


def sample(run: str | Path, **options) -> dict:
    """Generate images with a diffusion run (its folder or ``checkpoint.pt``): DDPM (all T steps) or DDIM (any
    number), with classifier-free guidance and chosen labels. Writes a grid (.png) and the images (.npy, (N, C, H, W)
    in [0, 1]) and returns their paths and the time taken. ``options``: the fields of
    :class:`visionlab.opt.SampleConfig`.

    >>> vl.sample("runs/diffuse/digits-ddpm", sampler="ddim", steps=50, labels="3", num=16)  # doctest: +SKIP
    """
    return run_config(build_config(SampleConfig, run=str(run), **options))


def evaluate_samples(run: str | Path, **options) -> dict:
    """FID between a diffusion run's samples and the real test images in the feature space of a reference CNN that
    visionlab trains on the same data (and caches), with the floor FID of real training images, the share of
    confidently recognised samples and, for class-conditional runs, the accuracy on the requested labels.
    ``options``: the fields of :class:`visionlab.opt.EvaluateSamplesConfig` (``samples`` evaluates a .npy written
    by :func:`sample`; otherwise ``num`` images are generated).

    >>> vl.evaluate_samples("runs/diffuse/digits-ddpm", num=500, steps=50)["fid"]  # doctest: +SKIP
    """
    return run_config(build_config(EvaluateSamplesConfig, run=str(run), **options))


def show(kind: str = "patches", source: str | Path | None = None, **options) -> dict:
    """Draw one picture of an idea at work (``visionlab show KIND SOURCE``) and return ``{"picture": path, ...}``
    with the numbers drawn. ``kind``: attention (a ViT or ViViT run), positions (a ViT run), patches, keypoints, hog
    (an image), tubelets (a clip data set), forward (an image data set), reverse (a diffusion run), gan-progress (a
    GAN run), selection (a fit run with ``record_selection``); ``options``: the fields of
    :class:`visionlab.opt.ShowConfig`.

    >>> vl.show("patches", "astronaut", patch_size=32)["picture"]  # doctest: +SKIP
    'show-patches.png'
    """
    return run_config(build_config(ShowConfig, kind=kind, source=None if source is None else str(source),
                                   **options))


def attention_maps(run: str | Path, **options) -> dict:
    """Each head of the last block of a ViT run and the attention rollout (Abnar & Zuidema 2020) for one test
    image: ``show("attention", run)``; the result also holds ``last_block`` (h, L, L) and ``rollout`` (L, L)."""
    return show("attention", run, **options)


def position_similarity(run: str | Path, **options) -> dict:
    """The cosine similarity of a ViT run's learned positional embeddings (ViT Fig. 7): ``show("positions", run)``."""
    return show("positions", run, **options)


def patch_picture(image: str = "astronaut", **options) -> dict:
    """An image cut into its P x P patches with their token index: ``show("patches", image)``."""
    return show("patches", image, **options)


def tubelet_picture(data: str = "moving-digits", **options) -> dict:
    """A clip cut into its tubelets: ``show("tubelets", data)``."""
    return show("tubelets", data, **options)


def forward_process(data: str = "digits", **options) -> dict:
    """x_t of DDPM's forward process q(x_t | x_0) for growing t: ``show("forward", data)``; ``distance`` holds
    each x_t's distance to x_0."""
    return show("forward", data, **options)


def reverse_trajectory(run: str | Path, **options) -> dict:
    """A diffusion run's reverse trajectory x_T .. x_0 with the predicted x0 at each shown step:
    ``show("reverse", run)``."""
    return show("reverse", run, **options)


def keypoint_picture(image: str = "camera", **options) -> dict:
    """SIFT and SURF keypoints (scale and orientation) drawn on an image: ``show("keypoints", image)``; ``counts``
    holds how many each detector found."""
    return show("keypoints", image, **options)


def hog_picture(image: str = "camera", **options) -> dict:
    """An image's HOG cells: ``show("hog", image)``."""
    return show("hog", image, **options)


def gan_progress(run: str | Path, **options) -> dict:
    """A GAN run's grids from fixed noise along training, side by side, and ``samples.gif``:
    ``show("gan-progress", run)``."""
    return show("gan-progress", run, **options)


def selection_masks(run: str | Path, **options) -> dict:
    """The pixels a fit's selector trained on and its error map over training (a run of ``fit(...,
    record_selection=K)``), as a strip, ``selection.gif`` and ``errors.gif``: ``show("selection", run)``."""
    return show("selection", run, **options)


# ------------------------------------------------------------------------------------------------ configs -> tasks

def run_config(config, *, resume: tuple[dict, Path] | None = None, callbacks=()):
    """Run the command that ``config`` (any config of :mod:`visionlab.opt`) describes and return its result.
    ``resume`` = (checkpoint state, run folder) continues a training run; ``callbacks`` go to its trainer."""
    if type(config) in TRAINERS:
        return TRAINERS[type(config)][1](config, resume=resume, callbacks=callbacks)
    if resume is not None or callbacks:
        raise ConfigError(f"{type(config).__name__} is not a training run: nothing to resume or call back")
    return COMMANDS[type(config)](config)


def resume_run(cls, resume: str | Path, *, callbacks=(), image=None, preset=None, **options) -> dict:
    """Continue the run in folder (or checkpoint) ``resume``, a run of config class ``cls``, with its own config;
    only the options in RESUME_MAY_CHANGE may be given."""
    task_name = TRAINERS[cls][0]
    path = Path(resume)
    state = load_state(path)  # before any data is loaded: a wrong checkpoint is refused at once
    if state.get("task") != task_name:
        raise DataError(f"{resume} holds a {state.get('task')!r} run, not a {task_name!r} one")
    if not isinstance(state.get("config"), dict):
        where = path / CHECKPOINT_NAME if path.is_dir() else path
        raise DataError(f"{where} has no run options (its 'config' is missing): not a checkpoint that visionlab "
                        f"wrote")
    fixed = sorted(k for k, v in options.items() if k not in RESUME_MAY_CHANGE + RESUME_EXTENDS and v is not None)
    if fixed or preset or image:
        raise ConfigError(f"a resumed run keeps its own options; only device, threads and quiet may change, and "
                          f"steps / epochs to extend it (got {', '.join(fixed or ['preset' if preset else 'image'])})")
    config = build_config(cls, state["config"], **{k: v for k, v in options.items() if v is not None})
    return run_config(config, resume=(state, path if path.is_dir() else path.parent), callbacks=callbacks)


def _fit(config: FitConfig, *, resume=None, callbacks=()) -> dict:
    """One fit, or a fit of every image of a folder (then one table)."""
    if resume is None and Path(config.image).is_dir() and config.kind in (None, "image"):
        return _fit_folder(config)
    return fit_task.fit(config, resume=resume, callbacks=callbacks)


def _fit_folder(config: FitConfig) -> dict:
    """Fit every image of folder ``config.image`` with the same options, then write one table of their PSNR / SSIM
    (``OUT/fit/NAME/table.md``); running it again continues where it stopped. An image that cannot be read is
    skipped with one line on stderr and listed in the table (``skipped``); none readable is a DataError."""
    config.validate()
    cells, skipped = [], {}
    for f in image_files(config.image):
        cell = Cell(row=f.name, item="", task="fit", config=dataclasses.replace(config, image=str(f), kind="image"))
        try:
            fit_task.load_fit_signal(cell.config)
            cells.append(cell)
        except DataError as e:
            skipped[f.name] = str(e)
    if not cells:
        raise DataError(f"no image of {config.image} could be read (first: {next(iter(skipped.values()))})")
    for why in skipped.values():
        print(f"skipped: {why}", file=sys.stderr, flush=True)
    record = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUME_MAY_CHANGE + ("out", "name")}
    name = config.name or f"{Path(config.image).name}-{config.model}-{config.sampler}"
    result = run_experiment(name, cells, out=config.out, table={"kind": "items", "skipped": skipped}, options=record,
                            quiet=config.quiet, task="fit")
    return {"status": result["status"], "run_dir": result["folder"], "table": result.get("markdown", ""),
            "rows": result.get("rows", []), "metrics": result.get("mean", {}), "skipped": skipped}


def _experiment(o: ExperimentConfig) -> dict:
    o.validate()
    if o.experiment == "gan-augment":  # not a list of runs: see gan_augment below
        return gan_augment(o)
    images = None
    if o.images is not None:
        images = [str(f) for f in image_files(o.images)] if Path(o.images).is_dir() else \
            [i.strip() for i in o.images.split(",") if i.strip()]
    plan, table = experiment_plan(o.experiment, images=images, steps=o.steps, size=o.size)
    common = dict(seed=o.seed, device=o.device, threads=o.threads)  # dropped where a task has no such option
    configs = {"fit": FitConfig, "classify": ClassifyConfig, "features": FeaturesConfig}
    cells = [Cell(row=row, item=Path(item).stem if item else "", task=task,
                  config=build_config(configs[task], {**values, **common}).validate())
             for row, item, task, values in plan]
    options_record = {"images": images, "size": o.size, "steps": o.steps, "seed": o.seed}
    return run_experiment(o.name or o.experiment, cells, out=o.out, table=table, options=options_record,
                          quiet=o.quiet, shard=parse_shard(o.shard) if o.shard else None)


def gan_augment(options: ExperimentConfig) -> dict:
    """``experiment("gan-augment")``: a classifier on a small fraction of the digits, alone, with affine
    augmentation and with images of a class-conditional GAN trained on the same fraction (``manager.GAN_AUGMENT``);
    ``steps`` sets the GAN's steps. Returns the table (``markdown``, ``rows``), written to OUT/experiment/NAME."""
    if options.images is not None or options.size is not None:
        raise ConfigError("gan-augment works on the digits: --images and --size do not apply")
    seeds = tuple(options.seed + k for k in range(len(GAN_AUGMENT["seeds"])))
    return run_gan_augment(settings=GAN_AUGMENT, seeds=seeds, gan_steps=options.steps, out=options.out,
                           name=options.name or "gan-augment", device=options.device, threads=options.threads,
                           quiet=options.quiet)


def _sample(o: SampleConfig) -> dict:
    o.validate()
    set_threads(o.threads)
    return generative_runs.sample_run(o.run, sampler=o.sampler, steps=o.steps, eta=o.eta, guidance=o.guidance,
                                      labels=o.labels, num=o.num, seed=o.seed, batch_size=o.batch_size, out=o.out,
                                      device=o.device, progress=not o.quiet)


def _evaluate_samples(o: EvaluateSamplesConfig) -> dict:
    o.validate()
    set_threads(o.threads)
    return generative_runs.evaluate_samples(o.run, samples=o.samples, num=o.num, sampler=o.sampler, steps=o.steps,
                                            eta=o.eta, guidance=o.guidance, labels=o.labels, seed=o.seed,
                                            batch_size=o.batch_size, reference_epochs=o.reference_epochs,
                                            device=o.device, quiet=o.quiet)


# config class -> (task name in its checkpoints, the function that trains it); and the commands that do not train.
TRAINERS = {FitConfig: ("fit", _fit), ClassifyConfig: ("classify", classify_task.train),
            DiffuseConfig: ("diffuse", diffuse_task.train), SegmentConfig: ("segment", segment_task.train),
            GanConfig: ("adversarial", adversarial_task.train)}
COMMANDS = {FeaturesConfig: features_task.run_features, ExperimentConfig: _experiment, ShapesConfig: shapes_table,
            SampleConfig: _sample, EvaluateSamplesConfig: _evaluate_samples, ShowConfig: pictures.show}
