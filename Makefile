# Outreach: `make run` starts the dashboard and the daemon, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
# test processes (pytest-xdist): the suite waits on servers and subprocesses, so two workers
# finish it in about two thirds of the time even on two cores; TEST_WORKERS=0 runs it in one
TEST_WORKERS ?= 2
export OUTREACH_DATA_DIR ?= data

.PHONY: run test test-unit lint format setup demo clean

# The venv is rebuilt whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -c 'import sys; sys.exit("Outreach needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

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

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
