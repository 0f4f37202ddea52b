"""Dense SURF's scales, chosen without the test split.

The digits' split of the README's tables (test_size 0.25, seed 0) is left alone: the candidates are compared on a
validation split carved from its training images (stratified, 10 %, seed 0), the best is refitted on all the
training images and the test split is scored once, for that choice only (the other candidates' test scores are
not computed, so nothing here can be picked on them).

    python benchmarks/dense_surf_scales.py      # ~3 minutes on one core; writes results/dense_surf_scales.{json,md}
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sklearn.metrics import accuracy_score

from visionlab.components.features import LocalFeatures
from visionlab.data.datasets import load_dataset
from visionlab.models.classic import build_pipeline

CANDIDATES = [(0.8,), (1.6,), (0.8, 1.6), (1.6, 3.2), (0.8, 1.6, 3.2)]
RESULTS = Path(__file__).parent / "results"


def accuracy(scales, train, test) -> float:
    pipeline = build_pipeline(LocalFeatures(detector="dense-surf", dense_scales=scales, seed=0), "svm", seed=0)
    pipeline.fit(train.images, train.labels)
    return float(accuracy_score(test.labels, pipeline.predict(test.images)))


def main() -> None:
    train, test = load_dataset("digits").split(test_size=0.25, seed=0)  # the README's split
    fit, val = train.split(test_size=0.1, seed=0)  # stratified: the validation images come from training only
    rows = []
    for scales in CANDIDATES:
        start = time.perf_counter()
        rows.append({"scales": list(scales), "val_accuracy": accuracy(scales, fit, val),
                     "seconds": time.perf_counter() - start})
        print(rows[-1])
    best = max(rows, key=lambda row: row["val_accuracy"])  # ties: the first, the fewer scales
    test_accuracy = accuracy(tuple(best["scales"]), train, test)
    result = {"data": "digits", "split": "README (test 0.25, seed 0); validation 10 % of training, seed 0",
              "candidates": rows, "chosen": best["scales"], "test_accuracy_of_chosen": test_accuracy,
              "train_images": len(train), "val_images": len(val), "test_images": len(test)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dense_surf_scales.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| dense-SURF scales | validation accuracy | seconds |", "|---|---|---|"]
    lines += [f"| {', '.join(map(str, r['scales']))} | {r['val_accuracy']:.2%} | {r['seconds']:.1f} |" for r in rows]
    lines += ["", f"Chosen on validation: {', '.join(map(str, best['scales']))}; its test accuracy (scored once): "
                  f"{test_accuracy:.2%} ({len(test)} images)."]
    (RESULTS / "dense_surf_scales.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
