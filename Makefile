# Two commands on a fresh machine:  make demo   |   make test
# Both create .venv and install everything (torch CPU build first) on first use.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
STAMP := $(VENV)/.installed
SNAKEMAKE := $(BIN)/snakemake --profile workflow/profiles/local

.PHONY: install demo test test-fast lint rulegraph clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: the CPU build; everything else must accept 2.13.0 as installed.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,cluster]'
	touch $@

demo: install  ## run the whole DAG on the embedded default -> results/report/
	$(SNAKEMAKE) all
	@echo "Report: results/report/table.md, results/report/safety_helpfulness.png"

test: install  ## unit, contract, workflow and end-to-end tests
	$(BIN)/pytest -q

test-fast: install  ## everything but the end-to-end DAG run
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

rulegraph: install
	$(BIN)/snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg

clean:
	rm -rf results .snakemake
