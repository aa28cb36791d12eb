# Ludus: two commands do everything on a fresh machine.
#   make demo   a local cluster, the operator, an example TrainingJob run to completion
#   make test   every test suite (unit, integration on a real control plane, e2e)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
CACHE_DIR   ?= $(HOME)/.cache/ludus
WHEELHOUSE  ?= $(CACHE_DIR)/wheelhouse
TORCH_PIN   := torch==2.13.0
export LUDUS_CACHE_DIR := $(CACHE_DIR)

.PHONY: help install disk-check clean-node-state wheelhouse host lint test test-unit test-integration test-e2e test-trainer test-images manifests \
        cluster-up cluster-down cluster-binaries demo demo-multicluster demo-down trainer-image operator-image bench bench-multicluster bench-checkpoint bench-demo bench-progress bench-sweep bench-recovery bench-startup \
        bench-throughput bench-report bench-all clean

help:
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | sort

REQ_KEY     := $(shell cat trainer_image/requirements.txt operator/requirements.txt | sha256sum | cut -c1-12)

wheelhouse: $(WHEELHOUSE)/.complete-$(REQ_KEY) ## download torch, its CUDA wheels and the image wheels once, outside the checkout
$(WHEELHOUSE)/.complete-$(REQ_KEY):
	mkdir -p $(WHEELHOUSE)
	$(PYTHON) -m pip download --quiet --dest $(WHEELHOUSE) $(TORCH_PIN)
	$(PYTHON) -m pip download --quiet --dest $(WHEELHOUSE) -r trainer_image/requirements.txt -r operator/requirements.txt
	touch $@

install: disk-check $(VENV)/.installed ## virtual environment in .venv with everything the tests need
disk-check: ## say at once, with numbers, when the disk is too full for a run
	@scripts/disk-check.sh
$(VENV)/.installed: pyproject.toml $(WHEELHOUSE)/.complete-$(REQ_KEY)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-index --find-links $(WHEELHOUSE) $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[trainer,test,lint]'
	touch $@

# Host set-up is its own step, visible and skippable: Debian packages (container engine, CNI
# plugins, Prometheus) and a running containerd + dockerd. LUDUS_SKIP_HOST=1 skips it on a
# machine set up by other means; the tests that need what is missing then skip with the reason.
host: ## host set-up: Debian packages and a running container engine (LUDUS_SKIP_HOST=1 skips)
ifeq ($(LUDUS_SKIP_HOST),1)
	@echo ">> host set-up skipped (LUDUS_SKIP_HOST=1)"
else
	scripts/host-packages.sh
	@scripts/engine.sh || echo "!! no container engine here: container and e2e tests will skip"
endif

lint: install ## ruff, mypy --strict on the operator, the trainer and the dev cluster, the import layers and circles
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy operator/ludus trainer_image/ludus_trainer devcluster
	$(VENV)/bin/lint-imports

test: install cluster-binaries host test-images ## all tests: unit, integration (built-in control plane), e2e
	$(PY) -m pytest tests

# The container and e2e tests need an engine and the images; where the host cannot run
# one, those tests skip with the reason and everything else still runs.
test-images: wheelhouse host
	@scripts/build-images.sh all || echo "!! no container engine or image build here: container and e2e tests will skip"

trainer-image: wheelhouse host ## build ludus-trainer:latest
	scripts/build-images.sh trainer

operator-image: wheelhouse host ## build ludus-operator:latest
	scripts/build-images.sh operator

test-trainer: install ## trainer tests on real processes (torchrun, and Docker where it runs)
	$(PY) -m pytest tests/trainer

test-unit: install ## the fast unit tests alone
	$(PY) -m pytest tests/unit

test-integration: install cluster-binaries ## integration tests on the built-in control plane
	$(PY) -m pytest tests/integration

test-e2e: install cluster-binaries host test-images ## end-to-end tests on real pods
	$(PY) -m pytest tests/e2e

manifests: install ## regenerate the CRD (manifests/ and the chart) from the pydantic models
	$(PY) -m ludus crd --output manifests/crd/trainingjobs.ludus.dev.yaml
	$(PY) -m ludus crd --sweep --output manifests/crd/sweeps.ludus.dev.yaml
	$(PY) -m ludus crd --continuous --output manifests/crd/continuoustrainings.ludus.dev.yaml
	$(PY) -m ludus crd --peering --output manifests/crd/kopfpeerings.kopf.dev.yaml
	cp manifests/crd/trainingjobs.ludus.dev.yaml manifests/crd/sweeps.ludus.dev.yaml \
	   manifests/crd/continuoustrainings.ludus.dev.yaml \
	   manifests/crd/kopfpeerings.kopf.dev.yaml charts/ludus/crds/

