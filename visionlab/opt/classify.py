"""Options of the commands that label images or pixels: ``visionlab train vit|vivit|unet``, ``visionlab features``
and ``visionlab shapes``."""

from __future__ import annotations

from dataclasses import dataclass

import visionlab.opt.fields as shared
from visionlab.opt.fields import (OnDevice, RunFolder, TensorBoard, Threads, check_shared, option, positive,
                                  positive_if_given)
from visionlab.util.errors import ConfigError


@dataclass
class ClassifyConfig(TensorBoard, RunFolder, OnDevice):
    """Train a classifier (ViT on images, ViViT on videos) (``visionlab train vit|vivit``)."""

    TASK, RUN_NAME = "classify", "DATA-MODEL"

    model: str = option("vit", "vit (images) or vivit (videos)", choices=("vit", "vivit"), positional=True)
    data: str = option("digits", "digits, faces, textures, moving-digits, or a path: a folder of class sub-folders "
                       "(images, or videos as .npy / frame folders with --video), MNIST IDX or CIFAR files, .npz")
    video: bool = option(False, "read a folder as videos (implied by vivit)")
    preset: str = option("tiny", "model size: tiny, or a paper size (Ti, S, B, L, H); see also the recipes in "
                         "manager.py")
    image_size: int | None = option(None, "resize images / frames to this size first (default: as stored; "
                                    "videos: 32)")
    patch_size: int | None = option(None, "patch size P (default: the preset's)")
    frames: int = option(16, "videos: frames per clip T (clips with fewer are refused)")
    frame: int | None = option(None, "vit on video data: classify frame K of each clip alone, the single-frame "
                               "control (default: the middle frame, T // 2)")
    vivit_model: int = option(2, "ViViT model: 1 spatio-temporal, 2 factorised encoder, 3 factorised "
                              "self-attention, 4 factorised dot-product", choices=(1, 2, 3, 4))
    dim: int | None = option(None, "token width D (default: the preset's)")
    depth: int | None = option(None, "transformer blocks (default: the preset's)")
    num_heads: int | None = option(None, "attention heads (default: the preset's)")
    mlp_dim: int | None = option(None, "hidden width of each block's MLP (default: 4 D, or the preset's)")
    pool: str | None = option(None, "cls ([CLS] token) or mean (average of the tokens)", choices=(None, "cls",
                                                                                                 "mean"))
    epochs: int = option(30, "passes over the training set")
    batch_size: int = option(64, "examples per optimiser step")
    lr: float = option(1e-3, "peak AdamW learning rate (after warm-up, then cosine decay to 0)")
    weight_decay: float = option(0.05, "AdamW weight decay")
    warmup_epochs: float = option(2.0, "linear warm-up of the learning rate, in epochs")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy")
    augment: bool = option(False, "random affine maps: shifts up to 10 %, rotations up to 10 and shears up to 5 "
                           "degrees, zoom +-10 % (never flips: digits)")
    grad_clip: float | None = shared.grad_clip()
    ema: float | None = option(None, "keep an exponential moving average of the weights with this decay (e.g. "
                               "0.999) and evaluate with it")
    amp: str = shared.amp()
    test_size: float = shared.test_size()
    val_fraction: float = shared.val_fraction()
    seed: int = shared.seed("the splits, the weights and the batches")
    checkpoint_every: int | None = shared.checkpoint_every(None)

    def validate(self) -> "ClassifyConfig":
        for name in ("epochs", "batch_size", "lr", "frames"):
            positive(name, getattr(self, name))
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.frame is not None and not 0 <= self.frame < self.frames:
            raise ConfigError(f"frame must be in [0, {self.frames}) for clips of {self.frames} frames, "
                              f"got {self.frame}")
        if self.frame is not None and self.model != "vit":
            raise ConfigError("--frame picks one frame per clip for a vit; a vivit reads whole clips")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"ema decay must be in (0, 1), got {self.ema}")
        check_shared(self)
        return self


