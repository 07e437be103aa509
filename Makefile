# Every target sets up .venv itself on a fresh machine (Python >= 3.11, nothing else prepared).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/eoy-reset demo

# The default suite first, then the long crash matrix (marker `slow`); both must pass.
# pytest exits 5 when it collects nothing; that is a failure here, not a pass.
test: setup
	$(BIN)/pytest -q -m "not slow"
	$(BIN)/pytest -q -m slow

lint: setup
	$(BIN)/ruff check jobs tests bench
	$(BIN)/ruff format --check jobs tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf .eoy target logs snapshots .pytest_cache .hypothesis
