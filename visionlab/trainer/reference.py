"""The reference classifier and FID scoring: judging generated images without downloads.

The protocol (written down, as users.md #8 asks):

1. **Reference classifier.** A small CNN (:class:`visionlab.models.cnn.SmallCNN`) is trained by visionlab on the
   training split of the *same* data the generator learned from (same size, same split), with light affine
   augmentation. It is cached under ``$VISIONLAB_CACHE/reference/`` (default ``~/.cache/visionlab/reference/``) as
   safetensors (metadata: the classifier's config and test accuracy) with a JSON file beside it that holds the
   cache key's inputs: everything that changes the weights (:func:`reference_key`: the data's name and a SHA-256
   hash of its tensors, so its size, channels and split; the training epochs; the seed; the classifier's and
   visionlab's versions). The file name carries a hash of that key, so another ``--reference-epochs`` is another
   entry; a missing, damaged or mismatched entry is trained again, with one line saying why.
2. **Features.** The classifier's penultimate layer (128 numbers per image) replaces Inception-v3's pool layer.
3. **FID** between N generated images and the real *test* images, and the **floor**: the FID of N real *training*
   images against the same test images. Real data is as good as a generator can get, so the floor is the target;
   both FIDs use the same N (FID is biased upwards for small N), capped by the training split's size. FID values
   of this feature space cannot be compared with Inception FIDs of papers.
4. **Confidence**: the share of generated images whose top class probability exceeds 0.9 (and the same share for
   the real test images, for scale).
5. **Class accuracy** (class-conditional models): how often the classifier's top class is the label that was asked
   for.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import safe_open
from tqdm.auto import tqdm

from visionlab.components.augment import random_affine
from visionlab.components.metrics import fid
from visionlab.data.classification import ClassificationData
from visionlab.models.cnn import CNNConfig, SmallCNN
from visionlab.trainer.generative import Drawing, to_model
from visionlab.util.checkpoint import save_weights
from visionlab.util.errors import DataError
from visionlab.util.io import cache_dir, read_json, slug, write_json
from visionlab.util.version import __version__

REFERENCE_VERSION = "1"  # bump when the classifier or its training changes: cached ones are then retrained
CONFIDENT = 0.9  # a sample is "recognised" when the top class has a probability above this


def data_hash(data: ClassificationData) -> str:
    """SHA-256 of the split's tensors and class names: a cached classifier is reused only for the same data."""
    h = hashlib.sha256()
    for t in (data.train_x, data.train_y, data.test_x, data.test_y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    h.update(json.dumps(list(data.class_names)).encode())
    return h.hexdigest()


def _batches(x: torch.Tensor, size: int = 512):
    for i in range(0, len(x), size):
        yield x[i:i + size]


def train_reference(data: ClassificationData, *, epochs: int = 30, batch_size: int = 64, lr: float = 2e-3,
                    seed: int = 0, device: torch.device | str = "cpu", quiet: bool = True) -> tuple[SmallCNN, float]:
    """Train the reference CNN on the training split (inputs in [-1, 1]); return it (eval mode) and its test accuracy.

    Its own random generators are forked, so training it leaves the caller's random state alone.
    """
    device = torch.device(device)
    c = data.train_x.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(config=CNNConfig(in_channels=c, num_classes=len(data.class_names))).to(device)
        n = len(data.train_y)
        steps_per_epoch = math.ceil(n / batch_size)
        total = epochs * steps_per_epoch
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.1)
        g = torch.Generator().manual_seed(seed)
        for _ in tqdm(range(epochs), desc="reference classifier", disable=quiet, leave=False):
            order = torch.randperm(n, generator=g)
            for i in range(steps_per_epoch):
                index = order[i * batch_size:(i + 1) * batch_size]
                x = random_affine(data.train_x[index], g, translate=0.08, rotate=8, scale=0.08, shear=4)
                loss = F.cross_entropy(model(to_model(x.to(device))), data.train_y[index].to(device),
                                       label_smoothing=0.05)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
    model.eval()
    _, probs = classify(model, data.test_x, device=device)
    accuracy = (probs.argmax(dim=1) == data.test_y).float().mean().item()
    return model, accuracy


@torch.no_grad()
def classify(model: SmallCNN, images: torch.Tensor, *, device: torch.device | str = "cpu"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) in [0, 1] -> features (N, D) and class probabilities (N, K) of the reference CNN."""
    model.eval()
    features, probs = [], []
    for x in _batches(images):
        f = model.forward_features(to_model(x.to(device).float()))  # (B, D)
        features.append(f.double().cpu())
        probs.append(torch.softmax(model.forward_head(f).double(), dim=1).cpu())
    return torch.cat(features), torch.cat(probs)


def reference_key(data: ClassificationData, *, epochs: int, seed: int) -> dict:
    """Everything that changes the reference classifier's weights: its cache key, stored beside the weights."""
    return {"data": data.name, "data_hash": data_hash(data), "sample_shape": list(data.train_x.shape[1:]),
            "classes": len(data.class_names), "epochs": int(epochs), "seed": int(seed),
            "reference_version": REFERENCE_VERSION, "visionlab": __version__}