cluster-binaries: ## build the pinned control-plane binaries into the cache (once)
	devcluster/build.sh

cluster-up: install cluster-binaries ## start the built-in cluster (etcd, apiserver, controllers, scheduler, kwok)
	$(PY) -m devcluster up

cluster-down: ## stop the built-in cluster; leaves no process behind
	$(PY) -m devcluster down

demo: install cluster-binaries wheelhouse host ## a local cluster with a real node, the operator, the digits job trained to completion
	scripts/build-images.sh all
	$(PY) scripts/demo.py

demo-multicluster: install cluster-binaries wheelhouse host ## two clusters joined by Kueue's MultiKueue: digits applied to the manager trains on the worker's real node and reports back
	scripts/build-images.sh all
	$(PY) scripts/demo_multicluster.py

demo-down: ## stop the demo cluster (same as cluster-down)
	$(PY) -m devcluster down

bench: install cluster-binaries ## scale benchmark (N=100/500/1000 jobs x 4 workers) -> docs/benchmarks/scale.json + docs/benchmarks.md
	$(PY) bench/scale.py $(BENCH_ARGS)
	$(PY) bench/report.py

bench-progress: install cluster-binaries ## N=200 Running jobs reporting progress: status writes and operator CPU per minute -> docs/benchmarks/progress.json
	$(PY) bench/progress.py $(BENCH_ARGS)
	$(PY) bench/report.py

bench-sweep: install cluster-binaries ## sweeps on kwok nodes: trial-to-trial gap, and operator CPU/RSS for 200 trials -> docs/benchmarks/sweep.json
	$(PY) bench/sweep.py $(BENCH_ARGS)
	$(PY) bench/report.py

bench-memory: install cluster-binaries ## operator RSS: idle, 1000 ordinary and 50 largest-spec TrainingJobs -> docs/benchmarks/memory.json
	$(PY) bench/memory.py $(BENCH_ARGS)
	$(PY) bench/report.py

bench-demo: ## make demo, recording apply -> Running -> first step -> last step -> Succeeded -> docs/benchmarks/demo-timeline.json
	LUDUS_DEMO_RECORD=$(CURDIR)/docs/benchmarks/demo-timeline.json $(MAKE) demo
	$(PY) bench/report.py

bench-all: bench bench-progress bench-sweep bench-memory bench-multicluster bench-recovery bench-startup bench-throughput bench-checkpoint ## every benchmark, then docs/benchmarks.md

bench-multicluster: install cluster-binaries ## MultiKueue: 50 TrainingJobs applied to a manager cluster, time to Running on a worker cluster -> docs/benchmarks/multicluster.json
	$(PY) bench/multicluster.py $(BENCH_ARGS)
	$(PY) bench/report.py

bench-checkpoint: install cluster-binaries ## checkpoint saves of the gpt workload on the CPU: local claim vs object storage -> docs/benchmarks/checkpoint-save.json
	$(PY) bench/checkpoint_save.py $(BENCH_ARGS)
	$(PY) bench/report.py

bench-report: install ## rewrite docs/benchmarks.md from docs/benchmarks/*.json
	$(PY) bench/report.py

bench-startup: install cluster-binaries host ## where a job's start goes, phase by phase (API server, containerd, the trainer's marks) -> docs/benchmarks/startup.json
	scripts/build-images.sh trainer
	$(PY) bench/startup.py
	$(PY) bench/report.py

bench-recovery: install cluster-binaries host ## recovery and start-up timings on real pods -> docs/benchmarks/recovery.json
	scripts/build-images.sh trainer
	$(PY) bench/recovery.py
	$(PY) bench/report.py

bench-throughput: install ## GPT throughput, harness vs bare loop (GPU if present) -> docs/benchmarks/throughput-*.json
	$(PY) bench/throughput.py
	$(PY) bench/report.py

clean: cluster-down
	rm -rf $(VENV) .cluster

clean-node-state: cluster-down ## drop the real nodes' image stores (about 5 GB each; imported again when next needed)
	state=$${LUDUS_NODE_STATE:-/var/lib/ludus}; rm -rf "$$state/containerd" "$$state"/node-*/containerd
