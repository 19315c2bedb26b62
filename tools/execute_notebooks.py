"""Execute course notebooks top to bottom in fast mode and save them with their outputs.

    python tools/execute_notebooks.py                      # every notebooks/NN-*.ipynb
    python tools/execute_notebooks.py notebooks/02-*.ipynb # some of them

Each notebook runs in a fresh `python3` kernel with MIXER_EDU_FAST=1 (as CI runs them), from the
notebooks/ folder; outputs and execution counts are kept, per-cell timing metadata is stripped so
that re-running a notebook does not change lines that did not change, and the notebook metadata is
written as JupyterLab writes it (tools/notebook_metadata.py), so that opening it changes nothing.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from notebook_metadata import kernel_metadata, normalize

KERNEL = "python3"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(path: Path, timeout: int = 600) -> float:
    notebook = nbformat.read(path, as_version=4)
    os.environ["MIXER_EDU_FAST"] = "1"
    start = time.perf_counter()
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    normalize(notebook, kernel_metadata(KERNEL))
    nbformat.write(notebook, path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    paths = args.paths or sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    for path in paths:
        seconds = execute(path.resolve())
        print(f"{path}: executed in {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
