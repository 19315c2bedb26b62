"""The course notebooks are committed the way students should first see them.

nbval (run by `make test`) re-executes them and compares outputs; these tests check what nbval
does not: that each notebook was run top to bottom in one kernel, follows the course's layout, and
that every link between notebooks and documents leads somewhere.
"""

import re
from pathlib import Path

import pytest

from tests.optional import need

nbformat = need("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COURSE = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _read(path):
    return nbformat.read(path, as_version=4)


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]


def test_there_is_a_numbered_course():
    numbers = [int(path.name[:2]) for path in COURSE]
    assert numbers == list(range(1, len(COURSE) + 1)), "notebooks are numbered 01, 02, ... in order"


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_notebook_was_run_top_to_bottom_in_one_kernel(path):
    notebook = _read(path)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    counts = [cell.execution_count for cell in _code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1)), "Restart & Run All, then save"
    for cell in notebook.cells:
        assert "execution" not in cell.metadata, "strip timing: use tools/execute_notebooks.py"


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_notebook_opens_with_goals_and_closes_with_a_summary(path):
    notebook = _read(path)
    first, last = notebook.cells[0], notebook.cells[-1]
    assert first.cell_type == "markdown" and "[Index](Index.ipynb)" in first.source
    assert re.search(rf"^# {path.name[:2]}\. ", first.source, re.M), "title '# NN. Title'"
    assert "Learning goals" in first.source and "Prerequisites" in first.source
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert any("## Summary" in source for source in markdown)
    assert last.cell_type == "markdown" and "[Index](Index.ipynb)" in last.source


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_every_figure_cell_ends_with_plt_show(path):
    for cell in _code_cells(_read(path)):
        if any("image/png" in output.get("data", {}) for output in cell.outputs):
            assert cell.source.rstrip().endswith("plt.show()"), cell.source[:80]


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_notebook_imports_the_package(path):
    sources = "\n".join(cell.source for cell in _code_cells(_read(path)))
    assert "from mixer_edu" in sources and "setup_notebook(" in sources


def _documents():
    for pattern in ("*.ipynb", "*.md"):
        # JupyterLab's autosave copies (.ipynb_checkpoints/) are not part of the course.
        yield from (p for p in NOTEBOOKS.rglob(pattern) if ".ipynb_checkpoints" not in p.parts)
    yield ROOT / "README.md"


def _links(path):
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    else:
        text = path.read_text()
    for target in LINK.findall(text):
        if not re.match(r"^[a-z]+:", target):  # skip http:, https:, mailto:
            yield target


@pytest.mark.parametrize("path", sorted(_documents()), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_existing_files(path):
    for target in _links(path):
        assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def test_index_lists_every_course_notebook():
    index = "\n".join(cell.source for cell in _read(NOTEBOOKS / "Index.ipynb").cells)
    for path in COURSE:
        assert f"({path.name})" in index, f"Index.ipynb does not link {path.name}"
