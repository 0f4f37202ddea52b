"""Classifying images with hand-made features: the ``features`` task.

Data flow (design.md): data set -> fixed or stratified split -> extractor (HOG, SIFT, dense SIFT, SURF, dense SURF;
fitted on the training images only) -> scaler -> SVM / KNN -> accuracy, per-class report, confusion matrix. No step
loop, so no base Trainer: one fit, one evaluation. A run folder holds ``config.yaml``, ``metrics.json`` (accuracy,
report, timings), ``confusion.png``, ``features.png`` (what the extractor sees on a few images), ``pipeline.joblib``
(+ its digest record) and ``summary.json``; ``--compare`` writes ``compare.json`` and ``compare.md`` instead.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from tqdm.auto import tqdm

from visionlab.util.version import __version__
from visionlab.components.features import EXTRACTORS, HogFeatures, LocalFeatures, build_extractor, upscale
from visionlab.data.datasets import ImageDataset, load_dataset, read_grey
from visionlab.data.images import parse_size
from visionlab.models.classic import CLASSIFIERS, build_pipeline, load_pipeline, save_pipeline, saved_metadata
from visionlab.opt import FeaturesConfig
from visionlab.trainer.tensorboard import open_board
from visionlab.util.device import set_threads
from visionlab.util.errors import DataError
from visionlab.util.io import new_run_dir, slug, write_json, write_text, write_yaml
from visionlab.util.plots import confusion_figure, overlay_figure


def evaluate_pipeline(config: FeaturesConfig, extractor_name: str, classifier: str, train: ImageDataset,
                      test: ImageDataset):
    """Fit on ``train``, score on ``test``: (fitted pipeline, metrics)."""
    extractor = build_extractor(extractor_name, encoding=config.encoding, vocabulary=config.vocabulary,
                                seed=config.seed)
    pipeline = build_pipeline(extractor, classifier, grid_search=config.grid_search, seed=config.seed)
    start = time.perf_counter()
    pipeline.fit(train.images, train.labels)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predicted = pipeline.predict(test.images)
    predict_seconds = time.perf_counter() - start
    names = train.class_names
    metrics = {
        "extractor": extractor_name, "classifier": classifier, "accuracy": accuracy_score(test.labels, predicted),
        "train_images": len(train), "test_images": len(test),
        "feature_length": int(pipeline.named_steps["features"].transform(test.images[:1]).shape[1]),
        "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
        "report": classification_report(test.labels, predicted, labels=range(len(names)), target_names=names,
                                        output_dict=True, zero_division=0),
        "confusion": confusion_matrix(test.labels, predicted, labels=range(len(names))),
    }
    model = pipeline.named_steps["model"]
    if hasattr(model, "best_params_"):
        metrics["best_params"] = model.best_params_
    return pipeline, metrics


def feature_panels(extractor, dataset: ImageDataset, count: int = 4) -> list[dict]:
    """What the extractor sees on the first image of each class (up to ``count``)."""
    picks = [int(np.flatnonzero(dataset.labels == c)[0]) for c in range(len(dataset.class_names))][:count]
    panels = []
    for i in picks:
        title = dataset.class_names[dataset.labels[i]]
        if isinstance(extractor, HogFeatures):
            _, picture = extractor.describe(dataset.images[i], visualize=True)
            panels.append({"image": upscale(dataset.images[i], extractor.min_side), "title": title,
                           "overlay": picture, "overlay_title": "HOG cells"})
        elif isinstance(extractor, LocalFeatures):
            xy, diameter, _ = extractor.keypoints_and_descriptors(dataset.images[i])
            circles = np.column_stack([xy, diameter / 2]) if len(xy) else np.zeros((0, 3))
            panels.append({"image": upscale(dataset.images[i], extractor.min_side), "circles": circles,
                           "title": f"{title}: {len(xy)} keypoints"})
    return panels


def run_features(config: FeaturesConfig) -> dict:
    """Run the features task (or, with ``compare``, every extractor with both classifiers); returns the summary."""
    config.validate()
    set_threads(config.threads)
    dataset = load_dataset(config.data, image_size=_size_pair(config.image_size))
    train, test = dataset.split(test_size=config.test_size, seed=config.seed)
    run_dir = new_run_dir(config.out, "features", run_name(config))
    write_yaml(run_dir / "config.yaml", dataclasses.asdict(config))
    board = open_board(run_dir, config)  # no steps: everything at step 0
    try:
        return _compare(config, train, test, run_dir, board) if config.compare else \
            _single(config, dataset, train, test, run_dir, board)
    finally:
        board.close()


def _single(config: FeaturesConfig, dataset: ImageDataset, train: ImageDataset, test: ImageDataset, run_dir: Path,
            board) -> dict:
    pipeline, metrics = evaluate_pipeline(config, config.extractor, config.classifier, train, test)
    title = f"{dataset.name}: {config.extractor} + {config.classifier}, accuracy {metrics['accuracy']:.2%}"
    confusion_figure(run_dir / "confusion.png", metrics["confusion"], dataset.class_names, title=title)
    board.image("confusion", run_dir / "confusion.png", 0)
    panels = feature_panels(pipeline.named_steps["features"], train)
    if panels:
        overlay_figure(run_dir / "features.png", panels, title=f"{config.extractor} on {dataset.name}")
        board.image("features", run_dir / "features.png", 0)
    board.scalars(_brief(metrics))
    save_pipeline(run_dir / "pipeline.joblib", pipeline,
                  metadata={"class_names": dataset.class_names, "image_shape": list(dataset.images.shape[1:3]),
                            "visionlab": __version__})
    write_json(run_dir / "metrics.json", metrics)
    summary = {"task": "features", "status": "finished", "run_dir": str(run_dir), "metrics": _brief(metrics),
               "version": __version__}
    write_json(run_dir / "summary.json", summary)
    return summary


def run_name(config: FeaturesConfig) -> str:
    """The run folder's name: ``--name``, else DATA-EXTRACTOR-CLASSIFIER (DATA-compare)."""
    default = f"{Path(config.data).name}-compare" if config.compare else \
        f"{Path(config.data).name}-{config.extractor}-{config.classifier}"
    return config.name or default


