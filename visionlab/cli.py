"""Script mode: ``visionlab <command> [options]`` (also ``python -m visionlab`` and ``python main.py``).

Thin on purpose: the flags of each command are generated from its config class (visionlab.opt); the flags given
go to the command's function in visionlab.api, which builds the config once (``manager.build_config``: defaults,
then a preset or recipe, then those flags) and runs it; the result is printed. A problem the user can fix is printed
as one line, with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from visionlab import api
from visionlab.manager import EXPERIMENTS, RECIPES
from visionlab.opt import (ClassifyConfig, DiffuseConfig, EvaluateSamplesConfig, ExperimentConfig, FeaturesConfig,
                           FitConfig, GanConfig, OnDevice, SampleConfig, SegmentConfig, ShapesConfig, ShowConfig)
from visionlab.opt.flags import add_options, given_options
from visionlab.util.checkpoint import load_state
from visionlab.util.errors import ConfigError, Terminated, VisionlabError, terminate
from visionlab.util.failures import explain, terminated
from visionlab.util.version import __version__

EXIT_USAGE = 2  # bad input: argparse's own convention
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
EXIT_TERMINATED = 143  # 128 + SIGTERM

# 'visionlab train MODEL': the config of each model family, one line for 'train --help' and its description.
TRAIN_FAMILIES: dict[str, tuple[type, str, str]] = {
    "vit": (ClassifyConfig, "a Vision Transformer classifier on images",
            "Train a Vision Transformer on images: AdamW, warm-up then cosine, label smoothing, optional EMA and "
            "bf16. Writes accuracy curves, the confusion matrix, the best and final weights and metrics to "
            "OUT/classify/NAME; 'visionlab evaluate' and 'visionlab predict' take the run."),
    "vivit": (ClassifyConfig, "a Video Vision Transformer classifier on clips",
              "Train a Video Vision Transformer (--vivit-model 1-4) on clips: AdamW, warm-up then cosine, label "
              "smoothing, optional EMA and bf16. Writes accuracy curves, the confusion matrix, the best and final "
              "weights and metrics to OUT/classify/NAME."),
    "unet": (SegmentConfig, "the segmentation U-Net",
             "Train the segmentation U-Net on shapes or a folder with images/ and masks/: mean IoU and Dice per "
             "epoch, prediction overlays in OUT/segment/NAME."),
    "ddpm": (DiffuseConfig, "a diffusion model with DDPM's U-Net",
             "Train a diffusion model with DDPM's time-conditioned U-Net on images: sample grids, loss curve and EMA "
             "weights in OUT/diffuse/NAME; 'visionlab sample' and 'visionlab evaluate-samples' take the run."),
    "dit": (DiffuseConfig, "a diffusion model with a Diffusion Transformer",
            "Train a diffusion model with a Diffusion Transformer (adaLN-Zero) on images: sample grids, loss curve "
            "and EMA weights in OUT/diffuse/NAME; 'visionlab sample' and 'visionlab evaluate-samples' take the run."),
    "gan": (GanConfig, "a DCGAN, optionally class-conditional",
            "Train a DCGAN (--conditional: class-conditional, --loss ns|hinge|wgan-gp): sample grids from fixed "
            "noise, loss curves and the EMA generator in OUT/adversarial/NAME."),
}
RESUMED_FAMILY = {"classify": "vit", "diffuse": "ddpm", "segment": "unet", "adversarial": "gan"}  # checkpoint task

# The commands made from one config each: (config, one line for 'visionlab --help', description).
CONFIG_COMMANDS: dict[str, tuple[type, str, str]] = {
    "fit": (FitConfig, "fit an image with a neural field (SIREN + EVOS, ...)",
            "Fit an image with an implicit neural representation, choosing the trained pixels with a sample "
            "selector (EVOS by default). Writes the reconstruction, a comparison figure, the PSNR curve, "
            "metrics.json and a checkpoint to OUT/fit/NAME. A folder of images: each is fitted, then one table; an "
            "image that cannot be read is skipped with one line and listed in the table as skipped (exit status 0 "
            "when at least one image was fitted, 2 when none could be read)."),
    "features": (FeaturesConfig, "classify images with HOG / SIFT / SURF features and an SVM or KNN",
                 "Turn images into vectors with hand-made features (HOG, SIFT, dense SIFT, SURF) and classify them "
                 "with an SVM or a KNN. Writes accuracy, the per-class report, a confusion matrix, a picture of "
                 "the features and the fitted pipeline to OUT/features/NAME; --compare runs every extractor with "
                 "both classifiers and prints one table."),
    "experiment": (ExperimentConfig, "run every cell of a table: a paper's Table 1, or models side by side",
                   "Run the runs of a table one after the other and write it (table.md, table.json) to "
                   "OUT/experiment/NAME. Experiments: " + "; ".join(f"{k}: {v}" for k, v in EXPERIMENTS.items()) +
                   ". Running the same command again skips finished runs and continues an interrupted one."),
    "shapes": (ShapesConfig, "print each step's tensor shape through a ViT or ViViT",
               "Run a ViT or ViViT once (on PyTorch's meta device: instant at any size) and print the shape after "
               "every step: patches, flatten, transpose, [CLS], positional embedding, blocks, head. Example: "
               "visionlab shapes vivit --frames 16 --tubelet 2 16 16"),
    "sample": (SampleConfig, "generate images with a trained diffusion run (DDPM or DDIM, guidance, labels) or GAN run",
               "Generate images with the EMA weights of a 'visionlab train ddpm|dit' run (its folder, or a "
               "checkpoint.pt, also of an unfinished run): DDPM's ancestral sampler over all T steps, or DDIM with "
               "any number of steps (50 are about 20x faster than 1000). Writes a grid (.png), the images (.npy, N "
               "x C x H x W in [0, 1]) and their labels into RUN/samples/. Example: visionlab sample "
               "runs/diffuse/digits-ddpm --sampler ddim --steps 50 --guidance 2 --labels 3,7. A 'visionlab train "
               "gan' run draws each image in one pass of its EMA generator: only --labels (conditional runs), "
               "--num, --seed, --batch-size, --out and --device apply; --sampler ddpm, --steps, --eta and "
               "--guidance are refused."),
    "evaluate-samples": (EvaluateSamplesConfig,
                         "FID, confidence and class accuracy of a diffusion or GAN run's samples",
                         "Judge generated images in the feature space of a small reference CNN that visionlab trains "
                         "on the run's own data (cached in $VISIONLAB_CACHE or ~/.cache/visionlab; no download): FID "
                         "against the real test images, the floor FID of real training images at the same N, the "
                         "share of samples recognised with probability > 0.9 and, for class-conditional runs, how "
                         "often the recognised class is the one asked for. Writes evaluation-samples-*.json into the "
                         "run folder."),
    "show": (ShowConfig, "draw a picture of an idea at work: attention, positions, patches, tubelets, forward, "
                         "reverse, keypoints, hog, gan-progress, selection",
             "Draw one picture from built-in data or a finished run: a ViT or ViViT run's attention (each head of "
             "the last block, attention rollout) or positional-embedding similarity; an image's patches or a clip's "
             "tubelets with their token index; DDPM's forward process; a diffusion run's reverse trajectory; SIFT "
             "and SURF keypoints; HOG cells; a GAN's samples along training; a fit's selected pixels. "
             "Example: visionlab show patches astronaut --patch-size 32 --output patches.png"),
}


# ------------------------------------------------------------------------------------------------ the parser

def _describe(table: dict[str, dict]) -> str:
    return "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in options.items()) for name, options in
                     table.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionlab", description="visionlab: computer-vision models to run, read "
                                     "and extend. Run 'visionlab COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"visionlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in ("fit", "features"):
        _add_config_command(commands, name)
    _add_train(commands)
    _add_run_readers(commands)
    for name in ("experiment", "shapes", "sample", "evaluate-samples", "show"):
        _add_config_command(commands, name)
    return parser


def _add_config_command(commands, name: str) -> None:
    cls, summary, description = CONFIG_COMMANDS[name]
    command = commands.add_parser(name, help=summary, description=description)
    if name == "fit":
        command.add_argument("--preset", choices=sorted(RECIPES[FitConfig][0]),
                             help="start from a named preset (manager.py); flags override it: " +
                                  _describe(RECIPES[FitConfig][0]))
        command.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN (or from its "
                             "checkpoint.pt) exactly where it stopped; its own options are used (--device, "
                             "--threads, --quiet may change; --steps N extends a finished or stopped run, its "
                             "learning-rate decay stretched to the new end, as one printed line says)")
    if name == "features":
        command.add_argument("--predict", nargs="+", metavar="FILE", help="classify these images with the fitted "
                             "pipeline of the run OUT/features/NAME that these options name, instead of training "
                             "(also: visionlab predict RUN FILE ...)")
    add_options(command, cls, positional_optional=name in ("fit", "shapes", "show"))
    command.set_defaults(handler=run_command, call=name, config=cls, report=REPORTS[name])


def _add_train(commands) -> None:
    train = commands.add_parser(
        "train", help="train a classifier (vit, vivit), a segmentation U-Net (unet), a diffusion model (ddpm, dit) "
                      "or a GAN (gan)",
        description="Train one model family; 'visionlab train MODEL --help' lists its options and their defaults. "
                    "Without a MODEL, --recipe NAME trains the recipe's model, --resume RUN continues the run's "
                    "(else: vit).")
    families = train.add_subparsers(dest="family", metavar="MODEL", required=True)
    for family, (cls, summary, description) in TRAIN_FAMILIES.items():
        parser = families.add_parser(family, help=summary, description=description)
        recipes = RECIPES[cls][0]
        parser.add_argument("--recipe", choices=sorted(recipes),
                            help="start from a tested recipe (manager.py); flags override it: " + _describe(recipes))
        length = "--epochs" if hasattr(cls, "epochs") else "--steps"  # what sets the run's length
        parser.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN exactly where it stopped "
                            f"(its own options; --device, --threads, --quiet may change; {length} N extends a "
                            "finished or stopped run, its learning-rate decay stretched to the new end)")
        add_options(parser, cls, skip=("model",))  # the family is the model
        parser.set_defaults(handler=run_command, call="train", config=cls, report=REPORTS[cls])


def _add_run_readers(commands) -> None:
    predict = commands.add_parser(
        "predict", help="classify files with a trained run",
        description="Classify image files (a ViT run) or clips (.npy arrays or folders of frames; a ViViT run) with "
                    "the weights of a run folder written by 'visionlab train', or image files with the fitted "
                    "pipeline of a 'visionlab features' run.")
    predict.add_argument("run", help="run folder of 'visionlab train' (holds model.json and model.safetensors) or "
                                     "of 'visionlab features' (holds pipeline.joblib)")
    predict.add_argument("files", nargs="+", help="images or clips")
    add_options(predict, OnDevice)  # --device, --threads: as every command has them
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
    add_options(evaluate, OnDevice)
    evaluate.set_defaults(handler=run_evaluate)


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed; 'visionlab train' without a model family gets the one its recipe or resumed run names,
    and a flag that the family does not have is refused by name."""
    if argv[:1] == ["train"] and (len(argv) == 1 or argv[1] not in (*TRAIN_FAMILIES, "-h", "--help")):
        argv = ["train", _train_family(argv[1:]), *argv[1:]]
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        flags = [a.split("=")[0] for a in extra if a.startswith("-")] or extra
        raise ConfigError(f"{', '.join(flags)}: not an option of 'visionlab train {args.family}' (see its --help)")
    return args


