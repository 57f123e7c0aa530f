# visionloop: every target sets up what it needs on a fresh Debian/Ubuntu machine, then runs.
#   make demo   - the whole service on embedded defaults, a generated clip through the API, a report
#   make test   - lint, type checks and the test suite against real servers
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
LS_LOCK := src/visionloop/labeling/label-studio.lock
LOCK_HASH := $(shell cat $(LOCK) pyproject.toml | sha256sum | cut -c1-16)
VENV_STAMP := $(VENV)/.visionloop-$(LOCK_HASH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the service and its tests need: Redis for the streams; GStreamer's RTSP server (run by the
# system python3) for the simulated IP cameras; Chromium for the browser-camera and dashboard tests; Prometheus for
# promtool, which checks and unit-tests dashboards/alerts.yml (its server is never started); docker-compose for
# `docker-compose config`, which validates docker/compose.yaml offline (no engine runs).
APT_PACKAGES := redis-server python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad chromium prometheus docker-compose
PYTEST_ARGS ?=

.PHONY: help system-deps venv demo up test docs lint typecheck unit integration model bootstrap bench-serving bench-pipeline bench-al bench-loop bench-recipe bench-bootstrap bench-explain bench-site gpu-check cluster-demo lock lock-label-studio check-lock clean

help:
	@echo "make demo           run the whole loop on embedded defaults"
	@echo "make test           lint, type-check, build the docs (--strict) and run every test"
	@echo "make docs           the documentation site, references generated from the code (build/site)"
	@echo "make bootstrap      train a bootstrap model from scratch (the service installs the shipped one)"
	@echo "make up             run the service in the foreground (Ctrl-C stops it)"
	@echo "make bench-serving  serving benchmark (writes benchmarks/results/serving.json)"
	@echo "make bench-pipeline simulated RTSP cameras end to end vs a plain RTSP+Ultralytics loop (benchmarks/results/pipeline.json)"
	@echo "make bench-al       active learning vs random on shifts B and C, 3 seeds (benchmarks/results/active_learning.json)"
	@echo "make bench-loop     one loop cycle after a domain shift, and A/B decision trials (benchmarks/results/loop.json)"
	@echo "make bench-recipe   challenger recipes side by side on a shifted site, offline (benchmarks/results/loop_recipe.json)"
	@echo "make bench-bootstrap the bootstrap recipe with 3 other seeds against its target and the shipped card"
	@echo "make bench-explain  seconds per SHAP explanation and the pointing game (benchmarks/results/explain.json)"
	@echo "make bench-site     a simulated site's rendering and serving costs, and its truth against gold (benchmarks/results/site.json)"
	@echo "make cluster-demo   two Ray nodes (ray start: edge + infer), cameras across them, the inference node lost and back"
	@echo "make gpu-check      serving benchmark on CUDA (benchmarks/results/serving-gpu.json); says what is missing and passes without a GPU"
	@echo "make lock           rewrite requirements.lock from the venv (index pins only)"
	@echo "make check-lock     refuse lock lines a fresh machine cannot install; resolve every lock (CI runs it)"

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(VENV_STAMP): $(LOCK) pyproject.toml
	@echo "setting up $(VENV) (lock $(LOCK_HASH))"
	@if [ ! -x $(BIN)/python ]; then $(PYTHON) -m venv $(VENV); fi
	@rm -f $(VENV)/.visionloop-*
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

# A venv kept between clones (CI's, keyed by the lock hash) holds an editable install of the clone that made it:
# point it at this checkout whenever it points elsewhere.
venv: $(VENV_STAMP)
	@$(BIN)/python -c "import sys, visionloop; sys.exit(not visionloop.__file__.startswith('$(CURDIR)/src/'))" \
	  2>/dev/null || $(BIN)/pip install -q --no-deps -e .

demo: system-deps venv
	$(BIN)/visionloop demo

up: system-deps venv
	$(BIN)/visionloop up

model: venv
	$(BIN)/visionloop models init

# Trains one from scratch (about 16 min on 2 cores); the service and the demo install the shipped one instead.
bootstrap: venv
	$(BIN)/visionloop bootstrap --from-scratch

# bandit: the project's code against security/bandit-baseline.json (accepted findings, explained in security/README.md).
# audit_dependencies.py: pip-audit on both locks; prints NOT AUDITED and passes where the advisory service cannot be
# reached; AUDIT_ARGS=--strict (a machine with internet) fails then too.
BANDIT_TARGETS := src scripts benchmarks
AUDIT_ARGS ?=
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/bandit -q -c pyproject.toml -r $(BANDIT_TARGETS) -b security/bandit-baseline.json
	$(BIN)/python scripts/audit_dependencies.py $(LOCK) $(LS_LOCK) $(AUDIT_ARGS)

typecheck: venv
	$(BIN)/mypy

unit: system-deps venv
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

integration: system-deps venv
	$(BIN)/python -m pytest -q tests/integration $(PYTEST_ARGS)

# The documentation site: the reference pages generated from the code, then mkdocs --strict (into build/site).
docs: venv
	$(BIN)/python -m visionloop.cli.reference docs/reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "built build/site/index.html"

test: system-deps venv lint typecheck docs
	PYTHONFAULTHANDLER=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench-serving: system-deps venv
	$(BIN)/python -m benchmarks.serving $(BENCH_SERVING_ARGS)

# BENCH_PIPELINE_ARGS="--soak 600": four cameras for ten minutes, memory of every process after warm-up.
bench-pipeline: system-deps venv
	$(BIN)/python -m benchmarks.pipeline $(BENCH_PIPELINE_ARGS)

# BENCH_BOOTSTRAP_ARGS="--seeds 4,5,6 --fresh": other training seeds; retrain ones cached in var/bench/bootstrap.
BENCH_BOOTSTRAP_ARGS ?=
bench-bootstrap: venv
	$(BIN)/python -m benchmarks.bootstrap $(BENCH_BOOTSTRAP_ARGS)

bench-explain: system-deps venv
	$(BIN)/python -m benchmarks.explain

# BENCH_SITE_ARGS="--cameras 8 --seconds 120 --domain B" picks the site.
BENCH_SITE_ARGS ?=
bench-site: system-deps venv
	$(BIN)/python -m benchmarks.site $(BENCH_SITE_ARGS)

# CLUSTER_DEMO_ARGS="--stream-s 30 --down-s 20" sets how long it streams before, and stays down after, the kill.
CLUSTER_DEMO_ARGS ?=
cluster-demo: system-deps venv
	$(BIN)/visionloop cluster-demo $(CLUSTER_DEMO_ARGS)

# Needs onnxruntime-gpu in place of the locked onnxruntime (the command is printed where it is missing).
# GPU_CHECK_ARGS="--strict" fails without a usable GPU; "--existing-model" skips the bootstrap training.
GPU_CHECK_ARGS ?=
gpu-check: system-deps venv
	$(BIN)/python -m benchmarks.gpu_check $(GPU_CHECK_ARGS)

# BENCH_AL_ARGS="--shift-domain C --seeds 5" picks the scenarios (default: B and C, 3 seeds).
BENCH_AL_ARGS ?=
bench-al: system-deps venv
	$(BIN)/python -m benchmarks.active_learning $(BENCH_AL_ARGS)

# BENCH_LOOP_ARGS="--shift-domain C --labels 300 --seed 1" picks the scenario.
BENCH_LOOP_ARGS ?=
bench-loop: system-deps venv
	$(BIN)/python -m benchmarks.loop $(BENCH_LOOP_ARGS)

# BENCH_RECIPE_ARGS="--shift-domain C --labels 200 --only pseudo,oracle" picks the scenario and the recipes.
BENCH_RECIPE_ARGS ?=
bench-recipe: system-deps venv
	$(BIN)/python -m benchmarks.loop_recipe $(BENCH_RECIPE_ARGS)

# Locks hold name==version pins from the index only (pip list --format=freeze never writes the URL or path a
# package came from, which pip freeze does); scripts/check_lock.py refuses anything else.
lock: venv
	@(echo "# Exact versions the Makefile installs (pip list --format=freeze of a working venv). Regenerate: make lock"; \
	  $(BIN)/pip list --format=freeze --exclude-editable --exclude pip | grep -v '^visionloop==') > $(LOCK)
	$(PYTHON) scripts/check_lock.py $(LOCK)

# Label Studio's own venv (it pins Django and an old redis client): resolved fresh in a throw-away venv.
lock-label-studio:
	@tmp=$$(mktemp -d) && $(PYTHON) -m venv $$tmp && $$tmp/bin/pip install -q "label-studio==$$(sed -n 's/^LABEL_STUDIO_VERSION = "\(.*\)"/\1/p' src/visionloop/labeling/label_studio_server.py)" && \
	  (echo "# Label Studio's venv (pip list --format=freeze of a fresh install). Regenerate: make lock-label-studio"; \
	   $$tmp/bin/pip list --format=freeze --exclude pip) > $(LS_LOCK) && rm -rf $$tmp
	$(PYTHON) scripts/check_lock.py $(LS_LOCK)

# What CI runs before the tests: every lock line is an index pin, and each lock resolves against the index in a
# dry run that ignores anything installed (so a cached venv cannot hide a lock a fresh machine cannot install).
check-lock:
	$(PYTHON) scripts/check_lock.py $(LOCK) $(LS_LOCK) --resolve

clean:
	rm -rf var .mypy_cache .ruff_cache .pytest_cache
