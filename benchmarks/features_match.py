"""Keypoint detectors side by side: SURF (visionlab's own) against OpenCV's SIFT and ORB.

    python benchmarks/features_match.py
    python benchmarks/features_match.py --images camera coffee --size 384

Each built-in photo (grey, shorter side ``--size``) is rotated (15, 30, 45, 60 and 90 degrees, the canvas grown to keep
every pixel) and scaled (x0.5, x1.5 and x2) with a known affine map A. For each detector:

- **repeatability**: of the reference keypoints that A maps inside the transformed image, the fraction with a
  keypoint detected within ``eps`` pixels of A x (eps = 2.5 px, times the scale factor when it enlarges);
- **matching score**: the fraction of those reference keypoints whose nearest descriptor in the transformed image
  (Lowe's ratio test at 0.8; L2 for SIFT and SURF, Hamming for ORB) is such a geometrically correct keypoint;
- **time**: detection + description in milliseconds, on one thread: of the reference image (``--size`` px, best of
  ``--repeat``) and the mean over all its views (the warped ones are larger).

Writes ``results/features_match.json`` and ``.md``; paths in them are relative to the project.
``benchmarks/surf_stages.py`` splits SURF's matching score into its stages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

import visionlab as vl
from visionlab.components.surf import Surf
from visionlab.util.io import write_json, write_text

TRANSFORMS = {**{f"rotate {a}": ("rotate", float(a)) for a in (15, 30, 45, 60, 90)},
              **{f"scale {f:g}": ("scale", f) for f in (0.5, 1.5, 2.0)}}
ROOT = Path(__file__).resolve().parent.parent


def relative(path: str | Path) -> str:
    """A path as the results files keep it: relative to the project when inside it, never the machine's own."""
    resolved = Path(path).resolve()
    return os.path.relpath(resolved, ROOT) if resolved.is_relative_to(ROOT) else Path(path).name


def load_grey(name: str, size: int) -> np.ndarray:
    """A built-in photo as (H, W) uint8 grey (ITU-R 601 weights), shorter side ``size``."""
    values = vl.load_image(name, size=size).values.numpy()
    grey = values[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32) if values.shape[2] >= 3 else values[..., 0]
    return np.round(grey * 255).astype(np.uint8)


def warp(image: np.ndarray, kind: str, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """(transformed image, 2 x 3 affine map A from reference to transformed pixel coordinates)."""
    h, w = image.shape
    if kind == "scale":
        out = cv2.resize(image, (round(w * amount), round(h * amount)), interpolation=cv2.INTER_LINEAR)
        return out, np.array([[amount, 0, 0], [0, amount, 0]], dtype=np.float64)
    a = cv2.getRotationMatrix2D((w / 2, h / 2), amount, 1.0)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64) @ a.T
    a[:, 2] -= corners.min(axis=0)  # grow the canvas so that no pixel is cut off
    size = np.ceil(corners.max(axis=0) - corners.min(axis=0)).astype(int)
    return cv2.warpAffine(image, a, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR), a


def detect(name: str, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xy (K, 2), descriptors (K, D)) of one uint8 grey image."""
    if name == "SURF (visionlab)":
        keypoints, descriptors = Surf().detect_and_describe(image)
        return keypoints.xy.astype(np.float64), descriptors
    detector = cv2.SIFT_create() if name == "SIFT (OpenCV)" else cv2.ORB_create(nfeatures=1000)
    found, descriptors = detector.detectAndCompute(image, None)
    xy = np.array([k.pt for k in found], dtype=np.float64).reshape(-1, 2)
    return xy, descriptors if descriptors is not None else np.zeros((0, 32), np.uint8)


def scores(ref: tuple, out: tuple, a: np.ndarray, shape: tuple[int, int], eps: float, binary: bool) -> tuple:
    xy_ref, d_ref = ref
    xy_out, d_out = out
    mapped = np.c_[xy_ref, np.ones(len(xy_ref))] @ a.T  # A x, (K, 2)
    inside = (mapped[:, 0] >= 0) & (mapped[:, 0] < shape[1]) & (mapped[:, 1] >= 0) & (mapped[:, 1] < shape[0])
    if not inside.any() or len(xy_out) < 2:
        return 0.0, 0.0
    mapped, d_ref = mapped[inside], d_ref[inside]
    distance = np.linalg.norm(mapped[:, None] - xy_out[None], axis=2)  # (K_ref, K_out)
    repeatability = float((distance.min(axis=1) <= eps).mean())
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING if binary else cv2.NORM_L2)
    correct = 0
    for pair in matcher.knnMatch(d_ref, d_out, k=2):
        if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance:
            correct += distance[pair[0].queryIdx, pair[0].trainIdx] <= eps
    return repeatability, correct / len(mapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", default=["camera", "astronaut", "coffee", "chelsea"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--eps", type=float, default=2.5)
    parser.add_argument("--repeat", type=int, default=3, help="timings of the reference image: best of this many")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    detectors = ["SURF (visionlab)", "SIFT (OpenCV)", "ORB (OpenCV)"]
    rows = []
    for image_name in args.images:
        image = load_grey(image_name, args.size)
        for name in detectors:
            reference_ms = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                ref = detect(name, image)
                reference_ms.append(1000 * (time.perf_counter() - start))
            milliseconds = [min(reference_ms)]
            for label, (kind, amount) in TRANSFORMS.items():
                warped, a = warp(image, kind, amount)
                start = time.perf_counter()
                out = detect(name, warped)
                milliseconds.append(1000 * (time.perf_counter() - start))
                eps = args.eps * max(1.0, amount if kind == "scale" else 1.0)
                rep, match = scores(ref, out, a, warped.shape, eps, binary=name.startswith("ORB"))
                rows.append({"image": image_name, "detector": name, "transform": label, "keypoints": len(ref[0]),
                             "repeatability": rep, "matching_score": match})
            for row in rows[-len(TRANSFORMS):]:
                row["ms_reference"], row["ms_per_image"] = milliseconds[0], statistics.mean(milliseconds)
        print(f"{image_name} done", flush=True)

    table = markdown(args, detectors, rows)
    setup = {**vars(args), "out": relative(args.out)}
    write_json(Path(args.out) / "features_match.json", {"setup": setup, "rows": rows})
    write_text(Path(args.out) / "features_match.md", table)
    print(table)


def markdown(args, detectors: list[str], rows: list[dict]) -> str:
    lines = [(f"Images: {', '.join(args.images)} (grey, shorter side {args.size}); eps {args.eps} px; one thread. "
              "Repeatability / matching score, mean over the images; ms: the reference image (best of "
              f"{args.repeat}) / mean over all views."), "",
             "| detector | keypoints | " + " | ".join(TRANSFORMS) + f" | ms per {args.size} px image | ms per view |",
             "|---|---|" + "---|" * len(TRANSFORMS) + "---|---|"]
    for name in detectors:
        mine = [r for r in rows if r["detector"] == name]
        cells = []
        for label in TRANSFORMS:
            sel = [r for r in mine if r["transform"] == label]
            cells.append(f"{statistics.mean(r['repeatability'] for r in sel):.2f} / "
                         f"{statistics.mean(r['matching_score'] for r in sel):.2f}")
        keypoints = statistics.mean(r["keypoints"] for r in mine)
        ms = statistics.mean(r["ms_per_image"] for r in mine)
        reference = statistics.mean(r["ms_reference"] for r in mine)
        lines.append(f"| {name} | {keypoints:.0f} | " + " | ".join(cells) + f" | {reference:.1f} | {ms:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
