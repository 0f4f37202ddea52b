# The two commands of the README. Both create .venv if it is missing and install torch first (so that no other
# requirement pulls a multi-GB CUDA build), then visionlab; stamps make a second run skip what is done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: demo test clean

demo: $(VENV)/.visionlab
	$(BIN)/python demo.py

test: $(VENV)/.visionlab-test
	$(BIN)/python -m pytest -q

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check $(TORCH)
	touch $@

$(VENV)/.visionlab: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --disable-pip-version-check -e .
	touch $@

$(VENV)/.visionlab-test: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --disable-pip-version-check -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache
