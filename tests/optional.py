"""What a test needs beyond the runtime dependencies and pytest: skipped where missing, or failed.

The suite runs wherever the package's runtime dependencies and pytest are installed (a GPU image,
a student's laptop): a test that needs Jupyter's machinery (nbformat, nbclient, nbval, nbgrader,
jupyter_server, psutil, selenium) or Chromium skips there, with one line naming what is missing
and how to get it. `make test` sets MIXER_EDU_REQUIRE_ALL=1: there a missing one fails the test
instead, so CI never passes by skipping them (tests/test_optional.py checks both).

    nbformat = need("nbformat")                # at a test module's top: skips the module
    need_program("chromedriver", "chromium-driver")
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

import pytest

REQUIRE_ALL_ENV = "MIXER_EDU_REQUIRE_ALL"
INSTALL = 'pip install -e ".[dev]"'


def required() -> bool:
    """True under `make test` (MIXER_EDU_REQUIRE_ALL=1): a missing dependency is a failure."""
    return os.environ.get(REQUIRE_ALL_ENV, "").strip() not in ("", "0")


def missing(what: str, how: str) -> None:
    """Skip the test (or the module, at its top) saying what is missing, or fail under make test."""
    message = f"needs {what}, which is not installed here ({how})"
    if required():
        pytest.fail(f"{message}; {REQUIRE_ALL_ENV}=1 allows no skip", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def need(module: str, how: str = INSTALL) -> ModuleType:
    """`import module`, or `missing(...)` when it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError:
        missing(f"the Python package {module.split('.')[0]}", how)


def need_program(program: str, debian_package: str) -> str:
    """The path of `program` on PATH, or `missing(...)`."""
    path = shutil.which(program)
    if path is None:
        missing(f"the program {program}", f"Debian: apt-get install {debian_package}")
    return path