def _train_family(rest: list[str]) -> str:
    """The model family of 'visionlab train' given without one: the recipe's, else the resumed run's, else vit."""
    find = argparse.ArgumentParser(add_help=False)
    find.add_argument("--recipe")
    find.add_argument("--resume")
    given, _ = find.parse_known_args(rest)
    if given.recipe is not None:
        for cls, (recipes, _kind) in RECIPES.items():
            if cls is not FitConfig and given.recipe in recipes:
                return recipes[given.recipe]["model"]
        known = [name for cls, (recipes, _) in RECIPES.items() if cls is not FitConfig for name in recipes]
        raise ConfigError(f"unknown recipe {given.recipe!r}; choose one of {', '.join(known)}")
    if given.resume is not None:
        state = load_state(given.resume)  # a damaged checkpoint is refused here, by name
        family = RESUMED_FAMILY.get(state.get("task"), "vit")  # another task's run: the API names the mismatch
        model = state["config"].get("model") if isinstance(state.get("config"), dict) else None
        return model if model in TRAIN_FAMILIES and TRAIN_FAMILIES[model][0] is TRAIN_FAMILIES[family][0] else family
    return "vit"


# ------------------------------------------------------------------------------------------------ running, reporting

def run_command(args: argparse.Namespace) -> int:
    """Hand the options given to the command's function in :mod:`visionlab.api`, which builds the config once
    (defaults, preset or recipe, these options) and runs it; print the report."""
    options = given_options(args, args.config)
    return args.report(CALLS[args.call](args, options))


