"""The exercise notebooks: one instructor source, a generated student version, both kept honest.

- The generator turns solution regions into `NotImplementedError` stubs and keeps everything else.
- The committed student notebooks are exactly what the generator makes from the sources now.
- A student notebook, run as it is, fails only with `NotImplementedError`, at least once.
- The instructor notebooks were committed after their checkers passed (nbval re-runs them).
"""

import re
from pathlib import Path

import pytest

from tests.optional import need

nbformat = need("nbformat")  # also what mixer_edu.exercises.generate writes notebooks with
NotebookClient = need("nbclient").NotebookClient
from mixer_edu.exercises import generate  # noqa: E402

SOURCES = generate.sources()
STUDENT_NOTEBOOKS = [generate.STUDENT_DIR / path.name for path in SOURCES]


SOLUTION = {"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": "x"}}


def _notebook(cells: list[tuple]) -> nbformat.NotebookNode:
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    made = []
    for number, (kind, source, *metadata) in enumerate(cells):
        cell = make[kind](source)
        cell.metadata.update(metadata[0] if metadata else {})
        if "nbgrader" in cell.metadata:
            cell.metadata["nbgrader"] = {**cell.metadata["nbgrader"], "grade_id": f"id{number}"}
        made.append(cell)
    notebook = nbformat.v4.new_notebook(cells=made)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return notebook


def _write(path: Path, cells) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(_notebook(cells), path)
    return path


FUNCTION = '''import torch


def double(x):
    """Return 2 * x."""
    ### BEGIN SOLUTION
    y = x + x
    return y
    ### END SOLUTION'''

METHOD = """class Block:
    def forward(self, x):
        ### BEGIN SOLUTION
        return x
        ### END SOLUTION"""


def test_stub_keeps_the_signature_and_docstring_and_is_nbgraders_default_stub():
    stub, regions = generate.stub_code(FUNCTION)
    assert regions == 1
    assert stub == (
        'import torch\n\n\ndef double(x):\n    """Return 2 * x."""\n    # YOUR CODE HERE\n'
        "    raise NotImplementedError()"
    )
    namespace = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError):
        namespace["double"](1)


def test_stub_keeps_the_indentation_of_a_method():
    stub, _ = generate.stub_code(METHOD)
    assert "        # YOUR CODE HERE\n        raise NotImplementedError()" in stub
    assert "return x" not in stub


def test_cells_without_regions_are_unchanged():
    assert generate.stub_code("x = 1\nprint(x)") == ("x = 1\nprint(x)", 0)


