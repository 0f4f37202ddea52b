"""Training the segmentation U-Net (the ``segment`` task).

Data flow (design.md): ``shapes`` (or a folder of images and masks) -> images (N, C, H, W) in [0, 1] and masks
(N, H, W) of class indices -> seeded shuffled batches (optionally flipped and turned, image and mask together) ->
U-Net -> per-pixel cross-entropy (+ soft Dice) -> AdamW with warm-up then cosine decay -> every epoch, on the
validation split (``--val-fraction`` of the training images, seeded): the confusion matrix over all pixels -> IoU and
Dice per class, their means (components/metrics.py); the best epoch and ``best.safetensors`` are chosen on it. The
test split is scored once, at the end, with the final and the best weights.

Soft Dice loss (Milletari et al. 2016), per class k over the batch's pixels, with p the softmax and t the one-hot
truth: 1 - (2 sum p t + 1) / (sum p + sum t + 1), averaged over classes.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (per epoch: loss, validation mean IoU, mean Dice, pixel
accuracy), ``checkpoint.pt``, ``best.safetensors`` (best validation mean IoU), ``model.safetensors`` (final),
``model.json``, ``predictions.png`` (test images | truth | prediction, masks coloured over the image), ``curves.png``,
``metrics.json`` (test split: per-class IoU and Dice, the confusion matrix) and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from visionlab.components.metrics import segmentation_confusion, segmentation_scores
from visionlab.data.classification import validation_split
from visionlab.data.images import save_image
from visionlab.data.shapes import SegmentationData, segmentation_data
from visionlab.models.unet import UNet, unet_config
from visionlab.opt import SegmentConfig
from visionlab.trainer.base import (KeepsBest, Trainer, bf16_autocast, lr_lambda, make_run_dir, prepare,
                                    run_training, steps_per_epoch)
from visionlab.util.checkpoint import load_weights, save_weights
from visionlab.util.distributed import Dist
from visionlab.util.errors import DataError
from visionlab.util.io import write_json
from visionlab.util.plots import curve_figure

# Mask colours of the overlays: background transparent, then distinct colours.
PALETTE = torch.tensor([[0, 0, 0], [1.0, 0.2, 0.2], [0.2, 0.9, 0.2], [0.2, 0.4, 1.0], [1.0, 0.9, 0.1],
                        [0.9, 0.2, 0.9], [0.1, 0.9, 0.9], [1.0, 0.6, 0.1], [0.6, 0.3, 0.1], [0.6, 0.6, 0.6]])


def build_unet(config: SegmentConfig, in_channels: int, num_classes: int) -> UNet:
    """The U-Net of the preset (models/unet.py) for the data's channels and classes."""
    sizes = {k: getattr(config, k) for k in ("base_channels", "depth") if getattr(config, k) is not None}
    return UNet(config=unet_config(config.preset, **sizes, in_channels=in_channels, num_classes=num_classes))


