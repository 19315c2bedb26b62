"""Generate the student notebooks from the instructor notebooks: one source, two versions.

    python -m mixer_edu.exercises.generate           # (re)write notebooks/exercises/NN-*.ipynb
    python -m mixer_edu.exercises.generate --check   # exit 1 if any of them is out of date

The instructor notebooks in `notebooks/exercises/solutions/` are the only source. They hold the
solutions, run (with outputs) in CI like every course notebook, and use nbgrader's markup, so a
teacher can also hand them to `nbgrader generate_assignment` and `nbgrader autograde`:

- a cell the student completes has nbgrader metadata `solution: true`; inside it the solution
  sits between a `### BEGIN SOLUTION` line and a `### END SOLUTION` line (in markdown:
  `<!-- BEGIN SOLUTION -->` / `<!-- END SOLUTION -->`; nbgrader looks for the words);
- a check cell is a graded test cell (`grade: true`, `points`): it asserts that a checker passes.

This generator makes exactly the student version nbgrader makes, so students get the same
notebook with or without nbgrader:

- in a code cell, each solution region becomes nbgrader's stub at the region's indentation,
  `# YOUR CODE HERE` and `raise NotImplementedError()`, keeping the `def` line and docstring
  around it; in a markdown cell it becomes `YOUR ANSWER HERE`; a solution cell without any
  region is replaced by the stub as a whole;
- a solution region in a cell not marked as a solution cell is an error (nbgrader refuses it);
- relative links are rewritten for the student folder (a link to a sibling instructor notebook
  points to the sibling student notebook);
- outputs and execution counts are cleared; cell metadata other than nbgrader's and the tags are
  dropped, and the notebook keeps only the kernel's metadata (`kernelspec`, `language_info`, as
  JupyterLab writes them, so that opening the notebook changes nothing).

The output is a pure function of the source, so `--check` (and the test suite) can compare it
byte for byte with the committed student notebooks, as Neuromatch's `process_notebooks.py` does.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
STUDENT_DIR = ROOT / "notebooks" / "exercises"
SOURCE_DIR = STUDENT_DIR / "solutions"

BEGIN = "BEGIN SOLUTION"  # nbgrader's delimiters: a line that contains these words
END = "END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # nbgrader's default stubs
TEXT_STUB = ["YOUR ANSWER HERE"]
LINK = re.compile(r"(?P<open>\]\()(?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?(?P<close>\))")


def stub_regions(source: str, stub: list[str], where: str = "cell") -> tuple[str, int]:
    """Replace each solution region of a cell by `stub` at its indentation; the text, the count.

    Raises `ValueError` (naming `where`) if the markers are unbalanced or nested.
    """
    output, regions, inside = [], 0, False
    for line in source.split("\n"):
        if BEGIN in line:
            if inside:
                raise ValueError(f"{where}: '### BEGIN SOLUTION' inside another solution region.")
            indent = line[: len(line) - len(line.lstrip())]
            output += [indent + stub_line for stub_line in stub]
            inside, regions = True, regions + 1
        elif END in line:
            if not inside:
                raise ValueError(f"{where}: '### END SOLUTION' without a BEGIN before it.")
            inside = False
        elif not inside:
            output.append(line)
    if inside:
        raise ValueError(f"{where}: '### BEGIN SOLUTION' without an END after it.")
    return "\n".join(output), regions


def stub_code(source: str, where: str = "cell") -> tuple[str, int]:
    """A code cell with each solution region replaced by nbgrader's code stub."""
    return stub_regions(source, CODE_STUB, where)


