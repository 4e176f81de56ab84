# Entry points named in the README. Each target creates .venv and installs the project into it
# when it is missing or older than pyproject.toml, so a fresh clone needs no other set-up step.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?=
PROFILE ?= auto
PYTEST_ARGS ?=

.PHONY: help venv test lint format report lab audit benchmark clean

help:
	@echo "make report   run the study (notebooks 01-07) and export report/index.html + PDF"
	@echo "              options: DATA=path/to/cifake(.zip)  PROFILE=auto|smoke|cpu|paper"
	@echo "make test     lint (ruff check + format check), then the test suite (what CI runs)"
	@echo "make format   apply ruff's fixes and formatting"
	@echo "make lab      open the notebooks in JupyterLab with the project's kernel"
	@echo "make audit    audit the data (DATA=...)"
	@echo "make benchmark  run the speed benchmarks into benchmarks/RESULTS.md"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name cifake --display-name "Python (cifake)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

report: $(STAMP)
	$(PY) -m cifake_lib.report --data "$(DATA)" --profile "$(PROFILE)"

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

audit: $(STAMP)
	$(VENV)/bin/cifake audit "$(or $(DATA),$(CIFAKE_DATA),data)"

benchmark: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf report/executed report/html report/figures report/*.pdf report/index.html .pytest_cache