def run_train(args: argparse.Namespace, options: dict) -> dict:
    if args.resume and args.recipe:
        raise ConfigError("a resumed run keeps its own options; --recipe cannot be combined with --resume")
    if not args.resume:
        options["model"] = args.family  # over the recipe's, as the command line says
    function = {ClassifyConfig: api.train, DiffuseConfig: api.diffuse, SegmentConfig: api.segment,
                GanConfig: api.gan}[args.config]
    return function(recipe=args.recipe, resume=args.resume, **options)


# How each command calls the API (looked up when it runs). Positional-only and required arguments come first.
CALLS = {
    "fit": lambda args, options: api.fit_run(preset=args.preset, resume=args.resume, **options),
    "features": lambda args, options: api.features_predict(args.predict, **options) if args.predict else
    api.features(**options),
    "train": run_train,
    "experiment": lambda args, options: api.experiment(options.pop("experiment"), **options),
    "shapes": lambda args, options: api.shapes(**options),
    "sample": lambda args, options: api.sample(options.pop("run"), **options),
    "evaluate-samples": lambda args, options: api.evaluate_samples(options.pop("run"), **options),
    "show": lambda args, options: api.show(**options),
}


def _finished(summary: dict, command: str) -> int:
    if summary["status"] == "interrupted":
        print(f"{stopped()}; continue with: visionlab {command} --resume {summary['run_dir']}", file=sys.stderr)
        return interrupted_status()
    return 0


