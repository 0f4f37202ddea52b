"""Training a GAN: DCGAN's generator G and discriminator D, optionally class-conditional (the ``adversarial`` task).

Data flow (design.md): data set -> images (N, C, H, W) in [0, 1] -> x = 2 x - 1 in [-1, 1] -> seeded shuffled batches
-> alternating optimiser steps (Goodfellow et al. Alg. 1)::

    for each generator step:
        repeat n_critic times (1 for DCGAN, 5 for WGAN-GP):
            x ~ data, z ~ N(0, I), fake = G(z) without gradient
            D step on  L_D(d(x), d(fake)) (+ lambda GP for wgan-gp)            models/gan.py: discriminator_loss
        z ~ N(0, I): G step on L_G(d(G(z))), D frozen                          models/gan.py: generator_loss
        theta_ema <- d_t theta_ema + (1 - d_t) theta_G, d_t = min(decay, (1 + t) / (10 + t))

Two Adam optimisers: lr 2e-4, betas (0.5, 0.999) (DCGAN); lr 1e-4, betas (0, 0.9), n_critic 5 for WGAN-GP (Gulrajani
et al. Alg. 1). A class-conditional D step asks G for the labels of its real batch (so that WGAN-GP's interpolates
join images of one class); a G step draws its labels uniformly.

**What a D step and a G step touch.** A D step reads generated images that carry no graph and changes only D; a G step
freezes D's parameters and changes only G. D's BatchNorm always uses the batch's own statistics (it keeps no running
ones), so a G step leaves D's state exactly as it was.

**EMA.** :func:`~visionlab.trainer.base.parameter_ema` averages G's *parameters* only; G's BatchNorm running
statistics are copied from the live generator after every step (averaging them was what gave black samples
elsewhere, users.md #11; never updating them would leave the initial ones). Grids, ``model.safetensors`` and
``visionlab sample`` use the average, in eval mode: an image then depends on its own noise only, not on the batch it
was drawn in.

**Warnings** (the discriminator wins, mode collapse; ``trainer/gan_monitor.py``) are printed once and written into the
next ``metrics.jsonl`` line and ``metrics.json``.

**Exact resume.** Batch order per epoch and the noise, labels and interpolation weights of each step come from
generators seeded by (seed, epoch) and (seed, step); the checkpoint keeps both networks, both optimisers, the EMA,
the running sums of the log and the warnings given. A resumed run equals an uninterrupted one bit for bit on the CPU.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (every ``eval_every`` steps: ``loss``, D's loss at that step;
``d_loss``, ``g_loss``, ``d_accuracy``, ``d_real``, ``d_fake`` (mean logits), ``gp``: means since the last line;
``diversity``), ``checkpoint.pt``, ``samples/step-N.png``, ``samples.png``, ``samples.gif`` (those grids from fixed
noise along training, one frame each), ``loss.png``, ``model.safetensors`` (EMA generator),
``discriminator.safetensors``, ``model.json`` (what ``visionlab sample`` / ``evaluate-samples`` need), ``metrics.json``
and ``summary.json``.

What ``visionlab sample`` and ``evaluate-samples`` need of this family (``trainer/generative_runs.py``):
:func:`open_run` loads a run (refusing the diffusion samplers' options), :func:`drawing` draws from it. The
``gan-augment`` experiment, which uses this trainer, is in ``trainer/gan_augment.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from visionlab.data.classification import ClassificationData
from visionlab.data.images import save_image
from visionlab.models.gan import (DCGANConfig, Discriminator, Generator, dcgan_config, discriminator_loss,
                                  generator_loss, gradient_penalty)
from visionlab.opt import GanConfig
from visionlab.trainer.base import make_run_dir, parameter_ema, prepare, run_training, weights_used
from visionlab.trainer.gan_monitor import GanMonitor
from visionlab.trainer.generative import (Drawing, GenerativeRun, GenerativeTrainer, ema_weights, generative_data,
                                          grid_labels, image_grid, labelled_grid, parse_labels, progress_gif, to_model,
                                          to_unit)
from visionlab.trainer.reference import judge_drawing
from visionlab.util.checkpoint import CHECKPOINT_NAME, load_state, load_weights, save_weights
from visionlab.util.distributed import Dist
from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import read_json, write_json
from visionlab.util.plots import curve_figure

TASK = "adversarial"
UNCONDITIONAL = "this GAN is unconditional (trained without --conditional); it takes no labels"


# ---------------------------------------------------------------------------------------------------------------------
# settings, networks, sampling
# ---------------------------------------------------------------------------------------------------------------------

def gan_settings(config: GanConfig) -> dict:
    """The loss-dependent defaults: DCGAN (ns, hinge) or WGAN-GP (Gulrajani et al. Alg. 1), flags override them."""
    wgan = config.loss == "wgan-gp"
    lr = config.lr or (1e-4 if wgan else 2e-4)
    return {"n_critic": config.n_critic or (5 if wgan else 1), "lr_g": lr, "lr_d": config.lr_d or lr,
            "betas": (config.beta1 if config.beta1 is not None else (0.0 if wgan else 0.5),
                      config.beta2 if config.beta2 is not None else (0.9 if wgan else 0.999)),
            "d_norm": config.d_norm or ("layer" if wgan else "batch")}


def network_config(config: GanConfig, sample_shape, num_classes: int) -> DCGANConfig:
    """The DCGAN sizes for the data: its channels and size, the preset's widths, K classes if conditional."""
    c, h, w = sample_shape
    if h != w:
        raise DataError(f"a DCGAN needs square images, got {h}x{w}; pass --image-size")
    preset = config.preset or ("digits" if (c, h) == (1, 16) else "small")
    sizes = {n: getattr(config, n) for n in ("nz", "ngf", "ndf") if getattr(config, n) is not None}
    return dcgan_config(preset, image_size=h, channels=c, num_classes=num_classes if config.conditional else 0,
                        d_norm=gan_settings(config)["d_norm"], **sizes)


