# The two entry points: `make demo` (set up, then run the offline demo) and `make test`.
# Both are idempotent: the virtual environment is rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARCH   := $(shell uname -m)

.PHONY: demo test lint setup setup-test clean

demo: $(VENV)/.installed
	$(BIN)/mmrag demo

test: $(VENV)/.installed-test
	bash scripts/install-browser.sh
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy retrieval pipelines ingest mmrag

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch: CPU/CUDA wheels that pip resolves locally here; see README "Install" for other platforms.
ifeq ($(ARCH),x86_64)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
else
	$(BIN)/pip install --quiet torch==2.9.1 torchvision==0.24.1
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
