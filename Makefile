# Every target sets up .venv itself on a fresh machine (Python >= 3.11, nothing else prepared).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test check lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/eoy-reset demo

# Test processes (pytest-xdist workers; four keep two cores busy while tests wait on
# PostgreSQL, file syncs, paused runners and the S3 server): `make test PYTEST_WORKERS=3`, or 0
# for one process.
PYTEST_WORKERS ?= 4
PYTEST := $(BIN)/pytest -q -n $(PYTEST_WORKERS)

# Every test, the default suite and the long crash matrix (marker `slow`) in one run, the
# crash matrix scheduled first so that no worker is left alone with it at the end.
# pytest exits 5 when it collects nothing; make fails on it like on any other non-zero code.
# The twenty slowest steps are listed at the end: where the suite's time goes.
test: setup
	$(PYTEST) --durations=20

# Before a commit: lint, then the default suite (the crash matrix is left to `make test`).
check: lint
	$(PYTEST) -m "not slow"

# sqlfluff renders the SQL as dbt compiles it (.sqlfluff), on a DuckDB of its own: two models
# read the seeded reset policy while they compile.
SQLFLUFF_DB := target/sqlfluff.duckdb
SQLFLUFF_ENV := EOY_TARGET=duckdb EOY_DUCKDB_PATH=$(SQLFLUFF_DB)

$(SQLFLUFF_DB): $(STAMP) seeds/reset_policy.csv
	$(SQLFLUFF_ENV) $(BIN)/dbt seed --quiet --profiles-dir . --target duckdb

lint: setup $(SQLFLUFF_DB)
	$(BIN)/ruff check jobs tests bench
	$(BIN)/ruff format --check jobs tests bench
	$(BIN)/mypy
	$(SQLFLUFF_ENV) $(BIN)/sqlfluff lint models macros analyses

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf .eoy target logs snapshots .pytest_cache .hypothesis .mypy_cache .ruff_cache
