# The two commands of the README. The Python that runs them picks the pinned stack
# (docs/install.md), created on first use and installed with uv (pinned, from PyPI):
#   Python 3.11 (default python3): .venv        + constraints.txt       (TF 2.15, Keras 2, LCE)
#   Python 3.12 (PYTHON=python3.12): .venv-py312 + constraints-py312.txt (TF 2.19 + tf-keras, LCE)
#   Python 3.13 (PYTHON=python3.13): .venv-py313 + constraints-py313.txt (TF 2.21 + tf-keras, numpy 2, no LCE)
PYTHON ?= python3
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# uv resolves and installs every stack; `make` installs it itself into build/ from PyPI.
UV_VERSION := 0.13.9
UV := build/uv-$(UV_VERSION)/bin/uv
ifeq ($(PY_VERSION),3.13)
VENV := .venv-py313
CONSTRAINTS := constraints-py313.txt
# overrides-py313.txt: caps in larq's, larq-zoo's and zookeeper's metadata (numpy<2,
# protobuf<3.21, tfds<4.9) that this stack goes past, one line of why each there.
# excludes.txt: tf-keras's `tensorflow` requirement (met by tensorflow-cpu).
UV_FILES := overrides-py313.txt excludes.txt
UV_FLAGS := --overrides overrides-py313.txt --excludes excludes.txt
# larq-compute-engine has no cp313 wheel: tests marked `lce` are deselected, and counted.
LCE_TESTS := no
else ifeq ($(PY_VERSION),3.12)
VENV := .venv-py312
CONSTRAINTS := constraints-py312.txt
UV_FILES := excludes.txt
UV_FLAGS := --excludes excludes.txt
LCE_TESTS := yes
else
VENV := .venv
CONSTRAINTS := constraints.txt
UV_FILES :=
UV_FLAGS :=
LCE_TESTS := yes
endif
# Checked before anything runs: a wrong PYTHON must not fall back to the 3.11 venv.
ifeq ($(filter $(PY_VERSION),3.11 3.12 3.13),)
ifneq ($(MAKECMDGOALS),clean)
$(error '$(PYTHON)' is not Python 3.11, 3.12 or 3.13 (got '$(PY_VERSION)'); bnnzoo's stacks: make test (3.11, TF 2.15), make test PYTHON=python3.12 (TF 2.19) or make test PYTHON=python3.13 (TF 2.21), docs/install.md)
endif
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Packages whose declared requirements the overrides/excludes replace: the only
# incompatibilities `uv pip check` may report.
OVERRIDDEN := $(shell sed -E 's/[[:space:]<>=!~;\[#].*//' $(UV_FILES) /dev/null | grep . | paste -sd'|' -)

.PHONY: demo test test-slow docs install check-deps fashion-mnist wheel-check clean

# uv from PyPI with the running Python's pip (--target: no root, no venv needed); where
# that Python has no pip (Debian without python3-pip), with a throw-away venv's pip.
$(UV):
	if $(PYTHON) -m pip --version >/dev/null 2>&1; then \
	  $(PYTHON) -m pip install --quiet --disable-pip-version-check --target build/uv-$(UV_VERSION) "uv==$(UV_VERSION)"; \
	else \
	  $(PYTHON) -m venv build/uv-bootstrap && \
	  build/uv-bootstrap/bin/python -m pip install --quiet --disable-pip-version-check --target build/uv-$(UV_VERSION) "uv==$(UV_VERSION)"; \
	fi

$(STAMP): pyproject.toml $(CONSTRAINTS) $(UV_FILES) | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python -c $(CONSTRAINTS) $(UV_FLAGS) -e ".[cpu,dev]" "pip==24.3.1"
	@$(MAKE) --no-print-directory check-deps PYTHON=$(PYTHON)
	touch $(STAMP)

## `uv pip check`, where the only incompatibilities allowed are the requirements that
## this stack's overrides/excludes replace on purpose.
check-deps: | $(UV)
	@$(UV) pip check --python $(BIN)/python >$(VENV)/pip-check.txt 2>&1; \
	  if grep -E '^The package' $(VENV)/pip-check.txt | grep -vE "requires \`($(if $(OVERRIDDEN),$(OVERRIDDEN),-none-))[^a-zA-Z0-9_.-]"; then \
	    echo "error: unexpected dependency conflicts in $(VENV) (full list: $(VENV)/pip-check.txt)" >&2; exit 1; fi

install: $(STAMP)

## Real Fashion-MNIST into ~/.cache/bnnzoo (or $BNNZOO_CACHE), sha256-verified; no root needed.
fashion-mnist: $(STAMP)
	$(BIN)/python -P bnnzoo/datasets_cache.py

## Train a binary MLP on the bundled digits data and print its test accuracy.
demo: $(STAMP)
	@echo "stack: Python $(PY_VERSION); $$($(PIP) list 2>/dev/null | grep -iE '^(tensorflow([-_]cpu)?|tf[-_]keras|larq) ' | tr -s ' ' | paste -sd, - | sed 's/,/, /g')"
	$(BIN)/bnnzoo train --model binarynet_mlp --dataset digits --epochs 20 --out runs/demo --no-resume

## The default test suite (long runs are marked slow and excluded), on TEST_WORKERS
## processes (pytest-xdist; each test file runs in one process). TEST_WORKERS=0: one process.
## Tests marked `lce` need larq-compute-engine: on the stack without it (3.13) they are
## deselected here, and counted; every run ends with a line `lce tests: ...` (tests/conftest.py).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
ifeq ($(LCE_TESTS),no)
NOT_LCE := -m "not slow and not lce"
NOT_LCE_SLOW := -m "slow and not lce"
endif
LCE_COUNT = $(BIN)/python -m pytest -q --collect-only -p no:xdist -m "$(1) and lce" 2>/dev/null | grep -c '::'
test: $(STAMP) fashion-mnist
ifeq ($(LCE_TESTS),no)
	@echo "lce tests: $$($(call LCE_COUNT,not slow)) deselected (no larq-compute-engine on Python $(PY_VERSION); they run on the 3.11 and 3.12 stacks)"
endif
	$(PYTEST) $(NOT_LCE) --durations=15

test-slow: $(STAMP) fashion-mnist
ifeq ($(LCE_TESTS),no)
	@echo "lce tests: $$($(call LCE_COUNT,slow)) deselected (no larq-compute-engine on Python $(PY_VERSION); they run on the 3.11 and 3.12 stacks)"
endif
	$(PYTEST) $(if $(NOT_LCE_SLOW),$(NOT_LCE_SLOW),-m slow)

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

## The built wheel in a clean venv of this stack: install it with uv, the constraints
## and this stack's overrides/excludes only, then `bnnzoo list` and a one-epoch digits
## run. (Plain pip: docs/install.md, "The wheel".)
WHEEL_VENV := build/wheel-check-py$(subst .,,$(PY_VERSION))
wheel-check: $(STAMP)
	rm -rf dist $(WHEEL_VENV)
	$(UV) build --quiet --wheel --out-dir dist .
	$(UV) venv --quiet --python $(PYTHON) $(WHEEL_VENV)
	$(UV) pip install --quiet --python $(WHEEL_VENV)/bin/python -c $(CONSTRAINTS) $(UV_FLAGS) "$$(ls dist/bnnzoo-*.whl)[cpu]"
	@$(MAKE) --no-print-directory check-deps PYTHON=$(PYTHON) VENV=$(WHEEL_VENV)
	cd $(WHEEL_VENV) && bin/bnnzoo list
	cd $(WHEEL_VENV) && bin/bnnzoo train --model binarynet_mlp --dataset digits --epochs 1 --out run --no-resume

clean:
	rm -rf .venv .venv-py312 .venv-py313 runs site build dist *.egg-info
