"""Shared test settings: CPU only, few threads, a headless matplotlib."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic_cpu():
    # Two cores on CI: one thread per test keeps runs repeatable and avoids oversubscription.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fits_run_in_chunks(monkeypatch):
    # Chunking on in every test: the models' default chunk of thousands of points would leave the tests' tiny
    # images (24 x 24 = 576 points) in one chunk, so 97 points (not a divisor of any test size) it is.
    from visionlab.models.inr import INR_MODELS

    for cls in INR_MODELS.values():
        monkeypatch.setattr(cls, "default_chunk", 97)