@pytest.mark.parametrize(
    "source, problem",
    [
        ("### BEGIN SOLUTION\nx = 1", "without an END"),
        ("x = 1\n### END SOLUTION", "without a BEGIN"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
    ],
)
def test_unbalanced_markers_are_an_error_that_says_where(source, problem):
    with pytest.raises(ValueError, match=f"cell 3: .*{problem}"):
        generate.stub_code(source, where="cell 3")


def test_markdown_answers_become_nbgraders_text_stub():
    cell = nbformat.v4.new_markdown_cell(
        "Question?\n\n<!-- BEGIN SOLUTION -->\n*Answer:* 42.\n<!-- END SOLUTION -->\n\nNext."
    )
    cell.metadata.update(SOLUTION)
    assert generate.student_source(cell) == ("Question?\n\nYOUR ANSWER HERE\n\nNext.", True)


def test_a_solution_cell_without_a_region_is_replaced_as_a_whole():
    code = nbformat.v4.new_code_cell("x = 42")
    code.metadata.update(SOLUTION)
    text = nbformat.v4.new_markdown_cell("The answer is 42.")
    text.metadata.update(SOLUTION)
    assert generate.student_source(code) == ("# YOUR CODE HERE\nraise NotImplementedError()", True)
    assert generate.student_source(text) == ("YOUR ANSWER HERE", True)


def test_a_region_outside_a_solution_cell_is_an_error_as_in_nbgrader():
    cell = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    with pytest.raises(ValueError, match="cell 2 has a solution region but is not an nbgrader"):
        generate.student_source(cell, "cell 2")


def test_links_are_rewritten_for_the_student_folder(tmp_path):
    source_dir, student_dir = tmp_path / "exercises" / "solutions", tmp_path / "exercises"
    text = (
        "[index](../README.md) [next](02-B.ipynb#top) [course](../../Index.ipynb) "
        "[web](https://example.org/a.md)"
    )
    assert generate.rewrite_links(text, source_dir, student_dir) == (
        "[index](README.md) [next](02-B.ipynb#top) [course](../Index.ipynb) "
        "[web](https://example.org/a.md)"
    )


def _example_source(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "exercises" / "solutions" / "01-Double.ipynb",
        [
            ("markdown", "[Exercises](../README.md)"),
            (
                "markdown",
                "<!-- BEGIN SOLUTION -->\nFor the instructor only.\n<!-- END SOLUTION -->",
                SOLUTION,
            ),
            ("code", FUNCTION, SOLUTION),
            ("code", "print(double(2))"),
        ],
    )


def test_student_notebook_is_stubbed_stripped_and_unexecuted(tmp_path):
    source = _example_source(tmp_path)
    notebook = nbformat.read(source, as_version=4)
    notebook.cells[3].outputs = [nbformat.v4.new_output("stream", text="4\n")]
    notebook.cells[3].execution_count = 1
    nbformat.write(notebook, source)

    student = generate.student_notebook(source, tmp_path / "exercises")
    assert [cell.cell_type for cell in student.cells] == ["markdown", "markdown", "code", "code"]
    assert student.cells[0].source == "[Exercises](README.md)"
    assert student.cells[1].source == "YOUR ANSWER HERE"
    assert (
        "NotImplementedError" in student.cells[2].source and "x + x" not in student.cells[2].source
    )
    assert student.cells[2].metadata["nbgrader"]["solution"] is True
    assert student.cells[3].outputs == [] and student.cells[3].execution_count is None
    assert student.metadata == {"kernelspec": {"name": "python3", "display_name": "Python 3"}}


def test_a_source_without_any_solution_region_is_an_error(tmp_path):
    source = _write(tmp_path / "solutions" / "01-Empty.ipynb", [("code", "x = 1")])
    with pytest.raises(ValueError, match="has no solution cell"):
        generate.student_notebook(source, tmp_path)


def test_check_mode_reports_stale_and_orphaned_student_notebooks(tmp_path, capsys):
    source = _example_source(tmp_path)
    source_dir, student_dir = source.parent, source.parent.parent
    arguments = ["--source", str(source_dir), "--dest", str(student_dir)]
    assert generate.main(["--check", *arguments]) == 1  # not generated yet
    assert "out of date" in capsys.readouterr().out
    assert generate.main(arguments) == 0
    assert generate.main(["--check", *arguments]) == 0
    assert "1 student notebooks up to date" in capsys.readouterr().out

    notebook = nbformat.read(source, as_version=4)
    notebook.cells[3].source = "print(double(3))"
    nbformat.write(notebook, source)
    assert generate.main(["--check", *arguments]) == 1
    assert "01-Double.ipynb is out of date" in capsys.readouterr().out

    generate.main(arguments)
    (student_dir / "02-Orphan.ipynb").write_text("{}")
    assert generate.main(["--check", *arguments]) == 1
    assert "02-Orphan.ipynb: no instructor notebook" in capsys.readouterr().out


# --- The committed exercises ----------------------------------------------------------------


def test_there_is_an_instructor_notebook_for_every_exercise():
    names = [path.name for path in SOURCES]
    assert [int(name[:2]) for name in names] == list(range(1, 11))


def test_committed_student_notebooks_are_what_the_generator_makes_now():
    """Byte for byte; if this fails, run `python -m mixer_edu.exercises.generate`."""
    assert generate.generate(check=True) == []


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_instructor_notebook_was_committed_with_every_check_passing(source):
    notebook = nbformat.read(source, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "execute it top to bottom in fast mode"
    checks = [cell for cell in code if re.search(r"\bcheck_\w+\(", cell.source)]
    assert checks, "an exercise ends with a checker"
    for cell in checks:
        text = "".join(output.get("text", "") for output in cell.outputs)
        assert "checks passed" in text and "✗" not in text, cell.source


def _errors(notebook) -> list[tuple[int, str, str]]:
    return [
        (index, output.ename, output.evalue)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]


def _is_graded_test(cell) -> bool:
    grading = cell.metadata.get("nbgrader", {})
    return bool(grading.get("grade")) and not grading.get("solution")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_instructor_notebook_is_valid_nbgrader_with_a_graded_check_per_checker(source):
    validator = need("nbgrader.nbgraderformat").MetadataValidator()
    notebook = nbformat.read(source, as_version=4)
    validator.validate_nb(notebook)  # raises on metadata nbgrader would refuse
    for cell in notebook.cells:
        if cell.cell_type == "code" and re.search(r"\bcheck_\w+\(", cell.source):
            assert _is_graded_test(cell) and cell.metadata.nbgrader["points"] > 0, cell.source
            assert cell.source.startswith("assert check_"), "a failed check must fail the cell"
    assert any(generate.is_solution_cell(cell) for cell in notebook.cells)


def test_generator_cli_reports_bad_input_in_one_line_with_exit_code_2(tmp_path, capsys):
    broken = tmp_path / "solutions" / "01-Broken.ipynb"
    _write(broken, [("code", "### BEGIN SOLUTION\nx = 1")])  # no END, no metadata
    arguments = ["--source", str(broken.parent), "--dest", str(tmp_path)]
    assert generate.main(arguments) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert generate.main(["--source", str(tmp_path / "nowhere"), "--dest", str(tmp_path)]) == 2
    assert generate.main(["--source", str(broken.parent), "--dest", str(tmp_path / "no")]) == 2
    assert capsys.readouterr().err.count("error: ") == 2


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.jupyter
def test_student_notebook_fails_only_with_not_implemented_error(path, monkeypatch):
    """Run it as a student first sees it: every error is an unwritten exercise, nothing else."""
    monkeypatch.setenv("MIXER_EDU_FAST", "1")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    errors = _errors(notebook)
    assert any(name == "NotImplementedError" for _, name, _ in errors), "nothing to write"
    for index, name, value in errors:
        cell = notebook.cells[index]
        if name == "AssertionError":  # a graded check of code not written yet
            text = "".join(output.get("text", "") for output in cell.outputs)
            assert _is_graded_test(cell) and "not written yet" in text, (index, text)
        else:
            assert name == "NotImplementedError", (index, name, value)
