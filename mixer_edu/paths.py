"""Where the course keeps its files: the project folder, its `data/` and `runs/` folders.

In a checkout of the repository these are `data/` and `runs/` beside `pyproject.toml`, so
notebooks in different folders find the same data and each other's runs; when the package is
installed elsewhere they are in the working directory. `MIXER_EDU_DATA` moves the data.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MIXER_EDU_DATA"


def project_folder() -> Path:
    """The repository (when `mixer_edu` runs from a checkout), else the working directory."""
    repository = Path(__file__).resolve().parent.parent
    return repository if (repository / "pyproject.toml").is_file() else Path.cwd()


def default_data_root() -> Path:
    """`$MIXER_EDU_DATA` if set, else `data/` in the project folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return project_folder() / "data"
