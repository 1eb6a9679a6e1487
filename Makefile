# Trackway — the two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.trackway-installed
BYTECODE_STAMP := $(VENV)/.trackway-bytecode
# dbt and its adapters live in a virtual environment of their own (adr/0007): dbt-bigquery
# pins google-cloud-storage<3.2, Airflow's Google provider and gcsfs need >=3.10.
DBT_VENV ?= .dbt-venv
DBT_STAMP := $(DBT_VENV)/.trackway-dbt-installed
# Apache Superset, the BI server, in a third environment (adr/0032): its Flask, SQLAlchemy 1.4 and
# marshmallow pins cannot share Airflow's lock. Installed only by the BI targets (make bi, make test-bi).
BI_VENV ?= .venv-bi
BI_STAMP := $(BI_VENV)/.trackway-bi-installed
# The type checker in an environment of its own (adr/0044): mypy 2 needs pathspec>=1, which dbt-core 1.11 refuses.
# It reads .venv's packages and stubs ([tool.mypy] python_executable).
LINT_VENV ?= .venv-lint
LINT_STAMP := $(LINT_VENV)/.trackway-lint-installed
export AIRFLOW__COSMOS__ENABLE_TELEMETRY ?= False
export DBT_SEND_ANONYMOUS_USAGE_STATS ?= false

