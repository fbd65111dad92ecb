# The two commands a fresh clone needs:  make reproduce   and   make test
# Each creates (or refreshes) .venv on first use from the pinned lock file.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test reproduce unit notebooks book book-quick offline-check measure lint clean help

help:
	@echo "make reproduce   measure on the GPU if there is one, run every notebook, build the book"
	@echo "make test        unit tests, every notebook in quick mode, book build, offline check"

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

unit: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check hwml tests book

clean:
	rm -rf book/_build book/_executed