def report_fit(summary: dict) -> int:
    if "table" in summary:  # a folder of images: one fit each, then the table
        if summary["status"] != "finished":
            print(f"{stopped()}; the same command continues with the image it stopped at", file=sys.stderr)
            return interrupted_status()
        print(summary["table"], end="")
        skipped = f" ({len(summary['skipped'])} unreadable image(s) skipped)" if summary.get("skipped") else ""
        print(f"table and runs in {summary['run_dir']}{skipped}")
        return 0
    m = summary["metrics"]
    quality = f"PSNR {m['psnr']:.2f} dB" + (f", SSIM {m['ssim']:.4f}" if m.get("ssim") is not None else "")
    print(f"{quality} after {m['steps']} steps, {m['wall_seconds']:.1f} s of training; outputs in "
          f"{summary['run_dir']}")
    return _finished(summary, "fit")


def report_classify(summary: dict) -> int:
    m = summary["metrics"]
    best = "" if m["best_epoch"] is None else (f"; best validation {m['best_val_accuracy']:.2%} at epoch "
                                               f"{m['best_epoch']}, its test accuracy {m['best_test_accuracy']:.2%}")
    print(f"test accuracy {m['test_accuracy']:.2%} ({m['weights']}, final epoch{best}), "
          f"{m['train_seconds']:.1f} s of training, {m['parameters']:,} parameters; outputs in {summary['run_dir']}")
    return _finished(summary, "train")


def report_segment(summary: dict) -> int:
    m = summary["metrics"]
    best = "" if m["best_epoch"] is None else (f"; best validation IoU {m['best_val_mean_iou']:.4f} at epoch "
                                               f"{m['best_epoch']}, its test IoU {m['best_test_mean_iou']:.4f}")
    print(f"test mean IoU {m['mean_iou']:.4f}, mean Dice {m['mean_dice']:.4f} (final weights; chance "
          f"{m['chance_mean_iou']:.4f}{best}), {m['train_seconds']:.1f} s of training, "
          f"{m['parameters']:,} parameters; outputs in {summary['run_dir']}")
    return _finished(summary, "train")


def report_diffuse(summary: dict) -> int:
    m = summary["metrics"]
    line = (f"test loss {m['test_loss']:.4f} ({m['weights']}; fixed test batch) after {m['steps']} steps, "
            f"{m['train_seconds']:.1f} s of training, {m['parameters']:,} parameters")
    print(f"{line}{_evaluation(m)}; samples.png and outputs in {summary['run_dir']}")
    return _finished(summary, "train")


def report_gan(summary: dict) -> int:
    m = summary["metrics"]
    line = (f"D loss {m['d_loss']:.4f}, G loss {m['g_loss']:.4f}, D accuracy {m['d_accuracy']:.1%} (means over "
            f"the last log interval), sample diversity {m['diversity']:.2f} of the real images' after "
            f"{m['steps']} steps, {m['train_seconds']:.1f} s of training, {m['parameters']:,} + "
            f"{m['discriminator_parameters']:,} parameters (G + D)") + _evaluation(m)
    if m["warnings"]:
        line += f"; {len(m['warnings'])} warning(s), see metrics.json"
    print(f"{line}; samples.png and outputs in {summary['run_dir']}")
    return _finished(summary, "train")


def _evaluation(m: dict) -> str:
    """The FID part of a generative run's line, when it was measured (--fid-samples)."""
    if "evaluation" not in m:
        return ""
    e = m["evaluation"]
    return f"; FID {e['fid']:.2f} (floor {e['fid_floor']:.2f}), {e['confident_share']:.1%} recognised"


