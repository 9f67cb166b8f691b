# The two entry points: `make demo` (set up, then run the offline demo) and `make test`.
# Both are idempotent: the virtual environment is rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARCH   := $(shell uname -m)
# A pip index for torch/torchvision only, e.g. https://download.pytorch.org/whl/cpu for the
# CPU-only build (no nvidia-* or triton); empty: PyPI (on x86_64 Linux the CUDA build, ~5.3 GB).
TORCH_INDEX ?=
TORCH_PIP = $(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
# pytest-xdist workers for `make test` (each test file runs whole in one worker). Two keep a
# 2-core machine busy: the tests wait on servers and subprocesses about half the time.
TEST_WORKERS ?= 2

.PHONY: demo test lint setup setup-test clean

demo: $(VENV)/.installed
	$(BIN)/mmrag demo

test: $(VENV)/.installed-test
	bash scripts/install-browser.sh
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy retrieval pipelines ingest mmrag

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch: what it installs and how to pick the CPU-only build: README "What the two commands install".
ifeq ($(ARCH),x86_64)
	$(TORCH_PIP) torch==2.14.1 torchvision==0.29.1
else
	$(TORCH_PIP) torch==2.9.1 torchvision==0.24.1
endif
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $(VENV)/.installed $@

clean:
	rm -rf $(VENV) mmrag.db mmrag-demo-data
