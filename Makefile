# make demo: set everything up and run the demo.  make test: set everything up and run the tests
# (then the torch-free ones again under Python 3.9 and 3.12, Slicer 5.8's and 5.10+'s, where present).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH_PIN ?= torch==2.13.0
# Text I/O in UTF-8 whatever the locale (organ names, λ and ³ in help texts and reports).
export PYTHONUTF8 := 1

.PHONY: setup demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null

$(VENV)/.installed: $(BIN)/python pyproject.toml
ifneq ($(HAS_GPU),yes)
	$(BIN)/pip install $(TORCH_PIN)
endif
	$(BIN)/pip install -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/dcaseg demo --out demo_out

test: setup
	$(BIN)/python -m pytest -q Testing
	bash .ci/other_pythons.sh

$(VENV)/.lint-installed: $(VENV)/.installed
	$(BIN)/pip install -e '.[lint]'
	touch $@

lint: $(VENV)/.lint-installed
	$(BIN)/ruff check .
	$(BIN)/mypy dcaseg DCASegmentation/DCASegmentationLib DCATraining/DCATrainingLib

clean:
	rm -rf $(VENV) demo_out
