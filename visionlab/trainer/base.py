"""The training loop every visionlab trainer shares.

A task subclasses :class:`Trainer` and writes ``train_step`` (one optimiser step), ``evaluate``, ``checkpointed`` (its
models, optimisers, schedulers and EMA; ``state_dict`` / ``load_state_dict`` add the rest of its state) and
``finish`` (its pictures and metrics), and a ``build_TASK(config, run_dir=None)``; its ``train`` entry point is
:func:`run_training` of that builder. The base class owns what must work the same everywhere:

- the step loop with a tqdm progress bar showing the live loss and the last evaluation;
- wall time: only ``train_step`` counts as training time (evaluation, logging and checkpoints do not), with the
  device synchronised so that GPU time is not under-counted;
- ``metrics.jsonl`` (one line per evaluation) and ``summary.json`` in the run folder; the same scalars, the pictures
  a task names (:meth:`Trainer.picture`) and the options as TensorBoard events in ``tb/`` (:mod:`.tensorboard`);
- checkpoints every ``checkpoint_every`` steps, written atomically, with the random states, so that ``resume``
  continues exactly (bit for bit on the CPU);
- Ctrl-C: the current step finishes, a checkpoint is written and the run stops cleanly (a second Ctrl-C aborts);
- the NaN guard: a non-finite loss stops the run before it touches the weights, naming the last good checkpoint;
- several processes (torchrun, :mod:`visionlab.util.distributed`): the logged step numbers are averaged over the
  ranks, a stop asked for on one rank stops all of them after the same step, and only rank 0 evaluates, logs,
  checkpoints and writes outputs (evaluation uses the unwrapped model, so it needs no other rank).

And what several tasks pick from: shuffled epochs of a fixed set of examples (:meth:`Trainer.use_epochs`,
:meth:`Trainer.batch`), bf16 autocast (:func:`bf16_autocast`) and the EMA of the parameters (:func:`parameter_ema`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from visionlab.util.version import __version__
from visionlab.util.checkpoint import CHECKPOINT_NAME, load_state, save_state
from visionlab.util.device import set_threads
from visionlab.util.distributed import Dist
from visionlab.util.distributed import setup as setup_distributed
from visionlab.util.errors import DataError, Terminated, TrainingError
from visionlab.util.failures import check_run_writable, explain, note_signal
from visionlab.util.io import append_jsonl, new_run_dir, read_jsonl, write_json, write_text, write_yaml
from visionlab.trainer.extend import extend_run
from visionlab.trainer.tensorboard import Board, open_board
from visionlab.util.seed import rng_state, seed_everything, set_rng_state


ETA_AFTER_STEPS = 5  # steps timed before a long run says how long it will take
LONG_RUN_SECONDS = 300.0  # what counts as long: five minutes or more of training left


def duration(seconds: float) -> str:
    """'0.41 s', '45 s', '12 min', '7 h 40 min': a duration as a person says it."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that timings measure the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def epoch_batch(step: int, *, num_examples: int, batch_size: int, steps_per_epoch: int, seed: int) -> torch.Tensor:
    """Indices of step ``step``'s batch: a fresh permutation of the examples per epoch, seeded by (seed, epoch), so
    that a resumed run draws exactly the batches an uninterrupted one would."""
    epoch, i = divmod(step, steps_per_epoch)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[i * batch_size:(i + 1) * batch_size]


def lr_lambda(*, warmup: int, total: int, decay: str = "cosine") -> Callable[[int], float]:
    """The factor of the peak learning rate at step t, for ``torch.optim.lr_scheduler.LambdaLR``: a linear warm-up
    over ``warmup`` steps, then ``constant`` or half a ``cosine`` down to 0 at step ``total``."""
    warmup = max(1, warmup)

    def factor(t: int) -> float:
        if t < warmup:
            return (t + 1) / warmup
        if decay == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (t - warmup) / max(1, total - warmup))))

    return factor


def steps_per_epoch(num_examples: int, batch_size: int, *, drop_last: bool = False) -> int:
    """Optimiser steps of one epoch: the last batch is smaller (or, with ``drop_last``, left out)."""
    return num_examples // batch_size if drop_last else math.ceil(num_examples / batch_size)


