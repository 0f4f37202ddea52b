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
# # Lesson 3: patches, embeddings and the Vision Transformer
#
# An **embedding** represents a thing as a vector. A **patch** is a small rectangle cut from an image. ViT cuts an
# image of $H \times W$ pixels into $P \times P$ patches, flattens each and maps it linearly to a $D$-dimensional
# token, prepends a learned `[CLS]` token and adds a learned positional embedding:
# $$ z_0 = [x_{\text{cls}};\ x_p^1 E;\ \dots;\ x_p^N E] + E_{\text{pos}}, \qquad N = \frac{H}{P}\cdot\frac{W}{P},
# \qquad L = N + 1 .$$
# The transformer encoder keeps the shape $(B, L, D)$; the head reads the `[CLS]` token.
# Shape legend: B batch, C channels, H, W height and width, P patch size, L tokens, D embedding width.

# %%
import json
import tempfile
import warnings

import matplotlib.pyplot as plt
import torch
from einops import rearrange
from IPython.display import Image, display

import visionlab as vl
from visionlab.data.datasets import digits
from visionlab.models.vit import ViT, vit_config

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson03-")  # runs go to a temporary folder, not into the repository


# %% [markdown]
# ## The shape walk of ViT-B/16 at 224 x 224
# The notes follow one image by hand; `vl.shapes` records every step with forward hooks (on PyTorch's `meta`
# device: no memory, no arithmetic), so nothing below is typed in.

# %%
print(vl.shapes("vit", preset="B", image_size=224, patch_size=16))

# %% [markdown]
# ## Patches of a digit
# The same cut on an 8 x 8 digit with $P = 2$: 16 patches of 4 values each, in reading order, which is the order
# of the tokens.

# %%
data = digits()
image = torch.from_numpy(data.images[0])[None, None]  # (B, C, H, W) = (1, 1, 8, 8)
P = 2
patches = rearrange(image, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=P, p2=P)  # (B, N, P*P*C) = (1, 16, 4)
print("image", tuple(image.shape), "-> patches", tuple(patches.shape))
fig, axes = plt.subplots(1, 2, figsize=(9, 3), gridspec_kw={"width_ratios": [1, 4], "wspace": 0.35})
axes[0].imshow(image[0, 0], cmap="gray")
axes[0].set_title(f"digit {data.labels[0]}, 8 x 8")
for k in range(1, 8 // P):
    axes[0].axhline(k * P - 0.5, color="tab:orange")
    axes[0].axvline(k * P - 0.5, color="tab:orange")
axes[1].imshow(patches[0].T, cmap="gray", aspect="auto")  # one column per token: its P*P values
axes[1].set(title="flattened patches: one column per token", xlabel="token (patch) index n",
            ylabel="pixel of the patch", yticks=range(P * P))
axes[0].set(xticks=[], yticks=[])
plt.show()

# %% [markdown]
# The same cut on a photograph: `vl.patch_picture` (`visionlab show patches astronaut --patch-size 32`) resizes it to
# 256 x 256, draws the $P = 32$ grid with each patch's token index (row-major, the order the patch embedding
# flattens them in), and lays the patches out as the sequence the transformer reads.

# %%
result = vl.patch_picture("astronaut", patch_size=32, output=f"{OUT}/patches.png")
print(f"{result['tokens']} tokens of 32 x 32 x 3 = {32 * 32 * 3:,} values each")
display(Image(filename=result["picture"], width=640))

# %% [markdown]
# The tiny model that will be trained below, built directly: its `forward_features` gives the encoder's tokens
# $(B, L, D)$ with $L = 16 + 1$.

# %%
options = {"patch_size": P, "dim": 64, "depth": 4, "num_heads": 4, "mlp_dim": 128, "pool": "cls"}
model = ViT(config=vit_config("tiny", image_size=8, in_channels=1, num_classes=10, **options))
tokens = model.forward_features(image.float())  # (B, L, D)
print("tokens", tuple(tokens.shape), "| logits", tuple(model(image.float()).shape),
      f"| {sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# ## Training a small ViT on the digits
# The `digits-vit` recipe (data-efficient training: small patches, label smoothing, warm-up and cosine decay) cut to a
# few epochs (printed below) instead of its 100 and without its affine augmentation, so that it trains in seconds:
# expect a lower accuracy than the full recipe's (`visionlab train vit --recipe digits-vit`).

# %%
summary = vl.train("vit", data="digits", preset="tiny", epochs=8, batch_size=32, lr=2e-3, weight_decay=0.05,
                   warmup_epochs=1, label_smoothing=0.1, out=OUT, quiet=True, **options)
m = summary["metrics"]
print(f"test accuracy after {m['epochs']:.0f} epochs: {m['accuracy']:.4f} ({m['train_seconds']:.1f} s of training, "
      f"{m['parameters']:,} parameters)")

# %%
with open(f"{summary['run_dir']}/metrics.jsonl") as f:
    log = [json.loads(line) for line in f]
epochs = [r for r in log if "val_accuracy" in r]  # per epoch: the validation split; the test split is read once
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot([r["epoch"] + 1 for r in epochs], [r["val_accuracy"] for r in epochs], "o-")
ax.set(xlabel="epoch", ylabel="validation accuracy", title="ViT on 8 x 8 digits (P = 2, D = 64)", ylim=(0, 1))
plt.show()
display(Image(filename=f"{summary['run_dir']}/confusion.png", width=360))

# %% [markdown]
# ## Where the trained ViT looks
# With `return_attention=True` each block hands back its maps $A = \operatorname{softmax}(QK^\top/\sqrt{d})$, of
# shape $(B, h, L, L)$, rows summing to 1. `vl.attention_maps` draws the `[CLS]` row of each head of the last block
# over test digit 3, and the **attention rollout** (Abnar & Zuidema 2020): per block
# $\tilde A_l = \operatorname{norm}(\tfrac12 \bar A_l + \tfrac12 I)$ (heads averaged, plus the residual),
# multiplied through the blocks, $\tilde A = \tilde A_L \cdots \tilde A_1$.

# %%
result = vl.attention_maps(summary["run_dir"], index=3, output=f"{OUT}/attention.png")
print(f"last block {tuple(result['last_block'].shape)}, rollout {tuple(result['rollout'].shape)}; rows sum to "
      f"{result['rollout'].sum(-1).min():.4f} .. {result['rollout'].sum(-1).max():.4f}; true {result['true']}, "
      f"predicted {result['predicted']}")
display(Image(filename=result["picture"], width=640))

# %% [markdown]
# The learned positional embeddings, compared by cosine similarity (the ViT paper's Fig. 7): tile $(r, c)$ shows how
# similar position $(r, c)$'s embedding is to every other position's. After a few epochs on 16 positions the
# pattern is faint; the paper's, after long training, shows rows and columns.

# %%
result = vl.position_similarity(summary["run_dir"], output=f"{OUT}/positions.png")
display(Image(filename=result["picture"], width=420))
