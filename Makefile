# The two commands of the README. Both create .venv if it is missing and install torch first (so that no other
# requirement pulls a multi-GB CUDA build), then visionlab; stamps make a second run skip what is done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: demo test notebooks clean

demo: $(VENV)/.visionlab
	$(BIN)/python demo.py

test: $(VENV)/.visionlab-test
	$(BIN)/python -m pytest -q

# The lessons (notebooks/NN_*.py, jupytext percent format) executed into notebooks/build/*.ipynb (git-ignored), with
# their outputs and figures, then opened in JupyterLab. `jupyter execute` is nbclient's (the notebooks extra), which
# tests/test_notebooks.py uses too; nbconvert is not needed.
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.py))

notebooks: $(VENV)/.visionlab-notebooks
	mkdir -p notebooks/build
	cd notebooks && for f in $(notdir $(NOTEBOOKS)); do \
		$(abspath $(BIN))/jupytext --to ipynb --output build/$${f%.py}.ipynb $$f && \
		$(abspath $(BIN))/jupyter execute --inplace --timeout=600 build/$${f%.py}.ipynb || exit 1; \
	done
	$(BIN)/jupyter lab notebooks/build

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

$(VENV)/.visionlab-notebooks: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --disable-pip-version-check -e ".[notebooks]"
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache
