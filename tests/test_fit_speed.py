"""The fast fit step: fused sine layers, chunked steps, precomputed hash-grid corners and bf16, each against the plain
formula or the one-batch step it replaces."""

import pytest
import torch

from visionlab.components.sampling import SAMPLERS
from visionlab.components.sine import finer_linear, sine_linear
from visionlab.models.hashgrid import HashGrid
from visionlab.models.inr import INR_MODELS, Chunked, Finer, Siren, build_inr
from visionlab.opt import FitConfig
from visionlab.trainer import fit
from visionlab.util import precision
from visionlab.util.errors import ConfigError


def grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("fused, layer_cls", [(sine_linear, Siren.layer_cls), (finer_linear, Finer.layer_cls)])
def test_fused_sine_layer_matches_its_formula_and_gradients_in_float64(fused, layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(7, 5, is_first=False).double()
    x = torch.randn(11, 7, dtype=torch.float64, requires_grad=True)
    reference = layer.activation(layer.linear(x))  # the plain formula: linear, then the activation
    out = fused(x, layer.linear, layer.omega0)
    assert torch.allclose(out, reference, atol=1e-12)
    upstream = torch.randn_like(out)
    expected = torch.autograd.grad(reference, [x, layer.linear.weight, layer.linear.bias], upstream)
    got = torch.autograd.grad(out, [x, layer.linear.weight, layer.linear.bias], upstream)
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, rtol=1e-10, atol=1e-12)


def test_fused_sine_layer_passes_gradcheck():
    # SIREN's only: FINER's gradient treats (|z| + 1) as a constant on purpose, so finite differences disagree.
    from visionlab.components.sine import _SineLinear

    torch.manual_seed(0)
    x, w, b = (torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in ((6, 3), (4, 3), (4,)))
    assert torch.autograd.gradcheck(lambda x, w, b: _SineLinear.apply(x, w, b, 2.0, False), (x, w, b))


@pytest.mark.parametrize("name", list(INR_MODELS))
def test_chunked_forward_and_gradients_equal_one_batch(name):
    torch.manual_seed(0)
    model = build_inr(name, in_features=2, out_features=3, width=32, depth=2)
    coords = torch.rand(300, 2) * 2 - 1
    target = torch.rand(300, 3)
    results = []
    for chunk in (300, 37):
        model.zero_grad()
        pred = Chunked(model, chunk=chunk)(coords)
        ((pred - target) ** 2).mean().backward()
        results.append((pred.detach(), grads(model)))
    (pred_a, grads_a), (pred_b, grads_b) = results
    assert torch.allclose(pred_a, pred_b, atol=1e-6)
    for key in grads_a:
        assert torch.allclose(grads_a[key], grads_b[key], rtol=1e-4, atol=1e-7), key


def build(sampler: str, chunk: int, tmp_path) -> fit.FitTrainer:
    config = FitConfig(image="astronaut", size="24", width=32, depth=2, steps=40, sampler=sampler, ratio=0.3,
                       scheduler="step", cfs_steps=40, lr=1e-12, chunk=chunk, quiet=True, out=str(tmp_path),
                       name=f"{sampler}-{chunk}", threads=1)
    return fit.build_fit(config)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_chunked_step_gives_every_selector_the_one_batch_gradient(sampler, tmp_path):
    # lr 1e-12: the weights stay put, so each step of the two runs computes its gradient at the same point; the
    # steps cover EVOS's evaluation step (fitness and crossover from every row), its CFS term on ordinary steps,
    # INT's profiles, soft mining's coordinate gradients and importance weights.
    one, chunked = build(sampler, 576, tmp_path), build(sampler, 50, tmp_path)
    for step in range(4):
        logs_one, logs_chunked = one.train_step(step), chunked.train_step(step)
        assert logs_one["pixels"] == logs_chunked["pixels"]
        assert logs_chunked["loss"] == pytest.approx(logs_one["loss"], rel=1e-5)
        g_one, g_chunked = grads(one.model), grads(chunked.model)
        for key in g_one:
            assert torch.allclose(g_one[key], g_chunked[key], rtol=1e-3, atol=1e-8), (step, key)
    if sampler == "soft-mining":  # the samples moved along the same coordinate gradients
        assert torch.allclose(one.sampler.positions, chunked.sampler.positions, atol=1e-4)
    if sampler.startswith("evos"):
        assert torch.equal(one.sampler.order, chunked.sampler.order)


def test_hash_grid_precomputed_corners_give_the_coordinate_path_exactly():
    torch.manual_seed(0)
    model = HashGrid(out_features=3, log2_table_size=8)
    coords = torch.rand(500, 2) * 2 - 1
    assert model.bind(coords)
    rows = torch.tensor([4, 0, 499, 4, 17])
    by_coords = model(coords[rows])
    model.zero_grad()
    by_coords.sum().backward()
    expected = grads(model)
    model.zero_grad()
    by_rows = model(coords[rows], rows)
    by_rows.sum().backward()
    assert torch.equal(by_rows, by_coords)
    for key, value in grads(model).items():
        assert torch.allclose(value, expected[key], atol=1e-7), key


def test_hash_grid_bind_refuses_a_point_set_over_its_memory_budget(monkeypatch):
    import visionlab.models.hashgrid as hashgrid

    monkeypatch.setattr(hashgrid, "BIND_MAX_BYTES", 1000)
    model = HashGrid(out_features=3, log2_table_size=8)
    assert not model.bind(torch.zeros(100, 2))  # 100 x 16 x 4 x 12 bytes > 1000
    assert model.encoding._bound is None


def test_fit_trainer_binds_the_hash_grid_except_for_soft_mining(tmp_path):
    def trainer(sampler):
        return fit.build_fit(FitConfig(image="camera", size="24", model="hashgrid", steps=2, sampler=sampler,
                                       quiet=True, out=str(tmp_path), threads=1))

    assert trainer("random").rows is not None
    assert trainer("soft-mining").rows is None  # it needs d loss / d coordinates: no precomputed weights


def test_precision_bf16_is_refused_where_it_is_not_native(monkeypatch):
    monkeypatch.setattr(fit, "bf16_is_fast", lambda device: False)
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: False)
    model = Siren(out_features=3)
    with pytest.raises(ConfigError, match="AVX512-BF16"):
        fit.resolve_precision("bf16", model, torch.device("cpu"))
    assert fit.resolve_precision("auto", model, torch.device("cpu")) == "fp32"


def test_precision_auto_follows_the_measured_cost(monkeypatch):
    monkeypatch.setattr(fit, "bf16_is_fast", lambda device: True)
    cpu = torch.device("cpu")
    for cost, expected in ((0.05, "bf16"), (0.1, "fp32"), (0.26, "fp32"), (None, "fp32")):
        monkeypatch.setattr(Siren, "bf16_cost_db", cost)
        assert fit.resolve_precision("auto", Siren(out_features=3), cpu) == expected, cost
    assert fit.resolve_precision("fp32", Siren(out_features=3), cpu) == "fp32"


@pytest.mark.skipif(not precision.bf16_is_fast(torch.device("cpu")), reason="this CPU has no native bf16")
def test_a_bf16_fit_keeps_weights_and_adam_in_fp32_and_learns(tmp_path):
    trainer = fit.build_fit(FitConfig(image="astronaut", size="24", width=32, depth=2, steps=60, sampler="full",
                                      lr=1e-3, precision="bf16", quiet=True, out=str(tmp_path), threads=1))
    first = trainer.evaluate()["psnr"]
    summary = trainer.train()
    assert summary["metrics"]["precision"] == "bf16"
    assert summary["metrics"]["psnr"] > first + 3
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    for state in trainer.optimizer.state.values():
        assert state["exp_avg"].dtype == torch.float32 and state["exp_avg_sq"].dtype == torch.float32


@pytest.mark.skipif(not precision.bf16_is_fast(torch.device("cpu")), reason="this CPU has no native bf16")
@pytest.mark.parametrize("name", ["siren", "finer", "gauss", "hashgrid"])
def test_under_bf16_the_input_layer_and_the_output_stay_fp32(name):
    # Neighbouring pixels of a 512-pixel grid are 2/511 apart; in bf16 many of them would share one coordinate.
    torch.manual_seed(0)
    model = build_inr(name, in_features=2, out_features=3, width=32, depth=2)
    first = model.encoding if name == "hashgrid" else model.net[0]
    seen = []
    first.register_forward_hook(lambda module, args, out: seen.append(out))
    coords = torch.linspace(0.9, 1.0, 52)[:, None].expand(-1, 2).contiguous()
    with precision.autocast(torch.device("cpu"), "bf16"):
        out = model(coords)
    plain = first(coords)
    assert out.dtype == torch.float32 and seen[0].dtype == torch.float32
    assert torch.equal(seen[0], plain)  # computed in fp32, as without autocast
    assert torch.allclose(out, model(coords), atol=0.05)  # the bf16 hidden layers: close, not equal


def test_fast_preset_fits_with_the_dense_hash_grid_and_evos_without_cfs(tmp_path):
    import visionlab as vl

    summary = vl.fit_run("camera", preset="fast", size="48", steps=40, eval_every=20, quiet=True, out=str(tmp_path),
                         threads=1)
    metrics = summary["metrics"]
    assert summary["status"] == "finished" and metrics["precision"] == "fp32"
    assert metrics["psnr"] > 25  # a 48 x 48 photo in 40 hash-grid steps
    n = 48 * 48
    # half the pixels a step, and every pixel on EVOS's first evaluation step (the only one in 40 steps)
    assert metrics["pixels_trained"] == n + 39 * (n // 2)
    from safetensors.torch import load_file

    weights = load_file(f"{summary['run_dir']}/model.safetensors")
    assert "encoding.table" in weights


def test_fit_command_refuses_bf16_where_it_is_not_native_in_one_line(monkeypatch, capsys, tmp_path):
    from visionlab.cli import main

    monkeypatch.setattr(fit, "check_bf16", lambda device: precision.check_bf16(torch.device("meta")))
    assert main(["fit", "camera", "--preset", "tiny", "--precision", "bf16", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "AVX512-BF16" in err[0]


def test_a_bad_chunk_is_refused(tmp_path):
    import visionlab as vl

    with pytest.raises(ConfigError, match="chunk"):
        vl.fit("camera", preset="tiny", chunk=0, out=str(tmp_path))
