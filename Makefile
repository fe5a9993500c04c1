# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
STAMP_BENCH := $(VENV)/.installed-bench
# Tests that must not run under pytest-xdist (make test runs them in a serial pytest of their own)
SERIAL_TESTS := tests/fuzz/test_openapi.py

.PHONY: run test unit lint bench bench-details clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/depot serve

test: $(STAMP_DEV)
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests $(wildcard bench)
	# a temp folder per pytest: pytest's shared /tmp/pytest-of-USER is pruned by any other run on the machine.
	# -n auto: one worker per core, each with its own embedded PostgreSQL; whole files to a worker, so a
	# file's module-scoped servers start once. $(SERIAL_TESTS) (the OpenAPI fuzz file) runs beside it
	# without xdist, its output shown after: schemathesis gives its 112 operations one node id, and xdist's
	# file distribution sends tests by node id, so only the first would run (tests/conftest.py refuses that).
	# make test fails if either fails.
	serial_log=$$(mktemp /tmp/depot-serial-XXXXXX.log); \
	$(BIN)/pytest -q -p no:xdist $(SERIAL_TESTS) --basetemp=$$(mktemp -d /tmp/depot-pytest-XXXXXX) \
	    >$$serial_log 2>&1 & serial=$$!; \
	$(BIN)/pytest -q -n auto --dist loadfile $(addprefix --ignore=,$(SERIAL_TESTS)) \
	    --basetemp=$$(mktemp -d /tmp/depot-pytest-XXXXXX); rest=$$?; \
	wait $$serial; serial=$$?; cat $$serial_log; rm -f $$serial_log; \
	exit $$(( rest || serial ))

unit: $(STAMP_DEV)
	$(BIN)/pytest -q tests/unit

$(STAMP_BENCH): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	touch $@ $(STAMP_DEV) $(STAMP_RUN)

# One table: depot against COPY, FastCRUD and a bare FastAPI route, measured in the same run (needs wrk).
bench: $(STAMP_BENCH)
	$(BIN)/python bench/compare.py

# The finer figures: read latencies (keyset against offset, CSV export), ingest, the middleware's cost.
bench-details: $(STAMP_DEV)
	$(BIN)/python bench/reads.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/security_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