.PHONY: help install dbt-venv demo up down test test-bigquery test-stack lint format docs lock lock-dbt lock-lint clean postgres-server

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Trackway needs Python 3.11, found " + sys.version' \
		|| { echo "Set PYTHON=/path/to/python3.11 (make demo PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Bytecode (adr/0042): what make runs writes each module's .pyc the first time it imports it, as Python does
# by default, even where the environment says PYTHONDONTWRITEBYTECODE (this machine). Compiling the whole lock
# at install took 110 s of a fresh clone's `make test` and `make demo` for ~42,000 files, about 10,000 of them
# ever imported. `make install` still compiles all of it, for commands run by hand (adr/0017).
unexport PYTHONDONTWRITEBYTECODE
$(STAMP): $(BIN)/python requirements.txt pyproject.toml
	@echo "==> installing the pinned lock into $(VENV) (first time: about a minute)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m pip check
	@touch $@

# The dbt manifest events_transform loads is compiled ahead of time (adr/0014): `dbt parse`, no warehouse
# connection; a no-op when it is current. Again after changing a model (not the tracking plan: adr/0029).
install: $(BYTECODE_STAMP) ## create/update .venv and .dbt-venv with all their bytecode, then compile the dbt manifest (trackway transform compile)
	$(BIN)/trackway transform compile

# Every module's bytecode, for commands run by hand where Python may not write .pyc (adr/0017, adr/0042). uv
# compiles a whole environment only while it installs (skipping files no Python 3 can compile), so it reinstalls
# the lock from its cache.
$(BYTECODE_STAMP): $(STAMP) $(DBT_STAMP)
	@echo "==> compiling the bytecode of $(VENV), $(DBT_VENV) and the package (about two minutes, once)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --reinstall -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(DBT_VENV)/bin/python --compile-bytecode --reinstall -r requirements-dbt.txt
	$(BIN)/python -m compileall -q -j 0 include/trackway
	@touch $@

$(DBT_VENV)/bin/python:
	$(PYTHON) -m venv $(DBT_VENV)

$(DBT_STAMP): $(DBT_VENV)/bin/python requirements-dbt.txt $(STAMP)
	@echo "==> installing dbt and its adapters into $(DBT_VENV) (requirements-dbt.txt)"
	$(BIN)/uv pip install --quiet --python $(DBT_VENV)/bin/python -r requirements-dbt.txt
	$(DBT_VENV)/bin/python -m pip check
	@touch $@

dbt-venv: $(DBT_STAMP) ## create/update .dbt-venv, the environment dbt-bigquery runs from (adr/0007)

# No pip in it (uv installs): a few seconds from uv's cache.
$(LINT_STAMP): requirements-lint.txt $(STAMP)
	@echo "==> installing the type checker into $(LINT_VENV) (requirements-lint.txt)"
	@test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv --without-pip $(LINT_VENV)
	$(BIN)/uv pip install --quiet --python $(LINT_VENV)/bin/python -r requirements-lint.txt
	$(BIN)/uv pip check --quiet --python $(LINT_VENV)/bin/python
	@touch $@

$(BI_VENV)/bin/python:
	$(PYTHON) -m venv $(BI_VENV)

# About 880 MB (Superset's front-end assets included); once, then only when requirements-bi.txt changes.
$(BI_STAMP): $(BI_VENV)/bin/python requirements-bi.txt $(STAMP)
	@echo "==> installing Apache Superset into $(BI_VENV) (requirements-bi.txt; first time: about a minute, 880 MB)"
	$(BIN)/uv pip install --quiet --python $(BI_VENV)/bin/python --compile-bytecode -r requirements-bi.txt
	$(BI_VENV)/bin/python -m pip check
	@touch $@

.PHONY: bi-venv bi test-bi lock-bi
bi-venv: $(BI_STAMP) ## create/update .venv-bi, Apache Superset's environment (adr/0032)

# Superset on loopback with the repository's dashboards (docs/bi.md); `make demo` first for data.
BI_PORT ?= 8088
bi: $(BI_STAMP) ## provision Superset from include/superset (trackway bi init), then serve it on http://127.0.0.1:$(BI_PORT)
	$(BIN)/trackway bi init
	$(BIN)/trackway bi serve --port $(BI_PORT)

# The server test (tests/test_bi_server.py, marker "bi"): Superset imports the bundle, every chart's data
# API answers, Chromium opens every dashboard and screenshots it into docs/images/bi/. A second CI target
# (.ci/run), because .venv-bi is a heavy install that `make test` does not need.
test-bi: $(BI_STAMP) sdk-clients browser ## Superset with the bundle: chart data, every dashboard in Chromium, screenshots
	$(BIN)/python -m pytest -q -m bi -p no:randomly tests/test_bi_server.py $(PYTEST_ARGS)

demo: $(STAMP) ## run the whole pipeline once on the embedded default and print what it found
	$(BIN)/trackway demo

# The stack in the foreground, one supervisor, prefixed logs; Ctrl-C (or make down) stops it (trackway up --help).
up: $(STAMP) ## run the collector and Airflow (API server, scheduler, DAG processor, triggerer) on the embedded default
	$(BIN)/trackway up

down: ## stop the stack make up runs for this TRACKWAY_HOME
	$(BIN)/trackway down

# Test files run on one worker per core plus one (pytest-xdist); each worker has its own Airflow DB, Cosmos cache
# and servers (tests/conftest.py). Several tests wait on purpose (outages, retries, servers starting): the extra
# worker uses the core they leave idle, 95 s faster from a fresh clone on 2 cores (docs/benchmarks.md "Test
# suite"). PYTEST_WORKERS=0 runs them in this process, one after the other. The BigQuery tier keeps one worker
# per core: its emulators and dbt processes keep both cores busy on their own.
# The CPUs this process may use (its affinity, as pytest-xdist's auto counts them), not every CPU of the host.
PYTEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1)')
BIGQUERY_WORKERS ?= auto

# make lint first, then the suite. Lint beside the suite (in the background, at normal or lowest CPU priority)
# was measured on fresh clones and gained nothing: the suite took as much longer as lint saved (docs/benchmarks.md).
test: lint postgres-server sdk-clients browser ## run make lint, then the suite on DuckDB, PostgreSQL, S3 and GCS (BigQuery: make test-bigquery)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not stack and not bi and not bigquery" $(PYTEST_ARGS)

# Everything on the BigQuery emulator (marker "bigquery": bqemulator, fake-gcs-server, dbt-bigquery from
# .dbt-venv, a process per dbt command). CPU-heavy on two cores, so a tier of its own after `make test` (CI:
# .ci/run), as the stack's and Superset's are (adr/0043). tests/bigquery_stack.py refuses an unmarked test.
test-bigquery: $(STAMP) $(DBT_STAMP) ## the BigQuery tier: load, dbt-bigquery, privacy and app sync on the emulators
	$(BIN)/python -m pytest -q -n $(BIGQUERY_WORKERS) --dist loadfile --no-loadscope-reorder -m bigquery $(PYTEST_ARGS)

