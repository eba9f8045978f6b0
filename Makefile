# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p var
	$(BIN)/carerelay db upgrade
	$(BIN)/carerelay demo load
	$(BIN)/carerelay serve

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy carerelay tests bench

# Tests run in parallel worker processes (pytest-xdist), one per core up to four: each worker has
# its own SQLite files and PostgreSQL schema. `make test TEST_WORKERS=0` runs them in one process.
TEST_WORKERS ?= auto

test: lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --maxprocesses=4

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var/*.db var/*.db-wal var/*.db-shm
