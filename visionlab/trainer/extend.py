"""A finished or stopped run, extended: ``--resume RUN --steps N`` (``--epochs N`` for the classifiers).

The resumed trainer is built with the new total, so everything that depends on the total follows the curve it would
have had if the run had been planned that long from the start, from the step where it stopped on: the learning-rate
decay (warm-up + cosine to 0 at the new end, fit's exponential decay to ``--lr-final`` at the new end) and a sample
selector's ratio schedule. The run says so in one line, in its summary (``extended``) and in ``config.yaml``. The
steps already trained stay as they were; a total below the steps done is refused.
"""

from __future__ import annotations

import dataclasses
import sys

from torch.optim.lr_scheduler import ExponentialLR, LambdaLR, LRScheduler

from visionlab.util.errors import ConfigError
from visionlab.util.io import write_yaml


def total_option(config) -> str:
    """The option that sets a run's length: ``epochs`` (classify, segment) or ``steps`` (fit, diffuse, GAN)."""
    return "epochs" if any(f.name == "epochs" for f in dataclasses.fields(config)) else "steps"


def extend_run(trainer, state: dict) -> dict | None:
    """After ``trainer.resume(state)``: if the trainer's config asks for another total than the checkpoint's, put
    every learning-rate schedule on its curve for the new total at the current step and return what changed (for
    the summary); None when the total is the checkpoint's own."""
    name = total_option(trainer.config)
    old, new = (state.get("config") or {}).get(name), getattr(trainer.config, name)
    if old is None or old == new:
        return None
    if trainer.total_steps < trainer.step:
        raise ConfigError(f"--{name} {new} ends at step {trainer.total_steps}, before step {trainer.step} where this "
                          f"run stopped; a resumed run can only go on (give more {name})")
    rates = [_stretch(scheduler) for scheduler in _lr_schedulers(trainer)]
    selector = hasattr(trainer, "sampler")  # fit: the sample selector's ratio schedule is tied to the total too
    curve = f"{new}-{name[:-1]} curve"
    if rates:
        before, after = rates[0]
        lr = f"learning rate {before:.3g} -> {after:.3g} " + (
            f"(its decay, and a selector's ratio schedule, follow their {curve}s from here)" if selector else
            f"(its decay follows its {curve} from here)")
    else:
        lr = "the learning rate is constant" + (f"; a selector's ratio schedule follows its {curve} from here"
                                                if selector else "")
    note = f"extended from {old} to {new} {name} at step {trainer.step} of {trainer.total_steps}: {lr}"
    if trainer.dist.is_main:
        print(note, file=sys.stderr, flush=True)
        write_yaml(trainer.run_dir / "config.yaml", dataclasses.asdict(trainer.config))
    return {"option": name, "from": old, "to": new, "at_step": trainer.step, "note": note,
            **({"lr_before": rates[0][0], "lr_after": rates[0][1]} if rates else {})}


def _lr_schedulers(trainer) -> list[LRScheduler]:
    found = {id(v): v for v in vars(trainer).values() if isinstance(v, LRScheduler)}
    return list(found.values())


def _stretch(scheduler: LRScheduler) -> tuple[float, float]:
    """Set the learning rates of ``scheduler``'s optimiser to its schedule's value at the current step (the
    schedule built for the new total; the optimiser's state still holds the old one's); (before, after) of the
    first parameter group."""
    groups = scheduler.optimizer.param_groups
    before = groups[0]["lr"]
    t = scheduler.last_epoch
    if isinstance(scheduler, LambdaLR):
        rates = [base * factor(t) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    elif isinstance(scheduler, ExponentialLR):  # its gamma is the new total's (trainer/fit.py keeps it on resume)
        rates = [base * scheduler.gamma ** t for base in scheduler.base_lrs]
    else:
        raise ConfigError(f"a {type(scheduler).__name__} learning-rate schedule cannot be stretched to a new total; "
                          f"resume without --steps / --epochs")
    for group, rate in zip(groups, rates):
        group["lr"] = rate
    scheduler._last_lr = rates  # what get_last_lr() reports
    return before, rates[0]
