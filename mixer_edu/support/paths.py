"""Where the course keeps its files: the project folder, its `data/` and `runs/` folders.

In a checkout of the repository these are `data/` and `runs/` beside `pyproject.toml`, so
notebooks in different folders find the same data and each other's runs; when the package is
installed elsewhere they are in the working directory. `MIXER_EDU_DATA` moves the data.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DATA_ENV = "MIXER_EDU_DATA"


def project_folder() -> Path:
    """The repository (when `mixer_edu` runs from a checkout), else the working directory."""
    repository = Path(__file__).resolve().parents[2]  # mixer_edu/support/paths.py -> the checkout
    return repository if (repository / "pyproject.toml").is_file() else Path.cwd()


def default_data_root() -> Path:
    """`$MIXER_EDU_DATA` if set, else `data/` in the project folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return project_folder() / "data"


def check_folder(path: str | Path, what: str) -> Path:
    """Raise a clear `ValueError` when `path`, or the nearest part of it that exists, is a file.

    Writes nothing: a run checks its folders before it reads the data set, and creates them after.
    """
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise ValueError(f"{what} {path} {where}, not a folder; pass a folder (made if missing).")
    return path


def writable_folder(path: str | Path, what: str) -> Path:
    """Create the folder `path` if needed and check that files can be written into it."""
    path = check_folder(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass  # the real test: os.access says yes to root, even on a read-only file system
    except OSError as error:
        raise PermissionError(
            f"cannot write into {what} {path} ({error.strerror or error}); choose a folder you "
            "can write to."
        ) from None
    return path
