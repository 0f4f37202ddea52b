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
# # Lesson 7: DiT, the Diffusion Transformer, and classifier-free guidance
#
# DiT (Peebles & Xie, 2023) replaces the U-Net of lesson 6 by a ViT: the noisy image $x_t$ is cut into patches
# (tokens $(B, L, D)$), and the time step $t$ and class $y$ enter every block through **adaLN-Zero**: a small
# network maps $c = \mathrm{emb}(t) + \mathrm{emb}(y)$ to a scale, shift and gate per block,
# $$ h \leftarrow h + \alpha(c) \odot \mathrm{Attn}\big((1 + \gamma(c)) \odot \mathrm{LN}(h) + \beta(c)\big), $$
# with $\alpha$ initialised to zero so that each block starts as the identity.
#
# **Classifier-free guidance** (Ho & Salimans): training drops the label now and then (replacing it by a "null"
# class), so one network learns both $\varepsilon_\theta(x_t, y)$ and $\varepsilon_\theta(x_t, \varnothing)$. At
# sampling time, with a guidance scale $s$,
# $$ \hat\varepsilon = \varepsilon_\theta(x_t, \varnothing) + s\,\big(\varepsilon_\theta(x_t, y) -
# \varepsilon_\theta(x_t, \varnothing)\big) ;$$
# $s = 1$ is the plain conditional model, $s > 1$ pushes samples towards what makes them look like class $y$,
# trading variety for fidelity.

# %%
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch

import visionlab as vl
from visionlab.models.dit import DiT, dit_config
from visionlab.trainer.generative import image_grid

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson07-")  # runs go to a temporary folder, not into the repository


# %% [markdown]
# ## The network on 8 x 8 digits
# Patches of 2 x 2 give $L = 16$ tokens; the output has the input's shape, with twice its channels when the
# network also predicts the variance $\Sigma$ besides $\varepsilon$ (DiT's learned variance).

# %%
network = dict(patch_size=2, dim=64, depth=3, num_heads=4)  # a smaller DiT than the "digits" preset's
model = DiT(config=dit_config("digits", input_size=8, **network))
x_t = torch.randn(2, 1, 8, 8)  # (B, C, H, W)
out = model(x_t, torch.tensor([10, 500]), torch.tensor([3, 7]))  # (x_t, t, y)
print("x_t", tuple(x_t.shape), "->", tuple(out.shape), f"| {sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# ## A short training run
# `STEPS` batches of 64 (printed below) on the 8 x 8 digits, label dropout 0.1 (the default), EMA 0.98 for so short a
# run (the `digits-dit` recipe: 16 x 16, 8,000 steps, 25 minutes). Expect rough digits.

# %%
STEPS = 250  # a run of seconds
summary = vl.diffuse("dit", data="digits", steps=STEPS, batch_size=64, lr=2e-3, warmup_steps=20, ema=0.98,
                     sample_every=0, sample_steps=20, eval_every=50, out=OUT, quiet=True, image_size=8, **network)
m = summary["metrics"]
print(f"{m['steps']} steps in {m['train_seconds']:.1f} s; test loss {m['test_loss']:.4f} ({m['parameters']:,} "
      f"parameters)")

# %% [markdown]
# ## Samples at two guidance scales
# The same noise (seed 0) and the same labels (one column per class 0..9), DDIM with 20 steps; only $s$ differs.

# %%
labels = ",".join("0123456789")
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for ax, scale in zip(axes, (1.0, 4.0)):
    result = vl.sample(summary["run_dir"], sampler="ddim", steps=20, num=30, labels=labels, guidance=scale, seed=0,
                       quiet=True)
    images = torch.from_numpy(np.load(result["images"]))  # (N, C, H, W) in [0, 1]
    grid = image_grid(images, columns=10)  # (H', W', C): 3 rows x 10 classes, framed in white
    ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=1)
    width = grid.shape[1] / 10  # one framed, enlarged sample
    ax.set(title=f"guidance s = {scale:g}", xticks=np.arange(10) * width + width / 2, xticklabels=list(range(10)),
           yticks=[])
plt.show()

# %% [markdown]
# Compare the two grids yourself: after a run this short the model has learnt little about the labels, so the
# two scales give grids that differ only in details (the same noise, the same rough shapes). Guidance amplifies the
# difference the label makes, $\varepsilon_\theta(x_t, y) - \varepsilon_\theta(x_t, \varnothing)$; when that
# difference is small, so is its effect. On a fully trained model it trades diversity for fidelity, which the
# README's FID table measures.
