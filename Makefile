# The two commands a newcomer needs: `make demo` and `make test` (both set up .venv first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
SAMPLE_DB ?= data/consoleai_legacy.sqlite
SCALE ?= 1
REPORT_DIR ?= $(or $(CONSOLEAI_REPORT_DIR),reports)
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: setup demo demo-merge test lint format ui ui-environments bench stop clean

setup: $(STAMP)

$(STAMP): pyproject.toml consoleai_etl/core/encode/_rowcopy.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

sample: setup
	$(BIN)/python -m consoleai_etl.demo.sample --out $(SAMPLE_DB) --scale $(SCALE)

demo: sample $(DAGSTER_HOME)/dagster.yaml
	CONSOLEAI_SQLITE_PATH=$(SAMPLE_DB) $(BIN)/dagster job execute -m consoleai_etl \
		-j legacy_migration_job; status=$$?; \
	$(BIN)/python -m consoleai_etl.demo.summary $(REPORT_DIR)/latest.json; exit $$status

# Merge the sample into the application's own schema (demo/app_schema.py), created in
# $CONSOLEAI_TARGET_SCHEMA (default consoleai_app) when absent; a second run changes nothing.
demo-merge: sample $(DAGSTER_HOME)/dagster.yaml
	CONSOLEAI_SQLITE_PATH=$(SAMPLE_DB) $(BIN)/python -m consoleai_etl.demo.merge_demo

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check consoleai_etl consoleai_etl_tests benchmarks
	$(BIN)/ruff format --check consoleai_etl consoleai_etl_tests benchmarks

format: setup
	$(BIN)/ruff check --fix consoleai_etl consoleai_etl_tests benchmarks
	$(BIN)/ruff format consoleai_etl consoleai_etl_tests benchmarks

# The bench's own peers (the `bench` extra: DuckDB and its extensions), into .venv only here.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# The embedded PostgreSQL (used without CONSOLEAI_PG_DSN) outlives the runs for the next one
# and `make ui`; this stops it.
stop: setup
	$(BIN)/python -m consoleai_etl.demo.embedded stop

ui: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster-webserver -h 127.0.0.1 -p 3000 -w workspace.yaml

# Every <environment>.sqlite of $CONSOLEAI_ENVIRONMENTS_DIR a partition (docs/environments.md):
# `dagster dev` runs the webserver and the daemon (the sensor, backfills, the run queue) on
# an instance of its own whose runs queue, at most MAX_RUNS at once.
ENVIRONMENTS_HOME := $(CURDIR)/.dagster-environments
MAX_RUNS ?= 2

$(ENVIRONMENTS_HOME)/dagster.yaml: dagster.yaml $(STAMP)
	$(BIN)/python -m consoleai_etl.defs.instance dagster.yaml $@ --max-concurrent-runs $(MAX_RUNS)

ui-environments: setup $(ENVIRONMENTS_HOME)/dagster.yaml
	@test -n "$$CONSOLEAI_ENVIRONMENTS_DIR" || \
		{ echo "set CONSOLEAI_ENVIRONMENTS_DIR to a folder of <environment>.sqlite files"; exit 2; }
	DAGSTER_HOME=$(ENVIRONMENTS_HOME) $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

clean:
	rm -rf .dagster .dagster-environments reports data/*.sqlite data/*.json
