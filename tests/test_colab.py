"""Colab: the first cell of every notebook sets the course up there, and does nothing elsewhere.

The cell is run twice here: in this process, which is not Colab, where it must leave everything as
it was; and in a simulated Colab (a `google.colab` module on the path, a local git copy of this
repository as the address, and a stand-in `pip` that records what it was asked to install).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("colab_tool", ROOT / "tools" / "colab.py")
colab = importlib.util.module_from_spec(spec)
spec.loader.exec_module(colab)


def test_every_notebook_and_the_links_are_up_to_date():
    assert colab.out_of_date(write=False) == [], "run: python tools/colab.py"
    assert len(colab.NOTEBOOKS) == 8
    for path in colab.NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        first_code = next(cell for cell in cells if cell.cell_type == "code")
        assert first_code.source == colab.setup_cell(colab.repository()), path.name
        assert first_code.outputs == [], f"{path.name}: the cell prints nothing off Colab"


def test_the_links_follow_the_declared_address(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n')
    assert colab.repository(pyproject) is None
    assert "does not declare yet" in colab.links_block(None)
    pyproject.write_text(
        '[project]\nname = "x"\n[project.urls]\nRepository = "https://github.com/a/b"\n'
    )
    assert colab.repository(pyproject) == "https://github.com/a/b"
    block = colab.links_block("https://github.com/a/b.git")
    assert block.count("https://colab.research.google.com/github/a/b/blob/main/notebooks/0") == 8
    assert colab.colab_url("https://gitlab.com/a/b", "01.ipynb") is None  # Colab opens GitHub only


def test_off_colab_the_cell_does_nothing(monkeypatch):
    assert "google.colab" not in sys.modules
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    before = os.getcwd(), list(sys.path)
    exec(colab.setup_cell("https://github.com/a/b"), {})
    assert (os.getcwd(), sys.path) == before


def simulate_colab(tmp_path: Path, address: str | None) -> subprocess.CompletedProcess:
    """Run the cell twice in a new Python that believes it is on Colab."""
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text("")
    (fake / "pip").mkdir()  # `python -m pip` finds this one first: it records, installs nothing
    (fake / "pip" / "__init__.py").write_text("")
    (fake / "pip" / "__main__.py").write_text(
        "import json, os, sys\n"
        "with open(os.environ['PIP_CALLS'], 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    script = (
        "import google.colab, os, sys\n"
        f"cell = {colab.setup_cell(address)!r}\n"
        "exec(cell, {})\nexec(cell, {})\n"
        "print(os.getcwd()); print(sys.path[0])\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(fake),
        "MIXER_EDU_COLAB_HOME": str(tmp_path / "content"),
        "PIP_CALLS": str(tmp_path / "pip-calls.jsonl"),
    }
    (tmp_path / "content").mkdir()
    return subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path / "content", env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def test_on_colab_the_cell_clones_installs_and_moves_into_the_notebooks(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("needs the course as a git repository, to clone it")
    result = simulate_colab(tmp_path, ROOT.as_uri())
    assert result.returncode == 0, result.stderr
    course = tmp_path / "content" / "mixer-edu"
    assert result.stdout.split() == [str(course / "notebooks"), str(course)]
    assert (course / "notebooks" / "01-Images-To-Patches-To-Tokens.ipynb").is_file()
    calls = [json.loads(line) for line in (tmp_path / "pip-calls.jsonl").read_text().splitlines()]
    assert calls == [["install", "--quiet", "-e", str(course)]] * 2  # cloned once, run twice


def test_on_colab_without_an_address_the_cell_says_what_to_do(tmp_path):
    result = simulate_colab(tmp_path, None)
    assert result.returncode != 0
    assert "does not say where it is published" in result.stderr
    assert "set REPOSITORY above" in result.stderr
