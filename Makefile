# dlcourse — the two commands students need are `make lab` and `make test`.
# Everything runs from .venv, which is created and filled from requirements/lock.txt on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dlcourse-installed
PYTEST_ARGS ?=
JUPYTER_ARGS ?=
FAST   ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1
# TensorFlow's C++ start-up chatter hides the useful lines; warnings and errors still show.
export TF_CPP_MIN_LOG_LEVEL ?= 1
# The browser test drives the system's Chromium; Playwright must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: help install browser sandbox lab test course labs refresh reset bench lock doctor tiny-bert clean

help:
	@echo "make lab      create .venv if needed, install, start JupyterLab on labs/"
	@echo "make test     create .venv if needed, install, run the whole test suite (LAB=NN: one lab's tests)"
	@echo "make course   execute every solution notebook headless (FAST=1 for the quick mode)"
	@echo "make labs     regenerate labs/ from solutions/"
	@echo "make refresh  re-execute solutions/ in place (full mode) and regenerate labs/"
	@echo "make reset LAB=NN  a fresh copy of labs/NN_*.ipynb (your version is backed up to build/lab-backups/)"
	@echo "make bench    run the benchmarks and print their tables"
	@echo "make doctor   report versions, devices, data and lab sync"
	@echo "make tiny-bert  re-train lab 15's shipped tiny BERT (about 10 minutes on 2 cores) and rewrite its files"
	@echo "make lock     resolve requirements/requirements.in into requirements/lock.txt (keeps existing pins; UPGRADE=1 re-resolves all)"

# The stamp is rebuilt whenever the lock or the package metadata changes.
$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing the locked environment into $(VENV) (first time: a few minutes)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# Debian's chromium for tests/browser (installed with apt-get when missing; see the script).
browser:
	@bash scripts/install_chromium.sh

# bubblewrap, the sandbox `dlcourse grade` runs submissions in (installed with apt-get when missing).
sandbox:
	@bash scripts/install_bubblewrap.sh

lab: install
	@echo "Starting JupyterLab on labs/ — open the http://127.0.0.1 URL it prints below."
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=labs --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) $(JUPYTER_ARGS)

# Unit tests; each solution notebook run once in FAST mode, probed, under strict nbval (outputs and
# check fairness in one run); each student lab run once unsolved; JupyterLab in a real browser.
# `make test LAB=07` runs only what is about lab 07. Exit code 5 (no tests collected) is a failure.
# JOBS pytest-xdist workers (default 2) share the tests; each notebook's cells stay in one worker.
JOBS ?= 2
test: install browser sandbox
	@DLCOURSE_FAST=1 $(PY) -m pytest tests --durations=15 -n $(JOBS) --dist loadscope $(if $(LAB),--lab $(LAB)) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests$(if $(LAB), for lab $(LAB)), so nothing was checked; this is a failure."; fi; \
	exit $$rc

# Full mode unless FAST=1; fails when a lab misses the bound it declares for its key result.
course: install
	$(PY) -m dlcourse.cli run all $(if $(FAST),--fast) $(if $(COURSE_DIR),--folder $(COURSE_DIR)) $(if $(COURSE_OUT),--out $(COURSE_OUT))

labs: install
	$(PY) -m dlcourse.cli labs build

refresh: install
	$(PY) -m dlcourse.cli labs refresh all

reset: install
	@test -n "$(LAB)" || { echo "make reset: say which lab, e.g. make reset LAB=03"; exit 2; }
	$(PY) -m dlcourse.cli labs reset $(LAB)

bench: install
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

doctor: install
	$(PY) -m dlcourse.cli doctor

lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet -r requirements/requirements.in $(if $(UPGRADE),,-c requirements/lock.txt)
	build/lock-venv/bin/python scripts/write_lock.py build/lock-venv/bin/python requirements/lock.txt

# Lab 15's pre-trained encoder: lab 11's recipe in BERT's layout; writes the safetensors weights and their record.
tiny-bert: install
	$(PY) -m dlcourse.finetune.shipped --out lib/dlcourse/finetune/weights

clean:
	rm -rf build .pytest_cache
