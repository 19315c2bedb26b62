# The course's two commands:
#   make course   set up the environment (first time only) and open the notebooks in JupyterLab
#   make test     set up the environment (first time only), lint, and run every test and notebook
#                 (the notebooks twice: on this machine's fast kernels and on a portable path),
#                 then the tests and notebooks again on the oldest torch the course supports
#
# The environment is a virtual environment in .venv, made with the python3 on your PATH
# (Python 3.11 or newer). Conda users can use environment.yml instead (see README.md).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The torch floor: a second environment with the oldest torch and torchvision pyproject.toml
# allows (pinned in constraints-floor.txt, which a test keeps equal to pyproject's lower bounds),
# the runtime dependencies, pytest and pytest-xdist: nothing else, as on a GPU machine's image.
FLOOR_VENV := .venv-floor
FLOOR_BIN := $(FLOOR_VENV)/bin
FLOOR_STAMP := $(FLOOR_VENV)/.installed

.PHONY: course test test-main test-floor

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

$(FLOOR_STAMP): pyproject.toml constraints-floor.txt
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints-floor.txt -e . pytest pytest-xdist
	touch $(FLOOR_STAMP)

# tools/course.py starts JupyterLab with the repository's settings and prints the URL to open;
# extra Jupyter options go in JUPYTER_OPTIONS, e.g. make course JUPYTER_OPTIONS=--ip=0.0.0.0
JUPYTER_OPTIONS ?=

course: $(STAMP)
	$(BIN)/python tools/course.py $(JUPYTER_OPTIONS)

# Notebooks run in fast mode (short runs on the synthetic stand-in data), as in CI: nbval re-runs
# every course notebook and instructor notebook and compares its outputs with the committed ones.
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg \
	--nbval-cell-timeout=600

# The notebooks again on a second numerical path: portable (non-vectorised) ATen kernels,
# MKL's reproducible mode and one thread. Their outputs must not change, which shows that what
# nbval compares does not depend on the CPU (AMD, Intel, Arm), its vector units or the cores.
PORTABLE := MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1

# MIXER_EDU_REQUIRE_ALL=1: a test that needs Jupyter's machinery, selenium or Chromium fails
# where they are missing instead of skipping (tests/optional.py), so this run skips none of them.
# On a machine without Chromium: make test REQUIRE_ALL=0.
REQUIRE_ALL ?= 1

# One job at a time, whatever -j or MAKEFLAGS say: two torch processes that each use every core
# slow each other down many times over (their threads spin-wait for each other), and the tests
# that kill and time runs would fail.
.NOTPARALLEL:

# The floor's environment is installed (mostly downloaded) in the background while test-main
# runs, then test-floor runs on it.
test: $(STAMP)
	$(MAKE) --no-print-directory $(FLOOR_STAMP) > .venv-floor.log 2>&1 & floor=$$!; \
	$(MAKE) --no-print-directory test-main; main=$$?; \
	wait $$floor || { echo "installing $(FLOOR_VENV) failed:"; tail -20 .venv-floor.log; exit 1; }; \
	[ $$main -eq 0 ] || exit $$main; \
	$(MAKE) --no-print-directory test-floor

# Two processes of one thread each use two cores better than one process of two threads where
# the work is many small steps: the suite runs on two pytest-xdist workers (in a fresh clone on
# a 2-core Xeon VM: 396 s against 458 s in one process), and both notebook passes run in two
# shares side by side (tools/nbval_shares.py; notebooks that share a training run stay in one
# share; the main pass took 482 s in one process of two threads).
SHARES := $(BIN)/python tools/nbval_shares.py --shares 2 --

test-main: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MIXER_EDU_REQUIRE_ALL=$(REQUIRE_ALL) MIXER_EDU_FAST=1 OMP_NUM_THREADS=1 \
		$(BIN)/python -m pytest -n 2 --durations=15 tests
	MIXER_EDU_FAST=1 $(SHARES) $(NBVAL) -p no:cacheprovider --durations=10 notebooks
	$(PORTABLE) MIXER_EDU_FAST=1 $(SHARES) $(NBVAL) -p no:cacheprovider --durations=10 notebooks

# The suite and every notebook (as scripts, under tools/device_guard.py, which makes a CPU batch
# fed to a model on the course device fail as on a GPU) on the torch floor. Its tests that start
# a Jupyter kernel, server or browser (marker `jupyter`) are left to test-main, and those that
# need a dev dependency (nbval, nbgrader, selenium) skip, each naming what it misses.
test-floor: $(FLOOR_STAMP)
	MIXER_EDU_FAST=1 OMP_NUM_THREADS=1 \
		$(FLOOR_BIN)/python -m pytest -n 2 -q -p no:cacheprovider -m "not jupyter" tests
	$(FLOOR_BIN)/python tools/gpu_check.py --device-guard --workers 2 --budget notebooks=1200
