"""Benchmark results files keep paths relative to the project: no machine's absolute paths (/home/..., C:\\...)."""

import json
import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[\\/]|~)")


def strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_results_record_no_absolute_paths(path):
    absolute = [s for s in strings(json.loads(path.read_text())) if ABSOLUTE.match(s)]
    assert not absolute, f"{path.name} records absolute paths: {absolute[:3]}"
