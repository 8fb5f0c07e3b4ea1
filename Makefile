# Outreach: `make run` starts the dashboard and the daemon, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
# test processes (pytest-xdist): the suite waits on servers and subprocesses, so two workers
# finish it in about two thirds of the time even on two cores; TEST_WORKERS=0 runs it in one
TEST_WORKERS ?= 2
export OUTREACH_DATA_DIR ?= data

.PHONY: run test test-unit lint format setup setup-dev demo clean

# The runtime: what `make run` needs (requirements.txt), and the package itself installed
# editable, which puts the `outreach` command in the venv. Rebuilt when either file changes.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Outreach needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $@

# Tests, lint and benchmarks on top (requirements-dev.txt): what `make test` needs.
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

setup-dev: $(VENV)/.installed-dev

setup: $(VENV)/.installed
	$(BIN)/python -m outreach_core db upgrade

demo: setup
	$(BIN)/python -m outreach_core demo

# Ctrl-C reaches both processes; the trap makes sure the daemon is gone when make returns.
run: demo
	@echo "Dashboard: http://127.0.0.1:$(PORT)  (Ctrl-C stops the dashboard and the daemon)"
	@$(BIN)/python scheduler_daemon.py & daemon=$$!; \
	trap 'kill -TERM $$daemon 2>/dev/null; wait $$daemon' EXIT INT TERM; \
	$(BIN)/python -m streamlit run Home.py --server.address 127.0.0.1 --server.port $(PORT)

# ruff, then the layer contracts of pyproject.toml ([tool.importlinter]): entrypoints and ui ->
# services -> adapters -> domain, and only outreach_core/ui imports streamlit
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup setup-dev lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
