"""SURF stage by stage: which of detection, orientation and descriptor loses what under rotation, and what each costs.

    python benchmarks/surf_stages.py                    # writes results/surf_stages.json and .md
    taskset -c 1 python benchmarks/surf_stages.py --repeat 5

Same photos, sizes, warps and eps as ``features_match.py``. The matching score of the whole pipeline is split into
three losses by replacing one stage at a time with the ground truth, known from the affine map A:

- **descriptor alone**: the reference keypoints mapped by A (exact position, same scale) with the true orientation
  (the reference's turned by A) are described in the warped image; the score of those descriptors against the
  reference's is what the descriptor alone keeps (``M_desc``);
- **orientation alone**: the same mapped keypoints, but with the orientation SURF computes in the warped image
  (``M_ori``); the fraction of orientations within 15 degrees of the truth is shown as well;
- **detection**: SURF's own keypoints in the warped image (``M_full``, the benchmark's matching score); its
  repeatability is the detector's alone (orientation and descriptor play no part in it).

The loss 1 - M_full = (1 - M_desc) + (M_desc - M_ori) + (M_ori - M_full): descriptor, orientation and detection
shares. ``--max-offset`` sets the quadratic fit's bound (``surf_detect.MAX_OFFSET``): 0.5 was the bound before the fix.
Time per stage (fast-Hessian, orientation, descriptor) is measured against OpenCV's SIFT in the same run, one thread.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from features_match import TRANSFORMS, load_grey, relative, scores, warp

from visionlab.components import surf_detect
from visionlab.components.surf import Surf, SurfKeypoints
from visionlab.components.surf_describe import DESC_REACH, ORI_REACH, Padded
from visionlab.util.io import write_json, write_text


def ratio_score(d_ref: np.ndarray, d_out: np.ndarray, xy_mapped: np.ndarray, xy_out: np.ndarray, eps: float):
    """Fraction of reference descriptors whose ratio-tested nearest neighbour lies within eps of the true position."""
    if len(d_ref) < 2 or len(d_out) < 2:
        return 0.0
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d_ref, d_out, k=2)
    correct = [len(p) == 2 and p[0].distance < 0.8 * p[1].distance
               and np.linalg.norm(xy_mapped[p[0].queryIdx] - xy_out[p[0].trainIdx]) <= eps for p in pairs]
    return float(np.mean(correct))


def mapped_keypoints(kp: SurfKeypoints, a: np.ndarray, orientation: bool) -> SurfKeypoints:
    """Reference keypoints moved by A (scale by A's zoom); with ``orientation`` their angles turned by A too."""
    xy = np.c_[kp.xy, np.ones(len(kp))] @ a.T  # (K, 2)
    zoom = np.sqrt(abs(np.linalg.det(a[:, :2])))
    angle = kp.orientation
    if orientation:  # a direction (cos, sin) maps to A_2x2 (cos, sin)
        d = np.stack([np.cos(angle), np.sin(angle)], 1) @ a[:, :2].T
        angle = np.arctan2(d[:, 1], d[:, 0])
    return SurfKeypoints(xy.astype(np.float32), (kp.scale * zoom).astype(np.float32), angle.astype(np.float32),
                         kp.response, kp.laplacian)


def stages(image: np.ndarray, surf: Surf, eps: float) -> dict:
    """Per transform: repeatability, M_full, M_ori, M_desc and the orientation hit rate."""
    ka, da = surf.detect_and_describe(image)
    out = {}
    for label, (kind, amount) in TRANSFORMS.items():
        warped, a = warp(image, kind, amount)
        tol = eps * max(1.0, amount if kind == "scale" else 1.0)
        kb, db = surf.detect_and_describe(warped)
        rep, full = scores((ka.xy.astype(np.float64), da), (kb.xy.astype(np.float64), db), a, warped.shape, tol,
                           binary=False)
        truth = mapped_keypoints(ka, a, orientation=True)
        inside = ((truth.xy >= 0) & (truth.xy < [warped.shape[1], warped.shape[0]])).all(1)
        truth, d_ref = truth.subset(inside), da[inside]
        _, d_desc = surf.describe(warped, truth)  # true keypoints, true orientation
        own = mapped_keypoints(ka.subset(inside), a, orientation=False)
        surf._orient(Padded(surf._grey(warped), reach=ORI_REACH * own.scale, xy=own.xy), own)  # SURF's own angles
        _, d_ori = surf.describe(warped, own)
        gap = np.degrees((own.orientation - truth.orientation + np.pi) % (2 * np.pi) - np.pi)
        out[label] = {"repeatability": rep, "M_full": full,
                      "M_ori": ratio_score(d_ref, d_ori, truth.xy, own.xy, tol),
                      "M_desc": ratio_score(d_ref, d_desc, truth.xy, truth.xy, tol),
                      "orientation_within_15deg": float(np.mean(np.abs(gap) < 15))}
    return out


def best_ms(fn, repeat: int) -> float:
    """The fastest of ``repeat`` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return min(times)


def image_times(image: np.ndarray, repeat: int) -> dict:
    """Milliseconds of SURF's stages and of OpenCV SIFT's detect + compute on one image."""
    surf, sift = Surf(), cv2.SIFT_create()
    grey = surf._grey(image)
    kp = surf._fast_hessian(grey)
    reach = DESC_REACH * kp.scale
    padded = Padded(grey, reach=reach, xy=kp.xy)
    return {"fast_hessian": best_ms(lambda: surf._fast_hessian(grey), repeat),
            "padded_integral": best_ms(lambda: Padded(grey, reach=reach, xy=kp.xy), repeat),
            "orientation": best_ms(lambda: surf._orient(padded, kp), repeat),
            "descriptor": best_ms(lambda: surf._describe(grey, kp, padded), repeat),
            "surf_total": best_ms(lambda: surf.detect_and_describe(image), repeat),
            "sift_total": best_ms(lambda: sift.detectAndCompute(image, None), repeat)}


def stage_times(images: list[np.ndarray], repeat: int) -> dict:
    """Best-of-``repeat`` milliseconds per image, mean over the images, and SURF's total over SIFT's."""
    rows = [image_times(image, repeat) for image in images]
    mean = {key: statistics.mean(r[key] for r in rows) for key in rows[0]}
    mean["surf_over_sift"] = mean["surf_total"] / mean["sift_total"]
    return mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", default=["camera", "astronaut", "coffee", "chelsea"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--eps", type=float, default=2.5)
    parser.add_argument("--max-offsets", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    images = [load_grey(name, args.size) for name in args.images]
    results = {}
    for bound in args.max_offsets:
        surf_detect.MAX_OFFSET = bound
        per_image = [stages(image, Surf(), args.eps) for image in images]
        results[str(bound)] = {label: {key: statistics.mean(p[label][key] for p in per_image)
                                       for key in per_image[0][label]} for label in TRANSFORMS}
        print(f"max offset {bound} done", flush=True)
    surf_detect.MAX_OFFSET = 1.0
    times = stage_times(images, args.repeat)
    setup = {**vars(args), "out": relative(args.out)}
    write_json(Path(args.out) / "surf_stages.json", {"setup": setup, "stages": results, "ms_per_image": times})
    table = markdown(args, results, times)
    write_text(Path(args.out) / "surf_stages.md", table)
    print(table)


def markdown(args, results: dict, times: dict) -> str:
    lines = ["# SURF stage by stage", "",
             (f"`python benchmarks/surf_stages.py`: {', '.join(args.images)} (grey, {args.size} px), eps {args.eps} "
              "px. M = matching score with ground-truth keypoints and orientation (desc), ground-truth keypoints and "
              "SURF's orientation (ori), and SURF's own keypoints (full); losses = 1 - M_desc, M_desc - M_ori, "
              "M_ori - M_full (share of 1 - M_full). Fit bound: the largest offset the quadratic fit may move a "
              "maximum (0.5 before the fix)."), "",
             ("| fit bound | transform | repeatability | M_desc | M_ori | M_full | orientation within 15 deg | "
              "loss: descriptor / orientation / detection |"), "|---|---|---|---|---|---|---|---|"]
    for bound, rows in results.items():
        for label, r in rows.items():
            total = max(1 - r["M_full"], 1e-9)
            shares = [1 - r["M_desc"], r["M_desc"] - r["M_ori"], r["M_ori"] - r["M_full"]]
            cells = " / ".join(f"{x:.2f} ({x / total:.0%})" for x in shares)
            lines.append(f"| {bound} | {label} | {r['repeatability']:.2f} | {r['M_desc']:.2f} | {r['M_ori']:.2f} | "
                         f"{r['M_full']:.2f} | {r['orientation_within_15deg']:.2f} | {cells} |")
    lines += ["", f"Milliseconds per {args.size} px image, one thread, best of {args.repeat} (mean over the photos):",
              "", ("| fast-Hessian | mirrored integral | orientation | descriptor | SURF total | SIFT (OpenCV) | "
                   "SURF / SIFT |"), "|---|---|---|---|---|---|---|",
              (f"| {times['fast_hessian']:.1f} | {times['padded_integral']:.1f} | {times['orientation']:.1f} | "
               f"{times['descriptor']:.1f} | {times['surf_total']:.1f} | {times['sift_total']:.1f} | "
               f"{times['surf_over_sift']:.2f} |")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
