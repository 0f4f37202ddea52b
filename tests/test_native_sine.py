"""The native sine kernel (components/sine_kernel.cpp) against the PyTorch path it replaces, and the fit's
chunk-by-chunk step against the whole-batch one."""

import math

import pytest
import torch

from visionlab.components import sine
from visionlab.components.sampling import SAMPLERS
from visionlab.models.inr import Finer, Siren
from visionlab.opt import FitConfig
from visionlab.trainer import fit
from visionlab.util import native
from visionlab.util.device import keep_freed_memory

needs_kernel = pytest.mark.skipif(sine.kernel() is None, reason=f"no native kernel here: {sine.kernel_status()}")


@pytest.fixture
def pytorch_path(monkeypatch):
    """Within the test, the PyTorch path (as where the kernel cannot be built); restored afterwards."""
    def use():
        monkeypatch.setitem(native._loaded, sine.KERNEL, None)
    return use


def forward_and_grads(model, x, upstream):
    y = model(x)
    return y.detach(), torch.autograd.grad(y, [x, *model.parameters()], upstream)


@needs_kernel
@pytest.mark.parametrize("cls", [Siren, Finer])
@pytest.mark.parametrize("n", [1, 7, 512, 1025, 2048, 3000])  # from 2,048 rows the weights are packed once
def test_kernel_gives_the_pytorch_paths_output_and_gradients(cls, n, pytorch_path):
    torch.manual_seed(n)
    model = cls(out_features=3, width=48, depth=2)
    x = (torch.rand(n, 2) * 2 - 1).requires_grad_()
    upstream = torch.randn(n, 3)
    y, grads = forward_and_grads(model, x, upstream)
    with torch.no_grad():
        y_no_grad = model(x)
    pytorch_path()
    y_ref, grads_ref = forward_and_grads(model, x, upstream)
    assert torch.equal(y, y_no_grad)  # the no-backward forward (nothing kept) computes the same bits
    assert torch.allclose(y, y_ref, atol=2e-6)
    for got, ref in zip(grads, grads_ref):
        assert got.shape == ref.shape and torch.isfinite(got).all()
        assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())


@needs_kernel
def test_kernel_sine_and_cosine_are_within_float32_round_off_over_a_wide_range():
    # one layer with an identity weight: y = sin(u), and d y / d bias = cos(u)
    u = torch.cat([torch.linspace(-70000, 70000, 4001), torch.linspace(-10, 10, 4001),
                   torch.tensor([0.0, 1e-30, math.pi / 2, math.pi, 65535.9, 65536.0, 1e6, -1e9])])
    layer = torch.nn.Linear(1, u.numel())
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(u)
    x = torch.zeros(1, 1)
    y = sine.sine_linear(x, layer, 1.0)
    (grad_bias,) = torch.autograd.grad(y.sum(), [layer.bias])
    exact = u.double()
    assert (y[0].double() - torch.sin(exact)).abs().max() < 2e-7
    assert (grad_bias.double() - torch.cos(exact)).abs().max() < 2e-7


@needs_kernel
def test_kernel_passes_nan_and_inf_on_as_nan():
    layer = torch.nn.Linear(1, 3)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([float("nan"), float("inf"), 1.0]))
    y = sine.sine_linear(torch.zeros(2, 1), layer, 1.0)
    assert torch.isnan(y[:, :2]).all() and torch.allclose(y[:, 2], torch.tensor(math.sin(1.0)))


@needs_kernel
def test_a_hooked_model_runs_its_layers_one_by_one_so_that_the_hooks_fire():
    model = Siren(out_features=3, width=16, depth=1)
    seen = []
    handle = model.net[1].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    out = model(torch.rand(10, 2))
    handle.remove()
    assert seen == [torch.Size([10, 16])] and out.shape == (10, 3)


def test_without_the_kernel_the_pytorch_path_runs_and_says_why(monkeypatch):
    monkeypatch.setenv(native.NATIVE_ENV, "0")
    native.forget(sine.KERNEL)
    try:
        assert sine.kernel() is None
        assert sine.kernel_status() == f"pytorch ({native.NATIVE_ENV}=0)"
        model = Siren(out_features=3, width=16, depth=1)
        x = torch.rand(20, 2, requires_grad=True)
        model(x).sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    finally:
        native.forget(sine.KERNEL)


def test_a_kernel_that_cannot_be_built_leaves_the_pytorch_path(monkeypatch, tmp_path):
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++\n")
    monkeypatch.setenv("VISIONLAB_CACHE", str(tmp_path / "cache"))
    native.forget("broken")
    try:
        assert native.load("broken", broken) is None
        assert native.describe("broken").startswith("pytorch (could not build it")
    finally:
        native.forget("broken")


def test_build_names_change_with_the_source(tmp_path):
    a, b = tmp_path / "a.cpp", tmp_path / "b.cpp"
    a.write_text("int f() { return 1; }\n")
    b.write_text("int f() { return 2; }\n")
    flags = native.flags()
    assert native.build_name("k", a, flags) != native.build_name("k", b, flags)
    assert native.build_name("k", a, flags) == native.build_name("k", a, flags)


def test_the_fit_keeps_freed_memory_on_glibc():
    import platform

    assert keep_freed_memory() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def trainer(sampler: str, tmp_path, name: str) -> fit.FitTrainer:
    config = FitConfig(image="astronaut", size="24", width=32, depth=2, steps=40, sampler=sampler, ratio=0.3,
                       scheduler="step", cfs_steps=2, lr=1e-12, chunk=50, quiet=True, out=str(tmp_path),
                       name=name, threads=1)
    return fit.build_fit(config)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_chunk_by_chunk_steps_give_the_whole_batch_gradient(sampler, tmp_path, monkeypatch):
    # cfs_steps 2: EVOS couples the rows (its Laplacian term) on steps 0 and 1 only, then goes chunk by chunk
    by_chunk, whole = trainer(sampler, tmp_path, "a"), trainer(sampler, tmp_path, "b")
    monkeypatch.setattr(whole.sampler, "couples_rows", lambda step: True)  # always one graph
    calls = []
    original = fit.FitTrainer.chunk_by_chunk
    monkeypatch.setattr(fit.FitTrainer, "chunk_by_chunk",
                        lambda self, *a: calls.append(self is by_chunk) or original(self, *a))
    for step in range(4):
        logs_a, logs_b = by_chunk.train_step(step), whole.train_step(step)
        assert logs_a["pixels"] == logs_b["pixels"]
        assert logs_a["loss"] == pytest.approx(logs_b["loss"], rel=1e-5)
        for (key, a), b in zip(by_chunk.model.named_parameters(), whole.model.parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=1e-3, atol=1e-8), (step, key)
    expected = any(not by_chunk.sampler.wants_coordinate_grad and not by_chunk.sampler.couples_rows(step)
                   for step in range(4))
    assert bool(calls) == expected and all(calls)  # only the trainer allowed to went chunk by chunk
    if sampler.startswith("evos"):
        assert torch.equal(by_chunk.sampler.order, whole.sampler.order)
