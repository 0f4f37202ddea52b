"""Several processes, one training run: torchrun and DistributedDataParallel (DDP).

``torchrun --nproc_per_node=N -m visionlab train ...`` (or ``... -m visionlab fit ...``) starts N copies of the
command and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in their environments. :func:`setup` joins
them into one process group, NCCL on CUDA devices and Gloo on CPUs, and returns a :class:`Dist`: what a trainer asks
about the group (which share of a batch is mine, the mean of these numbers over the ranks, do I write the files).
One process, the default, needs nothing: no group is made, no model is wrapped, and :class:`Dist` answers "rank 0 of
1" everywhere.

How a batch is split, the same rule in every trainer: every rank draws the *global* batch from the shared seed
(example indices, time steps, noise, augmentation), exactly as one process would, and keeps its own contiguous share
(:meth:`Dist.shard`). That is what ``torch.utils.data.DistributedSampler`` does for a DataLoader, done here on the index
tensors that visionlab's seeded, resumable batch order produces. Each rank's loss is the mean over its share; DDP
averages the gradients over the ranks, so the loss given to ``backward`` is scaled by ``share * world_size``
(:meth:`Dist.backward_scale`) and the average becomes the gradient of the global batch's mean loss even when the shares
differ in size (the last batch of an epoch). Hence N processes end where one process with the same global batch ends,
within float tolerance (tests/test_distributed.py); randomness inside a network (dropout) is drawn per rank and is the
one exception.

Written here by hand, because torch does not offer them (its differentiable collectives in ``torch.distributed.nn``
are deprecated, their successors private): :class:`GlobalBatchNorm2d`, BatchNorm on the statistics of the global batch
for CPU process groups (torch's ``SyncBatchNorm`` supports only accelerators); :meth:`Dist.gather`, an all-gather of
rows of unequal counts that gradients flow back through; :meth:`Dist.sum_with_grad`, a differentiable all-reduce.
"""

from __future__ import annotations

import atexit
import dataclasses
import inspect
import os
from datetime import timedelta

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from visionlab.util.device import pick_device
from visionlab.util.errors import ConfigError


def _world_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) outside torchrun."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in the group; ``Dist()`` is the single process."""

    rank: int = 0  # this process, 0 .. world_size - 1
    world_size: int = 1  # processes in the run
    local_rank: int = 0  # this process on its machine: its GPU index

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that evaluates, logs and writes files."""
        return self.rank == 0

    # ------------------------------------------------------------------ splitting a global batch
    def sizes(self, n: int) -> list[int]:
        """Share sizes of n items over the ranks: as equal as possible, the first ranks one larger."""
        q, r = divmod(n, self.world_size)
        return [q + (1 if k < r else 0) for k in range(self.world_size)]

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of n items (all of them with one process)."""
        sizes = self.sizes(n)
        start = sum(sizes[:self.rank])
        return slice(start, start + sizes[self.rank])

    def check_batch(self, n: int, what: str = "a batch") -> None:
        """Every rank needs at least one item of every batch (an empty share has no mean loss)."""
        if n < self.world_size:
            raise ConfigError(f"{what} of {n} cannot be split over {self.world_size} processes; use a larger batch "
                              f"or fewer processes (--nproc_per_node)")

    def backward_scale(self, n_local: int, n_global: int) -> float:
        """Factor for the local mean loss so that DDP's gradient average is the gradient of the global mean:
        mean_r (w_r L_r) with w_r = W n_r / N equals sum_r (n_r / N) L_r."""
        return self.world_size * n_local / n_global

    # ------------------------------------------------------------------ collectives (no-ops for one process)
    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over the ranks of a tensor (a copy; not differentiable)."""
        value = value.detach().clone()
        if self.enabled:
            torch_dist.all_reduce(value)
        return value

    def sum_with_grad(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over the ranks of a tensor, differentiable: the backward pass sums the ranks' gradients too (for
        statistics of the global batch inside a loss, e.g. soft Dice's sums)."""
        return _SumOverRanks.apply(value) if self.enabled else value

    def mean_logs(self, logs: dict[str, float]) -> dict[str, float]:
        """Numbers logged by a training step, averaged over the ranks in one all-reduce (keys in the same order on
        every rank: the step functions are the same code)."""
        if not self.enabled:
            return logs
        keys = [k for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        values = self.sum(torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64, device=self._device))
        return {**logs, **{k: (values[i] / self.world_size).item() for i, k in enumerate(keys)}}

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (e.g. a stop asked for by Ctrl-C on one of them)."""
        if not self.enabled:
            return flag
        return bool(self.sum(torch.tensor([float(flag)], device=self._device)).item() > 0)

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (a picklable object, e.g. the run folder's path)."""
        if not self.enabled:
            return obj
        box = [obj]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, rows: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """Every rank's rows (n_r, ...) concatenated in rank order: (sum n_r, ...) on every rank. Differentiable:
        the gradient of the result flows back to each rank's own rows (summed over the ranks that used them)."""
        return _GatherRows.apply(rows, sizes, self.rank) if self.enabled else rows

    @property
    def _device(self) -> torch.device:
        # NCCL reduces only CUDA tensors; Gloo only CPU ones.
        if self.enabled and torch_dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    # ------------------------------------------------------------------ models
    def wrap(self, model: nn.Module) -> nn.Module:
        """The model for training forwards: DDP-wrapped with several processes, the model itself with one. Keep the
        unwrapped model for everything else (evaluation, EMA, state dicts): no ``.module`` lookups anywhere."""
        if not self.enabled:
            return model
        if next(model.parameters()).device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            convert_batchnorm(model)
        device_ids = [self.local_rank] if next(model.parameters()).device.type == "cuda" else None
        # No buffer broadcast at each forward: the buffers agree already (global BatchNorm statistics, the same
        # schedules), and a broadcast would be a collective that evaluation on rank 0 alone must not trigger.
        no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                   inspect.signature(DistributedDataParallel.__init__).parameters else {"broadcast_buffers": False})
        return DistributedDataParallel(model, device_ids=device_ids, **no_sync)