# The production shape as real processes (tests/test_stack.py, marker "stack"): `trackway up` with Airflow on
# PostgreSQL, LocalExecutor then CeleryExecutor with Redis. Minutes of Airflow processes on two cores, so it
# runs after `make test` (CI: .ci/run), one stack at a time, not inside the parallel suite.
test-stack: $(STAMP) postgres-server redis ## the whole stack as real processes: make up's, on PostgreSQL, LocalExecutor and Celery
	$(BIN)/python -m pytest -q -m stack -p no:randomly tests/test_stack.py $(PYTEST_ARGS)

# sqlfluff's dbt templater parses the project against a throwaway DuckDB file.
# Its own dbt target and log folders: the project's target/ holds the partial parse tests and tasks start from.
LINT_DBT_ENV := TRACKWAY_DBT_TARGET=duckdb TRACKWAY_DUCKDB_PATH=$(abspath $(VENV))/lint.duckdb \
  DBT_TARGET_PATH=$(abspath $(VENV))/lint-dbt/target DBT_LOG_PATH=$(abspath $(VENV))/lint-dbt/logs

lint: $(STAMP) $(LINT_STAMP) ## ruff (lint + format check), import-linter, mypy on include/trackway, sqlfluff on include/dbt, the docs site; fails on any finding
	@echo "==> mypy on include/trackway, beside the other checks (the longest cold); its findings print last"; \
	  $(LINT_VENV)/bin/mypy --python-executable $(BIN)/python > $(VENV)/mypy.out 2>&1 & mypy_pid=$$!; \
	  trap 'kill $$mypy_pid 2>/dev/null' EXIT; \
	  echo "==> ruff check"; $(BIN)/ruff check . || exit 1; \
	  echo "==> ruff format --check"; $(BIN)/ruff format --check . || exit 1; \
	  echo "==> import-linter: the package's layers, no circles (adr/0016-package-layers.md)"; \
	  $(BIN)/lint-imports --no-cache --no-logo || { echo "make lint failed: an import breaks a layer contract above (pyproject.toml [tool.importlinter]); move the code to the layer it belongs to"; exit 1; }; \
	  echo "==> docs: mkdocs build --strict, README.md at most 150 lines"; { $(DOCS_CHECK); } || exit 1; \
	  echo "==> sqlfluff (dbt templater)"; \
	  $(LINT_DBT_ENV) $(BIN)/sqlfluff lint include/dbt --disable-progress-bar > $(VENV)/sqlfluff.out 2>&1; \
	  sqlfluff_rc=$$?; grep -v "because it is a macro" $(VENV)/sqlfluff.out; \
	  wait $$mypy_pid; mypy_rc=$$?; echo "==> mypy"; cat $(VENV)/mypy.out; \
	  if [ $$mypy_rc != 0 ] || [ $$sqlfluff_rc != 0 ]; then \
	    echo "make lint failed: fix the findings above ('make format' fixes formatting and most SQL layout)"; exit 1; fi

# The docs site (mkdocs.yml, docs/): a broken link or a page left out of the nav fails the strict build.
# The README stays a short front door; the substance lives in docs/.
DOCS_PORT ?= 8000
DOCS_CHECK = NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(abspath $(VENV))/site \
	&& lines=$$(wc -l < README.md) && { [ $$lines -le 150 ] \
	|| { echo "README.md has $$lines lines (at most 150): move the detail into docs/"; exit 1; }; }

docs: $(STAMP) ## serve the docs site on http://127.0.0.1:$(DOCS_PORT) with live reload (DOCS_PORT=8001 make docs)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:$(DOCS_PORT)

format: $(STAMP) ## apply ruff's formatter and fixes, and sqlfluff fix to the dbt SQL
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(LINT_DBT_ENV) $(BIN)/sqlfluff fix include/dbt --disable-progress-bar -q

postgres-server: ## make sure PostgreSQL server binaries exist (tests run dbt and the loader on a real server)
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing Debian's postgresql package (server binaries for the tests)"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL 13+ server binaries are needed under /usr/lib/postgresql/*/bin: install your distribution's postgresql package"; exit 1; fi

