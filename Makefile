# The two commands a fresh clone needs:  make reproduce   and   make test
# Each creates (or refreshes) .venv on first use from the pinned lock file.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: test reproduce unit notebooks book book-quick offline-check measure measure-cpu lint clean help

help:
	@echo "make reproduce   measure on the GPU if there is one, run every notebook, build the book"
	@echo "make test        lint, unit tests, every notebook in quick mode, book build, offline check"

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

unit: $(STAMP)
	$(PY) -m pytest -q tests

# ---- notebooks and the book (book/chapters.yml lists them; book/build.py runs them)

# Lint and format check, unit tests, every notebook in quick mode, the book (warnings are
# errors), offline check. Chromium first, so that the unit tests of the offline checker run
# in a real browser too.
test: $(STAMP) $(CHROMIUM)
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) book-quick
	$(MAKE) offline-check

# Measure anew where there is a GPU, run every notebook in full mode, build the book.
# With a GPU the notebooks read the new data/<gpu name> and data/hyperpower-<gpu name>.
reproduce: $(STAMP)
	@if nvidia-smi -L >/dev/null 2>&1; then \
	  $(MAKE) measure && \
	  slug=$$($(PY) -c 'import torch; from hwml.data import slugify; print(slugify(torch.cuda.get_device_name(0)))') && \
	  $(PY) book/build.py run --set dataset=$$slug --set benchmark=hyperpower-$$slug-cued-digits \
	    --set stages=deploy-$$slug-cued-digits --set nas_benchmark=nas-$$slug-cued-digits; \
	else \
	  echo "no GPU found (nvidia-smi -L): the book is rebuilt from the data in data/"; \
	  $(PY) book/build.py run; \
	fi
	$(MAKE) book

# Every dataset anew on this machine: layers and networks on its GPUs (one process per
# GPU) into data/<gpu name>/, the HyperPower CNN benchmark (cued digits) into
# data/hyperpower-<gpu name>-cued-digits/, the stage-by-stage savings and the co-search
# cost table on its networks into data/deploy-<gpu name>-cued-digits/ (resumable), the
# platform-aware NAS benchmark into data/nas-<gpu name>-cued-digits/, and its host CPU
# (measure-cpu).
measure: $(STAMP)
	PY=$(abspath $(PY)) scripts/measure.sh
	PY=$(abspath $(PY)) scripts/benchmark.sh
	slug=$$($(PY) -c 'import torch; from hwml.data import slugify; print(slugify(torch.cuda.get_device_name(0)))') && \
	  $(PY) -m hwml.deploy.stages --folder hyperpower-$$slug-cued-digits --out data/deploy-$$slug-cued-digits
	PY=$(abspath $(PY)) scripts/nas_benchmark.sh
	$(MAKE) measure-cpu

# This machine's CPU as a platform of its own (runtime of layers and networks, no energy
# counter) into data/cpu-<cpu name>-<cores>-cores/; nothing else should run meanwhile.
measure-cpu: $(STAMP)
	PY=$(abspath $(PY)) scripts/measure_cpu.sh

# Run every notebook (full mode) into book/_executed/.
notebooks: $(STAMP)
	$(PY) book/build.py run

# Render book/_build/html from the executed notebooks (no execution).
book: $(STAMP)
	$(PY) book/build.py html

# Quick mode: run every notebook with quick=True, then render.
book-quick: $(STAMP)
	$(PY) book/build.py all --quick

# Open every page of the built book in headless Chromium; fail on any remote request.
# Screenshots of the pages go to /tmp/hwml-book/.
offline-check: $(STAMP) $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(PY) book/check_offline.py --screenshots /tmp/hwml-book

# Debian's Chromium (CI runs on a clean machine, as root).
$(CHROMIUM):
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

lint: $(STAMP)
	$(VENV)/bin/ruff check hwml tests book
	$(VENV)/bin/ruff format --check hwml tests book

# book/_executed also holds the chapters' fitted layer models (models/, see hwml/predict/model_cache.py)
clean:
	rm -rf book/_build book/_executed
