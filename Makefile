# The two commands behind the README: `make demo` (the main job) and `make test` (the suite).
# Both create .venv themselves; the only prerequisite is Python >= 3.11 as $(PYTHON).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
LAB_STAMP := $(VENV)/.installed-lab

.PHONY: demo test lab lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "dbnb needs Python >= 3.11: run make PYTHON=python3.11 $(MAKECMDGOALS)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m dbnb tutorials

test: $(STAMP) lint
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --nbval notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg

lint: $(STAMP)
	$(BIN)/ruff check dbnb tests
	$(BIN)/mypy
	$(BIN)/lint-imports

$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,lab]'
	touch $@

lab: $(LAB_STAMP)
	cd notebooks && ../$(BIN)/jupyter lab

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
