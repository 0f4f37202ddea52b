"""Script mode: ``visionlab <command> [options]`` (also ``python -m visionlab`` and ``python main.py``).

Thin on purpose: parse the flags into a config (opt.py), start from a preset (manager.py), call the task, print the
result. A problem the user can fix is printed as one line, with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from visionlab import api
from visionlab.manager import (CLASSIFY_RECIPES, DIFFUSE_RECIPES, EXPERIMENTS, FIT_PRESETS, GAN_RECIPES,
                               SEGMENT_RECIPES, classify_recipe, fit_preset)
from visionlab.opt import (ClassifyConfig, DiffuseConfig, ExperimentConfig, FeaturesConfig, FitConfig, GanConfig,
                           SegmentConfig, ShapesConfig, add_options, config_from_args)
from visionlab.util.errors import ConfigError, VisionlabError
from visionlab.util.version import __version__

EXIT_USAGE = 2  # bad input: argparse's own convention
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionlab", description="visionlab: computer-vision models to run, read "
                                     "and extend. Run 'visionlab COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"visionlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    fit = commands.add_parser(
        "fit", help="fit an image with a neural field (SIREN + EVOS, ...)",
        description="Fit an image with an implicit neural representation, choosing the trained pixels with a sample "
                    "selector (EVOS by default). Writes the reconstruction, a comparison figure, the PSNR curve, "
                    "metrics.json and a checkpoint to OUT/fit/NAME.",
    )
    fit.add_argument("--preset", choices=sorted(FIT_PRESETS),
                     help="start from a named preset (manager.py); flags override it: " +
                          "; ".join(f"{k}: {_describe(v)}" for k, v in FIT_PRESETS.items()))
    fit.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN (or from its checkpoint.pt) "
                     "exactly where it stopped; its own options are used (--device, --threads, --quiet may change)")
    add_options(fit, FitConfig, positional_optional=True)
    fit.set_defaults(handler=run_fit)
    features = commands.add_parser(
        "features", help="classify images with HOG / SIFT / SURF features and an SVM or KNN",
        description="Turn images into vectors with hand-made features (HOG, SIFT, dense SIFT, SURF) and classify them "
                    "with an SVM or a KNN. Writes accuracy, the per-class report, a confusion matrix, a picture of "
                    "the features and the fitted pipeline to OUT/features/NAME; --compare runs every extractor with "
                    "both classifiers and prints one table.")
    add_options(features, FeaturesConfig)
    features.set_defaults(handler=run_features)

    train = commands.add_parser(
        "train", help="train a ViT / ViViT classifier, a diffusion model (ddpm, dit) or a segmentation U-Net (unet)",
        description="Train a Vision Transformer on images or a Video Vision Transformer on clips: AdamW, warm-up "
                    "then cosine, label smoothing, optional EMA and bf16. Writes accuracy curves, the confusion "
                    "matrix, the best and final weights and metrics to OUT/classify/NAME. 'train ddpm' and 'train "
                    "dit' train a diffusion model (U-Net or DiT) on images: sample grids, loss curve and EMA weights "
                    "in OUT/diffuse/NAME (options: --steps, --timesteps, --guidance, ...). 'train unet' trains the "
                    "segmentation U-Net on shapes or a folder with images/ and masks/: mean IoU and Dice per epoch, "
                    "prediction overlays in OUT/segment/NAME. 'train gan' trains a DCGAN (--conditional: class-"
                    "conditional, --loss ns|hinge|wgan-gp): sample grids from fixed noise, loss curves and the EMA "
                    "generator in OUT/adversarial/NAME.")
    recipes = {**CLASSIFY_RECIPES, **DIFFUSE_RECIPES, **SEGMENT_RECIPES, **GAN_RECIPES}
    train.add_argument("--recipe", choices=sorted(recipes),
                       help="start from a tested recipe (manager.py); flags override it: " +
                            "; ".join(f"{k}: {_describe(v)}" for k, v in recipes.items()))
    train.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN exactly where it stopped")
    # One parser for every model: the classifier's flags, then those of the diffusion and segmentation configs that
    # it does not already have; run_train refuses a flag that the chosen model's task does not know.
    added = add_options(train, ClassifyConfig, positional_optional=True, overrides={"model": dict(
        choices=("vit", "vivit", *GENERATIVE_MODELS),
        help="vit, vivit (classifiers), ddpm, dit (diffusion), unet (segmentation) or gan (adversarial)")})
    for cls in (DiffuseConfig, SegmentConfig, GanConfig):
        added |= add_options(train, cls, skip=added)
    train.set_defaults(handler=run_train)

    predict = commands.add_parser(
        "predict", help="classify files with a trained run",
        description="Classify image files (a ViT run) or clips (.npy arrays or folders of frames; a ViViT run) with "
                    "the weights of a run folder written by 'visionlab train'.")
    predict.add_argument("run", help="run folder of 'visionlab train' (holds model.json and model.safetensors)")
    predict.add_argument("files", nargs="+", help="images or clips")
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    predict.set_defaults(handler=run_predict)

    evaluate = commands.add_parser(
        "evaluate", help="test a trained classifier: accuracy, per-class report, confusion matrix",
        description="Evaluate the model of a 'visionlab train' run on its own test split (the same split it was "
                    "trained with) or on other data whose classes are among the model's. Prints accuracy and the "
                    "per-class report; writes evaluation-DATA-SPLIT.json and a confusion matrix into the run folder.")
    evaluate.add_argument("run", help="run folder of 'visionlab train'")
    evaluate.add_argument("--data", help="data set or path to evaluate on (default: the run's own)")
    evaluate.add_argument("--split", default="test", choices=("test", "all"),
                          help="test: the held-out split; all: every example of the data (default: test)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    evaluate.set_defaults(handler=run_evaluate)

    experiment = commands.add_parser(
        "experiment", help="run every cell of a table: a paper's Table 1, or models side by side",
        description="Run the runs of a table one after the other and write it (table.md, table.json) to "
                    "OUT/experiment/NAME. Experiments: " + "; ".join(f"{k}: {v}" for k, v in EXPERIMENTS.items()) +
                    ". Running the same command again skips finished runs and continues an interrupted one.")
    add_options(experiment, ExperimentConfig)
    experiment.set_defaults(handler=run_experiment)

    shapes = commands.add_parser(
        "shapes", help="print each step's tensor shape through a ViT or ViViT",
        description="Run a ViT or ViViT once (on PyTorch's meta device: instant at any size) and print the shape "
                    "after every step: patches, flatten, transpose, [CLS], positional embedding, blocks, head. "
                    "Example: visionlab shapes vivit --frames 16 --tubelet 2 16 16")
    add_options(shapes, ShapesConfig, positional_optional=True)
    shapes.set_defaults(handler=run_shapes)
    _add_generative_commands(commands)
    return parser


def run_train(args: argparse.Namespace) -> int:
    task = _train_task(args)
    _refuse_foreign_flags(args, task)
    if task != "classify":
        return run_generative_train(args, task)
    if args.resume:
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ClassifyConfig) if f.name != "model"}
        if args.recipe:
            raise ConfigError("a resumed run keeps its own options; --recipe cannot be combined with --resume")
        summary = api.train(resume=args.resume, **given)
    else:
        summary = api.train(**vars(config_from_args(ClassifyConfig, args, base=classify_recipe(args.recipe))))
    m = summary["metrics"]
    print(f"test accuracy {m['accuracy']:.2%} (best {m['best_accuracy']:.2%} at epoch {m['best_epoch']}), "
          f"{m['train_seconds']:.1f} s of training, {m['parameters']:,} parameters; outputs in {summary['run_dir']}")
    if summary["status"] == "interrupted":
        print(f"interrupted; continue with: visionlab train --resume {summary['run_dir']}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def run_predict(args: argparse.Namespace) -> int:
    for row in api.predict(args.run, args.files, device=args.device):
        print(f"{row['file']}: {row['class']} ({row['probability']:.1%})")
    return 0


def run_experiment(args: argparse.Namespace) -> int:
    values = vars(config_from_args(ExperimentConfig, args))
    result = api.experiment(values.pop("experiment"), **values)
    if result["status"] == "shard finished":  # the line saying so is printed; the table waits for every shard
        return 0
    if result["status"] != "finished":
        print(f"interrupted after {result['cells_done']} of {result['cells']} runs; the same command continues it",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(result["markdown"], end="")
    print(f"table in {result['folder']}/table.md")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    m = api.evaluate(args.run, data=args.data, split=args.split, device=args.device)
    print(m["report_text"], end="")
    print(f"accuracy {m['accuracy']:.2%} on {m['examples']} examples of {m['data']} ({m['split']}); "
          f"report and confusion matrix in {args.run}")
    return 0


def run_shapes(args: argparse.Namespace) -> int:
    config = config_from_args(ShapesConfig, args)
    print(api.shapes(**vars(config)))
    return 0


def run_features(args: argparse.Namespace) -> int:
    summary = api.features(**vars(config_from_args(FeaturesConfig, args)))
    if "table" in summary:
        print(summary["table"], end="")
    else:
        m = summary["metrics"]
        print(f"{m['extractor']} + {m['classifier']}: accuracy {m['accuracy']:.2%} on {m['test_images']} test images "
              f"({m['feature_length']} features per image)")
    print(f"outputs in {summary['run_dir']}")
    return 0


def _describe(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def run_fit(args: argparse.Namespace) -> int:
    if args.resume:  # the API refuses options that would change the resumed run
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(FitConfig)}
        summary = api.fit_run(resume=args.resume, preset=args.preset, **given)
    else:
        config = config_from_args(FitConfig, args, base=fit_preset(args.preset))
        summary = api.fit_run(**vars(config))
    if "table" in summary:  # a folder of images: one fit each, then the table
        if summary["status"] != "finished":
            print("interrupted; the same command continues with the image it stopped at", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(summary["table"], end="")
        print(f"table and runs in {summary['run_dir']}")
        return 0
    m = summary["metrics"]
    quality = f"PSNR {m['psnr']:.2f} dB" + (f", SSIM {m['ssim']:.4f}" if m.get("ssim") is not None else "")
    print(f"{quality} after {m['steps']} steps, {m['wall_seconds']:.1f} s of training; outputs in "
          f"{summary['run_dir']}")
    if summary["status"] == "interrupted":
        print(f"interrupted; continue with: visionlab fit --resume {summary['run_dir']}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


# ------------------------------------------------------------------------------------------------ generative models

GENERATIVE_MODELS = {"ddpm": "diffuse", "dit": "diffuse", "unet": "segment", "gan": "adversarial"}  # model -> task
_TRAIN_FLAGS_OF_ITS_OWN = ("recipe", "resume", "handler", "command")


def _generative_configs() -> dict:
    """The config class of each task that 'visionlab train' runs."""
    return {"classify": ClassifyConfig, "diffuse": DiffuseConfig, "segment": SegmentConfig, "adversarial": GanConfig}


def _train_task(args: argparse.Namespace) -> str:
    """classify, diffuse or segment: from the model, else from the recipe, else from the resumed checkpoint."""
    from visionlab.util.checkpoint import load_state

    if args.model:
        return GENERATIVE_MODELS.get(args.model, "classify")
    if args.recipe in DIFFUSE_RECIPES:
        return "diffuse"
    if args.recipe in SEGMENT_RECIPES:
        return "segment"
    if args.recipe in GAN_RECIPES:
        return "adversarial"
    if args.resume:
        task = load_state(args.resume).get("task")
        return task if task in ("diffuse", "segment", "adversarial") else "classify"
    return "classify"


def _refuse_foreign_flags(args: argparse.Namespace, task: str) -> None:
    """A flag of another task (e.g. --epochs for ddpm, --timesteps for vit) would be ignored: say so instead."""
    known = {f.name for f in dataclasses.fields(_generative_configs()[task])} | set(_TRAIN_FLAGS_OF_ITS_OWN)
    foreign = sorted(k for k, v in vars(args).items() if v is not None and k not in known)
    if foreign:
        model = args.model or {"classify": "vit", "diffuse": "ddpm", "segment": "unet", "adversarial": "gan"}[task]
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise ConfigError(f"{flags}: not an option of 'visionlab train {model}' (see its --help)")


def run_generative_train(args: argparse.Namespace, task: str) -> int:
    from visionlab.manager import diffuse_recipe, gan_recipe, segment_recipe

    cls = _generative_configs()[task]
    function = {"diffuse": api.diffuse, "segment": api.segment, "adversarial": api.gan}[task]
    if args.resume:
        if args.recipe:
            raise ConfigError("a resumed run keeps its own options; --recipe cannot be combined with --resume")
        given = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls) if f.name != "model"}
        summary = function(resume=args.resume, **given)
    else:
        base = {"diffuse": diffuse_recipe, "segment": segment_recipe, "adversarial": gan_recipe}[task](args.recipe)
        config = config_from_args(cls, args, base=base)
        values = vars(config)
        if task == "diffuse":
            summary = api.diffuse(values.pop("model"), **values)
        elif task == "adversarial":
            values.pop("model")
            summary = api.gan(values.pop("data"), **values)
        else:
            values.pop("model")
            summary = api.segment(values.pop("data"), **values)
    m = summary["metrics"]
    if task == "diffuse":
        line = (f"test loss {m['test_loss']:.4f} (EMA weights, fixed test batch) after {m['steps']} steps, "
                f"{m['train_seconds']:.1f} s of training, {m['parameters']:,} parameters")
        if "evaluation" in m:
            e = m["evaluation"]
            line += f"; FID {e['fid']:.2f} (floor {e['fid_floor']:.2f}), {e['confident_share']:.1%} recognised"
        print(f"{line}; samples.png and outputs in {summary['run_dir']}")
    elif task == "adversarial":
        line = (f"D loss {m['d_loss']:.4f}, G loss {m['g_loss']:.4f}, D accuracy {m['d_accuracy']:.1%} (means over "
                f"the last log interval), sample diversity {m['diversity']:.2f} of the real images' after "
                f"{m['steps']} steps, {m['train_seconds']:.1f} s of training, {m['parameters']:,} + "
                f"{m['discriminator_parameters']:,} parameters (G + D)")
        if "evaluation" in m:
            e = m["evaluation"]
            line += f"; FID {e['fid']:.2f} (floor {e['fid_floor']:.2f}), {e['confident_share']:.1%} recognised"
        if m["warnings"]:
            line += f"; {len(m['warnings'])} warning(s), see metrics.json"
        print(f"{line}; samples.png and outputs in {summary['run_dir']}")
    else:
        print(f"test mean IoU {m['mean_iou']:.4f}, mean Dice {m['mean_dice']:.4f} (chance {m['chance_mean_iou']:.4f};"
              f" best IoU {m['best_mean_iou']:.4f} at epoch {m['best_epoch']}), {m['train_seconds']:.1f} s of "
              f"training, {m['parameters']:,} parameters; outputs in {summary['run_dir']}")
    if summary["status"] == "interrupted":
        print(f"interrupted; continue with: visionlab train --resume {summary['run_dir']}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _add_generative_commands(commands) -> None:
    from visionlab.opt import EvaluateSamplesConfig, SampleConfig

    sample = commands.add_parser(
        "sample", help="generate images with a trained diffusion run (DDPM or DDIM, guidance, labels) or GAN run",
        description="Generate images with the EMA weights of a 'visionlab train ddpm|dit' run (its folder, or a "
                    "checkpoint.pt, also of an unfinished run): DDPM's ancestral sampler over all T steps, or DDIM "
                    "with any number of steps (50 are about 20x faster than 1000). Writes a grid (.png), the images "
                    "(.npy, N x C x H x W in [0, 1]) and their labels into RUN/samples/. Example: visionlab sample "
                    "runs/diffuse/digits-ddpm --sampler ddim --steps 50 --guidance 2 --labels 3,7. A 'visionlab "
                    "train gan' run draws each image in one pass of its EMA generator: only --labels (conditional "
                    "runs), --num, --seed, --batch-size, --out and --device apply; --sampler ddpm, --steps, --eta "
                    "and --guidance are refused.")
    add_options(sample, SampleConfig)
    sample.set_defaults(handler=run_sample)
    evaluate = commands.add_parser(
        "evaluate-samples", help="FID, confidence and class accuracy of a diffusion or GAN run's samples",
        description="Judge generated images in the feature space of a small reference CNN that visionlab trains on "
                    "the run's own data (cached in $VISIONLAB_CACHE or ~/.cache/visionlab; no download): FID against "
                    "the real test images, the floor FID of real training images at the same N, the share of "
                    "samples recognised with probability > 0.9 and, for class-conditional runs, how often the "
                    "recognised class is the one asked for. Writes evaluation-samples-*.json into the run folder.")
    add_options(evaluate, EvaluateSamplesConfig)
    evaluate.set_defaults(handler=run_evaluate_samples)


def run_sample(args: argparse.Namespace) -> int:
    from visionlab.opt import SampleConfig

    values = vars(config_from_args(SampleConfig, args))
    result = api.sample(values.pop("run"), **values)
    if result["sampler"] == "gan":
        print(f"{result['num']} images (GAN, one generator pass each, seed {result['seed']}) in "
              f"{result['seconds']:.1f} s: {result['grid']} and {result['images']}")
        return 0
    print(f"{result['num']} images ({result['sampler']}, {result['steps']} steps, guidance {result['guidance']:g}, "
          f"seed {result['seed']}) in {result['seconds']:.1f} s: {result['grid']} and {result['images']}")
    return 0


def run_evaluate_samples(args: argparse.Namespace) -> int:
    from visionlab.opt import EvaluateSamplesConfig

    values = vars(config_from_args(EvaluateSamplesConfig, args))
    m = api.evaluate_samples(values.pop("run"), **values)
    line = (f"FID {m['fid']:.3f} against the real test images (floor: real training images {m['fid_floor']:.3f}, "
            f"ratio {m['fid_ratio']:.2f}) with {m['samples_in_fid']} images; recognised with p > 0.9: "
            f"{m['confident_share']:.1%} (real test images: {m['confident_share_real_test']:.1%})")
    if "class_accuracy" in m:
        line += f"; classified as the class asked for: {m['class_accuracy']:.1%}"
    print(f"{line}. Reference classifier: {m['reference_test_accuracy']:.2%} test accuracy ({m['reference']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get("RANK", "0") not in ("", "0"):  # under torchrun, rank 0 reports; errors still show on all
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
    try:
        return args.handler(args)
    except VisionlabError as e:
        print(f"visionlab {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("aborted; the last checkpoint written is intact", file=sys.stderr)
        return EXIT_INTERRUPTED
