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
# # Lesson 2: hand-made features (HOG, SIFT, SURF) into an SVM or a KNN
#
# Before networks learned their own features, computer vision turned each image into a vector with a fixed recipe
# and gave the vectors to a classic learner. **HOG** (histograms of oriented gradients) cuts the image into cells
# and, in each, histograms the gradient directions weighted by their magnitude; blocks of cells are normalised:
# $$ m = \sqrt{g_x^2 + g_y^2}, \qquad \theta = \operatorname{atan2}(g_y, g_x) .$$
# **SIFT** and **SURF** find *keypoints* (blobs at some scale: SIFT by differences of Gaussians, SURF by a box-filter
# approximation of the Hessian's determinant $\det H \approx D_{xx}D_{yy} - (0.9 D_{xy})^2$) and describe the
# patch around each; an image gives a *set* of descriptors, pooled into one vector by a **bag of visual words**
# (k-means words, one histogram per image). Then an **SVM** (a maximum-margin boundary, here with an RBF kernel)
# or **KNN** (the majority label of the k nearest training vectors) classifies.

# %%
import tempfile
import warnings

import matplotlib.pyplot as plt
from IPython.display import Image, display
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import visionlab as vl
from visionlab.components.features import HogFeatures, LocalFeatures, upscale
from visionlab.data.datasets import digits

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson02-")  # runs go to a temporary folder, not into the repository


# %% [markdown]
# ## HOG + SVM and HOG + KNN on all the digits
# scikit-learn's 1,797 digits of 8 x 8 pixels, a stratified 75 / 25 split; HOG upscales them to 32 x 32 first.

# %%
for classifier in ("svm", "knn"):
    summary = vl.features("digits", extractor="hog", classifier=classifier, out=OUT, quiet=True)
    print(f"hog + {classifier}: test accuracy {summary['metrics']['accuracy']:.4f}")
display(Image(filename=f"{summary['run_dir']}/confusion.png", width=360))  # the last run's (KNN) confusion matrix

# %% [markdown]
# What HOG sees: each 8 x 8 cell of the upscaled digit drawn as a star of its gradient directions, the longer the
# stronger.

# %%
data = digits()
hog = HogFeatures()
fig, axes = plt.subplots(2, 4, figsize=(8, 4.4))
for k, ax in zip(range(4), axes.T):
    image = data.images[k]
    vector, picture = hog.describe(image, visualize=True)
    ax[0].imshow(image, cmap="gray")
    ax[0].set_title(f"digit {data.labels[k]}")
    ax[1].imshow(picture, cmap="magma")
    ax[1].set_title(f"HOG ({vector.size} values)", fontsize=10)
for ax in axes.ravel():
    ax.axis("off")
plt.show()

# %% [markdown]
# ## SIFT and SURF keypoints
# On a digit upscaled to 64 x 64, the detectors find only a few blobs (each circle: a keypoint's position and the
# size of the region its descriptor summarises); a regular grid of SIFT descriptors ("dense SIFT") does not depend
# on finding them.

# %%
detectors = ("sift", "surf", "dense-sift", "dense-surf")
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for name, ax in zip(detectors, axes):
    extractor = LocalFeatures(detector=name)
    xy, diameter, descriptors = extractor.keypoints_and_descriptors(data.images[0])  # on the upscaled image
    ax.imshow(upscale(data.images[0], 64), cmap="gray")  # 8 x 8 -> 64 x 64, as the detectors saw it
    for (x, y), d in zip(xy, diameter):
        ax.add_patch(plt.Circle((x, y), d / 2, fill=False, color="tab:orange", lw=1))
    ax.set_title(f"{name}: {len(xy)} x {descriptors.shape[1]}-d", fontsize=10)
    ax.set(xlim=(0, 64), ylim=(64, 0))
    ax.axis("off")
plt.show()

# %% [markdown]
# On a photograph the detectors have blobs to find. Each keypoint is drawn as a circle of its scale $\sigma$ with a
# radius along its dominant orientation (the angle its descriptor is rotated to, which makes it rotation invariant):
# `vl.keypoint_picture` (`visionlab show keypoints camera`), with the number each detector found.

# %%
result = vl.keypoint_picture("camera", output=f"{OUT}/keypoints.png")
print(f"keypoints found: SIFT {result['counts']['sift']}, SURF {result['counts']['surf']}")
display(Image(filename=result["picture"], width=640))

# %% [markdown]
# And HOG's cells on the same photograph (`vl.hog_picture`, `visionlab show hog camera`): the stars follow the edges
# of the coat, the tripod and the skyline.

# %%
result = vl.hog_picture("camera", output=f"{OUT}/hog.png")
print(f"HOG vector of the 128 x 128 image: {result['features']:,} values")
display(Image(filename=result["picture"], width=520))

# %% [markdown]
# ## Keypoint vectors into SVM / KNN
# Detecting and describing takes milliseconds per image (SURF here is written in NumPy), so this part uses a small
# subset (200 training and 100 test digits) and a vocabulary of 50 words, to stay within seconds: its accuracies
# are rougher than the full comparison's, `visionlab features --data digits --compare`.

# %%
x_train, x_test, y_train, y_test = train_test_split(data.images, data.labels, train_size=200, test_size=100,
                                                    stratify=data.labels, random_state=0)
for name in ("sift", "surf"):
    extractor = LocalFeatures(detector=name, vocabulary=50).fit(x_train)  # k-means words on the training images
    f_train, f_test = extractor.transform(x_train), extractor.transform(x_test)  # (N, 50) word histograms
    for label, learner in (("svm", SVC()), ("knn", KNeighborsClassifier(n_neighbors=5))):
        model = make_pipeline(StandardScaler(), learner).fit(f_train, y_train)
        print(f"{name} + {label}: test accuracy {model.score(f_test, y_test):.3f}")

# %% [markdown]
# The printed accuracies show HOG far ahead on these tiny digits: a keypoint detector is the wrong tool for 8 x 8
# images (few blobs to find). `visionlab features --data digits --extractor dense-sift` (or `dense-surf`) shows how
# much a regular grid of SIFT (or SURF) descriptors recovers.