def bf16_autocast(amp: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """The context of ``--amp``: bf16 autocast for ``bf16``, and for ``auto`` on a CUDA GPU that supports it (on CPUs
    bf16 is usually slower; fp16 would need a gradient scaler); otherwise a context that does nothing."""
    bf16 = amp == "bf16" or (amp == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    if bf16:
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def ema_decay(decay: float, t: int) -> float:
    """The EMA's decay after ``t`` updates: min(decay, (1 + t) / (10 + t)), the usual warm-up (TensorFlow's
    ExponentialMovingAverage with num_updates, timm). With a fixed 0.999 the first weights still hold
    0.999^150 = 86 % of the average after 150 steps, so a short run would sample from nearly untrained weights."""
    return min(decay, (1 + t) / (10 + t))


def warmup_ema_fn(decay: float) -> Callable:
    """The ``multi_avg_fn`` of :func:`parameter_ema`: theta_ema <- d_t theta_ema + (1 - d_t) theta with d_t of
    :func:`ema_decay`. ``AveragedModel`` passes its ``n_averaged`` buffer as t: it is in the EMA's state dict, so
    the checkpoint keeps t and a resumed run goes on with the same decays."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        weight = 1.0 - ema_decay(decay, int(n_averaged))  # one host sync, as the step's loss.item() already makes
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:
            for a, c in zip(averaged, current, strict=True):
                a.copy_(a + (c - a) * weight)

    return update


def parameter_ema(model: torch.nn.Module, decay: float | None) -> AveragedModel | None:
    """The EMA of ``model``'s *parameters* (theta_ema <- d_t theta_ema + (1 - d_t) theta after every step, with the
    warm-up d_t = min(decay, (1 + t) / (10 + t)) of :func:`ema_decay`), in eval mode; None when ``decay`` is None or
    0. ``use_buffers=False``: the average never touches buffers, since averaging them is what gave black samples in
    other projects (users.md #11)."""
    if not decay:
        return None
    ema = AveragedModel(model, multi_avg_fn=warmup_ema_fn(decay), use_buffers=False)
    ema.module.eval()  # evaluation and sampling: no dropout, no label dropout
    return ema


def weights_used(ema: float | None) -> str:
    """What a summary says about the weights it evaluated: the EMA's (with its decay) or the raw ones."""
    return f"EMA weights, decay {ema:g} with warm-up" if ema else "raw weights, no EMA"


def prepare(config) -> tuple[Dist, torch.device]:
    """What every trainer's build does first: check the config, set the CPU threads, join torchrun's process group
    (if there is one) and pick the device, then seed every generator."""
    config.validate()
    set_threads(config.threads)
    dist, device = setup_distributed(config.device)
    seed_everything(config.seed)
    return dist, device


def make_run_dir(dist: Dist, config, out: str, task: str, name: str) -> Path:
    """A new run folder OUT/TASK/NAME with its ``config.yaml``: made by rank 0, its path shared with the others."""
    run_dir = None
    if dist.is_main:
        run_dir = new_run_dir(out, task, name)
        write_yaml(run_dir / "config.yaml", dataclasses.asdict(config))
    return Path(dist.broadcast(str(run_dir) if run_dir is not None else None))


class Trainer:
    """Base training loop: steps, evaluation, logging, checkpoints, resume, Ctrl-C and the NaN guard."""

    task = "base"

    def __init__(self, *, config, run_dir: str | Path, device: torch.device, total_steps: int,
                 eval_every: int = 100, checkpoint_every: int = 500, quiet: bool = False, dist: Dist = Dist()):
        self.config = config
        self.dist = dist  # this process's place among torchrun's processes; Dist() for one process
        self.run_dir = Path(run_dir)
        self.device = device
        self.total_steps = total_steps
        self.eval_every = max(1, eval_every)
        self.checkpoint_every = max(1, checkpoint_every)
        self.quiet = quiet or not dist.is_main  # one progress bar, rank 0's
        self.step = 0  # optimiser steps done
        self.train_seconds = 0.0  # wall time inside train_step only
        self.history: list[dict] = []  # one record per evaluation
        self.callbacks: list[Callable[["Trainer"], None]] = []  # called after every step (tests, custom logging)
        self._stop_requested = False
        self.stop_signal: str | None = None  # the signal that asked for the stop, for the summary
        self.say_duration = True  # a long run says how long it will take after a few steps (unless said before)
        self.board = Board()  # TensorBoard: off until train() opens it (rank 0, tensorboard installed, not refused)
        self.extended: dict | None = None  # a resumed run given a new total (trainer/extend.py)

    # ------------------------------------------------------------------ what a task writes
    def train_step(self, step: int) -> dict[str, float]:
        """One optimiser step; returns at least ``{"loss": float}``."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Metrics of the current model (not timed as training)."""
        raise NotImplementedError

    def checkpointed(self) -> dict:
        """The task's objects that a checkpoint keeps through their own ``state_dict`` / ``load_state_dict`` (models,
        optimisers, schedulers, the EMA), by key; None stands for one this run does without."""
        return {}

    def state_dict(self) -> dict:
        """Everything of the task that a resumed run needs: by default the states of :meth:`checkpointed`."""
        return {key: None if part is None else part.state_dict() for key, part in self.checkpointed().items()}

    def load_state_dict(self, state: dict) -> None:
        for key, part in self.checkpointed().items():
            if part is not None:
                part.load_state_dict(state[key])

    def finish(self, status: str) -> dict:
        """Write the task's outputs; return its final metrics."""
        return {}

    # ------------------------------------------------------------------ shuffled epochs of a fixed set of examples
    def use_epochs(self, num_examples: int, batch_size: int, *, drop_last: bool = False) -> None:
        """Train on batches of ``batch_size`` of ``num_examples`` examples, reshuffled every epoch (:meth:`batch`);
        checks that every process gets a share of the smallest batch."""
        self.num_examples, self.batch_size = num_examples, batch_size
        self.steps_per_epoch = steps_per_epoch(num_examples, batch_size, drop_last=drop_last)
        if drop_last:
            self.dist.check_batch(batch_size)
        else:
            self.dist.check_batch(num_examples - (self.steps_per_epoch - 1) * batch_size, "the last batch")

    def batch(self, step: int) -> torch.Tensor:
        """Indices of the ``step``-th batch: a fresh permutation per epoch, seeded by (seed, epoch)."""
        return epoch_batch(step, num_examples=self.num_examples, batch_size=self.batch_size,
                           steps_per_epoch=self.steps_per_epoch, seed=self.config.seed)

    # ------------------------------------------------------------------ shared machinery
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def check_finite(self, loss: torch.Tensor) -> None:
        """The NaN guard: call it before ``backward`` so that a bad loss never reaches the weights."""
        if not torch.isfinite(loss).all():
            raise TrainingError(f"loss became {loss.item()} at step {self.step + 1}; {self._last_checkpoint()}; "
                                f"try a lower learning rate or another value transform")

    def global_loss(self, loss: torch.Tensor, *, n_local: int = 1, n_global: int | None = None
                    ) -> tuple[torch.Tensor, float]:
        """(the loss to give ``backward``, the global batch's mean loss as a float) from this rank's mean loss over
        ``n_local`` of the step's ``n_global`` examples; the NaN guard runs on the global value, so that every rank
        stops together. One process: (loss, loss.item())."""
        dist = self.dist
        if not dist.enabled:
            self.check_finite(loss)
            return loss, loss.item()
        n_global = n_global if n_global is not None else n_local * dist.world_size
        value = dist.sum(loss.detach().double() * (n_local / n_global))  # sum_r (n_r / N) L_r: the global mean
        self.check_finite(value)
        return loss * dist.backward_scale(n_local, n_global), value.item()

    def optimizer_step(self, loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                       scheduler=None, grad_clip: float | None = None, ema=None, n_local: int = 1,
                       n_global: int | None = None) -> float:
        """The shared end of a training step: NaN guard, backward, optional gradient-norm clipping, optimiser and
        scheduler steps, then the EMA of the parameters (theta_ema <- d theta_ema + (1 - d) theta). ``model`` is the
        unwrapped network; with several processes, ``loss`` is this rank's mean over ``n_local`` of the ``n_global``
        examples of the step (see :meth:`global_loss`). Returns the global batch's loss."""
        loss, value = self.global_loss(loss, n_local=n_local, n_global=n_global)
        self.backward_step(loss, model, optimizer, scheduler=scheduler, grad_clip=grad_clip, ema=ema)
        return value

    def backward_step(self, loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                      scheduler=None, grad_clip: float | None = None, ema=None) -> None:
        """Backward, clipping, optimiser, scheduler, EMA: :meth:`optimizer_step` after its NaN guard."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)

    def request_stop(self) -> None:
        """Stop after the current step, with a checkpoint (what Ctrl-C does)."""
        self._stop_requested = True

    def save_checkpoint(self) -> Path:
        if not self.dist.is_main:  # rank 0 writes; the others hold the same state
            return self.checkpoint_path
        config = dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else dict(self.config)
        state = {"version": __version__, "task": self.task, "step": self.step, "train_seconds": self.train_seconds,
                 "history": self.history, "config": config, "rng": rng_state(), **self.state_dict()}
        return save_state(self.checkpoint_path, state)

    def resume(self, state: dict | str | Path | None = None) -> None:
        """Continue from a checkpoint: its loaded state, its path, or (default) this run's own."""
        if self.dist.is_main:  # a resumed run writes into its own folder: find out now, not after its first steps
            check_run_writable(self.run_dir)
        if not isinstance(state, dict):
            state = load_state(state or self.checkpoint_path, map_location=self.device)
        if state.get("task") != self.task:
            raise DataError(f"that is a {state.get('task')!r} checkpoint, not a {self.task!r} one")
        self.step = int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        self.history = list(state["history"])
        self.load_state_dict(state)
        set_rng_state(state["rng"])
        if not self.dist.is_main:
            return
        for litter in self.run_dir.glob(".*.tmp"):  # temporary files of writes that a kill -9 cut short
            litter.unlink(missing_ok=True)
        # Lines logged after that checkpoint belong to steps that will be trained again: drop them.
        log = self.run_dir / "metrics.jsonl"
        kept = [r for r in read_jsonl(log) if r.get("step", 0) <= self.step]
        write_text(log, "".join(json.dumps(r) + "\n" for r in kept))

    def log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        append_jsonl(self.run_dir / "metrics.jsonl", record)
        self.board.scalars(record)

    def picture(self, tag: str, picture) -> None:
        """Show a picture the task writes (a PNG's path or (H, W[, C]) values) in TensorBoard at the current step."""
        self.board.image(tag, picture, self.step)

    def run_evaluation(self, logs: dict) -> dict:
        record = {"step": self.step, "seconds": round(self.train_seconds, 4), **logs, **self.evaluate()}
        self.history.append(record)
        self.log(record)
        return record

    def train(self) -> dict:
        """Train up to ``total_steps`` (from wherever the trainer is), then write outputs; returns the summary."""
        self.board = open_board(self.run_dir, self.config, is_main=self.dist.is_main, step=self.step)
        try:
            return self._train()
        finally:
            self.board.close()

    def _train(self) -> dict:
        status = "finished"
        restore = self._install_interrupt_handler()
        bar = tqdm(total=self.total_steps, initial=self.step, desc=self.task, unit="step", disable=self.quiet,
                   dynamic_ncols=True, mininterval=0.5)
        try:
            last_eval = self.history[-1] if self.history else {}
            started, seconds_before = self.step, self.train_seconds
            while self.step < self.total_steps:
                start = time.perf_counter()
                logs = self.dist.mean_logs(self.train_step(self.step))
                synchronize(self.device)
                self.train_seconds += time.perf_counter() - start
                self.step += 1
                main = self.dist.is_main
                if main and (self.step % self.eval_every == 0 or self.step == self.total_steps):
                    last_eval = self.run_evaluation(logs)
                if self.step % self.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.step - started == ETA_AFTER_STEPS and main and not self.quiet and self.say_duration:
                    self._say_duration(self.step - started, self.train_seconds - seconds_before)
                bar.update(1)
                bar.set_postfix(self._postfix(logs, last_eval), refresh=False)
                for callback in self.callbacks if main else ():  # grids, tests' hooks: rank 0's business
                    callback(self)
                if self.step < self.total_steps and self.dist.any(self._stop_requested):
                    status = "interrupted"
                    break
        except TrainingError as error:  # the run folder says why it stopped; the last checkpoint stays as it was
            self._write_failure(error)
            raise
        except (OSError, MemoryError, RuntimeError) as error:  # the machine's: a full disk, no memory
            line = explain(error)
            if line is None:
                raise
            failure = TrainingError(f"{line}; {self._last_checkpoint()}")
            self._write_failure(failure)
            raise failure from None
        finally:
            bar.close()
            restore()
        self.save_checkpoint()
        metrics = self.dist.broadcast(self.finish(status) if self.dist.is_main else None)  # every rank returns them
        summary = {"task": self.task, "status": status, "run_dir": str(self.run_dir), "step": self.step,
                   "total_steps": self.total_steps, "train_seconds": self.train_seconds, "metrics": metrics,
                   "version": __version__, **({"extended": self.extended} if self.extended else {})}
        if status == "interrupted":
            summary["signal"] = self.stop_signal  # SIGINT (Ctrl-C), SIGTERM (a time limit, kill) or None (a request)
        if self.dist.is_main:
            write_json(self.run_dir / "summary.json", summary)
        return summary

    @staticmethod
    def _postfix(logs: dict, last_eval: dict) -> dict:
        shown = {"loss": f"{logs['loss']:.3g}"}
        for key in ("psnr", "val_accuracy"):
            if key in last_eval and last_eval[key] is not None and math.isfinite(last_eval[key]):
                shown[key] = f"{last_eval[key]:.2f}"
        return shown

    def _last_checkpoint(self) -> str:
        if self.checkpoint_path.exists():
            return f"the last good checkpoint is {self.checkpoint_path} (resume with --resume {self.run_dir})"
        return "no checkpoint was written yet"

    def _write_failure(self, error: Exception) -> None:
        """summary.json says why the run stopped; where the disk is full that may fail too, and the message is what
        counts then."""
        if not self.dist.is_main:
            return
        with contextlib.suppress(OSError):
            write_json(self.run_dir / "summary.json", {"task": self.task, "status": "failed", "error": str(error),
                                                       "step": self.step, "version": __version__})

    def _say_duration(self, steps: int, seconds: float) -> None:
        """One line when the rest of a run will take long: the time per step so far, times the steps left."""
        left = (self.total_steps - self.step) * seconds / max(1, steps)
        if left >= LONG_RUN_SECONDS:
            tqdm.write(f"{self.task}: about {duration(left)} for the {self.total_steps - self.step:,} steps left "
                       f"({seconds / max(1, steps):.3g} s per step so far, evaluations not counted)")

    def _install_interrupt_handler(self) -> Callable[[], None]:
        """First Ctrl-C or SIGTERM (a cluster's time limit, ``timeout``, ``kill``): finish the step, checkpoint,
        stop, and the summary says "interrupted" and by which signal. A second one: abort at once."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt if signum == signal.SIGINT else Terminated
            self._stop_requested = True
            self.stop_signal = signal.Signals(signum).name
            note_signal(self.stop_signal)
            what = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
            tqdm.write(f"{what}: stopping after this step with a checkpoint (again to abort)")

        for signum in previous:
            signal.signal(signum, handler)

        def restore():
            for signum, old in previous.items():
                signal.signal(signum, old)
        return restore


class KeepsBest:
    """Mixin for a trainer that keeps its best evaluation so far (``self.best``, a dict) and reads class-labelled
    data (``self.data.class_names``): both travel in the checkpoint, so a resumed run still knows its best epoch."""

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best": self.best, "class_names": self.data.class_names}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.best = dict(state["best"])


def run_training(build: Callable[..., Trainer], config, *, resume: tuple[dict, Path] | None = None,
                 callbacks=()) -> dict:
    """Every task's ``train`` entry point: build its trainer with ``build(config, run_dir=...)``, add ``callbacks``
    (called after every step), continue from ``resume`` = (checkpoint state, run folder) exactly if given, train;
    returns the summary (with ``extended`` when a resumed run was given a new total)."""
    trainer = build(config, run_dir=resume[1] if resume else None)
    trainer.callbacks.extend(callbacks)
    if resume:
        trainer.resume(resume[0])
        trainer.extended = extend_run(trainer, resume[0])  # --resume with more --steps / --epochs
    return trainer.train()