.PHONY: browser
browser: ## make sure Debian's chromium exists (tests/test_browser_analytics_js.py runs analytics.js in it)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing Debian's chromium package (headless browser for the analytics.js test)"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	else echo "/usr/bin/chromium is missing and apt-get is not available: install your distribution's chromium package at /usr/bin/chromium to run tests/test_browser_analytics_js.py"; exit 1; fi

.PHONY: redis
redis: ## make sure Debian's redis-server exists (the CeleryExecutor broker of tests/test_stack.py)
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing Debian's redis-server package (the Celery broker of the stack test)"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	else echo "redis-server is missing and apt-get is not available: install your distribution's redis package to run make test-stack"; exit 1; fi

.PHONY: wrk bench-collector
wrk: ## make sure Debian's wrk exists (the HTTP load generator of benchmarks/bench_collector.py)
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing Debian's wrk package (load generator for the collector benchmark)"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; \
	else echo "wrk is missing and apt-get is not available: install wrk (https://github.com/wg/wrk) to run the collector benchmark"; exit 1; fi

bench-collector: $(STAMP) wrk ## benchmark the collector against a bare endpoint and a durable-append ceiling (wrk)
	$(BIN)/python benchmarks/bench_collector.py

.PHONY: sdk-clients
sdk-clients: ## install the Node SDKs that tests/test_sdk_compatibility.py drives (needs Node.js 20+)
	@command -v node >/dev/null && command -v npm >/dev/null \
		|| { echo "node/npm not found: install Node.js 20+ (with npm) to run the SDK compatibility tests"; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
		|| { echo "Node.js $$(node --version) is too old: install Node.js 20+ (@segment/analytics-node needs it)"; exit 1; }
	@if [ ! -d tests/sdk_clients/node_modules ] || [ tests/sdk_clients/package-lock.json -nt tests/sdk_clients/node_modules ]; then \
		echo "==> installing the Node SDK clients (tests/sdk_clients/package-lock.json)"; \
		npm ci --prefix tests/sdk_clients --no-audit --no-fund && touch tests/sdk_clients/node_modules; \
	fi

lock: $(BIN)/python ## re-pin requirements.txt from pyproject.toml, keeping every pin that still fits
	$(BIN)/python -m pip install --quiet uv
	cp requirements.txt $(VENV)/lock.txt
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 --no-emit-package trackway \
	  --no-header -o $(VENV)/lock.txt
	{ echo "# Trackway's pinned lock (Airflow's constraints files are not reachable, so this is ours)."; \
	  echo "# Regenerate with: make lock   (uv pip compile pyproject.toml --extra dev; existing pins are kept)"; \
	  cat $(VENV)/lock.txt; } > requirements.txt

lock-dbt: $(BIN)/python ## re-pin requirements-dbt.txt from requirements-dbt.in
	$(BIN)/python -m pip install --quiet uv
	{ echo "# dbt's own pinned environment (.dbt-venv): dbt-core 1.11 with the duckdb, postgres and bigquery adapters."; \
	  echo "# Regenerate with: make lock-dbt   (uv pip compile requirements-dbt.in)"; \
	  $(BIN)/uv pip compile --quiet requirements-dbt.in --python-version 3.11 --no-header; \
	} > requirements-dbt.txt

lock-lint: $(BIN)/python ## re-pin requirements-lint.txt (the type checker) from requirements-lint.in
	$(BIN)/python -m pip install --quiet uv
	{ echo "# The type checker's pinned environment (.venv-lint): mypy 2."; \
	  echo "# Regenerate with: make lock-lint   (uv pip compile requirements-lint.in)"; \
	  $(BIN)/uv pip compile --quiet requirements-lint.in --python-version 3.11 --no-header; \
	} > requirements-lint.txt

lock-bi: $(BIN)/python ## re-pin requirements-bi.txt from requirements-bi.in
	$(BIN)/python -m pip install --quiet uv
	{ echo "# Apache Superset's pinned environment (.venv-bi, adr/0032)."; \
	  echo "# Regenerate with: make lock-bi   (uv pip compile requirements-bi.in)"; \
	  $(BIN)/uv pip compile --quiet requirements-bi.in --python-version 3.11 --no-header; \
	} > requirements-bi.txt

clean: ## remove the demo's data (.trackway/); keeps .venv
	rm -rf .trackway
