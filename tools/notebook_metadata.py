"""Give every committed notebook the metadata JupyterLab writes: opening one then changes nothing.

    python tools/notebook_metadata.py            # every notebook under notebooks/
    python tools/notebook_metadata.py --check    # exit 1 and name the notebooks that differ

As soon as a notebook's kernel starts, JupyterLab 4 sets its `kernelspec` (name, display name and
language of the kernel's spec) and `language_info` (from the kernel's info reply) and, if they
differ from the file, marks the notebook changed, so autosave rewrites it and `git status` shows a
change the student never made. Only these two keys and the format version are rewritten here;
cells, outputs and other metadata (such as saved widget state) are left alone, except that
numbers in the metadata are written as JavaScript writes them (`156.0` as `156`), since
JupyterLab would do so on the student's first save.
`language_info` names the Python version, so a student on another Python still sees that line
change; everything else stays.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "python3"


def kernel_metadata(kernel: str = KERNEL) -> dict:
    """`kernelspec` and `language_info` as JupyterLab writes them for `kernel` (an ipykernel)."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel)
    return {
        "kernelspec": {
            "display_name": spec.display_name,
            "language": spec.language,
            "name": kernel,
        },
        # What ipykernel answers to kernel_info, for the Python running this script.
        "language_info": dict(IPythonKernel.language_info),
    }


def javascript_numbers(value):
    """`value` as it comes back from JavaScript's JSON: one number type, so 156.0 is 156."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: javascript_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [javascript_numbers(item) for item in value]
    return value


def normalize(notebook: nbformat.NotebookNode, metadata: dict) -> bool:
    """Set `metadata`'s keys and the current format version on `notebook`; True if it changed."""
    before = nbformat.writes(notebook)
    notebook.nbformat, notebook.nbformat_minor = nbformat.v4.nbformat, nbformat.v4.nbformat_minor
    notebook.metadata = nbformat.from_dict(javascript_numbers({**notebook.metadata, **metadata}))
    return nbformat.writes(notebook) != before


def committed_notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="change nothing, list what differs")
    args = parser.parse_args(argv)
    metadata = kernel_metadata()
    differ = []
    for path in args.paths or committed_notebooks():
        notebook = nbformat.read(path, as_version=4)
        if normalize(notebook, metadata):
            differ.append(path)
            if not args.check:
                nbformat.write(notebook, path)
    for path in differ:
        print(f"{path}: {'differs' if args.check else 'updated'}", file=sys.stderr)
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
