# The two commands of the README. The Python that runs them picks the pinned stack
# (docs/install.md), created on first use:
#   Python 3.11 (default python3): .venv        + constraints.txt       (TF 2.15, Keras 2)
#   Python 3.12 (PYTHON=python3.12): .venv-py312 + constraints-py312.txt (TF 2.19 + tf-keras)
PYTHON ?= python3
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(PY_VERSION),3.12)
VENV := .venv-py312
CONSTRAINTS := constraints-py312.txt
# tf-keras requires the full `tensorflow` wheel; this stack uses tensorflow-cpu, so
# tf-keras is rebuilt as 2.19.0+cpu requiring tensorflow-cpu (found by the constraints
# file's --find-links). Why and how: tools/tf_keras_cpu_wheel.py, docs/install.md.
LOCAL_WHEELS := build/wheels/tf_keras-2.19.0+cpu-py3-none-any.whl
else
VENV := .venv
CONSTRAINTS := constraints.txt
LOCAL_WHEELS :=
endif
# Checked before anything runs: a wrong PYTHON must not fall back to the 3.11 venv.
ifeq ($(filter $(PY_VERSION),3.11 3.12),)
ifneq ($(MAKECMDGOALS),clean)
$(error '$(PYTHON)' is not Python 3.11 or 3.12 (got '$(PY_VERSION)'); bnnzoo's stacks: make test (3.11, TF 2.15) or make test PYTHON=python3.12 (TF 2.19), docs/install.md)
endif
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test test-slow docs install fashion-mnist wheel-check clean

$(STAMP): pyproject.toml $(CONSTRAINTS) $(if $(LOCAL_WHEELS),tools/tf_keras_cpu_wheel.py)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "pip==24.3.1"
	$(if $(LOCAL_WHEELS),$(BIN)/python tools/tf_keras_cpu_wheel.py build/wheels)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[cpu,dev]"
	$(PIP) check
	touch $(STAMP)

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
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
test: $(STAMP) fashion-mnist
	$(PYTEST) --durations=15

test-slow: $(STAMP) fashion-mnist
	$(PYTEST) -m slow

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

## The built wheel in a clean venv of this stack: install with the constraints only,
## then `bnnzoo list` and a one-epoch digits run.
WHEEL_VENV := build/wheel-check-py$(subst .,,$(PY_VERSION))
wheel-check: $(STAMP)
	rm -rf dist $(WHEEL_VENV)
	$(PIP) wheel --quiet --no-deps -w dist .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "pip==24.3.1"
	$(WHEEL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$$(ls dist/bnnzoo-*.whl)[cpu]" -c $(CONSTRAINTS)
	$(WHEEL_VENV)/bin/python -m pip check
	cd $(WHEEL_VENV) && bin/bnnzoo list
	cd $(WHEEL_VENV) && bin/bnnzoo train --model binarynet_mlp --dataset digits --epochs 1 --out run --no-resume

clean:
	rm -rf .venv .venv-py312 runs site build dist *.egg-info
