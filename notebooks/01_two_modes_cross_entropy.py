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
# # Lesson 1: two ways to run Python, and the cross-entropy error
#
# Python runs in two modes. In **interpreter mode** you type (or run in a notebook cell) one statement at a time
# and see its result at once: here, `import visionlab as vl` and calls such as `vl.features(...)`. In **script
# mode** the same work is one command in a terminal, `visionlab features ...` (also `python -m visionlab ...`),
# which is what you put in a shell script or a job on a cluster. Both lead to the same code and the same numbers.

# %%
import json
import subprocess
import sys
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch

import visionlab as vl
from visionlab.components.losses import cross_entropy, cross_entropy_error, one_hot

warnings.filterwarnings("ignore", message="IProgress not found")  # runs are quiet: no progress widgets needed
OUT = tempfile.mkdtemp(prefix="visionlab-lesson01-")  # runs go to a temporary folder, not into the repository


# %% [markdown]
# ## Interpreter mode
# One call: HOG features of scikit-learn's 8 x 8 digits, classified by an SVM (lesson 2 explains both).

# %%
summary = vl.features("digits", extractor="hog", classifier="svm", out=OUT, name="interpreter", quiet=True)
print(f"interpreter mode: test accuracy {summary['metrics']['accuracy']:.4f}")

# %% [markdown]
# ## Script mode
# The same run as a command. `sys.executable -m visionlab` is the `visionlab` command of this very Python, so the
# notebook works wherever its kernel's visionlab is installed.

# %%
command = [sys.executable, "-m", "visionlab", "features", "--data", "digits", "--extractor", "hog",
           "--classifier", "svm", "--out", OUT, "--name", "script", "--quiet"]
print("$", " ".join(["visionlab"] + command[3:]))
result = subprocess.run(command, capture_output=True, text=True, check=True)
print(result.stdout[-400:])
with open(f"{OUT}/features/script/metrics.json") as f:
    script_accuracy = json.load(f)["accuracy"]
print(f"script mode: test accuracy {script_accuracy:.4f}; the same as the interpreter's:",
      script_accuracy == summary["metrics"]["accuracy"])

# %% [markdown]
# ## One-hot labels
# A class label $k$ among $K$ classes becomes a vector $t$ of length $K$ with $t_k = 1$ and zeros elsewhere.

# %%
labels = torch.tensor([2, 0, 9])
print(one_hot(labels, 10))  # (B, K) = (3, 10)

# %% [markdown]
# ## The cross-entropy error
# For a network's output probabilities $y$ and a one-hot target $t$,
# $$E = -\sum_k t_k \log y_k ,$$
# with the natural logarithm. Only the true class's term survives, so $E = -\log y_{\text{true}}$: the loss depends
# only on the probability given to the right answer. The notes' example: the true class is 2; if the network gives
# it 0.6 the error is $-\log 0.6$, and if it gives it 0.1 the error is $-\log 0.1$. Computed (the textbook version
# adds $\delta = 10^{-7}$ inside the log so that $\log 0$ never happens):

# %%
t = one_hot(torch.tensor(2), 10).double()  # (K,): the true class is 2
y_good = torch.tensor([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0], dtype=torch.float64)
y_bad = torch.tensor([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0], dtype=torch.float64)
for name, y in (("y_2 = 0.6", y_good), ("y_2 = 0.1", y_bad)):
    print(f"{name}: E = {cross_entropy_error(y, t).item():.2f}  (exactly -log y_2 = {-np.log(y[2].item()):.4f})")

# %% [markdown]
# In a network the probabilities come from a softmax over logits $z$, $y_k = e^{z_k} / \sum_j e^{z_j}$, and the
# library computes $\log y$ directly as $z_k - \log\sum_j e^{z_j}$ (stable, no $\delta$). Index targets and one-hot
# targets give the same loss:

# %%
logits = torch.log(y_good.clamp_min(1e-12)).unsqueeze(0)  # (B, K): logits whose softmax is y_good
print("index target  :", cross_entropy(logits, torch.tensor([2])).item())
print("one-hot target:", cross_entropy(logits, t.unsqueeze(0)).item())

# %% [markdown]
# The whole curve $E(y_{\text{true}}) = -\log y_{\text{true}}$: small when the network is confident and right,
# growing without bound as it gives the right class less probability.

# %%
p = np.linspace(0.01, 1, 200)
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(p, -np.log(p))
for y in (0.6, 0.1):
    e = cross_entropy_error(torch.tensor([1 - y, y], dtype=torch.float64), torch.tensor(1)).item()
    ax.plot(y, e, "o")
    ax.annotate(f"y = {y}: E = {e:.2f}", (y, e), textcoords="offset points", xytext=(8, 4))
ax.set(xlabel="probability of the true class $y_2$", ylabel="cross-entropy $E$", title="$E = -\\log y_{true}$")
plt.show()
