# Entry points named in the README. Each target creates .venv and installs the project into it
# when it is missing or older than pyproject.toml, so a fresh clone needs no other set-up step.
SHELL := /bin/bash
# the first of python3.11, python3.12, python3.13 on PATH (or make PYTHON=/path/to/python3.x)
ifeq ($(origin PYTHON),undefined)
PYTHON := $(or $(shell for p in python3.11 python3.12 python3.13; do "$$p" -c pass >/dev/null 2>&1 && { echo $$p; break; }; done),python3.11)
endif
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?=
PROFILE ?= auto
PYTEST_ARGS ?=
# overrides of the profile for `make report` (empty: the profile's), e.g. a CPU rehearsal of the GPU run:
# make report PROFILE=paper LIMIT_PER_CLASS=16 EPOCHS=1 WEIGHTS=path/to/resnet18-f37072fd.pth
LIMIT_PER_CLASS ?=
EPOCHS ?=
BATCH_SIZE ?=
WEIGHTS ?=
AMP ?=
EVAL_LIMIT_PER_CLASS ?=
EXTRA_TEST_DATA ?=
REPORT_OVERRIDES = $(if $(LIMIT_PER_CLASS),--limit-per-class "$(LIMIT_PER_CLASS)") \
	$(if $(EPOCHS),--epochs "$(EPOCHS)") $(if $(BATCH_SIZE),--batch-size "$(BATCH_SIZE)") $(if $(WEIGHTS),--weights "$(WEIGHTS)") $(if $(AMP),--amp "$(AMP)") \
	$(if $(EVAL_LIMIT_PER_CLASS),--eval-limit-per-class "$(EVAL_LIMIT_PER_CLASS)") \
	$(if $(EXTRA_TEST_DATA),--extra-test-data "$(EXTRA_TEST_DATA)")
# JupyterLab refuses to start as root (Docker images, cloud GPU boxes) unless told to;
# JUPYTER_ARGS adds options of your own (e.g. --no-browser --port=8890)
LAB_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)
JUPYTER_ARGS ?=

.PHONY: help venv test test-cuda lint format report lab audit benchmark clean

help:
	@echo "make report   run the study (notebooks 01-07) and export report/index.html + PDF"
	@echo "              options: DATA=path/to/cifake(.zip)  PROFILE=auto|smoke|cpu|paper"
	@echo "              overrides: LIMIT_PER_CLASS=K EPOCHS=N BATCH_SIZE=B WEIGHTS=resnet18.pth AMP=auto|bf16|off"
	@echo "                         EVAL_LIMIT_PER_CLASS=K EXTRA_TEST_DATA=a,b"
	@echo "make test     lint (ruff check + format check), then the test suite (what CI runs)"
	@echo "make test-cuda  the tests that need a CUDA GPU (on a GPU machine)"
	@echo "make format   apply ruff's fixes and formatting"
	@echo "make lab      open the notebooks in JupyterLab with the project's kernel"
	@echo "make audit    audit the data (DATA=...)"
	@echo "make benchmark  run the speed benchmarks into benchmarks/RESULTS.md"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need Python 3.11, 3.12 or 3.13 on PATH (or make PYTHON=/path/to/python3.x)"; exit 1; }
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

# on a GPU machine: the tests that need CUDA (make test pins itself to the CPU, like CI)
test-cuda: $(STAMP)
	CIFAKE_TEST_DEVICE=cuda $(PY) -m pytest -m cuda $(PYTEST_ARGS)

report: $(STAMP)
	$(PY) -m cifake_lib.report --data "$(DATA)" --profile "$(PROFILE)" $(REPORT_OVERRIDES)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ARGS) $(JUPYTER_ARGS)

audit: $(STAMP)
	$(VENV)/bin/cifake audit "$(or $(DATA),$(CIFAKE_DATA),data)"

benchmark: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf report/executed report/html report/figures report/*.pdf report/index.html .pytest_cache
