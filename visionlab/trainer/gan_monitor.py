"""What watches a GAN run for the two classic failures, and warns once of each (``trainer/adversarial.py``).

Warnings are printed once and written into the next ``metrics.jsonl`` line and ``metrics.json``:

- *the discriminator wins*: D classifies >= 99 % of the real and generated images of its batches right for
  ``d_win_steps`` steps in a row; G's gradient then carries little (try hinge or wgan-gp, or a smaller D learning
  rate). A heuristic: healthy hinge runs on digits reach 0.99 for a while too. Not for wgan-gp, whose critic is meant
  to separate the two (its logged accuracy counts the side of the midpoint of the mean real and fake scores).
- *mode collapse*: the mean pairwise distance of 256 images from fixed noise falls below ``collapse_threshold`` times
  that of 256 real training images. Measured in the reference classifier's feature space (``--monitor reference``, or
  ``auto`` when ``--fid-samples`` trains the classifier anyway) or, as a proxy, in pixel space.

:class:`GanMonitor` is a mixin of the trainer: it reads the trainer's ``config``, ``data``, ``device``, ``step``,
``total_steps``, ``monitor`` ("reference" or "pixels") and ``monitor_samples``, and keeps its warnings in the
trainer's checkpointed ``warnings``, ``pending`` and ``d_win_run``.
"""

from __future__ import annotations

import sys
from typing import Callable

import torch
from tqdm.auto import tqdm

from visionlab.trainer.reference import classify, reference_classifier

D_WINS = 0.99  # D "wins" a step when it classifies at least this share of its real and generated images right


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance between the rows of x (N, ...) over the N (N - 1) ordered pairs."""
    f = x.flatten(1).double()  # (N, D)
    n = len(f)
    return (torch.cdist(f, f).sum() / max(1, n * (n - 1))).item()


class GanMonitor:
    """Warnings of a GAN trainer: the discriminator wins, mode collapse (a mixin of ``AdversarialTrainer``)."""

    def warn(self, kind: str, message: str, step: int) -> None:
        """Give a warning once per kind: printed now, logged in the next metrics.jsonl line and metrics.json."""
        if any(w["kind"] == kind for w in self.warnings):
            return
        self.warnings.append({"step": step, "kind": kind, "message": message})
        self.pending.append(message)
        tqdm.write(f"warning: {message}", file=sys.stderr)

    def _watch_discriminator(self, accuracy: float, step: int) -> None:
        patience = self.config.d_win_steps if self.config.loss != "wgan-gp" else 0  # a critic is meant to separate
        self.d_win_run = self.d_win_run + 1 if accuracy >= D_WINS else 0
        if patience and self.d_win_run == patience:
            self.warn("discriminator-wins", f"step {step}: the discriminator has told real from generated images "
                      f"(>= {D_WINS:.0%} right) for {patience} steps in a row; the generator learns little now. "
                      f"Try --loss hinge or wgan-gp, a lower --lr-d, or a smaller --ndf", step)

    def diversity(self, fake: Callable[[], torch.Tensor]) -> float:
        """Mean pairwise distance of the images (N, C, H, W) in [0, 1] that ``fake()`` draws over that of N real
        training images, in the reference classifier's feature space or in pixels (``self.monitor``)."""
        if self._real_spread is None:
            pick = torch.randperm(len(self.data.train_x), generator=torch.Generator().manual_seed(self.config.seed))
            self._real_spread = mean_pairwise_distance(self._monitor_features(
                self.data.train_x[pick[:self.monitor_samples]]))
        return mean_pairwise_distance(self._monitor_features(fake())) / max(self._real_spread, 1e-12)

    def watch_collapse(self, diversity: float) -> None:
        """Warn of mode collapse when ``diversity`` falls below ``collapse_threshold`` after the first tenth."""
        warmed_up = self.step >= self.total_steps // 10  # a fresh G draws near-constant images: judge it later
        if warmed_up and diversity < self.config.collapse_threshold:
            self.warn("mode-collapse", f"step {self.step}: the samples look alike (their spread in "
                      f"{'the reference features' if self.monitor == 'reference' else 'pixels'} is "
                      f"{diversity:.2f} of the real images'; below {self.config.collapse_threshold}): "
                      f"mode collapse. Look at the sample grids; try --loss wgan-gp or a lower --lr", self.step)

    def _monitor_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> what diversity is measured on: reference features (N, 128) or pixels."""
        if self.monitor == "pixels":
            return images.flatten(1)
        if self._classifier is None:
            self._classifier, _ = reference_classifier(self.data, device=self.device, quiet=self.config.quiet)
        return classify(self._classifier, images, device=self.device)[0]