def report_features(summary: dict | list) -> int:
    if isinstance(summary, list):  # --predict: one row per file
        return print_predictions(summary)
    if "table" in summary:
        print(summary["table"], end="")
    else:
        m = summary["metrics"]
        print(f"{m['extractor']} + {m['classifier']}: accuracy {m['accuracy']:.2%} on {m['test_images']} test images "
              f"({m['feature_length']} features per image)")
    print(f"outputs in {summary['run_dir']}")
    return 0


def report_experiment(result: dict) -> int:
    if result["status"] == "shard finished":  # the line saying so is printed; the table waits for every shard
        return 0
    if result["status"] != "finished":
        print(f"{stopped()} after {result['cells_done']} of {result['cells']} runs; the same command continues it",
              file=sys.stderr)
        return interrupted_status()
    print(result["markdown"], end="")
    print(f"table in {result['folder']}/table.md")
    return 0


def report_shapes(table: str) -> int:
    print(table)
    return 0


def report_sample(result: dict) -> int:
    if result["sampler"] == "gan":
        print(f"{result['num']} images (GAN, one generator pass each, seed {result['seed']}) in "
              f"{result['seconds']:.1f} s: {result['grid']} and {result['images']}")
        return 0
    print(f"{result['num']} images ({result['sampler']}, {result['steps']} steps, guidance {result['guidance']:g}, "
          f"seed {result['seed']}) in {result['seconds']:.1f} s: {result['grid']} and {result['images']}")
    return 0


def report_evaluate_samples(m: dict) -> int:
    line = (f"FID {m['fid']:.3f} against the real test images (floor: real training images {m['fid_floor']:.3f}, "
            f"ratio {m['fid_ratio']:.2f}) with {m['samples_in_fid']} images; recognised with p > 0.9: "
            f"{m['confident_share']:.1%} (real test images: {m['confident_share_real_test']:.1%})")
    if "class_accuracy" in m:
        line += f"; classified as the class asked for: {m['class_accuracy']:.1%}"
    print(f"{line}. Reference classifier: {m['reference_test_accuracy']:.2%} test accuracy ({m['reference']})")
    return 0


# The report of each command, and of each model family's config ('visionlab train').
REPORTS = {"fit": report_fit, "features": report_features, "experiment": report_experiment, "shapes": report_shapes,
           "sample": report_sample,  # show: the picture, and the GIFs of gan-progress and selection
           "show": lambda r: print("\n".join(f"{k}: {r[k]}" for k in ("picture", "gif", "errors_gif") if k in r)) or 0,
           "evaluate-samples": report_evaluate_samples, ClassifyConfig: report_classify,
           SegmentConfig: report_segment, DiffuseConfig: report_diffuse, GanConfig: report_gan}


def run_predict(args: argparse.Namespace) -> int:
    return print_predictions(api.predict(args.run, args.files, **given_options(args, OnDevice)))


def print_predictions(rows: list[dict]) -> int:
    for row in rows:
        print(f"{row['file']}: {row['class']}" + (f" ({row['probability']:.1%})" if "probability" in row else ""))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    m = api.evaluate(args.run, data=args.data, split=args.split, **given_options(args, OnDevice))
    print(m["report_text"], end="")
    print(f"accuracy {m['accuracy']:.2%} on {m['examples']} examples of {m['data']} ({m['split']}); "
          f"report and confusion matrix in {args.run}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command = argv[0] if argv else "visionlab"
    in_main = threading.current_thread() is threading.main_thread()  # signal handlers can only be set there
    previous = signal.signal(signal.SIGTERM, terminate) if in_main else None
    try:
        args = parse(parser, argv)
        if os.environ.get("RANK", "0") not in ("", "0"):  # under torchrun, rank 0 reports; errors still show on all
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
        return args.handler(args)
    except VisionlabError as e:
        print(f"visionlab {command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM at start-up, or a second one during a run
        term = isinstance(e, Terminated)
        print(f"visionlab {command}: {'terminated (SIGTERM)' if term else 'interrupted'}; stopped at once; every "
              f"checkpoint written so far is intact", file=sys.stderr)
        return EXIT_TERMINATED if term else EXIT_INTERRUPTED
    except (OSError, MemoryError, RuntimeError) as e:  # the machine's failures: no space, no memory, read-only
        line = explain(e)
        if line is None:
            raise
        print(f"visionlab {command}: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def stopped() -> str:
    return "terminated (SIGTERM)" if terminated() else "interrupted"


def interrupted_status() -> int:
    """The exit status of a run that a signal stopped after a step: 143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED
