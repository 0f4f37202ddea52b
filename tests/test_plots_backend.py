"""util/plots.py picks matplotlib's Agg back end only when none was chosen: a back end named in MPLBACKEND (a
Jupyter kernel names its inline one) is kept, so figures still show in a notebook after importing visionlab."""

import os
import subprocess
import sys

import pytest

PROBE = "import visionlab.util.plots, matplotlib; print(matplotlib.get_backend().lower())"


@pytest.mark.parametrize("chosen, expected", [("svg", "svg"), (None, "agg")])
def test_plots_keeps_a_chosen_backend(chosen, expected):
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if chosen is not None:
        env["MPLBACKEND"] = chosen
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == expected, out.stdout + out.stderr
