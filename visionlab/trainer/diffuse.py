"""Training a diffusion model in pixel space: DDPM's U-Net or a DiT with Gaussian diffusion (the ``diffuse`` task).

Data flow (design.md): data set -> images (N, C, H, W) in [0, 1] -> x_0 = 2 x - 1 in [-1, 1] -> seeded shuffled
batches -> for each, t ~ U{0 .. T-1} and eps ~ N(0, I) from a generator seeded with (seed, step) ->
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps -> the network predicts eps (L_simple, + lambda L_vlb with a learned
variance) -> AdamW with a linear warm-up, gradient clipping -> EMA of the parameters -> samples from the EMA weights.

**Class conditioning.** With labels the network also reads y; each training label is replaced by the null class with
probability ``class_dropout``, so one network learns p(x | y) and p(x) and sampling can use classifier-free guidance:
eps = eps(x, null) + s (eps(x, y) - eps(x, null)) (Ho & Salimans 2022).

**EMA.** :func:`~visionlab.trainer.base.parameter_ema` averages the *parameters* only: theta_ema <- d_t theta_ema +
(1 - d_t) theta after every step, with the warm-up d_t = min(decay, (1 + t) / (10 + t)), so that a short run's
average is not still its first weights. The sample grids, the logged test loss and ``model.safetensors`` use the EMA
weights (the raw weights with ``--ema 0``; the log also gives the raw weights' test loss beside the EMA's).

**Exact resume.** The batch order of each epoch, t and the noise of each step come from generators seeded by the step,
label dropout and network dropout from the global generator, whose state the checkpoint keeps. A resumed run draws
exactly what an uninterrupted one would: same weights and the same loss log, bit for bit on the CPU.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (every ``eval_every`` steps: mean training loss since the last
line, the EMA model's loss on a fixed test batch with fixed t and noise, ``test_loss_raw`` the raw weights' on the
same batch), ``checkpoint.pt``, ``samples/step-N.png``
(grids during training), ``samples.png`` (the final grid), ``loss.png``, ``model.safetensors`` (EMA weights),
``model.json`` (what ``visionlab sample`` needs), ``metrics.json`` and ``summary.json``.

What ``visionlab sample`` and ``evaluate-samples`` need of this family (``trainer/generative_runs.py``):
:func:`open_run` loads a run, :func:`drawing` checks the sampler options and draws from it. The data, the pixel range,
labels and grids are shared with the GAN (``trainer/generative.py``); the reference classifier is
``trainer/reference.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import torch

from visionlab.components.embeddings import LabelEmbedding
from visionlab.data.classification import ClassificationData
from visionlab.data.images import save_image
from visionlab.models.ddpm_unet import DiffusionUNet, DiffusionUNetConfig, diffusion_unet_config
from visionlab.models.diffusion import DiffusionConfig, GaussianDiffusion
from visionlab.models.dit import DiT, DiTConfig, dit_config
from visionlab.models.samplers import guided
from visionlab.opt import DiffuseConfig
from visionlab.trainer.base import (bf16_autocast, lr_lambda, make_run_dir, parameter_ema, prepare, run_training,
                                    weights_used)
from visionlab.trainer.generative import (Drawing, GenerativeRun, GenerativeTrainer, ema_weights, generative_data,
                                          grid_labels, image_grid, labelled_grid, parse_labels, to_model, to_unit)
from visionlab.trainer.reference import judge_drawing
from visionlab.util.checkpoint import CHECKPOINT_NAME, load_state, load_weights, save_weights
from visionlab.util.distributed import Dist
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import read_json, write_json
from visionlab.util.plots import curve_figure

MODELS = ("ddpm", "dit")
UNCONDITIONAL = "this model is unconditional (trained with --unconditional); it takes no labels"


# ---------------------------------------------------------------------------------------------------------------------
# network and sampling
# ---------------------------------------------------------------------------------------------------------------------

def build_network(config: DiffuseConfig, sample_shape: Sequence[int],
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


def sampler_steps(diffusion: GaussianDiffusion, sampler: str, steps: int | None) -> int:
    """The network calls of ``sampler`` with ``steps`` asked for: DDPM runs all T; DDIM at most T, min(50, T) if
    not given. Anything else is a ConfigError."""
    if sampler not in ("ddpm", "ddim"):
        raise ConfigError(f"sampler must be ddpm or ddim, got {sampler!r}")
    if sampler == "ddpm" and steps not in (None, diffusion.num_timesteps):
        raise ConfigError(f"the ddpm sampler runs all {diffusion.num_timesteps} steps; use --sampler ddim for {steps}")
    if steps is not None and steps > diffusion.num_timesteps:
        raise ConfigError(f"steps must be at most the model's {diffusion.num_timesteps} time steps, got {steps}")
    return diffusion.num_timesteps if sampler == "ddpm" else (steps or min(50, diffusion.num_timesteps))


def with_guidance(model: torch.nn.Module, guidance: float) -> torch.nn.Module:
    """``model`` itself at guidance 1, else classifier-free guided with scale ``guidance`` (models/samplers.py's
    :func:`~visionlab.models.samplers.guided`, which refuses a model that is not class-conditional)."""
    return model if guidance == 1.0 else guided(model, scale=guidance, null_class=model.null_class)


@torch.no_grad()
def generate(model: torch.nn.Module, diffusion: GaussianDiffusion, shape: Sequence[int], *,
             labels: torch.Tensor | None = None, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
             generator: torch.Generator | None = None, batch_size: int = 256, device: torch.device | str = "cpu",
             progress: bool = False) -> torch.Tensor:
    """Draw ``shape[0]`` images (N, C, H, W) in [-1, 1] with DDPM (all T steps) or DDIM (``steps``, default
    min(50, T); see :func:`sampler_steps`).

    ``labels`` (N,) asks for classes; for classifier-free guidance pass ``with_guidance(model, s)``. The starting
    noise comes from ``generator`` (on the CPU), batch after batch: DDIM with eta = 0 gives the same images for a seed
    on any device and for any batch size.
    """
    steps = sampler_steps(diffusion, sampler, steps)
    n, rest = shape[0], tuple(shape[1:])
    generator = generator or torch.Generator().manual_seed(0)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        x_T = torch.randn((b, *rest), generator=generator).to(device)  # x_T ~ N(0, I)
        y = None if labels is None else labels[start:start + b].to(device)
        if sampler == "ddpm":
            x = diffusion.ddpm_sample(model, x_T.shape, y=y, x_T=x_T, generator=generator, device=device,
                                      progress=progress)
        else:
            x = diffusion.ddim_sample(model, x_T.shape, steps=steps, eta=eta, y=y, x_T=x_T,
                                      generator=generator, device=device, progress=progress)
        out.append(x.float().cpu())
    return torch.cat(out)


def diffusion_drawing(model: torch.nn.Module, diffusion: GaussianDiffusion, info: dict, *,
                      labels: torch.Tensor | None, num: int, sampler: str = "ddim", steps: int | None = None,
                      eta: float = 0.0, guidance: float = 1.0, device: torch.device | str = "cpu") -> Drawing:
    """How to draw ``num`` images of ``info["sample_shape"]`` with (the EMA) ``model``: the options checked now,
    before anything is drawn."""
    n_steps = sampler_steps(diffusion, sampler, steps)
    net = with_guidance(model, guidance)

    def draw(seed: int, batch_size: int, progress: bool) -> torch.Tensor:
        return to_unit(generate(net, diffusion, (num, *info["sample_shape"]), labels=labels, sampler=sampler,
                                steps=n_steps, eta=eta, generator=torch.Generator().manual_seed(seed),
                                batch_size=batch_size, device=device, progress=progress))

    return Drawing(labels=labels, draw=draw, tag=f"{sampler}-{n_steps}-g{guidance:g}",
                   record={"sampler": sampler, "steps": n_steps, "eta": eta, "guidance": guidance})


# ---------------------------------------------------------------------------------------------------------------------
# the trainer
# ---------------------------------------------------------------------------------------------------------------------

class DiffuseTrainer(GenerativeTrainer):
    """Trains a DiffusionUNet or a DiT on images with L_simple (+ L_vlb), EMA and optional class conditioning."""

    task = "diffuse"
    eval_batch = 256  # test images of the fixed evaluation batch

    def __init__(self, *, config: DiffuseConfig, data: ClassificationData, model: torch.nn.Module,
                 diffusion: GaussianDiffusion, run_dir: Path, device: torch.device, dist: Dist = Dist()):
        super().__init__(config=config, data=data, run_dir=run_dir, device=device, dist=dist)
        self.model, self.diffusion = model, diffusion  # model unwrapped: EMA, sampling, state
        self.conditional = not config.unconditional
        self.use_epochs(len(data.train_y), config.batch_size)
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
        self.ema = parameter_ema(model, config.ema)  # of the parameters only, in eval mode
        self.autocast = bf16_autocast(config.amp, device)
        self.loss_sum, self.loss_count = 0.0, 0  # training losses since the last log line
        # The fixed evaluation batch: the first test images with t and noise drawn once from the seed.
        g = torch.Generator().manual_seed(config.seed + 12345)
        x0 = to_model(data.test_x[:self.eval_batch])
        self.eval_x0 = x0.to(device)
        self.eval_y = data.test_y[:self.eval_batch].to(device) if self.conditional else None
        self.eval_t = torch.randint(0, diffusion.num_timesteps, (len(x0),), generator=g).to(device)
        self.eval_noise = torch.randn(x0.shape, generator=g).to(device)

    # ---------------------------------------------------------------- what the network sees
    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @property
    def null_class(self) -> int | None:
        return self.model.null_class

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
    def test_losses(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The losses of ``model`` (in eval mode) on the fixed test batch, with its fixed t and noise."""
        was_training = model.training
        model.eval()
        with self.autocast():
            losses = self.diffusion.training_loss(model, self.eval_x0, y=self.eval_y, t=self.eval_t,
                                                  noise=self.eval_noise)
        model.train(was_training)
        return losses

    def evaluate(self) -> dict[str, float]:
        losses = self.test_losses(self.eval_model)
        train_loss = self.loss_sum / max(1, self.loss_count)
        self.loss_sum, self.loss_count = 0.0, 0
        record = {"train_loss": train_loss, "test_loss": losses["loss"].item(), "test_mse": losses["mse"].item()}
        if self.ema is not None:  # the raw weights beside the EMA's: shows what the average gains, or still lags
            record["test_loss_raw"] = self.test_losses(self.model)["loss"].item()
        return record

    # ---------------------------------------------------------------- pictures
    def sample_grid(self, path: Path) -> Path:
        """A grid of DDIM samples of the EMA model from a fixed seed: one row per class (conditional) or 8 x 8."""
        labels = grid_labels(len(self.data.class_names)) if self.conditional else None
        n = len(labels) if labels is not None else 64
        model = self.eval_model
        was_training = model.training
        model.eval()
        with self.autocast():
            x = generate(with_guidance(model, self.config.guidance if labels is not None else 1.0), self.diffusion,
                         (n, *self.data.sample_shape), labels=labels, sampler="ddim", steps=self.config.sample_steps,
                         generator=torch.Generator().manual_seed(self.config.seed), device=self.device)
        model.train(was_training)
        save_image(path, image_grid(to_unit(x)) if labels is None else
                   labelled_grid(to_unit(x), labels, self.data.class_names))
        return path

    # ---------------------------------------------------------------- state and outputs
    def model_info(self) -> dict:
        """What ``visionlab sample`` needs to rebuild the network and the diffusion (also in the checkpoint)."""
        return {"task": self.task, "model": self.config.model, "model_config": dataclasses.asdict(self.model.config),
                "diffusion_config": dataclasses.asdict(self.diffusion.config), **self.data_record(self.conditional)}

    def checkpointed(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "ema": self.ema}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "loss_sum": self.loss_sum, "loss_count": self.loss_count,
                "model_info": self.model_info()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)  # the EMA stays in eval mode: loading a state leaves the mode alone
        self.loss_sum, self.loss_count = float(state["loss_sum"]), int(state["loss_count"])

    def finish(self, status: str) -> dict:
        info = self.model_info()
        save_weights(self.run_dir / "model.safetensors", self.eval_model.state_dict(),
                     metadata={"task": self.task, "model": self.config.model, "ema": str(self.config.ema)})
        write_json(self.run_dir / "model.json", info)
        self.picture("samples", self.sample_grid(self.run_dir / "samples.png"))
        steps = [r["step"] for r in self.history]
        title = f"{self.data.name}: {self.config.model}, {self.step} steps"
        if self.history:
            curve_figure(self.run_dir / "loss.png", {
                "train loss (mean since the last point)": (steps, [r["train_loss"] for r in self.history]),
                f"test loss ({'EMA' if self.ema is not None else 'raw'} weights, fixed batch)":
                    (steps, [r["test_loss"] for r in self.history])},
                xlabel="step", ylabel="loss", title=title)
        last = self.history[-1] if self.history else {}
        metrics = {"train_loss": last.get("train_loss"), "test_loss": last.get("test_loss"),
                   "test_loss_raw": last.get("test_loss_raw", last.get("test_loss")),
                   **self.size_metrics(self.model), "ema": self.config.ema, "weights": weights_used(self.config.ema),
                   "status": status}
        if self.config.fid_samples:
            labels = None
            if self.conditional:
                labels = torch.arange(self.config.fid_samples) % len(self.data.class_names)
            draw = diffusion_drawing(self.eval_model, self.diffusion, info, labels=labels,
                                     num=self.config.fid_samples, sampler="ddim", steps=self.config.sample_steps,
                                     device=self.device)
            metrics["evaluation"] = judge_drawing(draw, self.data, seed=self.config.seed, device=self.device,
                                                  quiet=self.config.quiet)
            judged = {f"evaluation/{k}": v for k, v in metrics["evaluation"].items()}  # FID, confidence, ...
            self.board.scalars({"step": self.step, **judged})
        write_json(self.run_dir / "metrics.json", metrics)
        return metrics