def cache_path(key: dict) -> Path:
    """The cache entry of ``key``: NAME-CxHxW-KEYHASH.safetensors (its key in the .json beside it)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    c, h, w = key["sample_shape"]
    return cache_dir() / "reference" / f"{slug(key['data'])}-{c}x{h}x{w}-{digest}.safetensors"


def _cached(path: Path, key: dict, device) -> tuple[SmallCNN, dict] | None:
    """The entry at ``path`` if its stored key is ``key``; None (with one line saying why) if it cannot be used."""
    record = path.with_suffix(".json")
    if not path.is_file() and not record.is_file():
        return None
    try:
        stored = read_json(record).get("key")
        if stored != key:
            changed = sorted(k for k in key if not isinstance(stored, dict) or stored.get(k) != key[k])
            print(f"note: the cached reference classifier {path.name} was made with other {', '.join(changed)}; "
                  f"training it again", file=sys.stderr)
            return None
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            weights = {k: f.get_tensor(k) for k in f.keys()}
        with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the caller's state
            model = SmallCNN(config=CNNConfig(**json.loads(meta["config"])))
        model.load_state_dict(weights)
    except Exception as error:  # a damaged, cut-short or foreign entry is trained again
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        print(f"note: the cached reference classifier {path.name} cannot be read ({reason}); training it again",
              file=sys.stderr)
        return None
    return model.to(device).eval(), {**meta, "path": str(path), "cached": True}


def reference_classifier(data: ClassificationData, *, epochs: int = 30, seed: int = 0,
                         device: torch.device | str = "cpu", quiet: bool = True) -> tuple[SmallCNN, dict]:
    """The cached reference CNN for ``data``, ``epochs`` and ``seed`` (trained and cached if missing, damaged or
    made with another key: :func:`reference_key`) and its metadata."""
    key = reference_key(data, epochs=epochs, seed=seed)
    digest = key["data_hash"]
    path = cache_path(key)
    found = _cached(path, key, device)
    if found is not None:
        return found
    start = time.perf_counter()
    model, accuracy = train_reference(data, epochs=epochs, seed=seed, device=device, quiet=quiet)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(model.config).items()}
    meta = {"data": data.name, "data_hash": digest, "config": json.dumps(config), "test_accuracy": f"{accuracy:.6f}",
            "epochs": str(epochs), "seed": str(seed), "reference_version": REFERENCE_VERSION,
            "train_seconds": f"{time.perf_counter() - start:.2f}", "visionlab": __version__}
    save_weights(path, model.state_dict(), metadata=meta)
    write_json(path.with_suffix(".json"), {"key": key, "test_accuracy": accuracy})  # last: an entry is whole
    return model, {**meta, "path": str(path), "cached": False}


def sample_metrics(images: torch.Tensor, data: ClassificationData, classifier: SmallCNN, *,
                   labels: torch.Tensor | None = None, seed: int = 0,
                   device: torch.device | str = "cpu") -> dict:
    """FID against the real test images, the floor (real training images vs test at the same N), confidence and
    class accuracy of ``images`` (N, C, H, W) in [0, 1]."""
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(data.train_x.shape[1:]):
        raise DataError(f"samples of shape {tuple(images.shape[1:])} do not match the data's "
                        f"{tuple(data.train_x.shape[1:])} (channels, height, width)")
    if len(images) < 2:
        raise DataError("FID needs at least 2 samples")
    n = min(len(images), len(data.train_x))
    real_train = data.train_x[torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(seed))[:n]]
    f_gen, p_gen = classify(classifier, images, device=device)
    f_train, _ = classify(classifier, real_train, device=device)
    f_test, p_test = classify(classifier, data.test_x, device=device)
    value, floor = fid(f_gen[:n], f_test), fid(f_train, f_test)
    metrics = {"fid": value, "fid_floor": floor, "fid_ratio": value / floor if floor > 0 else float("inf"),
               "samples": len(images), "samples_in_fid": n, "real_test_images": len(data.test_x),
               "confident_share": (p_gen.max(dim=1).values > CONFIDENT).double().mean().item(),
               "confident_share_real_test": (p_test.max(dim=1).values > CONFIDENT).double().mean().item(),
               "predicted_class_histogram": torch.bincount(p_gen.argmax(dim=1),
                                                           minlength=len(data.class_names)).tolist()}
    if labels is not None:
        labels = torch.as_tensor(labels).long()
        if len(labels) != len(images):
            raise DataError(f"{len(labels)} labels for {len(images)} samples")
        metrics["class_accuracy"] = (p_gen.argmax(dim=1) == labels).double().mean().item()
        metrics["class_accuracy_real_test"] = (p_test.argmax(dim=1) == data.test_y).double().mean().item()
    return metrics


def judge_images(draw: Callable[[], torch.Tensor], data: ClassificationData, *, labels: torch.Tensor | None = None,
                 seed: int = 0, reference_epochs: int = 30, device: torch.device | str = "cpu",
                 quiet: bool = True) -> dict:
    """:func:`sample_metrics` of the images (N, C, H, W) in [0, 1] that ``draw()`` returns, in the feature space of
    the reference classifier of ``data`` (trained first if it is not cached), with ``sampling_seconds`` (the time
    ``draw`` took), the classifier's test accuracy and its cache file."""
    classifier, meta = reference_classifier(data, epochs=reference_epochs, device=device, quiet=quiet)
    start = time.perf_counter()
    images = draw()
    seconds = time.perf_counter() - start
    metrics = sample_metrics(images, data, classifier, labels=labels, seed=seed, device=device)
    return {**metrics, "sampling_seconds": seconds, "reference_test_accuracy": float(meta["test_accuracy"]),
            "reference": meta["path"]}


def judge_drawing(drawing: Drawing, data: ClassificationData, *, seed: int = 0, batch_size: int = 256,
                  reference_epochs: int = 30, device: torch.device | str = "cpu", quiet: bool = True) -> dict:
    """:func:`judge_images` of the images of a generative family's ``drawing`` (drawn from ``seed``), with the
    options they were drawn with."""
    metrics = judge_images(lambda: drawing.draw(seed, batch_size, not quiet), data, labels=drawing.labels, seed=seed,
                           reference_epochs=reference_epochs, device=device, quiet=quiet)
    return {**metrics, **drawing.record, "seed": seed}
