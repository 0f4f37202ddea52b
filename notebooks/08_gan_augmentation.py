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
# # Lesson 8: adversarial learning (GANs) and GAN samples as data augmentation
#
# A **GAN** trains two networks against each other. The **generator** $G$ turns noise $z$ into an image; the
# **discriminator** $D$ says how likely an image is real. $D$ learns to tell real from generated images, $G$ learns
# to fool $D$:
# $$ \min_G \max_D\ \mathbb{E}_{x \sim p_{\text{data}}}[\log D(x)] + \mathbb{E}_{z}[\log(1 - D(G(z)))] ,$$
# in practice with the non-saturating loss for $G$, $-\log D(G(z))$. As the two improve, $G$'s images come closer
# to the data, and such synthetic images can be added to a small training set: **data augmentation**. A
# class-conditional GAN ($G(z, y)$, a projection discriminator) makes images of a chosen class.

# %%
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display
from skimage.transform import resize
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

import visionlab as vl
from visionlab.data.datasets import digits

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson08-")  # runs go to a temporary folder, not into the repository


# %% [markdown]
# ## Little real data
# 10 % of the digits' training split (stratified), the situation where augmentation might help. The GAN is trained
# on these images only (it must not see more real data than the classifier), written as an `.npz` that visionlab
# reads (`images`, `labels`; `is_test` marks the real test images it may monitor but not train on), upscaled to
# 16 x 16, the smallest size of the DCGAN presets.

# %%
data = digits()
x_train, x_test, y_train, y_test = train_test_split(data.images, data.labels, test_size=0.25, stratify=data.labels,
                                                    random_state=0)
x_small, _, y_small, _ = train_test_split(x_train, y_train, train_size=0.10, stratify=y_train, random_state=0)
print(f"{len(x_small)} real training images, {len(x_test)} test images")
def big(x):
    return resize(x, (len(x), 16, 16), order=1).astype(np.float32)  # (N, 8, 8) -> (N, 16, 16), bilinear


np.savez(f"{OUT}/small.npz", images=np.concatenate([big(x_small), big(x_test)]),
         labels=np.concatenate([y_small, y_test]),
         is_test=np.r_[np.zeros(len(x_small), bool), np.ones(len(x_test), bool)])

# %% [markdown]
# ## A short conditional GAN run
# DCGAN at 16 x 16, class-conditional, non-saturating loss, a very short run of `STEPS` batches of 64 (printed
# below; the `digits-gan` recipe: 1,500 steps on all the training digits), EMA 0.9 of the generator (the recipe's
# 0.99 averages over about 100 steps, too long a memory for a run this short: its samples would still be the
# untrained generator's grey).

# %%
STEPS = 120  # seconds, not minutes: rough blobs, barely digits, not the recipe's
summary = vl.gan(f"{OUT}/small.npz", conditional=True, steps=STEPS, batch_size=64, ema=0.9, sample_every=30,
                 eval_every=40, out=OUT, quiet=True)
m = summary["metrics"]
print(f"{m['steps']} steps in {m['train_seconds']:.1f} s; D's accuracy {m['d_accuracy']:.2f}, sample diversity "
      f"{m['diversity']:.2f}; warnings: {m['warnings'] or 'none'}")
display(Image(filename=f"{summary['run_dir']}/samples.png", width=420))  # one row per class, fixed noise

# %% [markdown]
# The same fixed noise along training (`sample_every=30`: a grid every 30 steps, and the last one):
# `vl.gan_progress` (`visionlab show gan-progress RUN`) puts the first two noises of each class row side by side
# per grid, so each row reads 0 1 ... 9 twice; the run folder's `samples.gif` animates the whole grids.

# %%
result = vl.gan_progress(summary["run_dir"], output=f"{OUT}/progress.png")
print("grids at steps", result["steps"])
display(Image(filename=result["picture"], width=520))

# %% [markdown]
# ## Do GAN samples help a classifier?
# An RBF SVM on raw pixels (8 x 8), trained on the real images alone, then on the real images plus 50 GAN
# images per class (generated at 16 x 16 and shrunk to 8 x 8), tested on the whole test split.

# %%
labels = ",".join(str(k) for k in range(10))
fake = vl.sample(summary["run_dir"], labels=labels, num=500, seed=1, quiet=True)
x_fake = resize(np.load(fake["images"])[:, 0], (500, 8, 8), order=1, anti_aliasing=True)  # (N, 8, 8) in [0, 1]
y_fake = np.load(fake["labels"])
def flat(x):
    return x.reshape(len(x), -1)  # (N, H, W) -> (N, H W)


real_only = SVC().fit(flat(x_small), y_small).score(flat(x_test), y_test)
with_gan = SVC().fit(np.r_[flat(x_small), flat(x_fake)], np.r_[y_small, y_fake]).score(flat(x_test), y_test)
print(f"real only ({len(x_small)} images): test accuracy {real_only:.4f}")
print(f"real + {len(x_fake)} GAN images:   test accuracy {with_gan:.4f}")

# %%
fig, axes = plt.subplots(2, 10, figsize=(9, 2.2))
for k in range(10):
    axes[0, k].imshow(x_small[y_small == k][0], cmap="gray")
    axes[1, k].imshow(x_fake[y_fake == k][0], cmap="gray")
for ax in axes.ravel():
    ax.set(xticks=[], yticks=[])
axes[0, 0].set_ylabel("real")
axes[1, 0].set_ylabel("GAN")
plt.show()

# %% [markdown]
# Whether the printed accuracy with GAN images is above or below the real-only one, this is a single, short run:
# `visionlab experiment gan-augment` repeats the comparison over seeds, with classic affine augmentation beside it
# (the README's table: there, GAN samples added nothing a small CNN had not seen).