def build_diffuse(config: DiffuseConfig, *, run_dir: Path | None = None) -> DiffuseTrainer:
    dist, device = prepare(config)
    data = generative_data(config.data, image_size=config.image_size, seed=config.seed, test_size=config.test_size)
    model, diffusion = build_network(config, data.sample_shape, len(data.class_names))
    model = model.to(device)
    if run_dir is None:
        run_dir = make_run_dir(dist, config, config.out, "diffuse", config.name or f"{data.name}-{config.model}")
    return DiffuseTrainer(config=config, data=data, model=model, diffusion=diffusion, run_dir=run_dir, device=device,
                          dist=dist)


def train(config: DiffuseConfig, *, resume: tuple[dict, Path] | None = None, callbacks=()) -> dict:
    """Train a diffusion model; ``resume`` = (checkpoint state, run folder) continues that run exactly."""
    return run_training(build_diffuse, config, resume=resume, callbacks=callbacks)


# ---------------------------------------------------------------------------------------------------------------------
# loading a run
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
    return state["model_info"], ema_weights(state, "model")


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


# ---------------------------------------------------------------------------------------------------------------------
# the family's part in sampling and judging finished runs (trainer/generative_runs.py)
# ---------------------------------------------------------------------------------------------------------------------

def open_run(run: str | Path, *, device: torch.device | str = "cpu", **options) -> GenerativeRun:
    """:func:`load_diffusion_run` as a :class:`GenerativeRun`; the sampler ``options`` are checked by
    :func:`drawing`, which needs the model."""
    model, diffusion, info, folder = load_diffusion_run(run, device=device)
    return GenerativeRun(model=model, info=info, folder=folder, process=diffusion)


def drawing(loaded: GenerativeRun, *, labels=None, num: int = 64, sampler: str = "ddim", steps: int | None = None,
            eta: float = 0.0, guidance: float = 1.0, device: torch.device | str = "cpu") -> Drawing:
    """How to draw ``num`` images of the classes ``labels`` (see :func:`parse_labels`) from a loaded run."""
    y = parse_labels(labels, loaded.info, num, unconditional=UNCONDITIONAL)
    return diffusion_drawing(loaded.model, loaded.process, loaded.info, labels=y, num=num, sampler=sampler,
                             steps=steps, eta=eta, guidance=guidance, device=device)
