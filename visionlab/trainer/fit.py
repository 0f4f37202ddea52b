"""Fitting a neural field to one image: the ``fit`` task.

Data flow (design.md): image file -> pixel grid (coordinates in [-1, 1]^2, values in [0, 1]) -> value transform
(forward) -> each step the selector picks pixels -> INR -> MSE (+ the selector's extra term) -> Adam. Evaluation
de-transforms the whole prediction, clamps it to [0, 1] and reports PSNR (peak 1) and SSIM against the original.

A run folder holds ``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt``, ``model.safetensors``,
``reconstruction.png``, ``comparison.png`` (original | reconstruction | error), ``psnr_curve.png`` (PSNR against
training seconds), ``metrics.json`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from visionlab.components.metrics import psnr, ssim
from visionlab.components.sampling import Sampler, build_sampler
from visionlab.components.transforms import ValueTransform, make_transform
from visionlab.data.images import ImageSignal, coordinate_grid, load_image, save_image
from visionlab.models.inr import build_inr, predict_in_chunks
from visionlab.trainer.base import Trainer
from visionlab.util.checkpoint import save_weights
from visionlab.util.device import pick_device
from visionlab.util.errors import DataError
from visionlab.util.io import new_run_dir, write_json, write_yaml
from visionlab.util.plots import comparison_figure, curve_figure
from visionlab.util.seed import seed_everything

if TYPE_CHECKING:  # the config class lives in opt.py, a layer above; the trainer only reads its fields
    from visionlab.opt import FitConfig


class FitTrainer(Trainer):
    """Trains an INR on one image with a sample selector."""

    task = "fit"

    def __init__(self, *, config: "FitConfig", image: ImageSignal, target: torch.Tensor, model: torch.nn.Module,
                 transform: ValueTransform, sampler: Sampler, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, run_dir: Path, device: torch.device):
        super().__init__(config=config, run_dir=run_dir, device=device, total_steps=config.steps,
                         eval_every=config.eval_every, checkpoint_every=config.checkpoint_every, quiet=config.quiet)
        self.image = image
        self.model = model
        self.transform = transform
        self.sampler = sampler
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.coords = coordinate_grid(image.height, image.width, device=device)  # (N, 2)
        self.original = image.flat().to(device)  # (N, C) in [0, 1]
        self.target = target  # (N, C): transform(original), in model space
        self.pixels_trained = 0

    def train_step(self, step: int) -> dict[str, float]:
        # The selector's hooks, in order (visionlab.components.sampling): prepare, select, loss_weights, extra_loss,
        # and observe after backward; full, random and EVOS use only select and extra_loss.
        sampler = self.sampler
        sampler.prepare(step, model=self.model, coords=self.coords)  # e.g. INT's no-grad profile of every pixel
        indices = sampler.select(step)
        if indices is None:
            coords, target = self.coords, self.target
        else:
            indices = indices.to(self.device)
            coords, target = self.coords[indices], self.target[indices]  # (n, 2), (n, C)
        if sampler.wants_coordinate_grad:  # soft mining moves its samples along d loss / d coords
            coords = coords.detach().requires_grad_()
        pred = self.model(coords)  # (n, C)
        weights = sampler.loss_weights(step, indices, pred.detach())  # (n,) or None
        if weights is None:
            loss = torch.mean((pred - target) ** 2)
        else:  # mean_i w_i mean_c (pred - target)^2, e.g. soft mining's importance weights
            loss = torch.mean(weights.to(pred)[:, None] * (pred - target) ** 2)
        extra = sampler.extra_loss(step, indices, pred)
        if extra is not None:
            loss = loss + extra
        self.check_finite(loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if sampler.wants_coordinate_grad:
            sampler.observe(step, indices, coords.grad)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.pixels_trained += coords.shape[0]
        return {"loss": loss.item(), "pixels": coords.shape[0], "lr": self.optimizer.param_groups[0]["lr"]}

    def reconstruct(self) -> torch.Tensor:
        """The current fit as an (H, W, C) image in [0, 1]."""
        self.model.eval()
        pred = self.transform.inverse(predict_in_chunks(self.model, self.coords)).clamp(0, 1)  # (N, C)
        self.model.train()
        return pred.reshape(self.image.height, self.image.width, self.image.channels)  # (H, W, C)

    def evaluate(self) -> dict[str, float]:
        recon = self.reconstruct()
        original = self.original.reshape(recon.shape)  # (H, W, C)
        chw = lambda x: x.permute(2, 0, 1)  # noqa: E731  (H, W, C) -> (C, H, W)
        return {"psnr": float(psnr(recon, original)), "ssim": float(ssim(chw(recon), chw(original)))}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "sampler": self.sampler.state_dict(), "transform": self.transform.state_dict(),
                "pixels_trained": self.pixels_trained, "image_sha256": image_digest(self.image)}

    def load_state_dict(self, state: dict) -> None:
        if state["image_sha256"] != image_digest(self.image):
            raise DataError(f"{self.image.source} is not the image this run was trained on (it changed on disk?)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.pixels_trained = int(state["pixels_trained"])

    def finish(self, status: str) -> dict:
        final = self.history[-1] if self.history and self.history[-1]["step"] == self.step else None
        if final is None:  # stopped between evaluations: measure, but keep the log as an uninterrupted run has it
            final = {"step": self.step, **self.evaluate()}
        recon = self.reconstruct().cpu().numpy()
        original = self.image.values.numpy()
        save_image(self.run_dir / "reconstruction.png", recon)
        title = (f"{self.image.name}: {self.config.model} + {self.config.sampler}, {self.step} steps, "
                 f"PSNR {final['psnr']:.2f} dB, SSIM {final['ssim']:.4f}")
        comparison_figure(self.run_dir / "comparison.png", original, recon, title=title)
        curve_figure(self.run_dir / "psnr_curve.png",
                     {self.config.sampler: ([r["seconds"] for r in self.history], [r["psnr"] for r in self.history])},
                     xlabel="training time (s)", ylabel="PSNR (dB)", title=f"{self.image.name}, {self.config.model}")
        save_weights(self.run_dir / "model.safetensors", self.model.state_dict(),
                     metadata={"model": self.config.model, "width": str(self.config.width),
                               "depth": str(self.config.depth), "channels": str(self.image.channels)})
        metrics = {"psnr": final["psnr"], "ssim": final["ssim"], "wall_seconds": self.train_seconds,
                   "steps": self.step, "pixels_trained": self.pixels_trained, "status": status,
                   "image": self.image.source, "height": self.image.height, "width": self.image.width,
                   "psnr_peak": 1.0}
        write_json(self.run_dir / "metrics.json", metrics)
        return metrics


def image_digest(image: ImageSignal) -> str:
    return hashlib.sha256(image.values.numpy().tobytes()).hexdigest()


def build_fit(config: "FitConfig", *, run_dir: Path | None = None) -> FitTrainer:
    """Everything a fit needs, from its config: image, transform, model, optimiser, selector and run folder."""
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    seed_everything(config.seed)
    image = load_image(config.image, size=config.size, crop=config.crop)
    transform = make_transform(config.transform).fit(image.flat())
    model = build_inr(config.model, in_features=2, out_features=image.channels, width=config.width,
                      depth=config.depth).to(device)
    lr = config.lr if config.lr is not None else model.default_lr
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = None
    if config.lr_final is not None:
        # Exponential decay lr_t = lr * (lr_final / lr)^(t / T), reaching lr_final at the last step.
        rate = (config.lr_final / lr) ** (1.0 / config.steps)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=rate)
    target = transform(image.flat().to(device))  # (N, C) in model space
    # Each selector takes the options it knows (EVOS: mutation ratio, CFS steps, crossover) and leaves the rest.
    sampler = build_sampler(config.sampler, target=target, shape=(image.height, image.width),
                            total_steps=config.steps, ratio=config.ratio, scheduler=config.scheduler,
                            seed=config.seed, mutation_ratio=config.mutation_ratio, cfs_steps=config.cfs_steps,
                            crossover=config.crossover)
    if run_dir is None:
        run_dir = new_run_dir(config.out, "fit", config.name or f"{image.name}-{config.model}-{config.sampler}")
        write_yaml(run_dir / "config.yaml", dataclasses.asdict(config))
    return FitTrainer(config=config, image=image, target=target, model=model, transform=transform, sampler=sampler,
                      optimizer=optimizer, scheduler=scheduler, run_dir=run_dir, device=device)


def fit(config: "FitConfig", *, resume: tuple[dict, Path] | None = None, callbacks=()) -> dict:
    """Run a fit; returns the summary (its ``metrics`` hold PSNR, SSIM, wall seconds, ...).

    ``resume`` = (checkpoint state, run folder) continues that run exactly where it stopped.
    """
    trainer = build_fit(config, run_dir=resume[1] if resume else None)
    trainer.callbacks.extend(callbacks)
    if resume:
        trainer.resume(resume[0])
    return trainer.train()
