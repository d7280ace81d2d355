# Two commands set everything up on a fresh machine: `make test` and `make demo`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

install: $(STAMP)

# torch goes in first so that the pinned build (CPU here, CUDA on GPU machines) is the one kept;
# constraints.txt holds the exact tested set within pyproject.toml's ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

# The embedded default model animates a held-out puppet: outputs/demo.mp4, demo_grid.mp4, demo.png.
demo: $(STAMP)
	$(VENV)/bin/magicpose demo

test: lint
	$(PY) -m pytest -q

# One formatter and linter (ruff, configured in pyproject.toml); `ruff format .` fixes the format.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/ruff check --quiet .

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
