"""EVOS's peers: EGRA, expansive supervision, soft mining and INT — their rules, counts, grids, determinism, exact
resume, and a short fit through the trainer with each."""

import io
import json
import math
import os

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy import ndimage

import visionlab as vl
from visionlab.components.sampling import build_sampler
from visionlab.components.sampling_base import count
from visionlab.components.sampling_peers import (
    IntDenseSampler,
    IntSampler,
    expansive_edges,
)
from visionlab.data.images import coordinate_grid
from visionlab.opt import FitConfig
from visionlab.trainer.fit import build_fit
from visionlab.util.errors import ConfigError

H, W = 24, 32  # not square, so that y W + x and H y + x differ
PEERS = ["egra", "expansive", "soft-mining", "int", "int-dense"]


def square(h=H, w=W) -> np.ndarray:
    """(H, W) in [0, 1]: a bright rectangle on a dark ground, so the edges are known."""
    img = np.full((h, w), 0.1, dtype=np.float32)
    img[6:18, 8:24] = 0.9
    return img


def as_target(img: np.ndarray, channels=3) -> torch.Tensor:
    return torch.from_numpy(img).reshape(-1, 1).repeat(1, channels) * 2 - 1  # (N, C) in [-1, 1]


def band(img: np.ndarray, radius: int) -> np.ndarray:
    """(N,) bool: pixels within ``radius`` (Chebyshev) of a change of value, i.e. near an edge."""
    size = 2 * radius + 1
    return (ndimage.maximum_filter(img, size) != ndimage.minimum_filter(img, size)).ravel()


def make(name, target=None, shape=(H, W), **kw):
    target = as_target(square()) if target is None else target
    kw = {"total_steps": 100, "ratio": 0.3, **kw}
    return build_sampler(name, target=target, shape=shape, **kw)


def fixed_model(in_features=2, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(in_features, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def drive(sampler, steps, *, model, coords, target):
    """Call the hooks as FitTrainer.train_step does (a fixed model, no optimiser step); return the selections."""
    out = []
    for t in steps:
        sampler.prepare(t, model=model, coords=coords)
        idx = sampler.select(t)
        c, y = (coords, target) if idx is None else (coords[idx], target[idx])
        if sampler.wants_coordinate_grad:
            c = c.detach().requires_grad_()
        pred = model(c)
        w = sampler.loss_weights(t, idx, pred.detach())
        loss = ((pred - y) ** 2).mean() if w is None else (w[:, None] * (pred - y) ** 2).mean()
        loss.backward()
        if sampler.wants_coordinate_grad:
            sampler.observe(t, idx, c.grad)
        out.append(idx)
    return out


def drive_square(sampler, steps):
    return drive(sampler, steps, model=fixed_model(), coords=coordinate_grid(H, W), target=as_target(square()))


# ---------------------------------------------------------------------------------------------------- all peers


@pytest.mark.parametrize("name", PEERS)
@pytest.mark.parametrize("scheduler", ["constant", "step", "cosine"])
def test_every_peer_trains_floor_rt_n_each_step(name, scheduler):
    s = make(name, scheduler=scheduler, total_steps=40, ratio=0.2)
    selections = drive_square(s, range(40))
    n = H * W
    assert [idx.numel() for idx in selections] == [count(s.ratio_at(t), n) for t in range(40)]
    assert all(0 <= int(idx.min()) and int(idx.max()) < n for idx in selections)
    if name != "soft-mining":  # soft mining's continuous samples may share a pixel; the others never repeat one
        assert all(idx.unique().numel() == idx.numel() for idx in selections)


@pytest.mark.parametrize("name", PEERS)
def test_same_seed_same_samples_different_seed_different(name):
    a, b, c = (drive_square(make(name, seed=seed), range(8)) for seed in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    if not name.startswith("int"):  # INT is deterministic given the model: it draws nothing
        assert not all(torch.equal(x, z) for x, z in zip(a, c))


@pytest.mark.parametrize("name", PEERS)
def test_state_round_trip_continues_identically(name):
    a = make(name, seed=5, total_steps=40, scheduler="step")
    drive_square(a, range(12))
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)  # as a checkpoint stores it, and reads it back
    buffer.seek(0)
    b = make(name, seed=99, total_steps=40, scheduler="step")
    b.load_state_dict(torch.load(buffer, weights_only=True))
    for x, y in zip(drive_square(a, range(12, 30)), drive_square(b, range(12, 30))):
        assert torch.equal(x, y)


@pytest.mark.parametrize("name", ["egra", "expansive", "soft-mining"])
def test_edge_samplers_refuse_1d_signals(name):
    with pytest.raises(ConfigError, match=f"{name} sampler finds edges.*1-D signal"):
        make(name, target=torch.rand(50, 1), shape=(50,))


# ---------------------------------------------------------------------------------------------------- EGRA


def test_egra_edges_are_canny_30_40_of_the_grey_image():
    img = square()
    img[:, 28:] += 8 / 255  # a faint step of 8 grey levels: Sobel 32 < 40, never a Canny seed at 30 / 40
    s = make("egra", target=as_target(img))
    expected = cv2.Canny(np.round(img * 255 * 0.9999).astype(np.uint8), 30, 40) > 0  # luma of equal channels
    assert expected.sum() > 0 and not expected[:, 26:].any()
    assert torch.equal(s.edges, torch.from_numpy(np.argwhere(expected[None])))


def test_egra_weights_are_a_floor_plus_a_small_weight_on_jittered_edges():
    s = make("egra")
    near = band(square(), 2 + 1)  # edges sit within a pixel of the change; the jitter moves them up to 2 more
    first, second = s.weights(), s.weights()
    for w in (first, second):
        assert set(w.unique().tolist()) == {1.0, 1.5}
        assert (w > 1).sum() <= s.edges.shape[0] and near[(w > 1).numpy()].all()
    assert not torch.equal(first, second)  # fresh jitter every step


def test_egra_draws_more_often_near_edges_but_everywhere():
    img = square()
    s = make("egra", ratio=0.2)
    hits = torch.zeros(H * W)
    for t in range(300):
        hits[s.select(t)] += 1
    near, far = hits[band(img, 3)].mean(), hits[~band(img, 3)].mean()
    assert 1.04 * far < near < 1.5 * far  # more likely on edges, but only slightly
    assert hits.min() > 0  # and every pixel gets trained


# ---------------------------------------------------------------------------------------------------- expansive


def test_expansive_anchors_exact_constant_and_on_edges():
    s = make("expansive", ratio=0.2, scheduler="step", total_steps=50)
    anchors = count(0.1, H * W)  # 0.5 r_0 N = 76
    assert s.anchors.numel() == anchors == s.num_anchors
    assert band(square(), 2)[s.anchors.numpy()].all()  # on the (dilated) edges of the rectangle
    for t in (0, 1, 25, 49):
        idx = s.select(t)
        assert torch.equal(idx[:anchors], s.anchors)  # all anchors, every step
        others = idx[anchors:]
        assert others.numel() == count(s.ratio_at(t), H * W) - anchors
        assert not set(others.tolist()) & set(s.anchors.tolist())
    assert not torch.equal(s.select(2)[anchors:], s.select(3)[anchors:])  # the others are drawn afresh


def test_expansive_threshold_search_lands_near_the_target_area():
    rng = np.random.default_rng(0)
    texture = ndimage.gaussian_filter(rng.random((H, W)), 1.0)
    frames = np.round(255 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)[None]
    for area in (150, 300):
        got = expansive_edges(frames, area).sum()
        assert area <= got <= 1.1 * area


def test_expansive_tops_up_a_flat_image_to_the_exact_count():
    s = make("expansive", target=torch.zeros(H * W, 3), ratio=0.4)
    assert s.anchors.numel() == count(0.2, H * W) and s.anchors.unique().numel() == s.anchors.numel()


# ---------------------------------------------------------------------------------------------------- soft mining


def test_soft_mining_flat_index_is_y_times_width_plus_x():
    s = make("soft-mining")
    s.positions = torch.tensor([[2.2, 5.4], [0.0, 31.0], [23.4, 0.4], [9.6, 30.5]])
    assert s.flat_index(s.positions).tolist() == [2 * W + 5, 31, 23 * W, 10 * W + 31]  # not H y + x (53, ...)


def test_soft_mining_weight_exponent_and_clamp():
    s = make("soft-mining")
    assert [s.exponent(t) for t in (0, 300, 600, 1000, 5000)] == [0.0, 0.3, 0.6, 0.6, 0.6]
    target = as_target(square())
    idx = torch.tensor([0, 1, 2, 3])
    l1 = torch.tensor([0.1, 0.2, 0.4, 1e-6])
    pred = target[idx] + l1[:, None]
    assert torch.equal(s.loss_weights(0, idx, pred), torch.ones(4))  # alpha_0 = 0: plain MSE
    w = s.loss_weights(300, idx, pred)
    mean = l1.mean()
    assert torch.allclose(w[:3], (mean / l1[:3]) ** 0.3)  # proportional to (1 / L1 error)^alpha_t
    assert w[3] == 10.0  # (0.175 / 1e-6)^0.3 = 37.5, clamped


def test_soft_mining_redraws_the_lowest_loss_tenth_on_edges_and_a_tenth_uniformly():
    target = as_target(square())
    s = make("soft-mining", ratio=0.5, noise=0.0)
    idx = s.select(0)
    n = idx.numel()
    errors = torch.randperm(n, generator=torch.Generator().manual_seed(0)).float() / n + 0.01  # distinct losses
    s.loss_weights(0, idx, target[idx] + errors[:, None])
    before = s.positions.clone()
    s.observe(0, idx, torch.zeros(n, 2))  # no gradient, no noise: only the re-draws move samples
    changed = (s.positions != before).any(dim=1)
    low = torch.argsort(errors)[:n // 10]
    assert changed[low].all()
    assert band(square(), 1)[s.flat_index(s.positions[low]).numpy()].all()  # Sobel > 0 only next to the edges
    assert int(changed.sum()) == 2 * (n // 10)  # and exactly one more tenth, anywhere


def test_soft_mining_langevin_step_moves_samples_towards_higher_loss_through_the_trainer(tmp_path):
    trainer = build_fit(FitConfig(image="camera", size="12x20", steps=1000, sampler="soft-mining", ratio=0.5,
                                  width=8, depth=0, device="cpu", quiet=True, out=str(tmp_path)), run_dir=tmp_path)
    s = trainer.sampler
    s.noise, s.redraw_low, s.redraw_uniform = 0.0, 0.0, 0.0

    class Ramp(torch.nn.Module):  # prediction a c_x against a zero target: the loss (a c_x)^2 grows with |c_x|
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, c):
            return self.a * c[:, 1:2]

    trainer.model = trainer.net = Ramp()  # the network of train_step (net: the DDP wrapper, or the model itself)
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.0)
    trainer.target = s.target = torch.zeros(12 * 20, 1)
    before = s.positions.clone()
    x = torch.floor(before[:, 1] + 0.5)  # each sample's pixel column
    c_x = -1 + 2 * x / 19
    # eps d/dx log (a c_x)^2 = eps (2 / c_x) (2 / (W - 1)), at most 2 pixels; y does not move
    expected = before[:, 1] + (s.step_size * 4 / (19 * c_x)).clamp(-s.max_drift, s.max_drift)
    trainer.train_step(500)  # alpha = 0.5: the importance weights are not 1, and must not bias the step
    inside = (expected >= -0.5) & (expected < 19.5)
    assert inside.sum() > 0.8 * len(inside) and (~inside).sum() > 0
    assert torch.allclose(s.positions[inside, 1], expected[inside], atol=1e-4)
    assert torch.equal(s.positions[inside, 0], before[inside, 0])
    moved_out = s.positions[~inside]  # left the grid: re-drawn inside it
    assert ((moved_out >= -0.5) & (moved_out < torch.tensor([11.5, 19.5]))).all()
    def c(x):  # |c_x| of a position: the loss grows with it
        return (-1 + 2 * x / 19).abs()

    assert (c(s.positions[inside, 1]) >= c(before[inside, 1])).all()  # every sample moved towards higher loss


# ---------------------------------------------------------------------------------------------------- INT


def test_int_profiling_schedule():
    s = IntSampler(target=torch.zeros(10, 3), shape=(10,), total_steps=200)
    steps = [t for t in range(200) if s.is_profile_step(t)]
    # first quarter every step; then stages [50, 80), [80, 110), [110, 140), [140, 170), [170, 200)
    # profiling every 10, 20, 30, 40, 50 steps
    assert steps == list(range(50)) + [50, 60, 70, 80, 100, 110, 140, 170]
    s = IntSampler(target=torch.zeros(10, 3), shape=(10,), total_steps=5000)
    assert sum(s.is_profile_step(t) for t in range(5000)) == 1250 + 75 + 38 + 25 + 19 + 15
    dense = IntDenseSampler(target=torch.zeros(10, 3), shape=(10,), total_steps=200)
    assert all(dense.is_profile_step(t) for t in range(200))


class CountingModel(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.rows = inner, 0

    def forward(self, c):
        self.rows += c.shape[0]
        return self.inner(c)


def test_int_trains_the_top_rt_n_of_the_last_profile():
    target = as_target(square())
    coords = coordinate_grid(H, W)
    model = CountingModel(fixed_model())
    s = IntSampler(target=target, shape=(H, W), total_steps=200, ratio=0.2, scheduler="step", chunk=100)
    with pytest.raises(RuntimeError, match="no profile yet"):
        s.select(0)

    def top(k):
        with torch.no_grad():
            error = ((model.inner(coords) - target) ** 2).mean(dim=1)
        return set(torch.topk(error, k).indices.tolist())

    s.prepare(0, model=model, coords=coords)
    assert model.rows == H * W  # one full forward pass, in chunks
    assert set(s.select(0).tolist()) == top(count(0.2, H * W))
    with torch.no_grad():
        model.inner[2].bias += torch.tensor([1.0, -2.0, 0.5])  # the model changes...
    model.rows = 0
    s.prepare(55, model=model, coords=coords)  # ...but step 55 is no profiling step: the old ranking stays
    assert model.rows == 0 and set(s.select(55).tolist()) != top(count(s.ratio_at(55), H * W))
    s.prepare(60, model=model, coords=coords)
    assert model.rows == H * W and set(s.select(60).tolist()) == top(count(s.ratio_at(60), H * W))


@pytest.mark.parametrize("shape", [(50,), (2, 6, 5)])
def test_int_works_on_any_grid(shape):
    n = math.prod(shape)
    target = torch.rand(n, 3, generator=torch.Generator().manual_seed(0))
    coords = torch.rand(n, len(shape), generator=torch.Generator().manual_seed(1)) * 2 - 1
    s = build_sampler("int", target=target, shape=shape, total_steps=20, ratio=0.4)
    assert [idx.numel() for idx in drive(s, range(6), model=fixed_model(len(shape)), coords=coords,
                                         target=target)] == [count(0.4, n)] * 6


# ---------------------------------------------------------------------------------------------------- video


def video_target() -> torch.Tensor:
    frames = np.stack([np.full((H, W), 0.5, dtype=np.float32), square()])  # a flat frame, then the rectangle
    return as_target(frames)


def test_edge_samplers_work_frame_by_frame_on_video():
    target, shape = video_target(), (2, H, W)
    egra = make("egra", target=target, shape=shape)
    assert egra.edges.shape[0] > 0 and (egra.edges[:, 0] == 1).all()  # edges only in the second frame
    assert egra.select(0).numel() == count(0.3, 2 * H * W)
    expansive = make("expansive", target=target, shape=shape, ratio=0.1)  # 76 anchors: the rectangle has enough
    assert expansive.anchors.numel() == count(0.05, 2 * H * W)
    assert band(square(), 2)[expansive.anchors.numpy() - H * W].all()  # all in frame 2, next to its edges
    mining = make("soft-mining", target=target, shape=shape)
    assert mining.positions.shape == (count(0.3, 2 * H * W), 3)
    assert (mining.flat_index(mining.draw_edges(200)) >= H * W).all()  # the flat frame has no edges
    idx = drive(mining, range(3), model=fixed_model(3), coords=torch.rand(2 * H * W, 3) * 2 - 1, target=target)
    assert all(i.numel() == count(0.3, 2 * H * W) and int(i.max()) < 2 * H * W for i in idx)


# ---------------------------------------------------------------------------------------------------- end to end


def log_of(run):
    return [json.loads(line) for line in open(os.path.join(run["run_dir"], "metrics.jsonl"))]


def weights_of(run):
    return load_file(os.path.join(run["run_dir"], "model.safetensors"))


@pytest.mark.parametrize("sampler", PEERS + ["evos-no-cfs"])
def test_fit_with_each_new_sampler_learns_and_resumes_exactly(tmp_path, sampler):
    options = {"out": str(tmp_path), "sampler": sampler, "size": "16", "steps": 30, "eval_every": 10,
               "checkpoint_every": 10, "ratio": 0.3, "scheduler": "linear", "quiet": True, "lr": 1e-3, "width": 32,
               "depth": 2, "crossover": "sum"}
    straight = vl.fit_run("coffee", name="straight", **options)
    log = log_of(straight)
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["psnr"]) for r in log)
    assert log[-1]["psnr"] > log[0]["psnr"] + 1  # it learns
    stopped = vl.fit_run("coffee", name="stopped", callbacks=[lambda t: t.step == 13 and t.request_stop()],
                         **options)
    assert stopped["status"] == "interrupted"
    resumed = vl.fit_run(resume=stopped["run_dir"], quiet=True)
    a, b = weights_of(straight), weights_of(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [(r["step"], r["loss"], r["psnr"]) for r in log] == [(r["step"], r["loss"], r["psnr"])
                                                                for r in log_of(resumed)]
