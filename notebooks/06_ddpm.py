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
# # Lesson 6: DDPM, denoising diffusion
#
# A diffusion model learns the data distribution $p(x)$ from samples by learning to undo noise. The **forward
# process** adds a little Gaussian noise at each of $T$ steps,
# $$ q(x_t \mid x_{t-1}) = \mathcal{N}\!\left(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\right), $$
# the mean shrinks the previous image by $\sqrt{1-\beta_t}$ and the variance adds noise of strength $\beta_t$.
# Composing the steps gives any $x_t$ from $x_0$ in one jump, with $\bar\alpha_t = \prod_{s \le t}(1-\beta_s)$:
# $$ q(x_t \mid x_0) = \mathcal{N}\!\left(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\right), \qquad
# x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon .$$
# A network $\varepsilon_\theta(x_t, t)$ learns to predict the noise, $L_{\text{simple}} = \mathbb{E}\,\lVert
# \varepsilon - \varepsilon_\theta(x_t, t)\rVert^2$, and sampling walks back from pure noise $x_T$ to $x_0$.

# %%
import json
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display

import visionlab as vl
from visionlab.data.datasets import digits
from visionlab.models.diffusion import GaussianDiffusion
from visionlab.trainer.generative import image_grid

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson06-")  # runs go to a temporary folder, not into the repository


# %% [markdown]
# ## The forward process on a digit
# The library's linear schedule (DDPM: $\beta$ from $10^{-4}$ to $0.02$, $T = 1000$); pixels scaled to $[-1, 1]$
# as the model sees them. Each $x_t$ below is one jump from $x_0$ with `q_sample`.

# %%
diffusion = GaussianDiffusion.from_preset("ddpm")
x0 = torch.from_numpy(digits().images[0]).double()[None, None] * 2 - 1  # (B, C, H, W) = (1, 1, 8, 8) in [-1, 1]
noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
steps = [0, 50, 100, 200, 300, 500, 700, 999]
fig, axes = plt.subplots(1, len(steps), figsize=(11, 1.9))
for ax, t in zip(axes, steps):
    x_t = diffusion.q_sample(x0, t, noise)  # sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
    ax.imshow(x_t[0, 0], cmap="gray", vmin=-1.5, vmax=1.5)
    ax.set_title(f"t = {t}\n$\\bar\\alpha_t$ = {diffusion.alphas_cumprod[t]:.3f}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# The same process drawn by `vl.forward_process` (`visionlab show forward digits --show 8`) on a test digit at
# 16 x 16, with one fixed $\varepsilon$ and $t$ spaced quadratically (the image is lost early under the linear
# schedule); the printed distances $\lVert x_t - x_0 \rVert$ grow with $t$.

# %%
result = vl.forward_process("digits", show=8, output=f"{OUT}/forward.png")
print("t:", result["timesteps"])
print("||x_t - x_0||:", [round(d, 1) for d in result["distance"]])
display(Image(filename=result["picture"], width=640))

# %% [markdown]
# How fast the signal fades: $\sqrt{\bar\alpha_t}$ (the image's share) against $\sqrt{1-\bar\alpha_t}$ (the
# noise's), for the linear and the cosine schedule (Nichol & Dhariwal), which destroys the image more gently.

# %%
cosine = GaussianDiffusion.from_preset("ddpm", schedule="cosine")
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for d, name, style in ((diffusion, "linear", "-"), (cosine, "cosine", "--")):
    abar = d.alphas_cumprod.numpy()
    ax.plot(np.sqrt(abar), style, color="tab:blue", label=f"$\\sqrt{{\\bar\\alpha_t}}$, {name}")
    ax.plot(np.sqrt(1 - abar), style, color="tab:orange", label=f"$\\sqrt{{1-\\bar\\alpha_t}}$, {name}")
ax.set(xlabel="t", title="signal and noise scales of $q(x_t | x_0)$")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))  # outside: no curve hidden
plt.show()

# %% [markdown]
# ## A tiny trained model
# DDPM's U-Net on the 8 x 8 digits themselves (not the recipe's 16 x 16), 8 base channels (the recipe: 32), only `STEPS`
# batches of 64 (printed below; the `digits-ddpm` recipe trains 7,000 steps for half an hour): a run of seconds, far too
# short for good digits. A high learning rate and EMA decay 0.9 because the run is so short. Samples: DDIM, 20 steps,
# one row per class.

# %%
STEPS = 150
summary = vl.diffuse("ddpm", data="digits", image_size=8, base_channels=8, steps=STEPS, batch_size=64, lr=5e-3,
                     warmup_steps=20, ema=0.9, sample_every=0, sample_steps=20, eval_every=25, out=OUT, quiet=True)
m = summary["metrics"]
print(f"{m['steps']} steps in {m['train_seconds']:.1f} s; final training loss {m['train_loss']:.4f}, "
      f"test loss {m['test_loss']:.4f} ({m['parameters']:,} parameters)")

# %%
with open(f"{summary['run_dir']}/metrics.jsonl") as f:
    log = [r for r in map(json.loads, f) if "test_loss" in r]
samples = vl.sample(summary["run_dir"], sampler="ddim", steps=20, num=30, labels=",".join("0123456789"),
                    guidance=1.0, quiet=True)
images = np.load(samples["images"])  # (N, C, H, W) in [0, 1]
fig = plt.figure(figsize=(10, 3.4))
ax = fig.add_subplot(1, 3, 1)
ax.plot([r["step"] for r in log], [r["test_loss"] for r in log], "o-")
ax.set(xlabel="step", ylabel="$L_{simple}$ on a test batch", title="training")
grid = image_grid(torch.from_numpy(images), columns=10)  # (H', W', C): 3 rows of the 10 classes, framed in white
ax = fig.add_subplot(1, 3, (2, 3))
ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=1)
ax.set(title=f"DDIM samples, asked for 0..9 in each row ({samples['seconds']:.2f} s)", xticks=[], yticks=[])
plt.show()

# %% [markdown]
# ## The reverse trajectory
# `vl.reverse_trajectory` (`visionlab show reverse RUN`) follows 3 samples of this run from $x_T$ (pure noise) to
# $x_0$ with DDIM's 20 jumps: per sample, a row of $x_t$ at 6 of the steps and, under it, the model's prediction of
# the clean image at that step, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta(x_t, t)) /
# \sqrt{\bar\alpha_t}$. After so short a run the $\hat x_0$ are blurs; the README shows the same picture for a
# run of 3,000 steps, where digits emerge.

# %%
result = vl.reverse_trajectory(summary["run_dir"], num=3, steps=20, output=f"{OUT}/reverse.png")
print("shown:", result["timesteps"])
display(Image(filename=result["picture"], width=640))
