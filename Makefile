# The two commands behind the README: `make demo` (the main job) and `make test` (the suite).
# Both create .venv themselves; the only prerequisite is Python >= 3.11 as $(PYTHON).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip --disable-pip-version-check
# `make demo URL=...` runs the tutorials on that server (a URL or env:NAME); without it they run
# on the embedded PostgreSQL, whatever DBNB_URL / DATABASE_URL say.
URL ?=

# JupyterLab refuses to run as root without --allow-root, and opens a browser unless told not to:
# pass each flag only where it is needed (root; no display, except on macOS).
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,) \
	$(if $(or $(DISPLAY),$(WAYLAND_DISPLAY),$(filter Darwin,$(shell uname -s))),,--no-browser)

.PHONY: demo test lab lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "dbnb needs Python >= 3.11: run make PYTHON=python3.11 $(MAKECMDGOALS)")'
	@echo "== creating $(VENV) and installing dbnb with its dev, docs and lab tools (a few minutes on a fresh machine)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --progress-bar on --upgrade pip
	$(PIP) install --progress-bar on -e '.[dev]'
	@echo "== $(VENV) is ready"
	touch $@

demo: $(STAMP)
	$(BIN)/python -m dbnb tutorials $(if $(URL),--url '$(URL)',)

test: $(STAMP) lint
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --nbval notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg

lint: $(STAMP)
	$(BIN)/ruff check dbnb tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# A scratch copy under build/lab, so working in JupyterLab never edits the tracked tutorials
# (their stored outputs are what nbval compares). Existing scratch notebooks are kept; delete
# build/lab to start again from the tutorials.
lab: $(STAMP)
	mkdir -p build/lab/notebooks
	for f in notebooks/*.ipynb alembic.ini; do [ -e build/lab/$$f ] || cp $$f build/lab/$$f; done
	[ -d build/lab/migrations ] || cp -r migrations build/lab/migrations
	@echo "== JupyterLab on a scratch copy of the tutorials: build/lab/notebooks"
	cd build/lab && ../../$(BIN)/jupyter lab $(LAB_FLAGS) notebooks

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
