"""Training a diffusion model in pixel space: DDPM's U-Net or a DiT with Gaussian diffusion (the ``diffuse`` task).

Data flow (design.md): data set -> images (N, C, H, W) in [0, 1] -> x_0 = 2 x - 1 in [-1, 1] -> seeded shuffled
batches -> for each, t ~ U{0 .. T-1} and eps ~ N(0, I) from a generator seeded with (seed, step) ->
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps -> the network predicts eps (L_simple, + lambda L_vlb with a learned
variance) -> AdamW with a linear warm-up, gradient clipping -> EMA of the parameters -> samples from the EMA weights.

**Class conditioning.** With labels the network also reads y; each training label is replaced by the null class with
probability ``class_dropout``, so one network learns p(x | y) and p(x) and sampling can use classifier-free guidance:
eps = eps(x, null) + s (eps(x, y) - eps(x, null)) (Ho & Salimans 2022).

**EMA.** ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn(decay)`` averages the *parameters* only
(``use_buffers=False``): theta_ema <- decay theta_ema + (1 - decay) theta after every step. Averaging buffers too is
what gave black samples in other projects (users.md #11). The sample grids, the logged test loss and
``model.safetensors`` use the EMA weights.

**Exact resume.** The batch order of each epoch, t and the noise of each step come from generators seeded by the step,
label dropout and network dropout from the global generator, whose state the checkpoint keeps. A resumed run draws
exactly what an uninterrupted one would: same weights and the same loss log, bit for bit on the CPU.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (every ``eval_every`` steps: mean training loss since the last
line, the EMA model's loss on a fixed test batch with fixed t and noise), ``checkpoint.pt``, ``samples/step-N.png``
(grids during training), ``samples.png`` (the final grid), ``loss.png``, ``model.safetensors`` (EMA weights),
``model.json`` (what ``visionlab sample`` needs), ``metrics.json`` and ``summary.json``.

Sampling from a run: :func:`sample_run` (``visionlab sample``); judging samples: ``trainer/evaluate_samples.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from visionlab.data.classification import ClassificationData, classification_data
from visionlab.data.images import save_image
from visionlab.models.diffusion import DiffusionConfig, GaussianDiffusion
from visionlab.models.samplers import guided
from visionlab.models.dit import DiT, DiTConfig, dit_config
from visionlab.models.unet import DiffusionUNet, DiffusionUNetConfig, diffusion_unet_config
from visionlab.components.embeddings import LabelEmbedding
from visionlab.trainer.base import Trainer, epoch_batch, lr_lambda, make_run_dir, prepare
from visionlab.util.checkpoint import CHECKPOINT_NAME, load_state, load_weights, save_weights
from visionlab.util.device import pick_device
from visionlab.util.distributed import Dist
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import read_json, write_json
from visionlab.util.plots import curve_figure

if TYPE_CHECKING:  # the config class lives in opt.py, a layer above; the trainer only reads its fields
    from visionlab.opt import DiffuseConfig

MODELS = ("ddpm", "dit")


# ---------------------------------------------------------------------------------------------------------------------
# data, network, images
# ---------------------------------------------------------------------------------------------------------------------

def default_image_size(data: str) -> int:
    """16 for scikit-learn's 8 x 8 digits (upsampled), 32 for everything else."""
    return 16 if data == "digits" else 32


def diffusion_data(name: str, *, image_size: int | None = None, seed: int = 0,
                   test_size: float = 0.25) -> ClassificationData:
    """Images (N, C, H, W) in [0, 1] with labels, resized bilinearly to ``image_size`` (digits: 8 -> 16)."""
    data = classification_data(name, image_size=image_size or default_image_size(name), seed=seed,
                               test_size=test_size)
    if data.train_x.ndim != 4:
        raise DataError(f"{name}: diffusion here trains on images (N, C, H, W), got {tuple(data.train_x.shape)}")
    return data


def to_model(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> [-1, 1], the range the diffusion is defined on."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clipped."""
    return ((x + 1) / 2).clamp(0, 1)


def build_network(config: "DiffuseConfig", sample_shape: Sequence[int],
                  num_classes: int) -> tuple[torch.nn.Module, GaussianDiffusion]:
    """The network (a DiffusionUNet or a DiT sized for the data) and its Gaussian diffusion."""
    c, h, w = sample_shape
    if h != w:
        raise DataError(f"diffusion here needs square images, got {h}x{w}; pass an image size")
    variance = config.variance or ("learned_range" if config.model == "dit" else "fixed_small")
    learn_sigma = variance == "learned_range"
    k = 0 if config.unconditional else num_classes
    if config.model == "ddpm":
        preset = config.preset or ("digits" if (c, h) == (1, 16) else "tiny32")
        sizes = {n: getattr(config, n) for n in ("base_channels", "num_res_blocks", "dropout")
                 if getattr(config, n) is not None}
        net = DiffusionUNet(config=diffusion_unet_config(preset, image_size=h, in_channels=c, num_classes=k,
                                                         class_dropout=config.class_dropout, learn_sigma=learn_sigma,
                                                         **sizes))
    elif config.model == "dit":
        sizes = {n: getattr(config, n) for n in ("dim", "depth", "num_heads", "patch_size")
                 if getattr(config, n) is not None}
        net = DiT(config=dit_config(config.preset or "digits", input_size=h, in_channels=c, num_classes=k,
                                    class_dropout=config.class_dropout, learn_sigma=learn_sigma, **sizes))
    else:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {config.model!r}")
    diffusion = GaussianDiffusion(config=DiffusionConfig(timesteps=config.timesteps, schedule=config.schedule,
                                                         prediction=config.prediction, variance=variance,
                                                         min_snr_gamma=config.min_snr or None))
    return net, diffusion


def image_grid(images: torch.Tensor, *, columns: int = 8, pad: int = 1, min_size: int = 256) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] -> one picture (H', W', C) with a white frame, enlarged (nearest) to at least
    ``min_size`` pixels across so that 16 x 16 digits can be seen."""
    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = torch.ones(rows * columns, c, h + 2 * pad, w + 2 * pad)
    canvas[:n, :, pad:pad + h, pad:pad + w] = images.float().cpu()
    grid = rearrange(canvas, "(r k) c h w -> c (r h) (k w)", r=rows, k=columns)  # (C, H', W')
    scale = max(1, math.ceil(min_size / grid.shape[-1]))
    grid = F.interpolate(grid[None], scale_factor=scale, mode="nearest")[0]
    return grid.permute(1, 2, 0)  # (H', W', C)


@torch.no_grad()
def generate(model: torch.nn.Module, diffusion: GaussianDiffusion, shape: Sequence[int], *,
             labels: torch.Tensor | None = None, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
             guidance: float = 1.0, null_class: int | None = None, generator: torch.Generator | None = None,
             batch_size: int = 256, device: torch.device | str = "cpu", progress: bool = False) -> torch.Tensor:
    """Draw ``shape[0]`` images (N, C, H, W) in [-1, 1] with DDPM (all T steps) or DDIM (``steps``, default 50).

    ``labels`` (N,) asks for classes; ``guidance`` s != 1 uses classifier-free guidance with ``null_class``. The
    starting noise comes from ``generator`` (on the CPU), batch after batch: DDIM with eta = 0 gives the same images
    for a seed on any device and for any batch size.
    """
    if sampler not in ("ddpm", "ddim"):
        raise ConfigError(f"sampler must be ddpm or ddim, got {sampler!r}")
    if sampler == "ddpm" and steps not in (None, diffusion.num_timesteps):
        raise ConfigError(f"the ddpm sampler runs all {diffusion.num_timesteps} steps; use --sampler ddim for "
                          f"{steps}")
    net = model
    if labels is not None and guidance != 1.0:
        if null_class is None:
            raise ConfigError("guidance needs a class-conditional model")
        net = guided(model, scale=guidance, null_class=null_class)
    n, rest = shape[0], tuple(shape[1:])
    generator = generator or torch.Generator().manual_seed(0)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        x_T = torch.randn((b, *rest), generator=generator).to(device)  # x_T ~ N(0, I)
        y = None if labels is None else labels[start:start + b].to(device)
        if sampler == "ddpm":
            x = diffusion.ddpm_sample(net, x_T.shape, y=y, x_T=x_T, generator=generator, device=device,
                                      progress=progress)
        else:
            x = diffusion.ddim_sample(net, x_T.shape, steps=steps or 50, eta=eta, y=y, x_T=x_T, generator=generator,
                                      device=device, progress=progress)
        out.append(x.float().cpu())
    return torch.cat(out)


def grid_labels(num_classes: int, *, per_class: int = 8, max_classes: int = 16) -> torch.Tensor:
    """Labels of a grid: one row of ``per_class`` images per class: (min(K, max_classes) * per_class,)."""
    return torch.arange(min(num_classes, max_classes)).repeat_interleave(per_class)


# ---------------------------------------------------------------------------------------------------------------------
# the trainer
# ---------------------------------------------------------------------------------------------------------------------

class DiffuseTrainer(Trainer):
    """Trains a DiffusionUNet or a DiT on images with L_simple (+ L_vlb), EMA and optional class conditioning."""

    task = "diffuse"
    eval_batch = 256  # test images of the fixed evaluation batch

    def __init__(self, *, config: "DiffuseConfig", data: ClassificationData, model: torch.nn.Module,
                 diffusion: GaussianDiffusion, run_dir: Path, device: torch.device, dist: Dist = Dist()):
        super().__init__(config=config, run_dir=run_dir, device=device, total_steps=config.steps,
                         eval_every=config.eval_every, checkpoint_every=config.checkpoint_every or config.steps,
                         quiet=config.quiet, dist=dist)
        self.data, self.model, self.diffusion = data, model, diffusion  # model unwrapped: EMA, sampling, state
        self.conditional = not config.unconditional
        self.steps_per_epoch = math.ceil(len(data.train_y) / config.batch_size)
        dist.check_batch(len(data.train_y) - (self.steps_per_epoch - 1) * config.batch_size, "the last batch")
        # The label dropout of classifier-free guidance is drawn here, with the step's generator and for the global
        # batch, rather than inside the network: then it does not depend on how a batch is split over processes.
        embed = next((m for m in model.modules() if isinstance(m, LabelEmbedding)), None)
        self.label_dropout = embed.dropout if embed is not None and self.conditional else 0.0
        if embed is not None:
            embed.dropout = 0.0  # the network takes the labels as given (the null class where dropped)
        self.net = dist.wrap(model)  # training forwards (DDP with several processes)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        # A linear warm-up, then constant (DDPM, DiT) or a cosine decay to 0 at the end: for a short run of known
        # length the small late steps gain more than the EMA alone.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(warmup=config.warmup_steps, total=config.steps, decay=config.lr_schedule))
        # EMA of the parameters only (use_buffers=False): the average never touches buffers.
        self.ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema)) if config.ema else None)
        if self.ema is not None:
            self.ema.module.eval()  # sampling: no dropout, no label dropout
        bf16 = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda"
                                        and torch.cuda.is_bf16_supported())
        self.autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else \
            contextlib.nullcontext
        self.loss_sum, self.loss_count = 0.0, 0  # training losses since the last log line
        # The fixed evaluation batch: the first test images with t and noise drawn once from the seed.
        g = torch.Generator().manual_seed(config.seed + 12345)
        x0 = to_model(data.test_x[:self.eval_batch])
        self.eval_x0 = x0.to(device)
        self.eval_y = data.test_y[:self.eval_batch].to(device) if self.conditional else None
        self.eval_t = torch.randint(0, diffusion.num_timesteps, (len(x0),), generator=g).to(device)
        self.eval_noise = torch.randn(x0.shape, generator=g).to(device)
        self.callbacks.append(DiffuseTrainer._grid_callback)

    # ---------------------------------------------------------------- what the network sees
    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @property
    def null_class(self) -> int | None:
        return self.model.null_class

    def batch(self, step: int) -> torch.Tensor:
        """Indices of step ``step``'s batch: a fresh permutation per epoch, seeded by (seed, epoch)."""
        return epoch_batch(step, num_examples=len(self.data.train_y), batch_size=self.config.batch_size,
                           steps_per_epoch=self.steps_per_epoch, seed=self.config.seed)

    def train_step(self, step: int) -> dict[str, float]:
        index = self.batch(step)
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step + 7)  # t, noise, flips of this step
        x0 = to_model(self.data.train_x[index])  # (B, C, H, W) in [-1, 1]
        if self.config.flip:
            flip = torch.rand(len(index), generator=g) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, self.diffusion.num_timesteps, (len(index),), generator=g)  # t ~ U{0 .. T-1}
        noise = torch.randn(x0.shape, generator=g)  # eps ~ N(0, I)
        mine = self.dist.shard(len(index))  # this rank's share of the global batch (all of it with one process)
        y = None
        if self.conditional:
            y = self.data.train_y[index]
            if self.label_dropout:  # y -> null class with probability p (Ho & Salimans 2022)
                y = torch.where(torch.rand(len(index), generator=g) < self.label_dropout, self.null_class, y)
            y = y[mine].to(self.device)
        x0, t, noise = x0[mine].to(self.device), t[mine].to(self.device), noise[mine].to(self.device)
        with self.autocast():
            losses = self.diffusion.training_loss(self.net, x0, y=y, t=t, noise=noise)
        value = self.optimizer_step(losses["loss"].float(), self.model, self.optimizer, scheduler=self.scheduler,
                                    grad_clip=self.config.grad_clip, ema=self.ema, n_local=len(t),
                                    n_global=len(index))
        self.loss_sum += value
        self.loss_count += 1
        return {"loss": value, "mse": losses["mse"].item(), "vb": losses["vb"].item(),
                "lr": self.optimizer.param_groups[0]["lr"]}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        model = self.eval_model
        was_training = model.training
        model.eval()
        with self.autocast():
            losses = self.diffusion.training_loss(model, self.eval_x0, y=self.eval_y, t=self.eval_t,
                                                  noise=self.eval_noise)
        model.train(was_training)
        train_loss = self.loss_sum / max(1, self.loss_count)
        self.loss_sum, self.loss_count = 0.0, 0
        return {"train_loss": train_loss, "test_loss": losses["loss"].item(), "test_mse": losses["mse"].item()}

    # ---------------------------------------------------------------- pictures
    def sample_grid(self, path: Path, *, title_step: int | None = None) -> Path:
        """A grid of DDIM samples of the EMA model from a fixed seed: one row per class (conditional) or 8 x 8."""
        labels = grid_labels(len(self.data.class_names)) if self.conditional else None
        n = len(labels) if labels is not None else 64
        model = self.eval_model
        was_training = model.training
        model.eval()
        with self.autocast():
            x = generate(model, self.diffusion, (n, *self.data.sample_shape), labels=labels, sampler="ddim",
                         steps=self.config.sample_steps, guidance=self.config.guidance if labels is not None else 1.0,
                         null_class=self.null_class, generator=torch.Generator().manual_seed(self.config.seed),
                         device=self.device)
        model.train(was_training)
        save_image(path, image_grid(to_unit(x)))
        return path

    @staticmethod
    def _grid_callback(trainer: "DiffuseTrainer") -> None:
        every = trainer.config.sample_every
        if every and trainer.step % every == 0 and trainer.step < trainer.total_steps:
            trainer.sample_grid(trainer.run_dir / "samples" / f"step-{trainer.step:07d}.png")

    # ---------------------------------------------------------------- state and outputs
    def model_info(self) -> dict:
        """What ``visionlab sample`` needs to rebuild the network and the diffusion (also in the checkpoint)."""
        return {"task": self.task, "model": self.config.model, "model_config": dataclasses.asdict(self.model.config),
                "diffusion_config": dataclasses.asdict(self.diffusion.config),
                "sample_shape": list(self.data.sample_shape), "class_names": list(self.data.class_names),
                "conditional": self.conditional, "data": self.config.data, "image_size": self.data.sample_shape[-1],
                "seed": self.config.seed, "test_size": self.config.test_size}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "ema": None if self.ema is None else self.ema.state_dict(),
                "loss_sum": self.loss_sum, "loss_count": self.loss_count, "model_info": self.model_info()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
            self.ema.module.eval()
        self.loss_sum, self.loss_count = float(state["loss_sum"]), int(state["loss_count"])

    def finish(self, status: str) -> dict:
        info = self.model_info()
        save_weights(self.run_dir / "model.safetensors", self.eval_model.state_dict(),
                     metadata={"task": self.task, "model": self.config.model, "ema": str(self.config.ema)})
        write_json(self.run_dir / "model.json", info)
        self.sample_grid(self.run_dir / "samples.png")
        steps = [r["step"] for r in self.history]
        title = f"{self.data.name}: {self.config.model}, {self.step} steps"
        if self.history:
            curve_figure(self.run_dir / "loss.png", {
                "train loss (mean since the last point)": (steps, [r["train_loss"] for r in self.history]),
                "test loss (EMA model, fixed batch)": (steps, [r["test_loss"] for r in self.history])},
                xlabel="step", ylabel="loss", title=title)
        last = self.history[-1] if self.history else {}
        metrics = {"train_loss": last.get("train_loss"), "test_loss": last.get("test_loss"), "steps": self.step,
                   "train_seconds": self.train_seconds,
                   "seconds_per_step": self.train_seconds / max(self.step, 1),
                   "parameters": sum(p.numel() for p in self.model.parameters()),
                   "train_examples": len(self.data.train_y), "ema": self.config.ema, "status": status}
        if self.config.fid_samples:
            from visionlab.trainer.evaluate_samples import evaluate_model

            labels = None
            if self.conditional:
                labels = torch.arange(self.config.fid_samples) % len(self.data.class_names)
            metrics["evaluation"] = evaluate_model(
                self.eval_model, self.diffusion, info, data=self.data, num=self.config.fid_samples, labels=labels,
                sampler="ddim", steps=self.config.sample_steps, guidance=1.0, seed=self.config.seed,
                device=self.device, quiet=self.config.quiet)
        write_json(self.run_dir / "metrics.json", metrics)
        return metrics


def build_diffuse(config: "DiffuseConfig", *, run_dir: Path | None = None) -> DiffuseTrainer:
    dist, device = prepare(config)
    data = diffusion_data(config.data, image_size=config.image_size, seed=config.seed, test_size=config.test_size)
    model, diffusion = build_network(config, data.sample_shape, len(data.class_names))
    model = model.to(device)
    if run_dir is None:
        run_dir = make_run_dir(dist, config, config.out, "diffuse", config.name or f"{data.name}-{config.model}")
    return DiffuseTrainer(config=config, data=data, model=model, diffusion=diffusion, run_dir=run_dir, device=device,
                          dist=dist)


def train(config: "DiffuseConfig", *, resume: tuple[dict, Path] | None = None, callbacks=()) -> dict:
    """Train a diffusion model; ``resume`` = (checkpoint state, run folder) continues that run exactly."""
    trainer = build_diffuse(config, run_dir=resume[1] if resume else None)
    trainer.callbacks.extend(callbacks)
    if resume:
        trainer.resume(resume[0])
    return trainer.train()


# ---------------------------------------------------------------------------------------------------------------------
# sampling from a run
# ---------------------------------------------------------------------------------------------------------------------

def network_from_info(info: dict) -> tuple[torch.nn.Module, GaussianDiffusion]:
    """Rebuild the (untrained) network and the diffusion that ``model.json`` describes."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in info["model_config"].items()}
    if info.get("model") == "ddpm":
        model = DiffusionUNet(config=DiffusionUNetConfig(**fields))
    elif info.get("model") == "dit":
        model = DiT(config=DiTConfig(**fields))
    else:
        raise DataError(f"unknown diffusion network {info.get('model')!r} (expected ddpm or dit)")
    return model, GaussianDiffusion(config=DiffusionConfig(**info["diffusion_config"]))


def _from_checkpoint(path: Path) -> tuple[dict, dict]:
    state = load_state(path)
    if state.get("task") != DiffuseTrainer.task:
        raise DataError(f"{path} is a {state.get('task')!r} checkpoint, not a diffusion one (train one with "
                        f"'visionlab train ddpm' or 'visionlab train dit')")
    if state.get("ema") is not None:  # AveragedModel keeps the network under "module." and a counter
        weights = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    else:
        weights = state["model"]
    return state["model_info"], weights


def load_diffusion_run(run: str | Path, *, device: str | torch.device = "cpu"
                       ) -> tuple[torch.nn.Module, GaussianDiffusion, dict, Path]:
    """The EMA network of a diffusion run (its folder, or a ``checkpoint.pt`` of a finished or unfinished run), its
    diffusion, its ``model.json`` record and its folder."""
    path = Path(run)
    if path.is_file():
        info, weights = _from_checkpoint(path)
        folder = path.parent
    elif path.is_dir():
        folder = path
        if (path / "model.json").is_file():
            info = read_json(path / "model.json")
            if info.get("task") != DiffuseTrainer.task:
                kind = info.get("model") or info.get("task") or "another"
                raise DataError(f"{path} holds a {kind} model, not a diffusion model (ddpm or dit)")
            weights = load_weights(path)
        elif (path / CHECKPOINT_NAME).is_file():
            info, weights = _from_checkpoint(path / CHECKPOINT_NAME)
        else:
            raise DataError(f"{path} is not a diffusion run (no model.json or {CHECKPOINT_NAME}); train one with "
                            f"'visionlab train ddpm'")
    else:
        raise DataError(f"no such run or checkpoint: {path}")
    model, diffusion = network_from_info(info)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise DataError(f"the weights of {path} do not fit its model description: "
                        f"{str(e).strip().splitlines()[0]}") from None
    return model.to(device).eval(), diffusion, info, folder


def parse_labels(labels, info: dict, num: int) -> torch.Tensor | None:
    """Requested classes -> (num,) labels, the list repeated to fill ``num``; None: every class in turn.

    ``labels``: None, a string ("3", "0,1,2", class names) or a sequence of indices / names.
    """
    names = list(info["class_names"])
    if not info.get("conditional"):
        if labels is not None and labels != "":
            raise DataError("this model is unconditional (trained with --unconditional); it takes no labels")
        return None
    if labels is None or labels == "":
        return torch.arange(num) % len(names)
    items = [s.strip() for s in labels.split(",") if s.strip()] if isinstance(labels, str) else list(labels)
    if not items:
        raise DataError("no labels given")
    values = []
    for item in items:
        if isinstance(item, str) and item in names:
            values.append(names.index(item))
            continue
        try:
            k = int(item)
        except (TypeError, ValueError):
            raise DataError(f"unknown class {item!r}; the model knows {', '.join(names)}") from None
        if not 0 <= k < len(names):
            raise DataError(f"label {k} is out of range: the model knows classes 0 .. {len(names) - 1} "
                            f"({', '.join(names)})")
        values.append(k)
    return torch.tensor(values, dtype=torch.long).repeat(math.ceil(num / len(values)))[:num]


def sample_run(run: str | Path, *, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
               guidance: float = 1.0, labels=None, num: int = 64, seed: int = 0, batch_size: int = 256,
               out: str | Path | None = None, device: str = "auto", progress: bool = False) -> dict:
    """Generate ``num`` images with a diffusion run's EMA weights; write a grid (.png), the images (.npy, (N, C, H, W)
    float32 in [0, 1]) and, for a conditional model, the labels (``.labels.npy``). Returns where, and how long it took.
    A GAN run is handed to :func:`visionlab.trainer.adversarial.sample_gan_run` (which refuses the sampler options).
    """
    from visionlab.trainer.adversarial import is_gan_run, sample_gan_run  # imported here: it imports this module

    if is_gan_run(run):
        return sample_gan_run(run, labels=labels, num=num, seed=seed, batch_size=batch_size, out=out, device=device,
                              sampler=sampler, steps=steps, eta=eta, guidance=guidance)
    torch_device = pick_device(device)
    model, diffusion, info, folder = load_diffusion_run(run, device=torch_device)
    y = parse_labels(labels, info, num)
    if y is None and guidance != 1.0:
        raise DataError("guidance needs a class-conditional model; this one is unconditional")
    if sampler == "ddpm" and steps not in (None, diffusion.num_timesteps):
        raise ConfigError(f"the ddpm sampler runs all {diffusion.num_timesteps} steps; use --sampler ddim for {steps}")
    if steps is not None and steps > diffusion.num_timesteps:
        raise ConfigError(f"steps must be at most the model's {diffusion.num_timesteps} time steps, got {steps}")
    n_steps = diffusion.num_timesteps if sampler == "ddpm" else (steps or min(50, diffusion.num_timesteps))
    start = time.perf_counter()
    x = generate(model, diffusion, (num, *info["sample_shape"]), labels=y, sampler=sampler, steps=n_steps, eta=eta,
                 guidance=guidance, null_class=model.null_class, generator=torch.Generator().manual_seed(seed),
                 batch_size=batch_size, device=torch_device, progress=progress)
    seconds = time.perf_counter() - start
    images = to_unit(x)  # (N, C, H, W) in [0, 1]
    stem = Path(out) if out else folder / "samples" / f"{sampler}-{n_steps}-g{guidance:g}-seed{seed}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.save(stem.with_name(stem.name + ".npy"), images.numpy().astype(np.float32))
    if y is not None:
        np.save(stem.with_name(stem.name + ".labels.npy"), y.numpy())
    save_image(stem.with_name(stem.name + ".png"), image_grid(images[:256], columns=min(16, max(8, num // 8))))
    return {"images": str(stem.with_name(stem.name + ".npy")), "grid": str(stem.with_name(stem.name + ".png")),
            "labels": None if y is None else str(stem.with_name(stem.name + ".labels.npy")), "num": num,
            "sampler": sampler, "steps": n_steps, "eta": eta, "guidance": guidance, "seed": seed,
            "seconds": seconds, "model": info["model"], "run": str(folder)}
