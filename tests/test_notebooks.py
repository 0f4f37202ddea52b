"""The lessons in notebooks/ run top to bottom: each .py (jupytext percent format) is converted to a notebook and
executed with nbclient in a fresh ``python3`` kernel (working directory notebooks/); every cell must succeed and each
lesson must show at least one figure (an image/png display)."""

import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
TIMEOUT = 120  # seconds per notebook: a guard; each lesson is sized for well under a minute


def test_nine_lessons_in_order():
    assert [p.name[:2] for p in LESSONS] == [f"{k:02d}" for k in range(1, 10)], [p.name for p in LESSONS]


def _images(notebook) -> int:
    return sum(1 for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
               if out.get("output_type") in ("display_data", "execute_result") and "image/png" in out.get("data", {}))


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_notebook_runs(path, monkeypatch):
    # The kernel inherits the environment: inline figures (conftest sets Agg for the tests themselves), one thread
    # as every other test, and this checkout's visionlab first on the path.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(NOTEBOOKS.parent),
                                                                    os.environ.get("PYTHONPATH")])))
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(notebook, timeout=TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:  # the failing cell's source and traceback
        pytest.fail(f"{path.name}: a cell failed:\n{error}", pytrace=False)
    assert _images(notebook) >= 1, f"{path.name} showed no figure (no image/png output)"
