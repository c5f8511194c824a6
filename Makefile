# `make train` and `make test` set up .venv on first use (Python >= 3.10 and pip are all they need).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test test-all lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("clusterbench needs Python >= 3.10") if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# the default job: SDCIB on the embedded handwritten digits; extra overrides in ARGS="..."
train: $(STAMP)
	$(BIN)/python -m clusterbench.train $(ARGS)

# the default (fast) test suite in TEST_WORKERS processes (pytest-xdist; TEST_WORKERS=0 runs it
# in this process); ARGS="-m slow" for the long tests
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(ARGS)

# ruff over the package (pyproject.toml [tool.ruff]); .ci/run runs it before the tests
lint: $(STAMP)
	$(BIN)/python -m ruff check clusterbench/ scripts/ tests/
	$(BIN)/python -m ruff format --check clusterbench/ scripts/ tests/

# every method x dataset of a suite (configs/bench/: smoke, cpu, paper), resumable, then the
# methods x datasets table; e.g. make bench SUITE=cpu ARGS="--data-dir ../shared/data"
SUITE ?= smoke
bench: $(STAMP)
	$(BIN)/python -m clusterbench.bench $(SUITE) $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "" $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
