"""Training a classifier: ViT on images, ViViT on videos (the ``classify`` task).

Data flow (design.md): data set -> (N, C, H, W) or (N, C, T, H, W) tensors -> seeded shuffled batches (optionally
translated at random) -> ViT / ViViT -> cross-entropy with label smoothing -> AdamW with linear warm-up then cosine
decay -> (EMA of the weights) -> validation accuracy every epoch, the best weights kept -> at the end, the test split
scored once (final and best weights) -> confusion matrix and curves.

The validation split is carved from the training split (``--val-fraction``, stratified, seeded by the run's seed):
the best epoch and ``best.safetensors`` are chosen on it. The test split chooses nothing: it is read only by
:meth:`ClassifyTrainer.finish`, so its accuracy is an honest estimate of either set of weights.

The batch order and the augmentation of step t come from generators seeded with (seed, epoch) and (seed, t), so a
resumed run draws exactly what an uninterrupted one would. Mixed precision is bf16 autocast, used by default only on
GPUs that support it (on CPUs it is usually slower; fp16 would need a gradient scaler). A run folder holds
``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt``, ``model.safetensors`` (final, or EMA, weights),
``best.safetensors`` (best validation accuracy), ``model.json`` (what ``visionlab predict`` needs),
``confusion.png``, ``curves.png`` (test split), ``metrics.json`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.metrics import classification_report, confusion_matrix

from visionlab.components.augment import random_affine
from visionlab.components.losses import cross_entropy
from visionlab.data.classification import ClassificationData, classification_data, validation_split
from visionlab.data.images import load_image
from visionlab.data.video import read_clip
from visionlab.models.vit import ViT, ViTConfig, vit_config
from visionlab.models.vivit import ViViT, ViViTConfig, vivit_config
from visionlab.opt import ClassifyConfig
from visionlab.trainer.base import (KeepsBest, Trainer, bf16_autocast, lr_lambda, make_run_dir, parameter_ema,
                                    prepare, run_training, steps_per_epoch, weights_used)
from visionlab.util.checkpoint import load_weights, save_weights
from visionlab.util.device import pick_device
from visionlab.util.distributed import Dist
from visionlab.util.errors import DataError
from visionlab.util.failures import check_run_writable
from visionlab.util.io import read_json, read_yaml, write_json
from visionlab.util.plots import confusion_figure, curve_figure


def build_model(config: ClassifyConfig, sample_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """A ViT for (C, H, W) samples or a ViViT for (C, T, H, W) samples, from the preset and the overrides."""
    overrides = {k: getattr(config, k) for k in ("patch_size", "dim", "depth", "num_heads", "mlp_dim", "pool")
                 if getattr(config, k) is not None}
    if config.dim is not None and config.mlp_dim is None:
        overrides["mlp_dim"] = 4 * config.dim  # the usual MLP ratio
    if config.model == "vit":
        c, h, w = sample_shape
        return ViT(config=vit_config(config.preset, image_size=(h, w), in_channels=c, num_classes=num_classes,
                                     **overrides))
    c, t, h, w = sample_shape
    return ViViT(config=vivit_config(config.preset, model=config.vivit_model, image_size=(h, w), num_frames=t,
                                     in_channels=c, num_classes=num_classes, **overrides))


def model_input(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> [-1, 1], centred for the network (training and prediction alike)."""
    return x * 2 - 1


class ClassifyTrainer(KeepsBest, Trainer):
    """Trains a ViT / ViViT on tensors of images or clips."""

    task = "classify"

    def __init__(self, *, config: ClassifyConfig, data: ClassificationData, model: torch.nn.Module,
                 run_dir: Path, device: torch.device, dist: Dist = Dist()):
        keep, held = validation_split(data.train_y, config.val_fraction, seed=config.seed)
        if config.val_fraction and not len(held):
            raise DataError(f"{data.name}: --val-fraction {config.val_fraction} holds out no example of its "
                            f"{len(data.train_y)} training ones; raise it, or pass --val-fraction 0 (no best epoch)")
        self.val_x, self.val_y = data.train_x[held], data.train_y[held]
        data = dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])
        epoch = steps_per_epoch(len(data.train_y), config.batch_size)
        total = config.epochs * epoch
        super().__init__(config=config, run_dir=run_dir, device=device, total_steps=total, eval_every=epoch,
                         checkpoint_every=config.checkpoint_every or epoch, quiet=config.quiet, dist=dist)
        self.use_epochs(len(data.train_y), config.batch_size)
        self.data = data
        self.model = model  # unwrapped: evaluation, EMA, state dicts
        self.net = dist.wrap(model)  # training forwards (DDP with several processes)
        # No weight decay on biases, norms, [CLS] and positional embeddings: decay pulls them to 0 for nothing.
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n and "token" not in n]
        rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n and "token" not in n)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                            {"params": rest, "weight_decay": 0.0}], lr=config.lr)
        # Linear warm-up to the peak, then half a cosine down to 0 at the last step.
        schedule = lr_lambda(warmup=round(config.warmup_epochs * self.steps_per_epoch), total=total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.ema = parameter_ema(model, config.ema)  # of the parameters only
        self.autocast = bf16_autocast(config.amp, device)
        self.best = {"accuracy": -1.0, "epoch": 0}  # on the validation split

    def train_step(self, step: int) -> dict[str, float]:
        index = self.batch(step)
        x, y = self.data.train_x[index], self.data.train_y[index]
        if self.config.augment:  # drawn for the global batch, so that it does not depend on the split
            x = random_affine(x, torch.Generator().manual_seed(self.config.seed * 1_000_003 + step))
        mine = self.dist.shard(len(index))  # this rank's share (all of it with one process)
        x, y = model_input(x[mine]).to(self.device, non_blocking=True), y[mine].to(self.device, non_blocking=True)
        with self.autocast():
            logits = self.net(x)  # (B, K)
        loss = cross_entropy(logits.float(), y, label_smoothing=self.config.label_smoothing)
        value = self.optimizer_step(loss, self.model, self.optimizer, scheduler=self.scheduler,
                                    grad_clip=self.config.grad_clip, ema=self.ema, n_local=len(y),
                                    n_global=len(index))
        return {"loss": value, "lr": self.optimizer.param_groups[0]["lr"], "epoch": step // self.steps_per_epoch}

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def predict(self, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """(N, ...) -> (N,) predicted classes of the evaluation model (EMA if kept)."""
        model = self.eval_model.eval()
        out = []
        for i in range(0, len(x), batch_size):
            with self.autocast():
                out.append(model(model_input(x[i:i + batch_size]).to(self.device)).argmax(dim=1).cpu())
        self.model.train()
        return torch.cat(out)

    def evaluate(self) -> dict[str, float]:
        """Validation accuracy (never the test split's: that one is scored once, in :meth:`finish`)."""
        if not len(self.val_y):
            return {}
        accuracy = (self.predict(self.val_x) == self.val_y).float().mean().item()
        epoch = math.ceil(self.step / self.steps_per_epoch)
        if accuracy > self.best["accuracy"]:
            self.best = {"accuracy": accuracy, "epoch": epoch}
            save_weights(self.run_dir / "best.safetensors", self.eval_model.state_dict())
        return {"val_accuracy": accuracy, "best_val_accuracy": self.best["accuracy"]}

    def best_test_accuracy(self) -> float | None:
        """Test accuracy of ``best.safetensors`` (the weights of the best validation epoch), or None without one."""
        path = self.run_dir / "best.safetensors"
        if not len(self.val_y) or not path.is_file():
            return None
        current = {k: v.clone() for k, v in self.eval_model.state_dict().items()}
        self.eval_model.load_state_dict(load_weights(path))
        try:
            return (self.predict(self.data.test_x) == self.data.test_y).float().mean().item()
        finally:
            self.eval_model.load_state_dict(current)

    def checkpointed(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "ema": self.ema}

    def finish(self, status: str) -> dict:
        predicted = self.predict(self.data.test_x)
        truth = self.data.test_y
        names = self.data.class_names
        accuracy = (predicted == truth).float().mean().item()  # the final weights (model.safetensors)
        labels = list(range(len(names)))
        matrix = confusion_matrix(truth, predicted, labels=labels)
        title = f"{self.data.name}: {self.config.model}, test accuracy {accuracy:.2%}"
        confusion_figure(self.run_dir / "confusion.png", matrix, names, title=title)
        self.picture("confusion", self.run_dir / "confusion.png")
        epochs = [r["step"] / self.steps_per_epoch for r in self.history]
        curves = {"train loss (last batch)": (epochs, [r["loss"] for r in self.history])}
        if len(self.val_y):
            curves["validation accuracy"] = (epochs, [r["val_accuracy"] for r in self.history])
        curve_figure(self.run_dir / "curves.png", curves, xlabel="epoch", ylabel="accuracy / loss", title=title)
        save_weights(self.run_dir / "model.safetensors", self.eval_model.state_dict())
        write_json(self.run_dir / "model.json", {
            "model": self.config.model, "model_config": dataclasses.asdict(self.model.config),
            "class_names": names, "sample_shape": list(self.data.sample_shape),
            "clip_frame": None if self.data.frame is None else list(self.data.frame)})
        epochs_done = self.step / self.steps_per_epoch
        best = self.best["epoch"] > 0
        # accuracy: the test accuracy of model.safetensors, under the name evaluate and the tables read.
        metrics = {"test_accuracy": accuracy, "accuracy": accuracy, "weights": weights_used(self.config.ema),
                   "val_accuracy": self.history[-1].get("val_accuracy") if self.history else None,
                   "best_val_accuracy": self.best["accuracy"] if best else None,
                   "best_epoch": self.best["epoch"] if best else None,
                   "best_test_accuracy": self.best_test_accuracy() if best else None, "epochs": epochs_done,
                   "train_seconds": self.train_seconds,
                   "seconds_per_epoch": self.train_seconds / max(epochs_done, 1e-9),
                   "parameters": sum(p.numel() for p in self.model.parameters()),
                   "train_examples": len(self.data.train_y), "val_examples": len(self.val_y),
                   "test_examples": len(truth), "status": status,
                   "report": classification_report(truth, predicted, labels=labels, target_names=names,
                                                   output_dict=True, zero_division=0),
                   "confusion": matrix}
        write_json(self.run_dir / "metrics.json", metrics)
        return {k: v for k, v in metrics.items() if k not in ("report", "confusion")}


def build_classify(config: ClassifyConfig, *, run_dir: Path | None = None) -> ClassifyTrainer:
    dist, device = prepare(config)
    data = classification_data(config.data, video=config.video or config.model == "vivit",
                               image_size=config.image_size, frames=config.frames, seed=config.seed,
                               test_size=config.test_size)
    if data.is_video and config.model == "vit":
        data = data.single_frame(config.frame)  # the single-frame control: what one frame can tell
    model = build_model(config, data.sample_shape, len(data.class_names)).to(device)
    if run_dir is None:
        run_dir = make_run_dir(dist, config, config.out, "classify", config.name or f"{data.name}-{config.model}")
    return ClassifyTrainer(config=config, data=data, model=model, run_dir=run_dir, device=device, dist=dist)


def train(config: ClassifyConfig, *, resume: tuple[dict, Path] | None = None, callbacks=()) -> dict:
    """Train a classifier; ``resume`` = (checkpoint state, run folder) continues that run exactly."""
    return run_training(build_classify, config, resume=resume, callbacks=callbacks)


def load_classifier(run: str | Path, *, device: str = "auto") -> tuple[torch.nn.Module, dict]:
    """The trained model of run folder ``run`` (its ``model.safetensors``) and its ``model.json`` record."""
    run = Path(run)
    if not (run / "model.json").is_file():
        raise DataError(f"{run} is not a finished classify run (no model.json); train one with 'visionlab train'")
    info = read_json(run / "model.json")
    if info.get("model") not in ("vit", "vivit") or not isinstance(info.get("model_config"), dict):
        kind = info.get("model") or info.get("task") or "another kind of"
        raise DataError(f"{run} holds a {kind} model, not a classifier (vit or vivit)")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in info["model_config"].items()}
    config_class = ViTConfig if info["model"] == "vit" else ViViTConfig
    try:
        config = config_class(**fields)
    except TypeError as e:  # a model.json from another version or edited by hand
        raise DataError(f"{run}/model.json does not describe a {info['model']} model: {e}") from None
    model = ViT(config=config) if info["model"] == "vit" else ViViT(config=config)
    try:
        model.load_state_dict(load_weights(run))
    except RuntimeError as e:
        raise DataError(f"the weights of {run} do not fit its model description: "
                        f"{str(e).strip().splitlines()[0]}") from None
    return model.to(pick_device(device)).eval(), info


def run_data(run: Path, info: dict, *, data: str | None = None) -> tuple[ClassificationData, str]:
    """The data a classify run reads (its own, with its split, or ``data``) in the model's sample shape, and its
    name; evaluation and the run's pictures (trainer/pictures.py) both start here."""
    if not (run / "config.yaml").is_file():
        raise DataError(f"{run} has no config.yaml; evaluate and show need the run folder 'visionlab train' wrote")
    config = read_yaml(run / "config.yaml")
    shape = info["sample_shape"]  # (C, H, W) or (C, T, H, W)
    clip_frame = info.get("clip_frame")
    source = data or config["data"]
    loaded = classification_data(source, video=info["model"] == "vivit" or clip_frame is not None,
                                 image_size=shape[-1], frames=clip_frame[1] if clip_frame else (
                                     shape[1] if info["model"] == "vivit" else config["frames"]),
                                 seed=config["seed"], test_size=config["test_size"])
    if clip_frame is not None:
        loaded = loaded.single_frame(clip_frame[0])
    if list(loaded.sample_shape) != list(shape):
        raise DataError(f"{source}: samples of shape {tuple(loaded.sample_shape)}, but the model of {run} reads "
                        f"{tuple(shape)} (channels, [frames,] height, width)")
    return loaded, source


@torch.no_grad()
def evaluate_run(run: str | Path, *, data: str | None = None, split: str = "test", device: str = "auto") -> dict:
    """Accuracy, per-class report and confusion matrix of run ``run``'s model on ``data`` (default: the run's own
    data set, with its own split); ``split`` is ``test`` or ``all``. Writes ``evaluation-<data>-<split>.json`` and
    its confusion matrix picture into the run folder and returns the metrics."""
    run = Path(run)
    check_run_writable(run)  # before the model and data are read
    model, info = load_classifier(run, device=device)
    loaded, source = run_data(run, info, data=data)
    names = info["class_names"]
    unknown = [n for n in loaded.class_names if n not in names]
    if unknown:
        raise DataError(f"{source}: class(es) {', '.join(unknown)} are not among the model's ({', '.join(names)})")
    # The data's label k is class loaded.class_names[k]; the model numbers classes as in its own list.
    to_model = torch.tensor([names.index(n) for n in loaded.class_names])
    if split == "test":
        x, y = loaded.test_x, to_model[loaded.test_y]
    elif split == "all":
        x, y = torch.cat([loaded.train_x, loaded.test_x]), to_model[torch.cat([loaded.train_y, loaded.test_y])]
    else:
        raise DataError(f"split must be test or all, got {split!r}")
    device_of = next(model.parameters()).device
    predicted = torch.cat([model(model_input(x[i:i + 256]).to(device_of)).argmax(dim=1).cpu()
                           for i in range(0, len(x), 256)])
    labels = list(range(len(names)))
    matrix = confusion_matrix(y, predicted, labels=labels)
    accuracy = (predicted == y).float().mean().item()
    tag = f"{Path(source).name}-{split}"
    confusion_figure(run / f"evaluation-{tag}-confusion.png", matrix, names,
                     title=f"{Path(source).name} ({split}): accuracy {accuracy:.2%}")
    metrics = {"accuracy": accuracy, "examples": len(y), "data": str(source), "split": split,
               "report": classification_report(y, predicted, labels=labels, target_names=names, output_dict=True,
                                                zero_division=0),
               "report_text": classification_report(y, predicted, labels=labels, target_names=names, digits=4,
                                                     zero_division=0),
               "confusion": matrix}
    write_json(run / f"evaluation-{tag}.json", metrics)
    return metrics


@torch.no_grad()
def predict_files(run: str | Path, files: list[str], *, device: str = "auto") -> list[dict]:
    """Class and probability for each image (ViT runs) or clip (ViViT runs: ``.npy`` or a folder of frames)."""
    model, info = load_classifier(run, device=device)
    shape = info["sample_shape"]  # (C, H, W) or (C, T, H, W)
    rows = []
    clip_frame = info.get("clip_frame")  # a single-frame control reads clips and keeps frame k of T
    for file in files:
        if clip_frame is not None:
            k, t = clip_frame
            clip = torch.from_numpy(read_clip(file, frames=t, size=tuple(shape[1:]), channels=shape[0]))
            x = clip[k].permute(2, 0, 1)[None]  # (T, H, W, C) -> frame k as (1, C, H, W)
        elif info["model"] == "vit":
            values = load_image(file).values  # (H, W, C), checked and decoded
            c = values.shape[2] - (1 if values.shape[2] in (2, 4) else 0)  # alpha is not content
            if c != shape[0]:
                raise DataError(f"{file}: {c} channel(s), but the model reads {shape[0]} "
                                f"({'grey' if shape[0] == 1 else 'RGB'})")
            x = values[..., :c].permute(2, 0, 1)[None]  # (1, C, H, W)
            x = F.interpolate(x, size=tuple(shape[1:]), mode="bilinear", antialias=True, align_corners=False)
        else:
            clip = torch.from_numpy(read_clip(file, frames=shape[1], size=tuple(shape[2:]), channels=shape[0]))
            x = clip.permute(3, 0, 1, 2)[None]  # (T, H, W, C) -> (1, C, T, H, W)
        device_of = next(model.parameters()).device
        probabilities = torch.softmax(model(model_input(x.clamp(0, 1)).to(device_of)).float(), dim=1)[0]  # (K,)
        k = int(probabilities.argmax())
        rows.append({"file": str(file), "class": info["class_names"][k], "probability": float(probabilities[k])})
    return rows
