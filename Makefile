# Arbiter: `make run` starts the whole app with demo data; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test install lint typecheck check bench clean

# Install only when pyproject.toml is newer than the last install.
$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(INSTALLED)

install: $(INSTALLED)

run: $(INSTALLED)
	@bash scripts/run.sh

test: $(INSTALLED)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(INSTALLED)
	$(VENV)/bin/mypy .

check: lint typecheck
	$(PY) manage.py makemigrations --check --dry-run

# Speed goals, each next to a baseline run in the same invocation (bench/README.md).
# Needs PostgreSQL, RabbitMQ, pgbench and wrk: DATABASE_URL names the server (the suite
# creates and drops its own databases there). BENCH_ARGS=--quick for a few minutes' check.
bench: $(INSTALLED)
	DATABASE_URL="$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/arbiter}" \
		$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
