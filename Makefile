# The two commands of the README. Both create .venv and install the pinned
# dependency set (constraints.txt) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow docs install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==24.3.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[cpu,dev]"
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

## Train a binary MLP on the bundled digits data and print its test accuracy.
demo: $(STAMP)
	$(BIN)/bnnzoo train --model binarynet_mlp --dataset digits --epochs 20 --out runs/demo --no-resume

## The default test suite (long runs are marked slow and excluded).
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs site build *.egg-info