def is_solution_cell(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution", False))


def student_source(cell, where: str = "cell") -> tuple[str, bool]:
    """The student's version of one cell's source, and whether it held a solution."""
    stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
    source, regions = stub_regions(cell.source, stub, where)
    if regions and not is_solution_cell(cell):
        raise ValueError(
            f"{where} has a solution region but is not an nbgrader solution cell: give it the "
            'metadata {"nbgrader": {"solution": true, ...}} (in Jupyter: View > Cell Toolbar > '
            "Create Assignment), or nbgrader will refuse the notebook."
        )
    if is_solution_cell(cell) and not regions:
        return "\n".join(stub), True
    return source, bool(regions)


def rewrite_links(source: str, source_dir: Path, student_dir: Path) -> str:
    """Make the relative links of a markdown cell right for a notebook in `student_dir`."""

    def rewrite(link: re.Match) -> str:
        target = link["target"]
        if "://" in target or target.startswith(("mailto:", "/")):
            return link[0]
        resolved = Path(os.path.normpath(source_dir / target))
        if resolved.parent == source_dir and resolved.suffix == ".ipynb":
            resolved = student_dir / resolved.name  # a sibling exercise: the student version
        new = Path(os.path.relpath(resolved, student_dir)).as_posix()
        return f"{link['open']}{new}{link['anchor'] or ''}{link['close']}"

    return LINK.sub(rewrite, source)


def student_notebook(path: Path, student_dir: Path = STUDENT_DIR) -> nbformat.NotebookNode:
    """The student version of the instructor notebook at `path`."""
    notebook = nbformat.read(path, as_version=4)
    cells, solutions = [], 0
    for number, cell in enumerate(notebook.cells, start=1):
        source, solution = student_source(cell, f"{path.name}, cell {number}")
        solutions += solution
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(source)
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(rewrite_links(source, path.parent, student_dir))
        else:
            new = nbformat.v4.new_raw_cell(source)
        new.id = cell.get("id", f"cell-{number}")
        for key in ("nbgrader", "tags"):
            if key in cell.metadata:
                new.metadata[key] = copy.deepcopy(cell.metadata[key])
        cells.append(new)
    if solutions == 0:
        raise ValueError(f"{path.name} has no solution cell ('### BEGIN SOLUTION'): no exercise.")
    student = nbformat.v4.new_notebook(cells=cells)
    student.metadata = {"kernelspec": dict(notebook.metadata.get("kernelspec", _KERNEL))}
    if "language_info" in notebook.metadata:
        student.metadata["language_info"] = notebook.metadata["language_info"]
    nbformat.validate(student)
    return student


_KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def student_notebook_text(path: Path, student_dir: Path = STUDENT_DIR) -> str:
    """The exact file content of the student version of `path` (as Jupyter writes it)."""
    return nbformat.writes(student_notebook(path, student_dir)) + "\n"


def sources(source_dir: Path = SOURCE_DIR) -> list[Path]:
    """The instructor notebooks, in order."""
    return sorted(source_dir.glob("[0-9][0-9]-*.ipynb"))


def generate(
    source_dir: Path = SOURCE_DIR, student_dir: Path = STUDENT_DIR, check: bool = False
) -> list[Path]:
    """Write (or, with `check`, only compare) every student notebook.

    Returns the student notebooks that were out of date (with `check`: that still are), plus
    student notebooks that have no instructor source any more.
    """
    paths = sources(source_dir)
    if not paths:
        raise FileNotFoundError(
            f"no instructor notebooks (NN-Name.ipynb) in {source_dir}; run this from a "
            "checkout of mixer-edu, or pass --source."
        )
    changed = []
    for path in paths:
        target = student_dir / path.name
        text = student_notebook_text(path, student_dir)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        changed.append(target)
        if not check:
            target.write_text(text, encoding="utf-8")
    names = {path.name for path in paths}
    changed += [p for p in sorted(student_dir.glob("[0-9][0-9]-*.ipynb")) if p.name not in names]
    return changed


def _show(path: Path) -> str:
    """`path` relative to the working directory when it is below it (shorter to read)."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.exercises.generate",
        description="Generate the student exercise notebooks from the instructor notebooks.",
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")
    parser.add_argument("--source", type=Path, default=SOURCE_DIR, help="instructor notebooks")
    parser.add_argument("--dest", type=Path, default=STUDENT_DIR, help="student notebooks")
    args = parser.parse_args(argv)
    source, dest = args.source.resolve(), args.dest.resolve()
    try:
        if not dest.is_dir():
            raise FileNotFoundError(f"no folder {dest} for the student notebooks (--dest)")
        changed = generate(source, dest, check=args.check)
    except (ValueError, OSError, nbformat.ValidationError) as error:  # bad input: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = {path.name for path in sources(source)}
    for path in changed:
        if path.name not in names:
            print(f"{_show(path)}: no instructor notebook {_show(source / path.name)}; delete it.")
        elif args.check:
            print(f"{_show(path)} is out of date: run python -m mixer_edu.exercises.generate")
        else:
            print(f"wrote {_show(path)}")
    if not changed:
        print(f"{len(names)} student notebooks up to date in {_show(dest)}")
    stale = any(path.name not in names for path in changed)
    return 1 if (args.check and changed) or stale else 0


if __name__ == "__main__":
    sys.exit(main())
