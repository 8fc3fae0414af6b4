# Two commands on a fresh machine:  make demo   |   make test
# Both create .venv and install everything (torch CPU build first) on first use.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
STAMP := $(VENV)/.installed
SNAKEMAKE := $(BIN)/snakemake --profile workflow/profiles/local

.PHONY: install profiles demo eval demo-seeds report audit import-opensafemlrm pin restore test test-fast test-slurm slurm-up slurm-down lint schema rulegraph docs clean

install: $(STAMP) profiles

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: the CPU build; everything else must accept 2.13.0 as installed.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,cluster,docs]'
	touch $@

# `snakemake --profile local|slurm` looks a profile name up in the working directory, then
# in Snakemake's user config dir (~/.config/snakemake): link this checkout's profiles
# there. A link into another checkout's workflow/profiles is re-pointed here; anything
# else under that name is the user's own profile and is left alone.
profiles: $(STAMP)
	@dir=$$($(BIN)/python -c 'from snakemake.common import get_appdirs; print(get_appdirs().user_config_dir)'); \
	mkdir -p "$$dir"; \
	for p in local slurm; do \
	  link="$$dir/$$p"; target="$(CURDIR)/workflow/profiles/$$p"; \
	  case "$$(readlink "$$link")" in \
	    "$$target") ;; \
	    */workflow/profiles/$$p) ln -sfn "$$target" "$$link" && echo "profile '$$p': $$link -> $$target";; \
	    *) if [ -e "$$link" ] || [ -L "$$link" ]; then \
	         echo "profile '$$p': kept your own $$link; use --profile workflow/profiles/$$p"; \
	       else ln -s "$$target" "$$link" && echo "profile '$$p': $$link -> $$target"; fi;; \
	  esac; \
	done

demo: install  ## run the whole DAG on the embedded default -> results/report/
	$(SNAKEMAKE) all
	@echo "Report: results/report/table.md, results/report/safety_helpfulness.png"

EVAL_CONFIG ?= config/eval.yaml
eval: install  ## evaluate-only: the checkpoints and served models of $(EVAL_CONFIG) -> results/evaluate/report/
	$(SNAKEMAKE) all --configfile $(EVAL_CONFIG)
	@echo "Report: results/evaluate/report/table.md, results/evaluate/report/paired.md"

demo-seeds: install  ## the multi-seed, two-judge comparison (config/seeds.yaml) -> results/seeds-demo/report/
	$(SNAKEMAKE) all --configfile config/seeds.yaml
	@echo "Report: results/seeds-demo/report/seeds.md, results/seeds-demo/report/paired.md"

audit: install  ## recompute every reported number from the judgments -> results/audit/audit.md
	$(SNAKEMAKE) audit
	@echo "Audit: results/audit/audit.md"

# The SafeMLRM authors' release, pinned with `dvc import` (imports/opensafemlrm + .dvc);
# `dvc update imports/opensafemlrm.dvc --rev <rev>` moves it, `dvc pull` restores it.
# REV is required: an audit pins an exact commit (or tag), never a moving branch by default.
OPENSAFEMLRM_REPO ?= https://github.com/fangjf1/OpenSafeMLRM
import-opensafemlrm: install  ## pin OpenSafeMLRM's score histograms at REV=<commit> for the audit -> imports/opensafemlrm.dvc
	@test -n "$(REV)" || { echo "make import-opensafemlrm REV=<commit or tag>"; exit 2; }
	$(BIN)/safervlm import-artifact $(OPENSAFEMLRM_REPO) code/evaluation/statistic_results \
	  --rev $(REV) --out imports/opensafemlrm

pin: install  ## pin this run's numbers as the embedded default's expectations (config/audit/demo.yaml)
	$(BIN)/safervlm audit --pin config/audit/demo.yaml --config config/config.yaml \
	  --note "make pin at $$(git rev-parse --short HEAD) on $$(date -u +%Y-%m-%d)"

restore: install  ## after a fresh clone: dvc pull the pinned run and mark it up to date
	PATH="$(CURDIR)/$(BIN):$$PATH" workflow/scripts/restore-pins

report: install  ## the HTML report of the default results, with the audit (run `make demo` first) -> results/report.html
	$(SNAKEMAKE) audit
	$(SNAKEMAKE) all audit --report results/report.html
	@echo "Report: results/report.html"

test: install  ## unit, contract, workflow and end-to-end tests
	$(BIN)/pytest -q

test-fast: install  ## everything but the end-to-end DAG run
	$(BIN)/pytest -q -m "not slow"

slurm-up:  ## start a single-node Slurm on localhost for the tests (root; Debian packages)
	.ci/slurm-cluster start

slurm-down:  ## stop exactly the daemons slurm-up started
	.ci/slurm-cluster stop

test-slurm: install  ## the Slurm tests against the running cluster (fail, not skip, without one)
	SAFERVLM_REQUIRE_SLURM=1 $(BIN)/pytest -q tests/test_slurm.py tests/test_slurm_profile.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

schema: install  ## regenerate workflow/schemas/config.schema.yaml from the config models
	$(BIN)/python -m safervlm.config.schema > workflow/schemas/config.schema.yaml

rulegraph: install  ## the docs' rule graph -> docs/assets/rulegraph.{dot,svg} (needs graphviz's dot)
	$(BIN)/snakemake --rulegraph > docs/assets/rulegraph.dot
	dot -Tsvg docs/assets/rulegraph.dot > docs/assets/rulegraph.svg

docs: install  ## the documentation site, strict (a broken link or reference fails) -> site/index.html
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "Docs: site/index.html (or: $(BIN)/mkdocs serve)"

clean:
	rm -rf results .snakemake
