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
# # Lesson 4: ViViT, the Video Vision Transformer
#
# A video adds time: $T$ frames of $H \times W$. **Tubelet embedding** cuts it into $t \times h \times w$ blocks
# (a patch that also spans $t$ frames), embedded by a 3-D convolution whose kernel and stride are the tubelet, so
# that
# $$ L = \frac{T}{t}\cdot\frac{H}{h}\cdot\frac{W}{w} + 1 $$
# tokens of width $D$ (with `[CLS]`) enter the encoder. Attending over all of them (model 1, *spatio-temporal*)
# costs $O(L^2)$. The **factorised encoder** (model 2) first runs a spatial transformer over the tokens of each time
# index alone (its own `[CLS]`), keeps one vector per time index, and runs a small temporal transformer over those
# $T/t$ vectors. Shape legend: B batch, C channels, T frames, H, W, L tokens, D width.

# %%
import json
import tempfile
import warnings

import matplotlib.pyplot as plt
from IPython.display import Image, display

import visionlab as vl
from visionlab.data.video import moving_digits

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson04-")  # runs go to a temporary folder, not into the repository


# %% [markdown]
# ## The notes' shape walk: 16 frames of 224 x 224, tubelets 2 x 16 x 16
# Model 1 (all tokens in one sequence): $8 \cdot 14 \cdot 14 + 1$ tokens.

# %%
print(vl.shapes("vivit", preset="B", image_size=224, frames=16, tubelet=(2, 16, 16), vivit_model=1))

# %% [markdown]
# Model 2, the factorised encoder: the 1,568 tubelet tokens regroup as 8 time indices of 196 (each with its own
# `[CLS]`: 197), then 8 vectors (+ a temporal `[CLS]`: 9) go through the temporal encoder.

# %%
print(vl.shapes("vivit", preset="B", image_size=224, frames=16, tubelet=(2, 16, 16), vivit_model=2))

# %% [markdown]
# `vl.tubelet_picture` (`visionlab show tubelets moving-digits`) draws one clip of 4 frames of 32 x 32 cut into
# tubelets of $t \times h \times w = 2 \times 8 \times 8$: each group of 2 frames shares one grid of tokens,
# numbered in the order the embedding flattens them (time, then rows, then columns).

# %%
result = vl.tubelet_picture("moving-digits", tubelet=(2, 8, 8), frames=4, output=f"{OUT}/tubelets.png")
print(f"{result['tokens']} tubelet tokens = (4 / 2) * (32 / 8) * (32 / 8)")
display(Image(filename=result["picture"], width=360))

# %% [markdown]
# ## Moving digits: a label that needs time
# Each built-in clip shows a digit moving in one of 8 directions on a wrapping canvas; the label is the direction,
# which no single frame can tell.

# %%
clips = moving_digits(num_clips=8, frames=8, size=16, digit_size=8, seed=0)
fig, axes = plt.subplots(3, 8, figsize=(9, 3.7))
for row, ax_row in enumerate(axes):
    for t, ax in enumerate(ax_row):
        ax.imshow(clips.clips[row, t], cmap="gray", vmin=0, vmax=1)  # clips: (N, T, H, W)
        ax.set_xticks([]), ax.set_yticks([])
    ax_row[0].set_ylabel(clips.class_names[clips.labels[row]], rotation=0, labelpad=18)
for t, ax in enumerate(axes[0]):
    ax.set_title(f"t = {t}", fontsize=9)
plt.show()

# %% [markdown]
# ## A tiny ViViT (factorised encoder)
# 8 frames of 16 x 16, tubelets 2 x 4 x 4 (4 time indices of 16 tokens), width 32, two blocks: the `moving-digits-vivit`
# recipe made smaller and cut to a few epochs (printed below; the recipe: 15) so that it trains in seconds. Chance
# is 1 / 8; the printed accuracy is what this short run reached.

# %%
summary = vl.train("vivit", data="moving-digits", preset="tiny", vivit_model=2, frames=8, image_size=16,
                   patch_size=4, dim=32, depth=2, num_heads=2, mlp_dim=64, epochs=8, batch_size=32, lr=2e-3,
                   warmup_epochs=1, label_smoothing=0.1, out=OUT, quiet=True)
m = summary["metrics"]
print(f"test accuracy after {m['epochs']:.0f} epochs: {m['accuracy']:.4f} (chance 0.125; {m['train_seconds']:.1f} s "
      f"of training, {m['parameters']:,} parameters)")

# %%
with open(f"{summary['run_dir']}/metrics.jsonl") as f:
    epochs = [r for r in map(json.loads, f) if "val_accuracy" in r]  # the validation split, once per epoch
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot([r["epoch"] + 1 for r in epochs], [r["val_accuracy"] for r in epochs], "o-", label="ViViT (model 2)")
ax.axhline(1 / 8, color="gray", ls="--", label="chance")
ax.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1), title="direction of motion, 8 classes")
ax.legend()
plt.show()
display(Image(filename=f"{summary['run_dir']}/confusion.png", width=360))

# %% [markdown]
# ## Where the factorised encoder looks
# `vl.attention_maps` on a ViViT run (model 2): one row per time index (its first frame), the spatial `[CLS]`'s
# attention to that index's 16 patches in each head of the last spatial block and rolled out through the spatial
# blocks; the last row is the temporal `[CLS]`'s attention to the 4 time indices (each head, then the rollout, whose
# remaining weight stays on the `[CLS]` itself through the residual).

# %%
result = vl.attention_maps(summary["run_dir"], index=3, output=f"{OUT}/vivit-attention.png")
print(f"spatial maps {tuple(result['spatial_last'].shape)} (time indices, heads, 1 + 16, 1 + 16), temporal "
      f"{tuple(result['temporal_last'].shape)}; true {result['true']}, predicted {result['predicted']}")
display(Image(filename=result["picture"], width=420))
