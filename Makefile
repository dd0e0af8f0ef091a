# Two commands: `make demo` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= demo_output

.PHONY: demo test install install-test docs lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	@# a newer pip is nice to have, not needed (pip >= 21.3 installs this project); a failed download must not stop the build
	$(BIN)/python -m pip install --upgrade pip >/dev/null 2>&1 || echo "warning: could not upgrade pip; using $$($(BIN)/python -m pip --version)" >&2

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e . 
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[test,docs]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/diffmrio demo --out $(OUT)

test: install-test
	$(BIN)/python -m pytest --durations=25
	$(BIN)/python -m mkdocs build --strict --site-dir $(VENV)/site

docs: install-test
	$(BIN)/python -m mkdocs build --strict --site-dir site

lint: install-test
	$(BIN)/ruff check diffmrio surrogate ctm_interface experiments benchmarks tests

clean:
	rm -rf $(VENV) site $(OUT)