def setup(device: str = "auto") -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes (if any) and pick this process's device: its own GPU
    (cuda:LOCAL_RANK) under torchrun on a CUDA machine, else as :func:`~visionlab.util.device.pick_device`."""
    rank, world, local_rank = _world_from_env()
    if world <= 1:
        return Dist(), pick_device(device)
    chosen = pick_device(device)
    if chosen.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"process {local_rank} on this machine has no GPU ({torch.cuda.device_count()} "
                              f"found); start at most that many processes per node")
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    elif chosen.type == "mps":
        raise ConfigError("several processes cannot share Apple's MPS device; use --device cpu with torchrun")
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", timeout=timedelta(minutes=30))
        atexit.register(_leave)
    return Dist(rank=rank, world_size=world, local_rank=local_rank), chosen


def _leave() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


class _SumOverRanks(torch.autograd.Function):
    """y = sum_r x_r on every rank. Each rank's loss depends on y, so the gradient for x_r is the sum over the ranks
    of their gradients for y: the backward pass is the same all-reduce."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        torch_dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch_dist.all_reduce(grad)
        return grad


class _GatherRows(torch.autograd.Function):
    """(n_r, ...) rows per rank -> (sum n_r, ...) on every rank, in rank order. Backward: the gradient of the whole
    summed over the ranks, of which each rank keeps its own rows."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:
        ctx.start, ctx.count = sum(sizes[:rank]), sizes[rank]
        width = max(sizes)
        if rows.shape[0] < width:  # all_gather needs equal shapes: pad with copies of the first row, cut them after
            rows = torch.cat([rows, rows[:1].expand(width - rows.shape[0], *rows.shape[1:])])
        parts = [torch.empty_like(rows) for _ in sizes]
        torch_dist.all_gather(parts, rows.contiguous())
        return torch.cat([part[:n] for part, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        torch_dist.all_reduce(grad)
        return grad[ctx.start:ctx.start + ctx.count], None, None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all ranks, so that a CPU process
    group normalises as one process with the whole batch would (torch's SyncBatchNorm refuses CPU tensors).

    Two differentiable all-reduces per call: the per-channel sums and counts, then the squared deviations from the
    global mean (two passes, as BatchNorm's own variance, for the same rounding). Outside a process group, or in eval
    mode, it is plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        # Only in training mode: evaluation runs on rank 0 alone, where a collective would wait forever.
        if not (self.training and torch_dist.is_available() and torch_dist.is_initialized()
                and torch_dist.get_world_size() > 1):
            return super().forward(x)
        all_reduce = _SumOverRanks.apply
        c = x.shape[1]
        count = x.new_tensor([x.numel() / c])
        stats = all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))  # (C + 1,): sums over ranks
        n = stats[c]
        mean = stats[:c] / n  # (C,)
        centred = x - mean[None, :, None, None]
        var = all_reduce(centred.pow(2).sum(dim=(0, 2, 3))) / n  # (C,) biased, as BatchNorm normalises
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)  # unbiased
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every BatchNorm2d of ``module`` into a :class:`GlobalBatchNorm2d` in place, keeping its parameters and
    buffers (the state dict keys do not change)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            child.__class__ = GlobalBatchNorm2d  # same fields, same state dict: only forward differs
        else:
            convert_batchnorm(child)
    return module
