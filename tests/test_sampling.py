"""Sample selectors: the ratio schedules, per-step counts, EVOS's evaluation steps, crossover (and its ablations),
mutation and CFS, grids of 1 to 3 dimensions, and how build_sampler and FitConfig name them."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from visionlab.components.sampling import (
    SAMPLERS,
    EvosSampler,
    EvosWithoutCfsSampler,
    FullSampler,
    RandomSampler,
    build_sampler,
)
from visionlab.components.sampling_base import (
    RATIO_SCHEDULERS,
    cosine_ratio,
    grey255,
    laplacian,
    linear_ratio,
    signal_grey255,
    step_ratio,
)
from visionlab.components.sampling_evos import CROSSOVERS
from visionlab.opt import FitConfig
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
    s = EvosSampler(target=image_target(), shape=(12, 10), total_steps=5000, ratio=0.2, scheduler="step")
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
    s = EvosSampler(target=target, shape=(20, 25), total_steps=200, ratio=0.2, scheduler="step", seed=1)
    selections = run_steps(s, target, range(60))
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
    s = EvosSampler(target=target, shape=(8, 8), total_steps=100, ratio=0.5, crossover="none")
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
    s = EvosSampler(target=target, shape=(h, w), total_steps=100, ratio=0.3)
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
    assert np.allclose(laplacian(grey, (7, 9)).numpy(), expected)


def test_grey_is_itu601_in_255_units():
    values = torch.tensor([[1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    assert torch.allclose(grey255(values), torch.tensor([0.2989 * 255, 0.9999 * 255]))


def test_cfs_term_on_evaluation_and_ordinary_steps_then_off():
    h, w = 10, 12
    target = image_target(h, w)
    pred_full = target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))
    s = EvosSampler(target=target, shape=(h, w), total_steps=100, ratio=0.5, cfs_steps=10)
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
    a = EvosSampler(target=target, shape=(10, 10), total_steps=300, ratio=0.2, scheduler="step", seed=5)
    run_steps(a, target, range(120))
    b = EvosSampler(target=target, shape=(10, 10), total_steps=300, ratio=0.2, scheduler="step", seed=99)
    b.load_state_dict(a.state_dict())
    for x, y in zip(run_steps(a, target, range(120, 220)), run_steps(b, target, range(120, 220))):
        assert (x is None and y is None) or torch.equal(x, y)


def test_build_sampler_rejects_unknown_names_and_bad_mutation():
    with pytest.raises(ConfigError, match="unknown sampler 'best'"):
        build_sampler("best", target=image_target(), shape=(12, 10), total_steps=10, ratio=0.5)
    with pytest.raises(ConfigError, match="mutation ratio"):
        EvosSampler(target=image_target(), shape=(12, 10), total_steps=10, ratio=0.2, mutation_ratio=0.3)


# ---------------------------------------------------------------------------------------------------- schedulers


def test_linear_and_cosine_ramps_from_r0_to_one():
    def ramp(f):
        return [f(t, total_steps=100, ratio=0.2) for t in (0, 25, 50, 75, 100, 150)]

    assert np.allclose(ramp(linear_ratio), [0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    c = (1 - np.cos(np.pi / 4)) / 2  # 0.1464: the cosine ramp starts and ends flat
    assert np.allclose(ramp(cosine_ratio), [0.2, 0.2 + 0.8 * c, 0.6, 1.0 - 0.8 * c, 1.0, 1.0])


@pytest.mark.parametrize("scheduler, expected", [
    ("constant", [200, 200, 200, 200]),
    ("step", [200, 200, 600, 920]),  # stage floor(t / 10): 0, 0, 5, 9
    ("linear", [200, 208, 600, 992]),  # 1000 (0.2 + 0.8 t / 100)
    ("cosine", [200, 200, 600, 999]),  # 1000 (0.2 + 0.4 (1 - cos(pi t / 100))); t = 1: 200.0987 -> 200
])
def test_every_scheduler_sets_the_count_per_step(scheduler, expected):
    assert set(RATIO_SCHEDULERS) == {"constant", "step", "linear", "cosine"}
    s = RandomSampler(num_pixels=1000, total_steps=100, ratio=0.2, scheduler=scheduler)
    assert [s.select(t).numel() for t in (0, 1, 50, 99)] == expected


def test_unknown_scheduler_is_rejected():
    with pytest.raises(ConfigError, match="unknown ratio scheduler 'exp'"):
        RandomSampler(num_pixels=10, total_steps=10, scheduler="exp")


# ---------------------------------------------------------------------------------------------------- EVOS variants


def crossover_case(h=16, w=16):
    g = torch.Generator().manual_seed(4)
    target = torch.rand(h * w, 3, generator=g) * 2 - 1
    pred = target + 0.3 * torch.randn(h * w, 3, generator=g)
    kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0.]])

    def lap(v):
        return ndimage.convolve(grey255(v).double().numpy().reshape(h, w), kernel, mode="constant").ravel()

    freq = torch.from_numpy(1e-5 * (lap(pred) - lap(target)) ** 2)
    fitness = ((pred - target) ** 2).mean(1).double()
    return target, pred, fitness, freq


def kept_after_evaluation(target, pred, crossover):
    s = EvosSampler(target=target, shape=(16, 16), total_steps=100, ratio=0.3, crossover=crossover)
    s.extra_loss(0, None, pred)
    keep = s.counts(0)[0]
    return s, keep, set(s.order[:keep].tolist())


def test_crossover_variants_keep_what_their_rule_says():
    target, pred, fitness, freq = crossover_case()
    _, keep, select = kept_after_evaluation(target, pred, "select")
    s_sum, _, summed = kept_after_evaluation(target, pred, "sum")
    s_none, _, plain = kept_after_evaluation(target, pred, "none")
    assert select == set(EvosSampler.frequency_crossover(fitness, freq, keep).tolist())
    assert summed == set(torch.topk(fitness + freq, keep).indices.tolist())
    assert plain == set(torch.topk(fitness, keep).indices.tolist())
    assert len({frozenset(select), frozenset(summed), frozenset(plain)}) == 3  # the case tells the rules apart
    # After the kept K, "sum" ranks the rest by the summed error (for a growing r_t), "none" by the squared error.
    rest_sum = s_sum.order[keep:]
    assert torch.all((fitness + freq)[rest_sum][:-1] >= (fitness + freq)[rest_sum][1:])
    assert torch.all(fitness[s_none.order[keep:]][:-1] >= fitness[s_none.order[keep:]][1:])


def test_unknown_crossover_is_rejected():
    with pytest.raises(ConfigError, match="unknown EVOS crossover 'mix'"):
        EvosSampler(target=image_target(), shape=(12, 10), total_steps=10, crossover="mix")
    with pytest.raises(ConfigError, match="crossover must be one of"):
        FitConfig(crossover="mix").validate()


def test_evos_without_cfs_is_evos_with_no_frequency_term():
    target = image_target(10, 10)
    common = {"target": target, "shape": (10, 10), "total_steps": 100, "ratio": 0.2, "scheduler": "step", "seed": 3}
    no_cfs = build_sampler("evos-no-cfs", cfs_steps=1500, **common)  # the name wins over the option
    assert isinstance(no_cfs, EvosWithoutCfsSampler) and no_cfs.cfs_steps == 0
    evos = build_sampler("evos", cfs_steps=0, **common)
    with_cfs = build_sampler("evos", cfs_steps=1500, **common)
    pred = target + 0.2
    assert no_cfs.extra_loss(0, None, pred) is None and with_cfs.extra_loss(0, None, pred) is not None
    evos.extra_loss(0, None, pred)
    for a, b in zip(run_steps(no_cfs, target, range(1, 30)), run_steps(evos, target, range(1, 30))):
        assert torch.equal(a, b)  # otherwise the same selector


def test_build_sampler_gives_each_selector_only_its_own_options():
    target = image_target()
    s = build_sampler("evos", target=target, shape=(12, 10), total_steps=10, ratio=0.5, mutation_ratio=0.1,
                      cfs_steps=7, crossover="sum")
    assert (s.mutation_ratio, s.cfs_steps, s.crossover) == (0.1, 7, "sum")
    r = build_sampler("random", target=target, shape=(12, 10), total_steps=10, ratio=0.5, cfs_steps=7,
                      crossover="sum")  # EVOS's options are not the random selector's: left aside
    assert isinstance(r, RandomSampler) and r.select(0).numel() == 60


def test_full_random_and_evos_keep_the_plain_loss():
    # The trainer takes the unweighted MSE path (bit-identical to before the hooks) when loss_weights is None.
    target = image_target()
    for s in (FullSampler(num_pixels=120, total_steps=10), RandomSampler(num_pixels=120, total_steps=10),
              EvosSampler(target=target, shape=(12, 10), total_steps=10)):
        assert not s.wants_coordinate_grad and s.loss_weights(0, None, target) is None


def test_fit_config_offers_every_sampler_scheduler_and_crossover():
    choices = {f.name: f.metadata["choices"] for f in dataclasses.fields(FitConfig)}
    assert choices["sampler"] == tuple(SAMPLERS)
    assert choices["scheduler"] == tuple(RATIO_SCHEDULERS)
    assert choices["crossover"] == CROSSOVERS and FitConfig().crossover == "select"
    assert all(SAMPLERS[name].name == name for name in SAMPLERS)


# ---------------------------------------------------------------------------------------------------- other grids


def test_laplacian_is_the_second_difference_on_1d_signals():
    grey = torch.rand(17, dtype=torch.float64)
    expected = np.convolve(np.pad(grey.numpy(), 1), [1, -2, 1], mode="valid")  # zero padding
    assert np.allclose(laplacian(grey, (17,)).numpy(), expected)


def test_laplacian_works_frame_by_frame_on_video():
    video = torch.rand(3, 6, 5, dtype=torch.float64)
    lap = laplacian(video.flatten(), (3, 6, 5)).reshape(3, 6, 5)
    for t in range(3):  # no frame leaks into its neighbours
        assert torch.allclose(lap[t], laplacian(video[t].flatten(), (6, 5)).reshape(6, 5))


def test_grey_is_luma_only_for_colour_images_and_videos():
    values = torch.tensor([[1.0, -1.0, -1.0]])  # pure red
    assert signal_grey255(values, (1, 1)).item() == pytest.approx(0.2989 * 255)
    assert signal_grey255(values, (1, 1, 1)).item() == pytest.approx(0.2989 * 255)
    assert signal_grey255(values, (1,)).item() == pytest.approx(255 / 3)  # audio channels: their mean
    assert signal_grey255(torch.tensor([[0.0, 1.0]]), (1, 1)).item() == pytest.approx(0.75 * 255)


@pytest.mark.parametrize("shape, channels", [((64,), 1), ((64,), 2), ((3, 6, 5), 3)])
def test_evos_runs_on_audio_and_video_grids(shape, channels):
    n = int(np.prod(shape))
    target = torch.rand(n, channels, generator=torch.Generator().manual_seed(0)) * 2 - 1
    s = build_sampler("evos", target=target, shape=shape, total_steps=100, ratio=0.5, seed=0)
    selections = run_steps(s, target, range(10))
    assert selections[0] is None
    k = 2 * (n // 4)  # floor((r - m) N) kept + floor(m N) mutations, m = r / 2
    assert all(idx.numel() == k and idx.unique().numel() == k for idx in selections[1:])
    assert s.extra_loss(1, selections[1], target[selections[1]] + 0.1) > 0  # CFS on the grid's Laplacian


@pytest.mark.parametrize("shape", [(12, 11), (2, 2, 2, 15), (0, 120)])
def test_a_grid_that_is_not_the_target_is_rejected(shape):
    with pytest.raises(ConfigError, match="grid"):
        build_sampler("random", target=image_target(), shape=shape, total_steps=10, ratio=0.5)


def test_build_sampler_rejects_an_option_no_selector_takes():
    with pytest.raises(ConfigError, match="unknown sampler option.*cfs_step"):
        build_sampler("evos", target=image_target(), shape=(12, 10), total_steps=10, ratio=0.5, cfs_step=3)
