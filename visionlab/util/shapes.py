"""The shape of every step of a model, recorded by forward hooks while it runs (``visionlab shapes``).

Nothing is typed by hand: the model runs once (on PyTorch's ``meta`` device if asked, which computes shapes without
memory or arithmetic, so even ViT-H is instant) and a hook on each named submodule records its output shape, in the
order the modules run. Repeated blocks (``encoder.blocks.0`` ... ``encoder.blocks.11``) are folded into one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Step:
    name: str  # qualified module name, or "input"
    shape: tuple[int, ...]
    repeats: int = 1  # how many consecutive identical blocks this line stands for


def trace_shapes(model: nn.Module, inputs: torch.Tensor, names: list[str]) -> list[Step]:
    """Run ``model(inputs)`` and return the input shape followed by the output shape of each module in ``names``
    that the model has (``Identity`` placeholders skipped), in call order; a ``ModuleList`` name
    (``encoder.blocks``) stands for each of its children."""
    modules = dict(model.named_modules())
    steps = [Step("input", tuple(inputs.shape))]
    handles = []
    for name in names:
        module = modules.get(name)
        children = [(f"{name}.{i}", m) for i, m in enumerate(module)] if isinstance(module, nn.ModuleList) else \
            [(name, module)] if module is not None and not isinstance(module, nn.Identity) else []
        for child_name, child in children:
            handles.append(child.register_forward_hook(_recorder(steps, child_name)))
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return _fold(steps)


def _recorder(steps: list[Step], name: str):
    def hook(module, args, output):
        tensor = output[0] if isinstance(output, (tuple, list)) else output
        steps.append(Step(name, tuple(tensor.shape)))
    return hook


def _fold(steps: list[Step]) -> list[Step]:
    """Consecutive ``x.blocks.0``, ``x.blocks.1``, ... with the same shape become ``x.blocks`` repeated n times."""
    folded: list[Step] = []
    for step in steps:
        stem = re.sub(r"\.\d+$", "", step.name)
        last = folded[-1] if folded else None
        if last is not None and stem != step.name and last.name == stem and last.shape == step.shape:
            last.repeats += 1
        else:
            folded.append(Step(stem if stem != step.name else step.name, step.shape))
    return folded


def format_steps(steps: list[Step], descriptions: dict[str, str] | None = None) -> str:
    """One line per step: the shape, then what produced it."""
    descriptions = descriptions or {}
    width = max(len(str(s.shape)) for s in steps)
    lines = []
    for s in steps:
        what = descriptions.get(s.name, s.name)
        if s.repeats > 1:
            what = f"{what} (x{s.repeats})"
        lines.append(f"{str(s.shape):<{width}}  <- {what}" if s.name != "input" else f"{str(s.shape):<{width}}  input")
    return "\n".join(lines)
