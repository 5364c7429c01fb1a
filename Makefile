# Two ways in: `make demo` and `make test`. Each sets up .venv from the project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RAY    := $(VENV)/.ray-installed

.PHONY: demo test test-fast lint typecheck docs pytest bench dist clean

# Compiled modules go to .venv, not beside the sources: the tests start hundreds of fanfetch
# processes, and where PYTHONDONTWRITEBYTECODE is set each compiled every module again.
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache
export PYTHONDONTWRITEBYTECODE :=

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Ray (240 MB) is installed only for the cluster tests, which `make test` runs.
$(RAY): $(STAMP)
	$(BIN)/pip install --quiet -e '.[ray]'
	touch $(RAY)

demo: $(STAMP)
	$(BIN)/fanfetch demo

# Coverage counts the fanfetch processes the tests start too; fail_under is in pyproject.toml.
# On both cores (pytest-xdist); the Ray tests in turn on one worker (their xdist_group).
test: $(STAMP) $(RAY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -n 2 --dist loadgroup
	$(BIN)/python tests/torn_coverage.py
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

# The inner loop: no slow (real-time) tests and no Ray; `make test` runs everything. Its
# commands are forked from a process that has imported fanfetch (tests/zygote.py).
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	FANFETCH_TEST_FORK=1 $(BIN)/pytest -q -m "not slow" --ignore=tests/scale/test_cluster.py -p no:cacheprovider -n 4

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# docs/ as a site in .site/ (--strict: a broken link or reference fails the build)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

pytest: $(STAMP) $(RAY)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py

# The wheel that `pip install` would get; tests/test_dist.py installs it in a clean venv.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .

clean:
	rm -rf dist .site $(VENV) .coverage .coverage.* .mypy_cache .pytest_cache .ruff_cache demo-results.jsonl