def predict_named(config: FeaturesConfig, files: list[str]) -> list[dict]:
    """:func:`predict_files` with the run these options name: OUT/features/NAME (the first run of that name)."""
    config.validate()
    set_threads(config.threads)
    return predict_files(Path(config.out) / "features" / slug(run_name(config)), files)


def predict_files(run: str | Path, files: list[str]) -> list[dict]:
    """The class of each image file by the fitted pipeline of a features run: ``[{"file", "class"}, ...]``. Each
    image is read as the training images were: grey, resized to their size."""
    path = Path(run) / "pipeline.joblib"
    if not path.is_file():
        raise DataError(f"{run}: no pipeline.joblib (a 'visionlab features' run without --compare saves one)")
    pipeline, record = load_pipeline(path), saved_metadata(path)
    if "image_shape" not in record:
        raise DataError(f"{path}: its record has no image size (saved by an older visionlab); train it again")
    images = np.stack([read_grey(file, tuple(record["image_shape"])) for file in files])  # (N, H, W)
    names = record["class_names"]
    return [{"file": str(file), "class": names[int(k)]} for file, k in zip(files, pipeline.predict(images))]


def _compare(config: FeaturesConfig, train: ImageDataset, test: ImageDataset, run_dir: Path, board) -> dict:
    rows = []
    combos = [(e, c) for e in EXTRACTORS for c in CLASSIFIERS]
    for extractor, classifier in tqdm(combos, desc="compare", disable=config.quiet):
        _, metrics = evaluate_pipeline(config, extractor, classifier, train, test)
        rows.append(_brief(metrics))
    table = compare_table(train.name.split("/")[0], rows)
    write_json(run_dir / "compare.json", rows)
    write_text(run_dir / "compare.md", table)
    board.text("compare", table)
    summary = {"task": "features", "status": "finished", "run_dir": str(run_dir), "rows": rows, "table": table,
               "version": __version__}
    write_json(run_dir / "summary.json", summary)
    return summary


def compare_table(data: str, rows: list[dict]) -> str:
    lines = [f"| {data} | feature length | accuracy | fit (s) | predict (s) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['extractor']} + {r['classifier']} | {r['feature_length']} | {r['accuracy']:.2%} | "
                     f"{r['fit_seconds']:.1f} | {r['predict_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def _brief(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("extractor", "classifier", "accuracy", "feature_length", "train_images",
                                    "test_images", "fit_seconds", "predict_seconds") if k in metrics}


def _size_pair(text: str) -> tuple[int, int]:
    size = parse_size(text, option="image size")
    if isinstance(size, int):
        return size, size
    return size
