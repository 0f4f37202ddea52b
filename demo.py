"""The one-command demo: fit a bundled photo with SIREN + EVOS and show how good the fit is.

    python demo.py            # scikit-image's astronaut at 160 px, about a minute on a 2-core CPU
    python demo.py --fast     # the astronaut at its full 512 x 512 with the fast path (hash grid), 2 minutes on a CPU
    python demo.py --paper    # the EVOS paper's setting (512 x 512, 5,000 steps): for a GPU

Outputs (reconstruction, original | reconstruction | error figure, PSNR curve, metrics, checkpoint) go to
runs/fit/<name>/.
"""

import argparse
import sys

import visionlab as vl
from visionlab.util.errors import VisionlabError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--paper", action="store_true", help="512x512, 5,000 steps (EVOS Table 1, step-wise)")
    which.add_argument("--fast", action="store_true", help="full size (512x512) with the fast preset: a hash grid")
    parser.add_argument("--image", default="astronaut", help="a file or a built-in sample name")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    args = parser.parse_args()
    preset = "paper" if args.paper else "fast" if args.fast else "demo"
    model = "a hash grid" if args.fast else "SIREN 3x256 + EVOS"
    print(f"visionlab {vl.__version__}: fitting {args.image!r} with {model} (preset {preset!r}) "
          f"on {vl.pick_device(args.device)}")
    try:
        name = f"demo-{args.image}" + ("" if preset == "demo" else f"-{preset}")
        summary = vl.fit_run(args.image, preset=preset, device=args.device, name=name)
    except VisionlabError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    m = summary["metrics"]
    print(f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} after {m['steps']} steps and {m['wall_seconds']:.1f} s "
          f"of training ({m['height']}x{m['width']} pixels, {m['pixels_trained']:,} pixel-steps trained)")
    print(f"outputs: {summary['run_dir']}/ (comparison.png, reconstruction.png, psnr_curve.png, metrics.json)")
    return 0 if summary["status"] == "finished" else 130


if __name__ == "__main__":
    sys.exit(main())
