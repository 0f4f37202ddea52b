"""Cross-entropy: the classification loss, from one-hot (or soft) targets and from class indices alike.

A classifier outputs K scores (logits) z per example; softmax turns them into probabilities
``y_k = exp(z_k) / sum_j exp(z_j)``. With a target distribution t (one-hot: 1 at the true class, 0 elsewhere) the
cross-entropy error is (natural log)::

    E = - sum_k t_k log y_k                      # one example
    E = - (1 / N) sum_n sum_k t_nk log y_nk      # a batch of N examples: the mean

With a one-hot t only the true class's term survives: ``E = -log y_true``. The notes' example, true class 2:
``y_2 = 0.6 -> E = -log 0.6 = 0.5108``; ``y_2 = 0.1 -> E = -log 0.1 = 2.3026``. So the loss only looks at the
probability given to the right answer, and grows without bound as that probability goes to 0.

Two ways to compute it:

- :func:`cross_entropy` (what training uses) takes *logits* and computes ``log y = z - logsumexp(z)`` (log-softmax):
  no probability is ever rounded to 0, so the log never sees 0 and the result is exact. Targets may be class indices
  (B,) or one-hot / soft distributions (B, K). Label smoothing (Szegedy et al. 2016) replaces t by
  ``(1 - eps) t + eps / K``.
- :func:`cross_entropy_error` is the textbook version on *probabilities*: it adds a small ``delta = 1e-7`` inside the
  log so that ``log 0`` cannot happen, hence ``-log(0.6 + 1e-7) = 0.510825457`` instead of ``0.510825623``.

Shape legend: B batch, K classes (dimension 1 of the logits; extra trailing dimensions, e.g. pixels, are allowed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionlab.util.errors import ConfigError, DataError

REDUCTIONS = ("mean", "sum", "none")


def _check_index(index: torch.Tensor, num_classes: int, what: str) -> None:
    if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
        raise DataError(f"{what} must be integer class indices, got dtype {index.dtype}")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num_classes):
        raise DataError(f"{what} must lie in [0, {num_classes - 1}], got values from {int(index.min())} "
                        f"to {int(index.max())}")


def one_hot(index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer labels (...) -> float one-hot vectors (..., K): 1 at the label, 0 elsewhere.

    >>> one_hot(torch.tensor([2, 0]), 3)
    tensor([[0., 0., 1.],
            [1., 0., 0.]])
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    index = torch.as_tensor(index)
    _check_index(index, num_classes, "labels")
    return F.one_hot(index.long(), num_classes).float()


def _as_batch(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Treat a single example, logits (K,), as a batch of one."""
    if logits.dim() == 1:
        logits = logits.unsqueeze(0)  # (1, K)
        target = target.unsqueeze(0)  # (1,) or (1, K)
    return logits, target


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits (B, K, ...) against index targets (B, ...) or distributions (B, K, ...).

    Integer targets are class indices; floating targets are one-hot or soft distributions over dimension 1.
    ``reduction="mean"`` divides the sum by the number of examples N (B times any trailing positions), ``"sum"``
    does not, ``"none"`` returns the per-example losses (B, ...). Equal to :func:`torch.nn.functional.cross_entropy`.
    """
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if not logits.dtype.is_floating_point:
        raise DataError(f"logits must be floating point, got dtype {logits.dtype}")
    logits, target = _as_batch(logits, torch.as_tensor(target, device=logits.device))
    num_classes = logits.shape[1]
    log_y = F.log_softmax(logits, dim=1)  # log y_k = z_k - logsumexp(z): (B, K, ...)

    if target.dtype.is_floating_point:  # one-hot or soft targets (B, K, ...)
        if target.shape != logits.shape:
            raise DataError(f"one-hot / soft targets must have the logits' shape {tuple(logits.shape)}, "
                            f"got {tuple(target.shape)}")
        t = target.to(log_y.dtype)
    else:  # class indices (B, ...)
        expected = logits.shape[:1] + logits.shape[2:]
        if target.shape != expected:
            raise DataError(f"index targets must have shape {tuple(expected)} for logits {tuple(logits.shape)}, "
                            f"got {tuple(target.shape)}")
        _check_index(target, num_classes, "targets")
        t = F.one_hot(target.long(), num_classes).movedim(-1, 1).to(log_y.dtype)  # (B, K, ...)

    if label_smoothing > 0:
        t = (1.0 - label_smoothing) * t + label_smoothing / num_classes  # t' = (1 - eps) t + eps / K
    # E_n = -sum_k t_nk log y_nk; terms with t_nk = 0 count 0 even where y_nk = 0 (log y = -inf).
    loss = -torch.where(t != 0, t * log_y, torch.zeros_like(log_y)).sum(dim=1)  # (B, ...)
    if reduction == "mean":
        return loss.mean()  # (1/N) sum_n E_n
    return loss.sum() if reduction == "sum" else loss


def cross_entropy_error(y, t, *, delta: float = 1e-7) -> torch.Tensor:
    """The textbook E = -(1/N) sum t log(y + delta) on probabilities y (K,) or (B, K).

    ``t`` is one-hot (same shape as y) or class indices (scalar or (B,)). Returns a scalar tensor.
    """
    y = torch.as_tensor(y)
    t = torch.as_tensor(t, device=y.device)
    if not y.dtype.is_floating_point:
        y = y.double()
    if y.dim() == 1:  # one example -> a batch of one
        t = t.reshape(1, -1) if t.shape == y.shape else t.reshape(-1)  # one-hot (1, K) or index (1,)
        y = y.unsqueeze(0)  # (1, K)
    if y.dim() != 2:
        raise DataError(f"y must be probabilities of shape (K,) or (B, K), got {tuple(y.shape)}")
    if bool((y < 0).any()) or bool((y > 1).any()):
        raise DataError("y must be probabilities in [0, 1]; pass logits to cross_entropy() instead")
    n = y.shape[0]
    if t.shape == y.shape:  # one-hot (any dtype, as the textbook's NumPy arrays)
        return -(t * torch.log(y + delta)).sum() / n  # E = -(1/N) sum_n sum_k t_nk log(y_nk + delta)
    if t.shape != (n,):
        raise DataError(f"t must be one-hot {tuple(y.shape)} or indices ({n},), got {tuple(t.shape)}")
    _check_index(t, y.shape[1], "t")
    return -torch.log(y[torch.arange(n), t.long()] + delta).sum() / n  # only the true class's term survives
