"""Generate the student notebooks from the instructor notebooks: one source, two versions.

    python -m mixer_edu.exercises.generate           # (re)write notebooks/exercises/NN-*.ipynb
    python -m mixer_edu.exercises.generate --check   # exit 1 if any of them is out of date

The instructor notebooks in `notebooks/exercises/solutions/` are the only source. They hold the
solutions, and run (with outputs) in CI like every course notebook. Each one becomes a student
notebook of the same name in `notebooks/exercises/`:

- in code cells, every region between a `### BEGIN SOLUTION` line and a `### END SOLUTION` line
  is replaced by a stub at the same indentation, which keeps the surrounding `def` line and
  docstring and raises `NotImplementedError("Exercise: write <name>")`;
- in markdown cells, everything between `<!-- BEGIN SOLUTION -->` and `<!-- END SOLUTION -->`
  (answers, notes for the instructor) is removed, and a cell left empty is dropped;
- relative links are rewritten for the student folder (a link to a sibling instructor notebook
  points to the sibling student notebook);
- outputs, execution counts and metadata other than the kernel's (`kernelspec`, `language_info`,
  as JupyterLab writes them, so that opening the notebook changes nothing) are cleared.

The output is a pure function of the source, so `--check` (and the test suite) can compare it
byte for byte with the committed student notebooks, as Neuromatch's `process_notebooks.py` does.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
STUDENT_DIR = ROOT / "notebooks" / "exercises"
SOURCE_DIR = STUDENT_DIR / "solutions"

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
MARKDOWN_SOLUTION = re.compile(
    r"[ \t]*<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->[ \t]*\n?", re.DOTALL
)
DEFINITION = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?:def|class)\s+(?P<name>\w+)")
LINK = re.compile(r"(?P<open>\]\()(?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?(?P<close>\))")


def _enclosing_name(lines: list[str], index: int, indent: int) -> str | None:
    """`Class.method` or `function` around line `index` (found by indentation, upwards)."""
    names = []
    for line in reversed(lines[:index]):
        found = DEFINITION.match(line)
        if found and len(found["indent"]) < indent:
            names.append(found["name"])
            indent = len(found["indent"])
    return ".".join(reversed(names)) or None


def stub_code(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace each solution region of a code cell by a stub; return the code and the count.

    Raises `ValueError` (naming `where`) if the markers are unbalanced or nested.
    """
    lines = source.split("\n")
    output, regions, begin = [], 0, None
    for index, line in enumerate(lines):
        if BEGIN.match(line):
            if begin is not None:
                raise ValueError(f"{where}: '### BEGIN SOLUTION' inside another solution region.")
            begin = BEGIN.match(line)
            indent = begin["indent"]
            name = _enclosing_name(lines, index, len(indent))
            task = f"write {name}" if name else "write this cell's code"
            output += [
                f"{indent}# Your code here.",
                f'{indent}raise NotImplementedError("Exercise: {task}")',
            ]
            regions += 1
        elif END.match(line):
            if begin is None:
                raise ValueError(f"{where}: '### END SOLUTION' without a BEGIN before it.")
            begin = None
        elif begin is None:
            output.append(line)
    if begin is not None:
        raise ValueError(f"{where}: '### BEGIN SOLUTION' without an END after it.")
    return "\n".join(output), regions


def strip_markdown(source: str) -> str:
    """Remove the `<!-- BEGIN SOLUTION -->` ... `<!-- END SOLUTION -->` parts of a markdown cell."""
    text = MARKDOWN_SOLUTION.sub("", source)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


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
    cells, regions = [], 0
    for number, cell in enumerate(notebook.cells, start=1):
        where = f"{path.name}, cell {number}"
        if cell.cell_type == "code":
            source, found = stub_code(cell.source, where)
            regions += found
            new = nbformat.v4.new_code_cell(source)
        elif cell.cell_type == "markdown":
            source = rewrite_links(strip_markdown(cell.source), path.parent, student_dir)
            if not source:
                continue
            new = nbformat.v4.new_markdown_cell(source)
        else:
            new = nbformat.v4.new_raw_cell(cell.source)
        new.id = cell.get("id", f"cell-{number}")
        if "tags" in cell.metadata:
            new.metadata["tags"] = list(cell.metadata["tags"])
        cells.append(new)
    if regions == 0:
        raise ValueError(f"{path.name} has no '### BEGIN SOLUTION' region: nothing to exercise.")
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
    changed = generate(source, dest, check=args.check)
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
