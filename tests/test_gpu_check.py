"""tools/gpu_check.py turns notebooks into scripts that run the same cells in the same order."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def _notebook(tmp_path, *cells):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# a title"),
        *(nbformat.v4.new_code_cell(source) for source in cells),
    ]
    path = tmp_path / "01-Example.ipynb"
    nbformat.write(notebook, path)
    return path


def test_script_runs_the_code_cells_in_order(tmp_path):
    path = _notebook(tmp_path, "x = 2", "print(x * 21)")
    script = tmp_path / "script.py"
    script.write_text(gpu_check.notebook_to_script(path))
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, check=True)
    assert result.stdout == "42\n"


def test_magics_are_refused_with_the_cell_number(tmp_path):
    path = _notebook(tmp_path, "x = 1", "%timeit x + 1")
    with pytest.raises(ValueError, match="cell 3"):
        gpu_check.notebook_to_script(path)


def test_every_committed_notebook_converts():
    assert gpu_check.NOTEBOOKS, "the course has notebooks"
    for path in gpu_check.NOTEBOOKS:
        assert "# --- cell" in gpu_check.notebook_to_script(path)
