"""Sample selectors: the ratio schedules, per-step counts, EVOS's evaluation steps, crossover, mutation and CFS."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from visionlab.components.sampling import (
    EvosSampler,
    FullSampler,
    RandomSampler,
    build_sampler,
    grey255,
    laplacian,
    step_ratio,
)
from visionlab.util.errors import ConfigError


def image_target(h=12, w=10, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(h * w, c, generator=g) * 2 - 1  # (N, C) in [-1, 1]


def test_step_schedule_matches_the_paper():
    stages = [step_ratio(t, total_steps=5000, ratio=0.2) for t in range(0, 5000, 500)]
    assert np.allclose(stages, [0.20, 0.28, 0.36, 0.44, 0.52, 0.60, 0.68, 0.76, 0.84, 0.92])
    assert step_ratio(499, total_steps=5000, ratio=0.2) == pytest.approx(0.2)
    assert step_ratio(4999, total_steps=5000, ratio=0.2) == pytest.approx(0.92)


def test_full_selects_everything():
    assert FullSampler(num_pixels=50, total_steps=10).select(3) is None


def test_random_counts_distinct_and_repeatable():
    a = RandomSampler(num_pixels=1000, total_steps=100, ratio=0.3, seed=7)
    b = RandomSampler(num_pixels=1000, total_steps=100, ratio=0.3, seed=7)
    first = a.select(0)
    assert first.shape == (300,) and first.unique().numel() == 300
    assert torch.equal(first, b.select(0))
    assert not torch.equal(a.select(1), first)  # a fresh draw every step


def test_random_step_schedule_counts():
    s = RandomSampler(num_pixels=1000, total_steps=100, ratio=0.2, scheduler="step")
    assert [s.select(t).numel() for t in (0, 10, 95)] == [200, 280, 920]


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
def test_ratio_outside_range_is_rejected(ratio):
    with pytest.raises(ConfigError, match="ratio"):
        RandomSampler(num_pixels=10, total_steps=10, ratio=ratio)


def test_evos_evaluation_steps_72_for_5000():
    s = EvosSampler(target=image_target(), height=12, width=10, total_steps=5000, ratio=0.2, scheduler="step")
    steps = [t for t in range(5000) if s.is_evaluation_step(t)]
    assert len(steps) == 72
    assert steps[:4] == [0, 99, 196, 291]  # t = 1, 100, 197, 292 counted from 1; the interval shrinks 100 -> 50
    gaps = np.diff(steps)
    assert gaps[0] == 99 and gaps[-1] in (50, 51)


def run_steps(sampler, target, steps, model_noise=0.3, seed=0):
    """Drive a selector with a fake prediction (target + noise), as the trainer does; return the selections."""
    g = torch.Generator().manual_seed(seed)
    pred_full = target + model_noise * torch.randn(target.shape, generator=g)
    out = []
    for t in steps:
        idx = sampler.select(t)
        pred = pred_full if idx is None else pred_full[idx]
        sampler.extra_loss(t, idx, pred)
        out.append(idx)
    return out


def test_evos_per_step_counts_are_fittest_k_plus_mutations():
    target = image_target(20, 25)
    n = target.shape[0]  # 500
    s = EvosSampler(target=target, height=20, width=25, total_steps=200, ratio=0.2, scheduler="step", seed=1)
    selections = run_steps(s, target, range(0, 60))
    assert selections[0] is None  # step 0 (t = 1) evaluates: every pixel
    for t in range(1, 20):  # r_t = 0.2, m = 0.1: K = 50 fittest + M = 50 mutations
        idx = selections[t]
        assert idx.numel() == 100 and idx.unique().numel() == 100
        assert torch.equal(idx[:50], s.order[:50])  # the K fittest of the cached ranking
        assert not set(idx[50:].tolist()) & set(s.order[:50].tolist())  # mutations come from the rest
    # r_t grows to 0.28 at step 20: K = 90 (topped up from the next-ranked), M = 50.
    idx = selections[20]
    assert idx.numel() == int(0.28 * n) and torch.equal(idx[:90], s.order[:90])
    # Mutations differ from step to step (a fresh uniform draw), the kept set does not.
    assert not torch.equal(selections[1][50:], selections[2][50:])


def test_evos_ranking_follows_fitness_without_crossover():
    target = image_target(8, 8)
    s = EvosSampler(target=target, height=8, width=8, total_steps=100, ratio=0.5, crossover=False)
    pred = target.clone()
    pred[[5, 17, 40]] += torch.tensor([[0.9], [0.5], [0.7]])  # three clearly worst pixels
    s.extra_loss(0, None, pred)
    assert s.order[:3].tolist() == [5, 40, 17]
    assert sorted(s.order.tolist()) == list(range(64))  # a permutation of every pixel


def test_frequency_crossover_rule():
    fitness = torch.tensor([9., 8, 7, 6, 5, 0, 0, 0, 0, 0])
    freq = torch.tensor([0., 0, 0, 6, 0, 9, 8, 7, 0, 0])
    # top-4 by fitness {0,1,2,3}, by frequency {5,6,7,3}: both {3}; 3 places shared by mean error
    # (3.5 vs 3.0): round(3 * 3.5 / 6.5) = 2 from fitness (0, 1), 1 from frequency (5).
    chosen = EvosSampler.frequency_crossover(fitness, freq, 4)
    assert chosen.tolist() == [3, 0, 1, 5]
    # Equal-mean lists split the places evenly; identical lists give the common top-k.
    assert EvosSampler.frequency_crossover(fitness, fitness, 3).tolist() == [0, 1, 2]


def test_evos_crossover_uses_the_laplacian_error():
    # The kept set is the crossover of the squared-error list and the Laplacian-error list, the latter computed
    # here independently with SciPy (grey in 0-255 units, zero padding, lambda = 1e-5).
    h, w = 16, 16
    g = torch.Generator().manual_seed(0)
    target = torch.rand(h * w, 3, generator=g) * 2 - 1
    pred = target + 0.3 * torch.randn(h * w, 3, generator=g)
    s = EvosSampler(target=target, height=h, width=w, total_steps=100, ratio=0.3)
    s.extra_loss(0, None, pred)
    keep = s.counts(0)[0]
    kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0.]])
    lap = lambda v: ndimage.convolve(grey255(v).double().numpy().reshape(h, w), kernel, mode="constant").ravel()  # noqa: E731
    freq = torch.from_numpy(1e-5 * (lap(pred) - lap(target)) ** 2)
    fitness = ((pred - target) ** 2).mean(1).double()
    expected = EvosSampler.frequency_crossover(fitness, freq, keep)
    assert set(s.order[:keep].tolist()) == set(expected.tolist())
    by_fitness = set(torch.topk(fitness, keep).indices.tolist())
    from_freq = set(s.order[:keep].tolist()) - by_fitness
    assert from_freq and from_freq <= set(torch.topk(freq, keep).indices.tolist())  # the frequency list got places


def test_laplacian_matches_scipy_with_zero_padding():
    grey = torch.rand(7 * 9, dtype=torch.float64)
    kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
    expected = ndimage.convolve(grey.numpy().reshape(7, 9), kernel, mode="constant", cval=0.0).ravel()
    assert np.allclose(laplacian(grey, 7, 9).numpy(), expected)


def test_grey_is_itu601_in_255_units():
    values = torch.tensor([[1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    assert torch.allclose(grey255(values), torch.tensor([0.2989 * 255, 0.9999 * 255]))


def test_cfs_term_on_evaluation_and_ordinary_steps_then_off():
    h, w = 10, 12
    target = image_target(h, w)
    pred_full = target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))
    s = EvosSampler(target=target, height=h, width=w, total_steps=100, ratio=0.5, cfs_steps=10)
    term = s.extra_loss(0, None, pred_full)
    lap = lambda v: ndimage.convolve(grey255(v).numpy().reshape(h, w), np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0.]]),  # noqa: E731
                                     mode="constant").ravel()
    expected = 1e-5 * np.mean((lap(pred_full) - lap(target)) ** 2)
    assert term.item() == pytest.approx(expected, rel=1e-5)
    # Ordinary step: fresh predictions pasted over the cached ones, error averaged over the trained pixels.
    idx = s.select(1)
    fresh = pred_full[idx] + 0.05
    pasted = pred_full.clone()
    pasted[idx] = fresh
    expected = 1e-5 * np.mean(((lap(pasted) - lap(target)) ** 2)[idx.numpy()])
    term = s.extra_loss(1, idx, fresh.requires_grad_())
    assert term.item() == pytest.approx(expected, rel=1e-5)
    term.backward()  # the term reaches the prediction
    assert s.extra_loss(10, s.select(10), pred_full[s.select(10)]) is None


def test_evos_state_round_trip_continues_identically():
    target = image_target(10, 10)
    a = EvosSampler(target=target, height=10, width=10, total_steps=300, ratio=0.2, scheduler="step", seed=5)
    run_steps(a, target, range(0, 120))
    b = EvosSampler(target=target, height=10, width=10, total_steps=300, ratio=0.2, scheduler="step", seed=99)
    b.load_state_dict(a.state_dict())
    for x, y in zip(run_steps(a, target, range(120, 220)), run_steps(b, target, range(120, 220))):
        assert (x is None and y is None) or torch.equal(x, y)


def test_build_sampler_rejects_unknown_names_and_bad_mutation():
    with pytest.raises(ConfigError, match="unknown sampler 'best'"):
        build_sampler("best", target=image_target(), height=12, width=10, total_steps=10, ratio=0.5)
    with pytest.raises(ConfigError, match="mutation ratio"):
        EvosSampler(target=image_target(), height=12, width=10, total_steps=10, ratio=0.2, mutation_ratio=0.3)
