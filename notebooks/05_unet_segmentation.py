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
# # Lesson 5: U-Net segmentation
#
# Segmentation gives every pixel a class. **U-Net** (Ronneberger et al., 2015) is an encoder that halves the
# resolution and doubles the channels at each level (two 3 x 3 convolutions, then 2 x 2 max-pooling), a decoder that
# climbs back up (2 x 2 up-convolutions), and **skip connections** that concatenate each encoder level onto the
# decoder level of the same size, so that fine detail lost by pooling comes back. It is trained with the per-pixel
# cross-entropy (optionally plus a soft Dice loss) and judged by the overlap of predicted and true regions $A, B$:
# $$ \mathrm{IoU} = \frac{|A \cap B|}{|A \cup B|}, \qquad \mathrm{Dice} = \frac{2\,|A \cap B|}{|A| + |B|} .$$

# %%
import tempfile
import warnings

import matplotlib.pyplot as plt
import torch
from safetensors.torch import load_file

import visionlab as vl
from visionlab.data.shapes import shapes_images
from visionlab.models.unet import UNet

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson05-")  # runs go to a temporary folder, not into the repository


# %% [markdown]
# ## The built-in data: random shapes with their masks
# scikit-image's `draw.random_shapes`: rectangles, circles and triangles on a noisy background; class 0 is the
# background.

# %%
images, masks = shapes_images(4, size=32, seed=0)  # (N, H, W, C) in [0, 1], (N, H, W) class indices
fig, axes = plt.subplots(2, 4, figsize=(8, 4.2))
for k in range(4):
    axes[0, k].imshow(images[k])
    axes[1, k].imshow(masks[k], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
for ax in axes.ravel():
    ax.axis("off")
axes[0, 0].set_title("image", loc="left")
axes[1, 0].set_title("mask: 0 background, 1 rectangle, 2 circle, 3 triangle", loc="left", fontsize=9)
plt.show()

# %% [markdown]
# ## The shapes through the network
# Forward hooks on the `tiny` preset (8 channels, 2 poolings) print each level's output: down to a quarter of the
# resolution, back up to a score per class and pixel, (B, K, H, W).

# %%
model = UNet.from_preset("tiny", in_channels=3, num_classes=4)
x = torch.from_numpy(images[:1]).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
levels = [(name, module) for name, module in model.named_modules()  # inc, downs.0, downs.1, ups.0, ups.1, head
          if name in ("inc", "head") or (name.count(".") == 1 and name.split(".")[0] in ("downs", "ups"))]
hooks = [module.register_forward_hook(lambda m, i, o, name=name: print(f"{name:<12} {tuple(o.shape)}"))
         for name, module in levels]
print(f"{'input':<12} {tuple(x.shape)}")
with torch.no_grad():
    model(x)
for h in hooks:
    h.remove()
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# ## Training
# The `shapes-unet` recipe on the `tiny` network with 600 training images and a few epochs (printed below; the recipe:
# the `small` network, 1,000 images, 30 epochs, about 2 minutes), so seconds here; the printed IoU is this short run's.

# %%
summary = vl.segment("shapes", preset="tiny", train_images=600, test_images=100, epochs=12, batch_size=32, lr=1e-2,
                     warmup_epochs=1, dice_weight=0.5, out=OUT, quiet=True)
m = summary["metrics"]
print(f"test mean IoU {m['mean_iou']:.3f} (chance {m['chance_mean_iou']:.3f}), Dice {m['mean_dice']:.3f}, "
      f"after {m['epochs']:.0f} epochs, {m['train_seconds']:.1f} s of training")
print("per class IoU:", {k: round(v, 3) for k, v in m["iou"].items()})

# %% [markdown]
# The trained weights (`model.safetensors` in the run folder) back in the same network, on new shapes: the
# per-pixel class is the arg-max over the K scores.

# %%
model.load_state_dict(load_file(f"{summary['run_dir']}/model.safetensors"))
model.eval()
test_images, test_masks = shapes_images(5, size=32, seed=123)  # drawn with a seed the training never saw
with torch.no_grad():
    logits = model(torch.from_numpy(test_images).permute(0, 3, 1, 2))  # (B, K, H, W)
predicted = logits.argmax(dim=1)  # (B, H, W)
fig, axes = plt.subplots(3, 5, figsize=(9, 5.6))
for k in range(5):
    axes[0, k].imshow(test_images[k])
    axes[1, k].imshow(test_masks[k], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
    axes[2, k].imshow(predicted[k], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
for ax, title in zip(axes[:, 0], ("image", "true mask", "U-Net's mask")):
    ax.set_title(title, loc="left")
for ax in axes.ravel():
    ax.axis("off")
plt.show()

# %% [markdown]
# The per-class IoU printed above says which kinds of shape this short run has learned to tell apart; the
# `shapes-unet` recipe (`visionlab train unet --recipe shapes-unet`) trains long enough for all of them.