@dataclass
class SegmentConfig(TensorBoard, RunFolder, OnDevice):
    """Train the segmentation U-Net (``visionlab train unet``)."""

    TASK, RUN_NAME = "segment", "DATA-unet"

    model: str = option("unet", "unet (Ronneberger et al.)", choices=("unet",), positional=True)
    data: str = option("shapes", "shapes (built in: random rectangles, circles and triangles with masks) or a "
                       "folder with images/ and masks/ (same file names; mask values are class indices)")
    image_size: int | None = option(None, "resize images and masks to this size (default: shapes 32, folders as "
                                    "stored)")
    train_images: int = option(1000, "shapes: training images")
    test_images: int = option(200, "shapes: test images (drawn with a seed of their own)")
    max_shapes: int = option(3, "shapes: at most this many shapes per image")
    shape_kinds: str = option("rectangle,circle,triangle", "shapes: the kinds drawn, comma-separated, one class "
                              "each after the background (rectangle, circle, triangle, ellipse)")
    preset: str = option("small", "U-Net size: small (16 channels, 3 poolings), tiny (8, 2), or a paper one: "
                         "milesial, bilinear")
    base_channels: int | None = option(None, "channels of the first level (default: the preset's)")
    depth: int | None = option(None, "number of poolings (default: the preset's)")
    epochs: int = option(20, "passes over the training set")
    batch_size: int = option(32, "images per optimiser step")
    lr: float = option(3e-3, "peak AdamW learning rate (after warm-up, then cosine decay to 0)")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    warmup_epochs: float = option(1.0, "linear warm-up of the learning rate, in epochs")
    dice_weight: float = option(0.0, "add this times the soft Dice loss to the cross-entropy")
    augment: bool = option(False, "random flips and quarter turns of image and mask together")
    grad_clip: float | None = shared.grad_clip()
    amp: str = shared.amp()
    test_size: float = shared.test_size(0.2)  # shapes draws its own test images; folders are split
    val_fraction: float = shared.val_fraction()
    seed: int = shared.seed("the data, the splits, the weights and the batches")
    checkpoint_every: int | None = shared.checkpoint_every(None)

    def validate(self) -> "SegmentConfig":
        for name in ("epochs", "batch_size", "lr", "train_images", "test_images", "max_shapes"):
            positive(name, getattr(self, name))
        positive_if_given(self, "base_channels", "depth", "image_size")
        if self.dice_weight < 0 or self.warmup_epochs < 0 or self.weight_decay < 0:
            raise ConfigError("dice weight, warm-up epochs and weight decay must be >= 0")
        check_shared(self)
        return self


@dataclass
class FeaturesConfig(TensorBoard, RunFolder, Threads):
    """Classify images with hand-made features and a classic learner (``visionlab features``)."""

    TASK, RUN_NAME = "features", "DATA-EXTRACTOR-CLASSIFIER, or DATA-compare"

    data: str = option("digits", "built-in data set (digits, faces, textures) or a folder with one sub-folder of "
                       "images per class")
    extractor: str = option("hog", "features: hog, sift (keypoints), dense-sift (a grid), surf (keypoints) or "
                            "dense-surf (a grid, for small images)",
                            choices=("hog", "sift", "dense-sift", "surf", "dense-surf"))
    classifier: str = option("svm", "learner: svm (RBF kernel) or knn (k nearest neighbours)", choices=("svm", "knn"))
    encoding: str = option("bow", "pooling of keypoint descriptors: bow (bag of visual words) or vlad",
                           choices=("bow", "vlad"))
    vocabulary: int = option(200, "visual words of the bag of words / VLAD (k-means clusters)")
    grid_search: bool = option(False, "tune the classifier by 5-fold cross-validation on the training set")
    compare: bool = option(False, "run every extractor with both classifiers on the data set; print one table")
    image_size: str = option("64x64", "folders: every image is resized to HxW (grey)")
    test_size: float = shared.test_size()  # textures have a fixed split
    seed: int = shared.seed("the split, k-means and the SVM")

    def validate(self) -> "FeaturesConfig":
        positive("vocabulary", self.vocabulary)
        check_shared(self)
        return self


@dataclass
class ShapesConfig:
    """Print each step's tensor shape through a model (``visionlab shapes``), as the notes derive it by hand."""

    model: str = option("vit", "vit or vivit", choices=("vit", "vivit"), positional=True)
    preset: str = option("B", "model size: tiny, Ti, S, B, L or H (ViViT: tiny, B, L, H)")
    image_size: int = option(224, "input height = width in pixels")
    patch_size: int | None = option(None, "patch size P (default: the preset's, 16; H: 14)")
    frames: int = option(16, "ViViT: frames T of the input video")
    tubelet: tuple[int, int, int] | None = option(None, "ViViT: tubelet size t h w (default 2 P P)")
    vivit_model: int = option(1, "ViViT model: 1 spatio-temporal, 2 factorised encoder, 3 factorised "
                              "self-attention, 4 factorised dot-product", choices=(1, 2, 3, 4))
    channels: int = option(3, "input channels C")
    num_classes: int | None = option(None, "classes of the head (default: the preset's, 1000 / 400)")

    def validate(self) -> "ShapesConfig":
        for name in ("image_size", "frames", "channels"):
            positive(name, getattr(self, name))
        positive_if_given(self, "patch_size", "num_classes")
        if self.tubelet is not None and (len(self.tubelet) != 3 or min(self.tubelet) <= 0):
            raise ConfigError(f"tubelet must be three sizes t h w > 0, got {self.tubelet}")
        return self
