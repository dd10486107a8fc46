# Two entry points, each doing all of its own set-up on a fresh machine:
#   make demo   the end-to-end demo (outputs/demo/)
#   make demo-from-scratch   the same, training both stages here
#   make test   the test suite (the default run: everything not marked slow)
#   make test-slow   the slow checks (the committed checkpoint on the demo's 200 held-out clips)
#   make mutations   break each guarded claim on purpose and check that the tests catch it (docs/TESTING.md)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-from-scratch test test-slow mutations install clean

# Built from scratch whenever pyproject.toml changes: a dependency dropped from it must not stay installed from an
# earlier build and hide a missing install step.
$(STAMP): pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first, pinned to the builds this machine carries on disk
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m transformers_mmvg.demo --out outputs/demo

# the same demo, but T-VQ and MMVG are trained here instead of taken from checkpoints/ (1 to 1.5 hours on 2 cores)
demo-from-scratch: $(STAMP)
	$(PY) -m transformers_mmvg.demo --out outputs/demo-from-scratch --from-scratch

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

mutations: $(STAMP)
	$(PY) tests/mutations.py

clean:
	rm -rf $(VENV) outputs build *.egg-info src/*.egg-info
