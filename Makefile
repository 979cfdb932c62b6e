# Two commands do everything on a fresh Debian 12 machine: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv/bin
CONFIG ?= breaker.example.toml

.PHONY: setup run test lint bench lab clean

setup:
	@bash scripts/bootstrap.sh

run: setup
	@bash scripts/run-local.sh $(CONFIG)

lint: setup
	$(VENV)/ruff check breaker tests bench lab testbed
	$(VENV)/ruff format --check breaker tests bench lab testbed
	$(VENV)/mypy

test: lint
	$(VENV)/pytest -q $(PYTEST_ARGS)

bench: setup
	$(VENV)/python -m bench $(BENCH_ARGS)

lab: setup
	$(VENV)/python -m lab $(LAB_ARGS)

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache lab-results
