"""What a fit will cost before its first step: memory and time, measured on a few points and scaled.

A step keeps, for backward, what autograd saves of every point it trains on (the chunks of ``--chunk`` run inside
one graph, so chunking bounds the temporaries, not the saved activations), and the run holds a few numbers per
pixel all along (coordinates, the original, the target, the selector's state, the hash grid's precomputed corners)
plus an evaluation's temporaries. So the footprint is measured, not guessed: one forward of 2,048 probe points under
``torch.autograd.graph.saved_tensors_hooks`` counts the bytes saved per point (whatever the model: SIREN, a hash
grid, bf16 or fp32), and the same forward and backward, timed, gives the seconds per point of a step. Scaled to the
image's pixels and the selector's largest selection, that is the estimate that :func:`check_footprint` compares with
the free memory (a one-line MachineError naming a ``--size`` that fits, never an allocation failure halfway through
a step), and that a large image's one-line note and a long run's expected duration come from.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from visionlab.components.sampling_base import Sampler, count
from visionlab.trainer.base import duration
from visionlab.util.errors import MachineError
from visionlab.util.failures import free_memory, gib
from visionlab.util.precision import autocast

PROBE_POINTS = 2048  # enough that per-point costs dominate the per-call ones, few enough to take milliseconds
# A step's peak over its saved activations: backward's gradients on top of them (measured at 512 x 512, every pixel:
# SIREN 3x256 1.9x, the hash grid 1.7x the saved bytes; 2 keeps a margin)
BACKWARD_PEAK = 2.0
EVAL_FLOATS_PER_VALUE = 16  # evaluation: prediction, inverse transform, clamp, SSIM's filtered maps, per value
LARGE_IMAGE_PIXELS = 2048 * 2048  # above this, a fit without --size says what it is in for
MEMORY_MARGIN = 0.9  # of the free memory, what a run may plan to use


@dataclass(frozen=True)
class Footprint:
    """A fit's estimated peak memory (bytes) and time per step (seconds) on this machine."""

    pixels: int  # samples of the signal (N)
    points_per_step: int  # the most any step trains on
    fixed_bytes: int  # held all run long, and an evaluation's temporaries
    step_bytes: int  # the largest step's saved activations and gradients
    seconds_per_step: float  # the largest step, forward and backward, measured on the probe and scaled

    @property
    def peak_bytes(self) -> int:
        return self.fixed_bytes + self.step_bytes

    def per_pixel(self) -> float:
        return self.peak_bytes / max(1, self.pixels)


def most_points(sampler: Sampler, num_pixels: int, total_steps: int) -> int:
    """The largest selection over the run (a schedule that rises to r = 1 trains on every pixel at the end)."""
    steps = sorted({0, total_steps - 1, *range(0, total_steps, max(1, total_steps // 64))})
    return count(max(sampler.ratio_at(s) for s in steps), num_pixels)


def measure(model: torch.nn.Module, *, in_features: int, channels: int, pixels: int, points_per_step: int,
            device: torch.device, precision: str) -> Footprint:
    """Measure the model's saved bytes and seconds per point on probe coordinates (drawn from a generator of its
    own: the run's random streams are not touched) and scale them; the probe's gradients are cleared."""
    probe = torch.rand(PROBE_POINTS, in_features, generator=torch.Generator().manual_seed(0)) * 2 - 1
    probe = probe.to(device)  # (P, d) in [-1, 1]
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params and storage.data_ptr() not in seen:  # weights are not per point
            seen.add(storage.data_ptr())
            saved += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast(device, precision):
        out = model(probe).float()  # (P, C)
    del out
    timings = []
    for _ in range(2):  # the first call warms caches and the allocator; the faster one is the step's rate
        start = time.perf_counter()
        with autocast(device, precision):
            loss = model(probe).float().square().mean()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    bind = model.bind_bytes(pixels) if hasattr(model, "bind_bytes") else 0  # the hash grid's corners, per pixel
    per_value = 4 * (EVAL_FLOATS_PER_VALUE + 3)  # + the original, the target and the reconstruction
    fixed = pixels * (4 * in_features + channels * per_value + 16) + bind  # + 16: the selector's state
    step = math.ceil(points_per_step * BACKWARD_PEAK * saved / PROBE_POINTS)
    return Footprint(pixels=pixels, points_per_step=points_per_step, fixed_bytes=fixed, step_bytes=step,
                     seconds_per_step=min(timings) * points_per_step / PROBE_POINTS)


def fitting_side(footprint: Footprint, free: int, longer_side: int) -> int:
    """The longest side (pixels) at which the same fit would fit in ``free`` bytes: the footprint scales with the
    number of pixels, the square of the side."""
    return max(16, int(longer_side * math.sqrt(MEMORY_MARGIN * free / max(1, footprint.peak_bytes))) // 16 * 16)


def check_footprint(footprint: Footprint, *, device: torch.device, shape: tuple[int, ...], what: str) -> None:
    """A one-line MachineError when the fit would need more memory than the device has free, with a size that
    fits (a shorter sound for audio); nothing where the free memory cannot be known."""
    free = free_memory(device)
    if free is None or footprint.peak_bytes <= MEMORY_MARGIN * free:
        return
    if len(shape) == 1:  # audio: (T,)
        smaller = "a shorter --seconds"
    else:
        smaller = f"--size {fitting_side(footprint, free, max(shape[-2:]))} (or smaller)"
    raise MachineError(f"{what}: this fit needs about {gib(footprint.peak_bytes)} of memory ({footprint.pixels:,} "
                       f"samples, {footprint.points_per_step:,} trained per step) and {device} has {gib(free)} "
                       f"free; use {smaller}, a lower --ratio, or --preset fast")


def large_image_note(footprint: Footprint, *, shape: tuple[int, ...], what: str, steps: int) -> str | None:
    """The one-line note for a large image fitted at full size, None for the others."""
    if footprint.pixels < LARGE_IMAGE_PIXELS:
        return None
    size = "x".join(map(str, shape))
    return (f"note: {what} is {size} ({footprint.pixels / 1e6:.1f} M samples), fitted at full size: about "
            f"{gib(footprint.peak_bytes)} of memory and {duration(footprint.seconds_per_step)} per step "
            f"({duration(footprint.seconds_per_step * steps)} for {steps:,} steps); --size 512 is about "
            f"{max(1, footprint.pixels // (512 * 512)):,}x quicker per step")

