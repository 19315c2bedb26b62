"""Colab: every notebook's first code cell sets the course up there, and the links open it.

    python tools/colab.py            # write the cell into notebooks 01-08, the links into README
    python tools/colab.py --check    # exit 1 and say what is out of date

The course's public address is declared once, as `Repository` in `pyproject.toml`'s
`[project.urls]` (a GitHub address: Colab opens notebooks from GitHub). From it this tool writes

- the **first code cell** of every course notebook. On Colab it clones the course into
  `/content/mixer-edu` (once), installs it with pip (Colab ships torch; the rest comes from PyPI)
  and makes `notebooks/` the working folder, so `../data` and `../runs` are where the notebooks
  expect them. Anywhere else it does nothing at all;
- an **Open in Colab** link for each notebook, in the README and the Index, between the two
  `colab-links` markers.

Until an address is declared, the cell says on Colab how to go on (upload the course folder, or
set `REPOSITORY`), and the README says that the links are still to come: no link is invented.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
FIRST_LINE = "# On Colab only: fetch the course, install it and work in its notebooks/ folder."
LINKS_START, LINKS_END = "<!-- colab-links -->", "<!-- /colab-links -->"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def repository(pyproject: Path = ROOT / "pyproject.toml") -> str | None:
    """The address declared as `[project.urls] Repository`, or None."""
    urls = tomllib.loads(pyproject.read_text())["project"].get("urls", {})
    return urls.get("Repository")


def setup_cell(address: str | None) -> str:
    """The source of the first code cell, for the course published at `address`."""
    return f"""{FIRST_LINE}
# Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPOSITORY = {address!r}  # pyproject.toml's [project.urls] Repository
    COURSE = os.path.join(os.environ.get("MIXER_EDU_COLAB_HOME", "/content"), "mixer-edu")
    if not os.path.isdir(COURSE):
        if REPOSITORY is None:
            raise SystemExit(
                "This copy of the course does not say where it is published: upload the course "
                f"folder to {{COURSE}}, or set REPOSITORY above to its git address."
            )
        subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, COURSE], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", COURSE], check=True)
    sys.path.insert(0, COURSE)  # this kernel started before the install
    os.chdir(os.path.join(COURSE, "notebooks"))"""


def colab_url(address: str, notebook: str) -> str | None:
    """Colab's address for `notebooks/<notebook>` on GitHub's main branch (None: not GitHub)."""
    found = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", address)
    if found is None:
        return None
    owner, name = found.groups()
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/main/notebooks/{notebook}"


def links_block(address: str | None) -> str:
    """The README's Colab part, between the markers."""
    urls = {nb.name: address and colab_url(address, nb.name) for nb in NOTEBOOKS}
    if not all(urls.values()):
        body = (
            "Every notebook's first cell sets the course up on Colab (and does nothing elsewhere). "
            "The Open in Colab links are built from the course's public GitHub address, which "
            "`pyproject.toml` does not declare yet (`[project.urls] Repository`); once it does, "
            "`python tools/colab.py` writes them here."
        )
    else:
        badge = f"[![Open in Colab]({BADGE})]"
        rows = [f"| {nb.stem[:2]} | {badge}({urls[nb.name]}) |" for nb in NOTEBOOKS]
        body = "| # | Colab |\n| --- | --- |\n" + "\n".join(rows)
    return f"{LINKS_START}\n{body}\n{LINKS_END}"


def with_block(text: str, block: str) -> str:
    """`text` with the part between the `colab-links` markers (inclusive) replaced by `block`."""
    start, end = text.index(LINKS_START), text.index(LINKS_END) + len(LINKS_END)
    return text[:start] + block + text[end:]


def updated_notebook(path: Path, cell_source: str) -> nbformat.NotebookNode:
    """The notebook with `cell_source` as its first code cell (replacing an older version)."""
    notebook = nbformat.read(path, as_version=4)
    code = [k for k, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    if code and notebook.cells[code[0]].source.startswith(FIRST_LINE):
        notebook.cells[code[0]].source = cell_source
    else:  # after the title cell, before the first code cell
        cell = nbformat.v4.new_code_cell(cell_source)
        cell.id = "colab-setup"  # a stable id: writing it twice changes nothing
        notebook.cells.insert(code[0] if code else len(notebook.cells), cell)
    return notebook


def out_of_date(write: bool) -> list[str]:
    """What differs from the declared address (and, with `write`, put it right)."""
    address, stale = repository(), []
    cell = setup_cell(address)
    for path in NOTEBOOKS:
        notebook = updated_notebook(path, cell)
        if nbformat.writes(notebook) + "\n" != path.read_text():
            stale.append(str(path.relative_to(ROOT)))
            if write:
                nbformat.write(notebook, path)
    block = links_block(address)
    readme = (ROOT / "README.md").read_text()
    if with_block(readme, block) != readme:
        stale.append("README.md")
        if write:
            (ROOT / "README.md").write_text(with_block(readme, block))
    index_path = ROOT / "notebooks" / "Index.ipynb"
    index = nbformat.read(index_path, as_version=4)
    if with_block(index.cells[0].source, block) != index.cells[0].source:
        stale.append("notebooks/Index.ipynb")
        if write:
            index.cells[0].source = with_block(index.cells[0].source, block)
            nbformat.write(index, index_path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = out_of_date(write=not args.check)
    for name in stale:
        print(f"{'out of date' if args.check else 'updated'}: {name}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
