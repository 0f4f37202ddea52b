# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 9: neural fields, SIREN + EVOS and the symmetric power transformation
#
# A **neural field** (implicit neural representation) is a network $f_\theta(x, y) \to$ colour fitted to one
# image: the image *is* the weights. **SIREN** uses sine activations, $h_{l+1} = \sin(\omega_0 (W_l h_l + b_l))$
# with $\omega_0 = 30$, which let it represent fine detail. Training minimises the squared error over pixels; the
# quality is the PSNR, $10 \log_{10}(1 / \mathrm{MSE})$ on values in $[0, 1]$.
#
# **EVOS** (CVPR 2025) trains each step on only a fraction $r$ of the pixels, chosen as an evolutionary algorithm
# would: the pixels with the largest error survive, a crossover guided by frequency (cross-frequency supervision)
# mixes in detail, and a few random "mutations" keep every region visited, so each step costs about $r$ of a full
# one. The **symmetric power transformation** (AAAI 2025) maps the target values before training so that their
# distribution is centred and symmetric in $[-1, 1]$:
# $y = 2\,(u^\gamma - 0.5)$, with $u$ the min-max-scaled value (softened at the edges) and $\gamma$ chosen so that
# the median goes to 0; predictions are mapped back before the PSNR is computed.

# %%
import json
import tempfile
import warnings

import matplotlib.pyplot as plt
from IPython.display import Image, display

import visionlab as vl

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson09-")  # runs go to a temporary folder, not into the repository


def curve(run_dir):
    """(steps, training seconds, PSNR) of a fit run, from its metrics.jsonl (one line per evaluation)."""
    with open(f"{run_dir}/metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    return [r["step"] for r in rows], [r["seconds"] for r in rows], [r["psnr"] for r in rows]


# %% [markdown]
# ## The photo and its value distribution
# scikit-image's `rocket`, shrunk so that its shorter side is 64 pixels: a dark photo, whose values crowd the low
# end, the case the symmetric power transformation was made for.

# %%
image = vl.load_image("rocket", size=64)  # ImageSignal: values (H, W, C) in [0, 1]
values = image.flat()  # (H W, C)
sympower = vl.make_transform("sympower").fit(values)
minmax = vl.make_transform("minmax").fit(values)
print(sympower)
fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
axes[0].imshow(image.values.numpy())
axes[0].set_title(f"rocket, {image.height} x {image.width}")
axes[0].axis("off")
for ax, (name, t) in zip(axes[1:], (("min-max", minmax), ("Sym-Power", sympower))):
    y = t(values).flatten().numpy()  # the training targets, all channels
    ax.hist(y, bins=64, range=(-1, 1), color="tab:blue")
    ax.axvline(float(t(values).median()), color="tab:orange", label="median")
    ax.set(title=f"targets after {name}", xlabel="y", yticks=[])
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Three short fits
# SIREN with 3 hidden layers of 64 (the papers': 3 x 256) and only `STEPS` steps each (printed below; the papers train
# for 5,000), so that the three fits take a few seconds each: full sampling with min-max targets, EVOS ($r = 0.5$) with
# min-max targets, and full sampling with Sym-Power targets.

# %%
STEPS = 120  # a very short fit: enough to see the curves separate, far from converged
print(f"{STEPS} steps per fit")
common = {"size": "64", "model": "siren", "width": 64, "depth": 3, "steps": STEPS, "eval_every": 10, "out": OUT,
          "quiet": True}
runs = {
    "full": vl.fit_run("rocket", sampler="full", name="full", **common),
    # every 20th step's selection is recorded for the pictures below (its cost is left out of the training time)
    "EVOS r = 0.5": vl.fit_run("rocket", sampler="evos", ratio=0.5, name="evos", record_selection=20, **common),
    "full + Sym-Power": vl.fit_run("rocket", sampler="full", transform="sympower", name="sympower", **common),
}
for name, run in runs.items():
    m = run["metrics"]
    print(f"{name:<17} PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, {m['wall_seconds']:.1f} s of training, "
          f"{m['pixels_trained']:,} pixel-steps")

# %% [markdown]
# PSNR against training time (full against EVOS: the cost of a step is what EVOS saves) and against steps (min-max
# against Sym-Power: the same cost per step, different targets).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for name in ("full", "EVOS r = 0.5"):
    steps, seconds, psnr = curve(runs[name]["run_dir"])
    axes[0].plot(seconds, psnr, label=name)
axes[0].set(xlabel="training seconds", ylabel="PSNR (dB)", title="full sampling vs EVOS")
for name in ("full", "full + Sym-Power"):
    steps, seconds, psnr = curve(runs[name]["run_dir"])
    axes[1].plot(steps, psnr, label=name.replace("full", "min-max", 1) if name == "full" else "Sym-Power")
axes[1].set(xlabel="step", ylabel="PSNR (dB)", title="min-max vs Sym-Power targets")
for ax in axes:
    ax.legend()
plt.show()

# %% [markdown]
# The EVOS run's own comparison figure: the photo, the reconstruction and the error map.

# %%
display(Image(filename=f"{runs['EVOS r = 0.5']['run_dir']}/comparison.png", width=720))

# %% [markdown]
# ## Which pixels EVOS trains on
# `record_selection=20` (`visionlab fit IMAGE --record-selection 20`) kept every 20th step's selection and error map;
# `vl.selection_masks` draws them: the pixels trained on in yellow, and $|f_\theta(x) - y|$ on one logarithmic scale
# for all frames. Step 0 is an evaluation step (every pixel trained on: that pass measures every pixel's fitness);
# after it, each step trains on $r = 0.5$ of the pixels: the fittest (largest-error) $r - m = 0.25$ kept, and
# $m = r / 2 = 0.25$ drawn uniformly from the rest (the mutation), so every region is still visited. The run folder
# also holds `selection.gif` and `errors.gif`, one frame per record.

# %%
result = vl.selection_masks(runs["EVOS r = 0.5"]["run_dir"], output=f"{OUT}/selection.png")
print("steps:", result["steps"])
print("fraction trained on:", [round(f, 3) for f in result["fractions"]])
print("mean |error|:", [round(e, 4) for e in result["mean_error"]])
display(Image(filename=result["picture"], width=720))

# %% [markdown]
# The printed PSNRs and the curves are this short run's; on a small image and so few steps the gaps are smaller and
# noisier than the papers' (the README's tables: `visionlab experiment evos-table1` and `sympower-table1`).
