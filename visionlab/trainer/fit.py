"""Fitting a neural field to one signal: an image, a sound or a video (the ``fit`` task).

Data flow (design.md): file -> sample grid (coordinates in [-1, 1]^d: (y, x) for images, (t,) for audio, (t, y, x)
for video; values in [0, 1]) -> value transform (forward) -> each step the selector picks samples -> INR -> MSE (+ the
selector's extra term) -> Adam. Evaluation de-transforms the whole prediction, clamps it to [0, 1] and reports PSNR
(peak 1) and, for images and videos (mean over frames), SSIM against the original.

Speed (benchmarks/fit_step.py): the network runs over a step's selection in chunks of ``--chunk`` points inside one
graph (:class:`~visionlab.models.inr.Chunked`: the one-batch gradient, cache-sized temporaries), SIREN and FINER
layers are fused (:mod:`visionlab.components.sine`), the hash grid precomputes its corners for the pixel grid, and
``--precision bf16`` runs the hidden layers in bf16 autocast (``auto``: only where its measured PSNR cost is below
0.1 dB). The loss, the selectors' hooks and the metrics always see the whole fp32 prediction.

A run folder holds ``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt``, ``model.safetensors``, ``metrics.json``,
``summary.json``, ``psnr_curve.png`` (PSNR against training seconds) and the reconstruction in the signal's own form:
``reconstruction.png`` and ``comparison.png`` (original | reconstruction | error) for an image, ``reconstruction.wav``
and ``comparison.png`` (waveforms) for audio, ``reconstruction/`` (PNG frames and a GIF) and ``comparison.png`` (the
middle frame) for a video.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from visionlab.components.metrics import psnr, ssim
from visionlab.components.sampling import Sampler, build_sampler
from visionlab.components.sine import kernel as sine_kernel
from visionlab.components.transforms import make_transform
from visionlab.components.value_transforms import ValueTransform
from visionlab.data.grid import GridSignal
from visionlab.data.signals import load_signal
from visionlab.models.inr import INR_PRESETS, Chunked, Siren, build_inr
from visionlab.opt import FitConfig
from visionlab.trainer.base import LONG_RUN_SECONDS, Trainer, duration, make_run_dir, prepare, run_training
from visionlab.trainer.fit_footprint import Footprint, check_footprint, large_image_note, measure, most_points
from visionlab.trainer.selection import SelectionRecorder, selection_picture
from visionlab.util.checkpoint import save_weights
from visionlab.util.distributed import Dist
from visionlab.util.device import keep_freed_memory
from visionlab.util.errors import DataError
from visionlab.util.io import write_json
from visionlab.util.plots import comparison_figure, curve_figure, waveform_figure
from visionlab.util.precision import autocast, bf16_is_fast, check_bf16


class FitTrainer(Trainer):
    """Trains an INR on one signal (image, audio or video) with a sample selector."""

    task = "fit"

    def __init__(self, *, config: FitConfig, signal: GridSignal, target: torch.Tensor, model: torch.nn.Module,
                 transform: ValueTransform, sampler: Sampler, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, run_dir: Path, device: torch.device,
                 dist: Dist = Dist(), chunk: int = 8192, precision: str = "fp32"):
        super().__init__(config=config, run_dir=run_dir, device=device, total_steps=config.steps,
                         eval_every=config.eval_every, checkpoint_every=config.checkpoint_every, quiet=config.quiet,
                         dist=dist)
        self.signal = signal
        self.model = model  # unwrapped: state dicts, the weights file
        self.chunk = chunk
        self.precision = precision  # "fp32" or "bf16", resolved (see resolve_precision)
        self.chunked = Chunked(model, chunk=chunk)  # evaluation and the selector's profiling, in the same chunks
        self.net = dist.wrap(self.chunked)  # training forwards (DDP with several processes): one call, all chunks
        self.transform = transform
        self.sampler = sampler
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.coords = signal.coords(device=device)  # (N, d)
        self.original = signal.flat().to(device)  # (N, C) in [0, 1]
        self.target = target  # (N, C): transform(original), in model space
        self.pixels_trained = 0
        # A model that can precompute what it reads for each fixed point (the hash grid's corners) does so once, and
        # each step then passes the selected rows; soft mining needs coordinate gradients, so not for it.
        self.rows = None
        if hasattr(model, "bind") and not sampler.wants_coordinate_grad and model.bind(self.coords):
            self.rows = torch.arange(self.coords.shape[0], device=device)  # (N,)
        self.recorder = None  # --record-selection K: every K-th step's mask and error map (trainer/selection.py)
        if config.record_selection and dist.is_main:  # an image: build_fit has checked
            self.recorder = SelectionRecorder(every=config.record_selection, run_dir=run_dir, image=signal.values)

    def train_step(self, step: int) -> dict[str, float]:
        # The selector's hooks, in order (visionlab.components.sampling): prepare, select, loss_weights, extra_loss,
        # and observe after backward; full, random and EVOS use only select and extra_loss.
        sampler = self.sampler
        with autocast(self.device, self.precision):  # e.g. INT's no-grad profile of every pixel
            sampler.prepare(step, model=self.chunked, coords=self.coords)
        indices = sampler.select(step)
        if self.recorder is not None and self.recorder.due(step):  # the choice, and the errors it was made against
            start = time.perf_counter()  # the base trainer times the whole step: take the record back out of it
            self.recorder.record(step, indices, self.reconstruct(), sampler.ratio_at(step))
            self.train_seconds -= time.perf_counter() - start
        if indices is None:
            coords, target, rows = self.coords, self.target, self.rows
        else:
            indices = indices.to(self.device)
            coords, target = self.coords[indices], self.target[indices]  # (n, 2), (n, C)
            rows = None if self.rows is None else indices
        # Several processes: the selection is the same on every rank (same weights, same seeds); each rank runs the
        # network on its share of the coordinates and the predictions are gathered, so the loss, the weights and
        # the selector's extra term see all n rows, as with one process (Dist.gather's gradient returns to the rows).
        dist = self.dist
        sizes = dist.sizes(coords.shape[0])
        if dist.enabled:
            dist.check_batch(coords.shape[0], "a selection of samples")
            shard = dist.shard(coords.shape[0])
            coords = coords[shard]  # (n_r, d)
            rows = None if rows is None else rows[shard]
        if not dist.enabled and not sampler.wants_coordinate_grad and coords.shape[0] > self.chunk \
                and not sampler.couples_rows(step):  # the plain MSE, a sum over rows: one chunk at a time
            pred, loss = self.chunk_by_chunk(coords, target, rows)
            if sampler.extra_loss(step, indices, pred) is not None:  # it reads the prediction (EVOS's fitness)
                raise RuntimeError(f"{type(sampler).__name__}.couples_rows({step}) is False, but its extra_loss "
                                   f"gave a term")
        else:
            pred, loss = self.whole_batch(step, indices, coords, target, rows, sizes)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.pixels_trained += pred.shape[0]
        return {"loss": loss.item(), "pixels": pred.shape[0], "lr": self.optimizer.param_groups[0]["lr"]}

    def whole_batch(self, step: int, indices: torch.Tensor | None, coords: torch.Tensor, target: torch.Tensor,
                    rows: torch.Tensor | None, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward over the whole selection (in chunks, one graph), the loss with the selector's weights and extra
        term, backward: the (n, C) prediction and the loss."""
        sampler, dist = self.sampler, self.dist
        if sampler.wants_coordinate_grad:  # soft mining moves its samples along d loss / d coords
            coords = coords.detach().requires_grad_()
        with autocast(self.device, self.precision):  # bf16: the hidden layers only; pred is fp32
            pred = self.net(coords) if rows is None else self.net(coords, rows)  # (n_r, C)
            pred = dist.gather(pred, sizes).float()  # (n, C)
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
            # Each rank's coordinate gradient came back summed over the ranks' identical losses: divide by W.
            sampler.observe(step, indices, dist.gather(coords.grad / dist.world_size, sizes))
        return pred, loss

    def chunk_by_chunk(self, coords: torch.Tensor, target: torch.Tensor, rows: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward one chunk at a time, the gradient summing each chunk's share of the MSE (a sum over
        rows): the same gradient as one graph up to round-off, with each chunk's activations still in cache for its
        backward instead of every chunk's in memory (at 256 px, 1 GB a step written and read back). Returns the
        detached (n, C) prediction and the loss."""
        n, channels = target.shape
        preds, loss = [], torch.zeros((), device=target.device)
        self.optimizer.zero_grad(set_to_none=True)
        for start in range(0, n, self.chunk):
            part = slice(start, start + self.chunk)
            with autocast(self.device, self.precision):  # bf16: the hidden layers only; pred is fp32
                pred = self.model(coords[part]) if rows is None else self.model(coords[part], rows[part])  # (c, C)
            share = torch.sum((pred.float() - target[part]) ** 2) / (n * channels)  # this chunk's part of the mean
            self.check_finite(share)  # before its backward: a bad loss never reaches the weights
            share.backward()
            preds.append(pred.detach().float())
            loss += share.detach()
        return torch.cat(preds), loss

    def reconstruct(self) -> torch.Tensor:
        """The current fit in the signal's layout (*shape, C), in [0, 1]."""
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.precision):  # the network as trained; the rest in fp32
            chunked, coords = self.chunked, self.coords  # the training step's chunks
            pred = (chunked(coords) if self.rows is None else chunked(coords, self.rows)).float()  # (N, C)
        pred = self.transform.inverse(pred).clamp(0, 1)  # (N, C)
        self.model.train()
        return self.signal.unflat(pred)  # (*shape, C)

    def evaluate(self) -> dict[str, float]:
        recon = self.reconstruct()
        original = self.signal.unflat(self.original)  # (*shape, C)
        metrics = {"psnr": float(psnr(recon, original))}
        if self.signal.kind != "audio":  # TensorBoard: the fit so far (a video's middle frame)
            self.picture("reconstruction", recon if recon.ndim == 3 else recon[recon.shape[0] // 2])
        if self.signal.kind == "image":  # (H, W, C) -> (C, H, W)
            metrics["ssim"] = float(ssim(recon.permute(2, 0, 1), original.permute(2, 0, 1)))
        elif self.signal.kind == "video":  # (T, H, W, C) -> (T, C, H, W): SSIM of each frame, averaged
            metrics["ssim"] = float(ssim(recon.permute(0, 3, 1, 2), original.permute(0, 3, 1, 2)))
        return metrics

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "sampler": self.sampler.state_dict(), "transform": self.transform.state_dict(),
                "pixels_trained": self.pixels_trained, "image_sha256": signal_digest(self.signal),
                "precision": self.precision}

    def load_state_dict(self, state: dict) -> None:
        if state["image_sha256"] != signal_digest(self.signal):
            raise DataError(f"{self.signal.source} is not the {self.signal.kind} this run was trained on (it changed "
                            f"on disk?)")
        # a resumed run keeps the precision it started with ("auto" resolved then; runs before it existed: fp32)
        self.precision = state.get("precision", "fp32")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            gamma = self.scheduler.gamma  # this config's decay: --steps may have grown (trainer/extend.py)
            self.scheduler.load_state_dict(state["scheduler"])
            self.scheduler.gamma = gamma
        self.sampler.load_state_dict(state["sampler"])
        self.pixels_trained = int(state["pixels_trained"])

    def finish(self, status: str) -> dict:
        final = self.history[-1] if self.history and self.history[-1]["step"] == self.step else None
        if final is None:  # stopped between evaluations: measure, but keep the log as an uninterrupted run has it
            final = {"step": self.step, **self.evaluate()}
        signal, config = self.signal, self.config
        recon = self.reconstruct().cpu()
        quality = f"PSNR {final['psnr']:.2f} dB" + (f", SSIM {final['ssim']:.4f}" if "ssim" in final else "")
        title = f"{signal.name}: {config.model} + {config.sampler}, {self.step} steps, {quality}"
        self.write_reconstruction(recon, title)
        self.picture("comparison", self.run_dir / "comparison.png")
        if self.recorder is not None:
            self.picture("selection", selection_picture(self.run_dir)["picture"])
        curve_figure(self.run_dir / "psnr_curve.png",
                     {config.sampler: ([r["seconds"] for r in self.history], [r["psnr"] for r in self.history])},
                     xlabel="training time (s)", ylabel="PSNR (dB)", title=f"{signal.name}, {config.model}")
        save_weights(self.run_dir / "model.safetensors", self.model.state_dict(),
                     metadata={"model": config.model, "width": str(model_size(config)[0]),
                               "depth": str(model_size(config)[1]),
                               "channels": str(signal.channels), "kind": signal.kind,
                               **{key: str(value) for key, value in model_options(config, signal).items()},
                               "shape": "x".join(map(str, signal.shape))})
        metrics = {"psnr": final["psnr"], "ssim": final.get("ssim"), "wall_seconds": self.train_seconds,
                   "steps": self.step, "pixels_trained": self.pixels_trained, "status": status,
                   "image": signal.source, "kind": signal.kind, "shape": list(signal.shape), "psnr_peak": 1.0,
                   "precision": self.precision, "chunk": self.chunk}
        if signal.kind == "image":
            metrics.update(height=signal.shape[0], width=signal.shape[1])
        write_json(self.run_dir / "metrics.json", metrics)
        return metrics

    def write_reconstruction(self, recon: torch.Tensor, title: str) -> None:
        """The fit in the signal's own format, and a picture comparing it with the original."""
        signal, original = self.signal, self.signal.values.numpy()
        if signal.kind == "image":
            signal.save(self.run_dir / "reconstruction.png", recon)
            comparison_figure(self.run_dir / "comparison.png", original, recon.numpy(), title=title)
        elif signal.kind == "video":
            signal.save(self.run_dir / "reconstruction", recon)  # PNG frames and a GIF
            middle = signal.shape[0] // 2
            comparison_figure(self.run_dir / "comparison.png", original[middle], recon[middle].numpy(),
                              title=f"{title} (frame {middle})")
        else:
            signal.save(self.run_dir / "reconstruction.wav", recon)
            waveform_figure(self.run_dir / "comparison.png", original, recon.numpy(),
                            sample_rate=signal.sample_rate, title=title)


def signal_digest(signal: GridSignal) -> str:
    return hashlib.sha256(signal.values.numpy().tobytes()).hexdigest()


def model_size(config: FitConfig) -> tuple[int, int]:
    """(width, depth): the config's, else the papers' SIREN 3x256, or Instant-NGP's MLP for the hash grid."""
    preset = INR_PRESETS["ngp" if config.model == "hashgrid" else "paper"]
    return (config.width if config.width is not None else preset["width"],
            config.depth if config.depth is not None else preset["depth"])


AUTO_BF16_MAX_COST_DB = 0.1  # what bf16 may cost in PSNR for --precision auto to take it


def resolve_precision(precision: str, model: torch.nn.Module, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for a run asking for ``precision``: ``auto`` takes bf16 only where bf16 is native on
    ``device`` and the model's measured PSNR cost of bf16 (``bf16_cost_db``, the worst of three photos after 1,000
    steps, benchmarks/fit_precision.py) is below 0.1 dB."""
    if precision == "bf16":
        check_bf16(device)
        return "bf16"
    if precision == "auto" and bf16_is_fast(device) and getattr(model, "bf16_cost_db", None) is not None:
        return "bf16" if model.bf16_cost_db < AUTO_BF16_MAX_COST_DB else "fp32"
    return "fp32"


def auto_reason(model: torch.nn.Module, device: torch.device) -> str:
    """Why ``auto`` chose what it chose, in a few words."""
    name = type(model).__name__
    if not bf16_is_fast(device):
        return f"bf16 is not native on {device}"
    cost = getattr(model, "bf16_cost_db", None)
    if cost is None:
        return f"bf16's PSNR cost for {name} has not been measured"
    return (f"bf16 costs {name} {cost:.2f} dB PSNR at worst, measured; the limit is {AUTO_BF16_MAX_COST_DB} dB; "
            f"--precision fp32 or bf16 to choose")


def model_options(config: FitConfig, signal: GridSignal) -> dict:
    """The model's own constructor options: the hash grid's table size and finest resolution (by default the
    image's longer side, at least Instant-NGP's 512, so that every pixel of a large image has a cell)."""
    if config.model != "hashgrid":
        return {}
    finest = 512 if signal.kind == "audio" else max(512, *signal.shape[-2:])
    return {"log2_table_size": config.hash_table,
            "max_resolution": config.hash_resolution if config.hash_resolution is not None else finest}


def load_fit_signal(config: FitConfig) -> GridSignal:
    """The signal named by ``config.image``: an image, a sound or a video (``config.kind``, else from its name)."""
    return load_signal(config.image, kind=config.kind, size=config.size, crop=config.crop, seconds=config.seconds,
                       frames=config.frames)


def build_fit(config: FitConfig, *, run_dir: Path | None = None) -> FitTrainer:
    """Everything a fit needs, from its config: image, transform, model, optimiser, selector and run folder."""
    dist, device = prepare(config)
    if device.type == "cpu":  # every step allocates the same large arrays: reuse them, no page faults (util/device)
        keep_freed_memory()
    signal = load_fit_signal(config)
    if config.record_selection and signal.kind != "image":  # before a run folder is made
        raise DataError(f"--record-selection draws masks over an image; {signal.source} is {signal.kind}")
    if signal.kind in ("image", "video") and min(signal.shape[-2:]) < 11:  # (H, W) or (T, H, W)
        raise DataError(f"{signal.source}: {signal.shape[-2]}x{signal.shape[-1]} pixels, below the 11x11 window of "
                        f"SSIM; fit a larger image (or resize it with --size)")
    # rpp's permutation follows the run's seed; the other transforms have no randomness.
    transform = make_transform(config.transform, **({"seed": config.seed} if config.transform == "rpp" else {}))
    transform.fit(signal.flat())
    width, depth = model_size(config)
    model = build_inr(config.model, in_features=len(signal.shape), out_features=signal.channels, width=width,
                      depth=depth, **model_options(config, signal)).to(device)
    lr = config.lr if config.lr is not None else model.default_lr
    # A model may ask for its own Adam settings (the hash grid: betas (0.9, 0.99), eps 1e-15, as Instant-NGP).
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=getattr(model, "adam_betas", (0.9, 0.999)),
                                 eps=getattr(model, "adam_eps", 1e-8))
    scheduler = None
    if config.lr_final is not None:
        # Exponential decay lr_t = lr * (lr_final / lr)^(t / T), reaching lr_final at the last step.
        rate = (config.lr_final / lr) ** (1.0 / config.steps)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=rate)
    precision = resolve_precision(config.precision, model, device)
    chunk = config.chunk if config.chunk is not None else model.default_chunk
    target = transform(signal.flat().to(device))  # (N, C) in model space
    cfs_steps = config.cfs_steps if config.cfs_steps is not None else (0 if signal.kind == "audio" else 1500)
    # Each selector takes the options it knows (EVOS: mutation ratio, CFS steps, crossover) and leaves the rest.
    sampler = build_sampler(config.sampler, target=target, shape=signal.shape,
                            total_steps=config.steps, ratio=config.ratio, scheduler=config.scheduler,
                            seed=config.seed, mutation_ratio=config.mutation_ratio, cfs_steps=cfs_steps,
                            crossover=config.crossover)
    # Before the first step (and before a run folder is made): does the fit fit in memory, and how long will it take?
    if isinstance(model, Siren) and device.type == "cpu":  # build the native sine kernel now, not in a timed step
        sine_kernel(announce=print if dist.is_main and not config.quiet else None)
    footprint = measure(model, in_features=len(signal.shape), channels=signal.channels, pixels=target.shape[0],
                        points_per_step=most_points(sampler, target.shape[0], config.steps), device=device,
                        precision=precision)
    check_footprint(footprint, device=device, shape=signal.shape, what=signal.source)
    said = dist.is_main and not config.quiet and say_cost(footprint, config, signal)  # the first line: the cost
    if not config.quiet and config.precision == "auto" and dist.is_main:
        print(f"precision: {precision} (auto: {auto_reason(model, device)})")
    if run_dir is None:
        run_dir = make_run_dir(dist, config, config.out, "fit",
                               config.name or f"{signal.name}-{config.model}-{config.sampler}")
    trainer = FitTrainer(config=config, signal=signal, target=target, model=model, transform=transform,
                         sampler=sampler, optimizer=optimizer, scheduler=scheduler, run_dir=run_dir, device=device,
                         dist=dist, chunk=chunk, precision=precision)
    trainer.say_duration = not said  # the training loop's own estimate, after a few steps, would say it again
    return trainer


def say_cost(footprint: Footprint, config: FitConfig, signal: GridSignal) -> bool:
    """Print what a large image at full size, or a long fit, is in for (one line); whether anything was said."""
    note = large_image_note(footprint, shape=signal.shape, what=signal.source, steps=config.steps) \
        if config.size is None and signal.kind == "image" else None
    total = footprint.seconds_per_step * config.steps
    if note is None and total >= LONG_RUN_SECONDS:
        note = (f"fit: {config.steps:,} steps of {'x'.join(map(str, signal.shape))}, about {duration(total)} on "
                f"this machine ({duration(footprint.seconds_per_step)} per step, measured before the first one)")
    if note:
        print(note)
    return note is not None


def fit(config: FitConfig, *, resume: tuple[dict, Path] | None = None, callbacks=()) -> dict:
    """Run a fit; returns the summary (its ``metrics`` hold PSNR, SSIM, wall seconds, ...).

    ``resume`` = (checkpoint state, run folder) continues that run exactly where it stopped.
    """
    return run_training(build_fit, config, resume=resume, callbacks=callbacks)
