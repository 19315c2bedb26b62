"""Tests that need Jupyter's machinery skip where it is missing, but never under `make test`."""

import re
import shutil
from pathlib import Path

import pytest

from tests.optional import REQUIRE_ALL_ENV, need, need_program, required

ROOT = Path(__file__).resolve().parent.parent
# Everything the suite needs beyond the runtime dependencies and pytest.
MODULES = ["nbformat", "nbclient", "nbval", "nbgrader", "selenium", "psutil", "jupyter_server"]
PROGRAMS = ["chromedriver"]


def test_a_missing_package_skips_with_one_line_naming_it(monkeypatch):
    monkeypatch.delenv(REQUIRE_ALL_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        need("no_such_package_for_this_test")
    message = str(skipped.value)
    assert "\n" not in message and "no_such_package_for_this_test" in message
    assert 'pip install -e ".[dev]"' in message


def test_under_make_test_a_missing_package_fails_instead(monkeypatch):
    monkeypatch.setenv(REQUIRE_ALL_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no_such_package_for_this_test"):
        need("no_such_package_for_this_test")
    with pytest.raises(pytest.fail.Exception, match="apt-get install"):
        need_program("no-such-program-for-this-test", "no-such-package")


def test_make_test_runs_the_suite_with_nothing_allowed_to_skip():
    makefile = (ROOT / "Makefile").read_text()
    main_run = re.search(r"^test-main:.*?(?=^\S)", makefile, re.M | re.S).group(0)
    joined = main_run.replace("\\\n", " ")  # continued lines as one
    assert re.search(r"MIXER_EDU_REQUIRE_ALL=\$\(REQUIRE_ALL\) .* tests$", joined, re.M), main_run
    assert re.search(r"^REQUIRE_ALL \?= 1$", makefile, re.M)
    whole_run = re.search(r"^test:.*?(?=^\S)", makefile, re.M | re.S).group(0)
    assert "test-main" in whole_run and "test-floor" in whole_run


def test_make_test_has_everything_the_suite_needs():
    """Under `make test` (MIXER_EDU_REQUIRE_ALL=1) nothing is missing, so no test skipped for it."""
    if not required():
        pytest.skip(f"checked under make test ({REQUIRE_ALL_ENV}=1) only")
    for module in MODULES:
        need(module)
    for program in PROGRAMS:
        assert shutil.which(program), program