@torch.no_grad()
def generate(model: Generator, num: int, *, labels: torch.Tensor | None = None,
             generator: torch.Generator | None = None, noise: torch.Tensor | None = None, batch_size: int = 256,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """``num`` images (N, C, H, W) in [-1, 1] from G in eval mode, from ``noise`` (N, nz) or from noise drawn with
    ``generator``. All noise is drawn first, on the CPU: the same seed gives the same images on any device and for
    any batch size."""
    z = noise if noise is not None else model.noise(num, generator=generator or torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, num, batch_size):
        y = None if labels is None else labels[start:start + batch_size].to(device)
        out.append(model(z[start:start + batch_size].to(device), y).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.config.channels, model.config.image_size,
                                                 model.config.image_size)


# ---------------------------------------------------------------------------------------------------------------------
# the trainer
# ---------------------------------------------------------------------------------------------------------------------

class AdversarialTrainer(GanMonitor, GenerativeTrainer):
    """Trains a DCGAN pair (optionally class-conditional) with the ns, hinge or wgan-gp loss and an EMA generator."""

    task = TASK
    monitor_samples = 256  # images from fixed noise whose diversity is logged

    def __init__(self, *, config: GanConfig, data: ClassificationData, generator: Generator,
                 discriminator: Discriminator, run_dir: Path, device: torch.device, dist: Dist = Dist()):
        super().__init__(config=config, data=data, run_dir=run_dir, device=device, dist=dist)
        self.generator, self.discriminator = generator, discriminator  # unwrapped
        # Training forwards go through these (DDP, BatchNorm on the global batch, with several processes); a network
        # that only passes gradients on (D in G's step) or makes images without a graph (G in D's step) is used
        # unwrapped.
        self.g_net, self.d_net = dist.wrap(generator), dist.wrap(discriminator)
        self.settings = s = gan_settings(config)
        self.conditional = config.conditional
        self.num_classes = len(data.class_names)
        n = len(data.train_y)
        self.use_epochs(n, min(config.batch_size, n), drop_last=True)  # BatchNorm needs more than one image
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=s["lr_g"], betas=s["betas"])
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=s["lr_d"], betas=s["betas"])
        # EMA of G's parameters only; the BatchNorm statistics are copied (see the docstring).
        self.ema = parameter_ema(generator, config.ema)
        self.sums: dict[str, float] = {}  # sums of the step logs since the last log line
        self.count = 0
        self.d_win_run = 0  # consecutive steps in which D won
        self.warnings: list[dict] = []  # every warning given: {"step", "kind", "message"}, one per kind
        self.pending: list[str] = []  # messages not yet written into metrics.jsonl
        g = torch.Generator().manual_seed(config.seed + 4242)
        self.fixed_z = generator.noise(self.monitor_samples, generator=g)  # (256, nz): grids and the monitor
        self.fixed_y = torch.arange(self.monitor_samples) % self.num_classes if self.conditional else None
        self.monitor = "reference" if config.monitor == "reference" or (
            config.monitor == "auto" and config.fid_samples) else "pixels"
        self._classifier = None
        self._real_spread: float | None = None

    # ---------------------------------------------------------------- what the networks see
    @property
    def eval_generator(self) -> Generator:
        return self.ema.module if self.ema is not None else self.generator

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None, *,
                           eps: torch.Tensor | None = None, generator: torch.Generator | None = None
                           ) -> dict[str, float]:
        """One optimiser step of D on real images (B, C, H, W) and generated ones (B, C, H, W) (no graph to G) with
        labels y (B,) for both (conditional); ``eps`` (B,): WGAN-GP's interpolation weights (else drawn with
        ``generator``). Only D changes. With several processes these are this rank's share of the batch."""
        d = self.d_net
        fake = fake.detach()
        d_real, d_fake = d(real, y), d(fake, y)  # logits (B,), separate batches (DCGAN)
        loss = discriminator_loss(self.config.loss, d_real, d_fake)
        gp = None
        if self.config.loss == "wgan-gp":
            gp = gradient_penalty(lambda x: d(x, y), real, fake, eps=eps, generator=generator)
            loss = loss + self.config.gp_weight * gp  # L_D = d(G(z)) - d(x) + lambda GP (Alg. 1, line 7)
        loss, value = self.global_loss(loss, n_local=len(real), n_global=self.batch_size)
        self.backward_step(loss, self.discriminator, self.opt_d)
        with torch.no_grad():
            threshold = (d_real.mean() + d_fake.mean()) / 2 if self.config.loss == "wgan-gp" else 0.0
            accuracy = ((d_real > threshold).float().mean() + (d_fake < threshold).float().mean()) / 2
        logs = {"d_loss": value, "d_accuracy": accuracy.item(), "d_real": d_real.mean().item(),
                "d_fake": d_fake.mean().item()}
        if gp is not None:
            logs["gp"] = gp.item()
        return logs

    def generator_step(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """One optimiser step of G from noise z (B, nz) and labels y (B,) through a frozen D; then the EMA update.
        Only G (and its average) changes."""
        d = self.discriminator
        d.requires_grad_(False)  # D's parameters get no gradient at all
        try:
            loss = generator_loss(self.config.loss, d(self.g_net(z, y), y))
            loss, value = self.global_loss(loss, n_local=len(z), n_global=self.batch_size)
            self.backward_step(loss, self.generator, self.opt_g)
        finally:
            d.requires_grad_(True)
        if self.ema is not None:
            self.ema.update_parameters(self.generator)  # theta_ema <- decay theta_ema + (1 - decay) theta
            with torch.no_grad():
                for mine, live in zip(self.ema.module.buffers(), self.generator.buffers()):
                    mine.copy_(live)  # BatchNorm statistics: copied, not averaged
        return {"g_loss": value}

    def train_step(self, step: int) -> dict[str, float]:
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step + 7)  # noise, labels, eps of the step
        n_critic, b = self.settings["n_critic"], self.batch_size
        mine = self.dist.shard(b)  # everything is drawn for the global batch; this rank keeps its share
        d_logs: dict[str, float] = {}
        for k in range(n_critic):
            index = self.batch(step * n_critic + k)  # the real images
            real = to_model(self.data.train_x[index[mine]]).to(self.device)  # (B, C, H, W) in [-1, 1]
            y = self.data.train_y[index[mine]].to(self.device) if self.conditional else None
            z = self.generator.noise(b, generator=g)[mine].to(self.device)
            with torch.no_grad():
                fake = self.generator(z, y)  # G(z), no graph
            eps = torch.rand(b, generator=g)[mine] if self.config.loss == "wgan-gp" else None  # one per sample
            for key, value in self.discriminator_step(real, fake, y, eps=eps).items():
                d_logs[key] = d_logs.get(key, 0.0) + value / n_critic
        z = self.generator.noise(b, generator=g)[mine].to(self.device)
        y = torch.randint(0, self.num_classes, (b,), generator=g)[mine].to(self.device) if self.conditional else None
        logs = self.dist.mean_logs({"loss": d_logs["d_loss"], **d_logs, **self.generator_step(z, y)})  # over ranks
        for key, value in logs.items():
            if key != "loss":
                self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        self._watch_discriminator(d_logs["d_accuracy"], step + 1)
        return logs

    # ---------------------------------------------------------------- evaluation and pictures
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        record = {k: v / max(1, self.count) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        # The live generator, not the average: the EMA lags by about 1 / (1 - decay) steps and would hide a collapse.
        record["diversity"] = self.diversity(lambda: to_unit(generate(
            self.generator, len(self.fixed_z), labels=self.fixed_y, noise=self.fixed_z, device=self.device)))
        record["monitor"] = self.monitor
        self.watch_collapse(record["diversity"])
        if self.pending:
            self.board.text("warnings", "\n\n".join(self.pending), self.step)
            record["warnings"], self.pending = self.pending, []
        return record

    @staticmethod
    def _postfix(logs: dict, last_eval: dict) -> dict:
        shown = {"d": f"{logs['d_loss']:.3g}", "g": f"{logs['g_loss']:.3g}"}
        if "diversity" in last_eval:
            shown["div"] = f"{last_eval['diversity']:.2f}"
        return shown

    def sample_grid(self, path: Path) -> Path:
        """The EMA generator's images from fixed noise: one row per class (the same 8 noises in every row) or 8 x 8."""
        if self.conditional:
            labels = grid_labels(self.num_classes)  # (rows * 8,)
            z = self.fixed_z[:8].repeat(len(labels) // 8, 1)  # column j: the same z in every class row
        else:
            labels, z = None, self.fixed_z[:64]
        x = generate(self.eval_generator, len(z), labels=labels, noise=z, device=self.device)
        save_image(path, image_grid(to_unit(x)) if labels is None else
                   labelled_grid(to_unit(x), labels, self.data.class_names))
        return path

    # ---------------------------------------------------------------- state and outputs
    def model_info(self) -> dict:
        """What ``visionlab sample`` and ``evaluate-samples`` need (also kept in the checkpoint)."""
        return {"task": self.task, "model": "gan", "loss": self.config.loss,
                "model_config": dataclasses.asdict(self.generator.config), **self.data_record(self.conditional),
                "ema": self.config.ema}

    def checkpointed(self) -> dict:
        return {"generator": self.generator, "discriminator": self.discriminator, "opt_g": self.opt_g,
                "opt_d": self.opt_d, "ema": self.ema}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "sums": dict(self.sums), "count": self.count, "d_win_run": self.d_win_run,
                "warnings": list(self.warnings), "pending": list(self.pending), "monitor": self.monitor,
                "model_info": self.model_info()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)  # the EMA stays in eval mode: loading a state leaves the mode alone
        self.sums = {k: float(v) for k, v in state["sums"].items()}
        self.count, self.d_win_run = int(state["count"]), int(state["d_win_run"])
        self.warnings, self.pending = list(state["warnings"]), list(state["pending"])
        self.monitor = state["monitor"]

    def finish(self, status: str) -> dict:
        info = self.model_info()
        save_weights(self.run_dir / "model.safetensors", self.eval_generator.state_dict(),
                     metadata={"task": self.task, "model": "generator", "ema": str(self.config.ema)})
        save_weights(self.run_dir / "discriminator.safetensors", self.discriminator.state_dict(),
                     metadata={"task": self.task, "model": "discriminator"})
        write_json(self.run_dir / "model.json", info)
        self.picture("samples", self.sample_grid(self.run_dir / "samples.png"))
        progress_gif(self.run_dir, step=self.step)  # the fixed noise's grids along training, one frame each
        if self.history:
            steps = [r["step"] for r in self.history]
            curve_figure(self.run_dir / "loss.png", {
                "D loss (mean since the last point)": (steps, [r["d_loss"] for r in self.history]),
                "G loss (mean since the last point)": (steps, [r["g_loss"] for r in self.history])},
                xlabel="generator step", ylabel="loss",
                title=f"{self.data.name}: gan ({self.config.loss}), {self.step} steps")
        last = self.history[-1] if self.history else {}
        metrics = {**{k: last.get(k) for k in ("d_loss", "g_loss", "d_accuracy", "d_real", "d_fake", "diversity")},
                   **self.size_metrics(self.generator),
                   "discriminator_parameters": sum(p.numel() for p in self.discriminator.parameters()),
                   "loss": self.config.loss, "ema": self.config.ema, "weights": weights_used(self.config.ema),
                   "monitor": self.monitor,
                   "warnings": [w["message"] for w in self.warnings], "status": status}
        if self.config.fid_samples:
            labels = (torch.arange(self.config.fid_samples) % self.num_classes) if self.conditional else None
            metrics["evaluation"] = judge_drawing(gan_drawing(self.eval_generator, labels=labels,
                                                              num=self.config.fid_samples, device=self.device),
                                                  self.data, seed=self.config.seed, device=self.device,
                                                  quiet=self.config.quiet)
            judged = {f"evaluation/{k}": v for k, v in metrics["evaluation"].items()}  # FID, confidence, ...
            self.board.scalars({"step": self.step, **judged})
        write_json(self.run_dir / "metrics.json", metrics)
        return metrics


def build_adversarial(config: GanConfig, *, run_dir: Path | None = None,
                      data: ClassificationData | None = None) -> AdversarialTrainer:
    """The trainer of ``config`` (its data loaded unless ``data`` is given), in a new run folder unless ``run_dir``."""
    dist, device = prepare(config)
    data = data or generative_data(config.data, image_size=config.image_size, seed=config.seed,
                                  test_size=config.test_size)
    if len(data.train_y) < 2:
        raise DataError(f"{data.name}: a GAN needs at least 2 training images, got {len(data.train_y)}")
    model_config = network_config(config, data.sample_shape, len(data.class_names))
    generator = Generator(config=model_config).to(device)
    discriminator = Discriminator(config=model_config).to(device)
    if run_dir is None:
        default = f"{data.name}-gan-{config.loss}" + ("-cond" if config.conditional else "")
        run_dir = make_run_dir(dist, config, config.out, TASK, config.name or default)
    return AdversarialTrainer(config=config, data=data, generator=generator, discriminator=discriminator,
                              run_dir=run_dir, device=device, dist=dist)


def train(config: GanConfig, *, resume: tuple[dict, Path] | None = None, callbacks=()) -> dict:
    """Train a GAN; ``resume`` = (checkpoint state, run folder) continues that run exactly."""
    return run_training(build_adversarial, config, resume=resume, callbacks=callbacks)


# ---------------------------------------------------------------------------------------------------------------------
# the family's part in sampling and judging finished runs (trainer/generative_runs.py)
# ---------------------------------------------------------------------------------------------------------------------

def refuse_sampler_options(*, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                           guidance: float = 1.0) -> None:
    """A GAN draws each image in one forward pass of G: the diffusion samplers' options do not apply."""
    given = [flag for flag, used in (("--sampler ddpm", sampler != "ddim"), ("--steps", steps is not None),
                                     ("--eta", eta != 0.0), ("--guidance", guidance != 1.0)) if used]
    if given:
        raise ConfigError(f"{', '.join(given)}: a GAN draws each image in one pass of its generator; sampler, "
                          f"steps, eta and guidance apply to diffusion runs only")


def load_gan_run(run: str | Path, *, device: str | torch.device = "cpu") -> tuple[Generator, dict, Path]:
    """The EMA generator of a GAN run (its folder, or a ``checkpoint.pt`` of a finished or unfinished run) in eval
    mode, its ``model.json`` record and its folder."""
    path = Path(run)
    if path.is_dir() and (path / "model.json").is_file():
        info, folder = read_json(path / "model.json"), path
        if info.get("task") != TASK:
            raise DataError(f"{path} holds a {info.get('model') or info.get('task')} model, not a GAN")
        weights = load_weights(path)
    else:
        checkpoint = path / CHECKPOINT_NAME if path.is_dir() else path
        if not checkpoint.is_file():
            raise DataError(f"no such GAN run or checkpoint: {path}")
        state = load_state(checkpoint)
        if state.get("task") != TASK:
            raise DataError(f"{checkpoint} is a {state.get('task')!r} checkpoint, not a GAN one")
        info, folder, weights = state["model_info"], checkpoint.parent, ema_weights(state, "generator")
    model = Generator(config=DCGANConfig(**info["model_config"]))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise DataError(f"the weights of {path} do not fit its model description: "
                        f"{str(e).strip().splitlines()[0]}") from None
    return model.to(device).eval(), info, folder


def gan_drawing(model: Generator, *, labels: torch.Tensor | None, num: int,
                device: torch.device | str = "cpu") -> Drawing:
    """How to draw ``num`` images with G: one pass of its generator per image, from noise of the seed."""
    def draw(seed: int, batch_size: int, progress: bool) -> torch.Tensor:
        return to_unit(generate(model, num, labels=labels, generator=torch.Generator().manual_seed(seed),
                                batch_size=batch_size, device=device))  # (N, C, H, W) in [0, 1]

    return Drawing(labels=labels, draw=draw, record={"sampler": "gan"}, tag="gan")


def open_run(run: str | Path, *, device: torch.device | str = "cpu", sampler: str = "ddim", steps: int | None = None,
             eta: float = 0.0, guidance: float = 1.0) -> GenerativeRun:
    """:func:`load_gan_run` as a :class:`GenerativeRun`, after refusing the diffusion samplers' options."""
    refuse_sampler_options(sampler=sampler, steps=steps, eta=eta, guidance=guidance)
    model, info, folder = load_gan_run(run, device=device)
    return GenerativeRun(model=model, info=info, folder=folder)


def drawing(loaded: GenerativeRun, *, labels=None, num: int = 64, device: torch.device | str = "cpu",
            **options) -> Drawing:
    """How to draw ``num`` images of the classes ``labels`` from a loaded GAN run (``options``: refused already by
    :func:`open_run`)."""
    y = parse_labels(labels, loaded.info, num, unconditional=UNCONDITIONAL)
    return gan_drawing(loaded.model, labels=y, num=num, device=device)
