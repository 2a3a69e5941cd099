# Two commands for a newcomer: `make run` (the embedded default) and `make test` (all tests).
# Environments are created on first use from the lock files in requirements/ and reused after.

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
KFP_VENV := .venv-kfp
# torch==2.13.0 (CPU) lies in pip's find-links folder on these machines; give uv the same folder.
FIND_LINKS ?= $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
UV_FLAGS := $(if $(FIND_LINKS),--find-links $(FIND_LINKS)) --python-version 3.11
PYTEST_ARGS ?=

.PHONY: run test env kfp-env lock manifests bench clean

run: env ## Train, deploy and serve locally; Airflow UI on :8080, model server on :3000
	bash scripts/run-local.sh

test: env kfp-env ## All tests (what .ci/run calls)
	source scripts/airflow-env.sh && AIRFLOW_HOME=$$PWD/build/airflow-test $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

env: $(VENV)/.installed
kfp-env: $(KFP_VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

$(VENV)/.installed: requirements/dev.txt images/steps/pyproject.toml | $(UV)
	test -x $(VENV)/bin/python || $(UV) venv -q --seed --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync -q $(UV_FLAGS) requirements/dev.txt
	VIRTUAL_ENV=$(VENV) $(UV) pip install -q --no-deps -e images/steps
	touch $@

$(KFP_VENV)/.installed: requirements/kfp.txt images/steps/pyproject.toml | $(UV)
	test -x $(KFP_VENV)/bin/python || $(UV) venv -q --seed --python $(PYTHON) $(KFP_VENV)
	VIRTUAL_ENV=$(KFP_VENV) $(UV) pip sync -q $(UV_FLAGS) requirements/kfp.txt
	VIRTUAL_ENV=$(KFP_VENV) $(UV) pip install -q --no-deps -e images/steps
	touch $@

lock: | $(UV) ## Re-resolve the lock files (needs the package index)
	$(UV) pip compile -q $(UV_FLAGS) requirements/dev.in -o requirements/dev.txt
	for f in control steps steps-tf serving; do \
	  $(UV) pip compile -q $(UV_FLAGS) -c requirements/dev.txt requirements/$$f.in -o requirements/$$f.txt; done
	$(UV) pip compile -q $(UV_FLAGS) requirements/kfp.in -o requirements/kfp.txt

bench: env ## Print the benchmark figures (DAG parse time, end-to-end overhead)
	source scripts/airflow-env.sh && AIRFLOW_HOME=$$PWD/build/airflow-bench $(VENV)/bin/python bench/dag_parse.py
	source scripts/airflow-env.sh && AIRFLOW_HOME=$$PWD/build/airflow-bench $(VENV)/bin/python bench/pipeline_overhead.py

clean:
	rm -rf build data airflow-home
