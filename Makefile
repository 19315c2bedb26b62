# The course's two commands:
#   make course   set up the environment (first time only) and open the notebooks in JupyterLab
#   make test     set up the environment (first time only), lint, and run every test and notebook
#                 (the notebooks twice: on this machine's fast kernels and on a portable path)
#
# The environment is a virtual environment in .venv, made with the python3 on your PATH
# (Python 3.11 or newer). Conda users can use environment.yml instead (see README.md).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: course test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MIXER_EDU_FAST=1 $(BIN)/python -m pytest $(NBVAL) --durations=15 tests notebooks
	$(PORTABLE) MIXER_EDU_FAST=1 $(BIN)/python -m pytest $(NBVAL) -p no:cacheprovider notebooks