def model_input(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> [-1, 1]."""
    return x * 2 - 1


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, *, reduce=None) -> torch.Tensor:
    """1 - soft Dice over the batch, averaged over classes: logits (B, K, H, W), target (B, H, W) -> scalar.
    ``reduce`` sums the (3, K) per-class sums over processes (a differentiable all-reduce), so that a batch split
    over ranks gives the Dice of the whole batch."""
    k = logits.shape[1]
    p = logits.softmax(dim=1)  # (B, K, H, W)
    t = F.one_hot(target, k).permute(0, 3, 1, 2).to(p.dtype)  # (B, K, H, W)
    sums = torch.stack([(p * t).sum(dim=(0, 2, 3)), p.sum(dim=(0, 2, 3)), t.sum(dim=(0, 2, 3))])  # (3, K)
    if reduce is not None:
        sums = reduce(sums)
    inter, p_sum, t_sum = sums
    return (1 - (2 * inter + 1) / (p_sum + t_sum + 1)).mean()


def flip_and_turn(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example flipped left-right at random and turned by a random multiple of 90 degrees (square images),
    image (B, C, H, W) and mask (B, H, W) alike."""
    xs, ys = [], []
    square = x.shape[-1] == x.shape[-2]
    flips = torch.rand(len(x), generator=generator) < 0.5
    turns = torch.randint(0, 4 if square else 1, (len(x),), generator=generator)
    for xi, yi, f, k in zip(x, y, flips.tolist(), turns.tolist()):
        if f:
            xi, yi = xi.flip(-1), yi.flip(-1)
        xs.append(torch.rot90(xi, k, dims=(-2, -1)))
        ys.append(torch.rot90(yi, k, dims=(-2, -1)))
    return torch.stack(xs), torch.stack(ys)


def overlay(image: torch.Tensor, mask: torch.Tensor, *, alpha: float = 0.55) -> torch.Tensor:
    """Image (C, H, W) in [0, 1] and mask (H, W) -> (H, W, 3): the class colours blended over the (grey) image."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    colour = PALETTE[mask % len(PALETTE)].permute(2, 0, 1)  # (3, H, W)
    blend = torch.where(mask[None] > 0, (1 - alpha) * rgb + alpha * colour, rgb)
    return blend.permute(1, 2, 0)  # (H, W, 3)


class SegmentTrainer(KeepsBest, Trainer):
    """Trains a segmentation U-Net; evaluates mean IoU and Dice on the validation split every epoch, the test split
    once at the end."""

    task = "segment"

    def __init__(self, *, config: SegmentConfig, data: SegmentationData, model: UNet, run_dir: Path,
                 device: torch.device, dist: Dist = Dist()):
        # Images, not classes, are held out (a mask holds several classes): a seeded random share.
        keep, held = validation_split(torch.zeros(len(data.train_y)), config.val_fraction, seed=config.seed,
                                      stratify=False)
        if config.val_fraction and not len(held):
            raise DataError(f"{data.name}: --val-fraction {config.val_fraction} holds out none of its "
                            f"{len(data.train_y)} training images; raise it, or pass --val-fraction 0 (no best epoch)")
        self.val_x, self.val_y = data.train_x[held], data.train_y[held]
        data = dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])
        epoch = steps_per_epoch(len(data.train_y), config.batch_size)
        total = config.epochs * epoch
        super().__init__(config=config, run_dir=run_dir, device=device, total_steps=total, eval_every=epoch,
                         checkpoint_every=config.checkpoint_every or epoch, quiet=config.quiet, dist=dist)
        self.use_epochs(len(data.train_y), config.batch_size)
        self.data, self.model = data, model  # unwrapped: evaluation, state dicts
        self.net = dist.wrap(model)  # training forwards (DDP, BatchNorm on the global batch, with several processes)
        decay = [p for p in model.parameters() if p.ndim >= 2]  # no decay on biases and BatchNorm
        rest = [p for p in model.parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                            {"params": rest, "weight_decay": 0.0}], lr=config.lr)
        # Linear warm-up to the peak, then half a cosine down to 0 at the last step.
        schedule = lr_lambda(warmup=round(config.warmup_epochs * self.steps_per_epoch), total=total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.autocast = bf16_autocast(config.amp, device)
        self.best = {"mean_iou": -1.0, "epoch": 0}  # on the validation split

    def train_step(self, step: int) -> dict[str, float]:
        index = self.batch(step)
        x, y = self.data.train_x[index], self.data.train_y[index]
        if self.config.augment:
            x, y = flip_and_turn(x, y, torch.Generator().manual_seed(self.config.seed * 1_000_003 + step))
        mine = self.dist.shard(len(index))  # this rank's share (all of it with one process)
        x, y = model_input(x[mine]).to(self.device), y[mine].to(self.device)
        with self.autocast():
            logits = self.net(x)  # (B, K, H, W)
        loss, value = self.global_loss(F.cross_entropy(logits.float(), y), n_local=len(y), n_global=len(index))
        if self.config.dice_weight:
            # Dice of the global batch: the same on every rank, and its all-reduce already sums the ranks' gradients,
            # so it is added unscaled (DDP's average over W identical terms then gives its gradient once).
            dice = self.config.dice_weight * soft_dice_loss(logits.float(), y, reduce=self.dist.sum_with_grad)
            self.check_finite(dice)
            loss, value = loss + dice, value + dice.item()
        self.backward_step(loss, self.model, self.optimizer, scheduler=self.scheduler, grad_clip=self.config.grad_clip)
        return {"loss": value, "lr": self.optimizer.param_groups[0]["lr"],
                "epoch": step // self.steps_per_epoch}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, *, batch_size: int = 128) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> predicted masks (N, H, W)."""
        self.model.eval()
        out = []
        for i in range(0, len(x), batch_size):
            with self.autocast():
                out.append(self.model(model_input(x[i:i + batch_size]).to(self.device)).argmax(dim=1).cpu())
        self.model.train()
        return torch.cat(out)

    def scores(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor]:
        predicted = self.predict(x)
        confusion = segmentation_confusion(predicted, y, self.data.num_classes)
        return segmentation_scores(confusion), confusion, predicted

    def evaluate(self) -> dict[str, float]:
        """Validation scores (the test split is scored once, in :meth:`finish`)."""
        if not len(self.val_y):
            return {}
        scores, _, _ = self.scores(self.val_x, self.val_y)
        epoch = math.ceil(self.step / self.steps_per_epoch)
        if scores["mean_iou"] > self.best["mean_iou"]:
            self.best = {"mean_iou": scores["mean_iou"], "epoch": epoch}
            save_weights(self.run_dir / "best.safetensors", self.model.state_dict())
        return {"val_mean_iou": scores["mean_iou"], "val_mean_dice": scores["mean_dice"],
                "val_pixel_accuracy": scores["pixel_accuracy"], "best_val_mean_iou": self.best["mean_iou"]}

    def best_test_mean_iou(self) -> float | None:
        """Test mean IoU of ``best.safetensors`` (the best validation epoch's weights), or None without one."""
        path = self.run_dir / "best.safetensors"
        if self.best["epoch"] <= 0 or not path.is_file():
            return None
        current = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(load_weights(path))
        try:
            return self.scores(self.data.test_x, self.data.test_y)[0]["mean_iou"]
        finally:
            self.model.load_state_dict(current)

    def checkpointed(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}

    def finish(self, status: str) -> dict:
        scores, confusion, predicted = self.scores(self.data.test_x, self.data.test_y)  # the final weights
        names = self.data.class_names
        title = f"{self.data.name}: U-Net, test mean IoU {scores['mean_iou']:.3f}"
        rows = [torch.cat([overlay(x, torch.zeros_like(m)), overlay(x, m), overlay(x, p)], dim=1)
                for x, m, p in zip(self.data.test_x[:8], self.data.test_y[:8], predicted[:8])]  # (H, 3 W, 3) each
        grid = torch.cat(rows, dim=0)  # image | truth | prediction, one test image per row
        scale = max(1, math.ceil(256 / grid.shape[1]))
        grid = F.interpolate(grid.permute(2, 0, 1)[None], scale_factor=scale, mode="nearest")[0].permute(1, 2, 0)
        save_image(self.run_dir / "predictions.png", grid)
        self.picture("predictions", grid)  # image | truth | prediction overlays
        epochs = [r["step"] / self.steps_per_epoch for r in self.history]
        if self.history:
            curves = {"train loss (last batch)": (epochs, [r["loss"] for r in self.history])}
            if len(self.val_y):
                curves["validation mean IoU"] = (epochs, [r["val_mean_iou"] for r in self.history])
                curves["validation mean Dice"] = (epochs, [r["val_mean_dice"] for r in self.history])
            curve_figure(self.run_dir / "curves.png", curves, xlabel="epoch", ylabel="IoU / Dice / loss", title=title)
        save_weights(self.run_dir / "model.safetensors", self.model.state_dict())
        write_json(self.run_dir / "model.json", {
            "task": self.task, "model": "unet", "model_config": dataclasses.asdict(self.model.config),
            "class_names": names, "sample_shape": list(self.data.sample_shape)})
        epochs_done = self.step / self.steps_per_epoch
        best = self.best["epoch"] > 0
        metrics = {"mean_iou": scores["mean_iou"], "mean_dice": scores["mean_dice"],
                   "pixel_accuracy": scores["pixel_accuracy"],
                   "iou": dict(zip(names, scores["iou"])), "dice": dict(zip(names, scores["dice"])),
                   "chance_mean_iou": chance_mean_iou(self.data),
                   "weights": "final (model.safetensors)",
                   "val_mean_iou": self.history[-1].get("val_mean_iou") if self.history else None,
                   "best_val_mean_iou": self.best["mean_iou"] if best else None,
                   "best_epoch": self.best["epoch"] if best else None,
                   "best_test_mean_iou": self.best_test_mean_iou(), "epochs": epochs_done,
                   "train_seconds": self.train_seconds,
                   "seconds_per_epoch": self.train_seconds / max(epochs_done, 1e-9),
                   "parameters": sum(p.numel() for p in self.model.parameters()),
                   "train_images": len(self.data.train_y), "val_images": len(self.val_y),
                   "test_images": len(self.data.test_y), "status": status,
                   "confusion": confusion}
        write_json(self.run_dir / "metrics.json", metrics)
        return {k: v for k, v in metrics.items() if k != "confusion"}


def chance_mean_iou(data: SegmentationData) -> float:
    """Mean IoU of the best constant guess (every pixel: the most frequent training class): the floor to beat."""
    k = int(torch.bincount(data.train_y.reshape(-1), minlength=data.num_classes).argmax())
    confusion = segmentation_confusion(torch.full_like(data.test_y, k), data.test_y, data.num_classes)
    return segmentation_scores(confusion)["mean_iou"]


def build_segment(config: SegmentConfig, *, run_dir: Path | None = None) -> SegmentTrainer:
    dist, device = prepare(config)
    data = segmentation_data(config.data, image_size=config.image_size, train=config.train_images,
                             test=config.test_images, max_shapes=config.max_shapes, kinds=config.shape_kinds,
                             test_size=config.test_size, seed=config.seed)
    model = build_unet(config, data.sample_shape[0], data.num_classes).to(device)
    if run_dir is None:
        run_dir = make_run_dir(dist, config, config.out, "segment", config.name or f"{data.name}-unet")
    return SegmentTrainer(config=config, data=data, model=model, run_dir=run_dir, device=device, dist=dist)


def train(config: SegmentConfig, *, resume: tuple[dict, Path] | None = None, callbacks=()) -> dict:
    """Train a segmentation U-Net; ``resume`` = (checkpoint state, run folder) continues that run exactly."""
    return run_training(build_segment, config, resume=resume, callbacks=callbacks)
