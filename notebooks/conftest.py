"""What pytest (with --nbval) collects under notebooks/.

The course notebooks (`notebooks/NN-*.ipynb`) and the exercises' instructor notebooks
(`notebooks/exercises/solutions/NN-*.ipynb`) are committed executed, and nbval re-runs and compares
them. The student notebooks (`notebooks/exercises/NN-*.ipynb`) are generated from the instructor
notebooks with their solutions replaced by `raise NotImplementedError`, and committed unexecuted:
nbval must not collect them. `tests/test_exercises.py` checks them instead (up to date with their
sources, and failing only with NotImplementedError).
"""

import importlib.util
import os
from pathlib import Path

# Patterns are relative to this folder; `[0-9]*` cannot match `solutions/...`.
collect_ignore_glob = ["exercises/[0-9]*.ipynb"]


def _notebook_times():
    """tools/notebook_times.py (the groups and measured times that shares are made of)."""
    path = Path(__file__).resolve().parent.parent / "tools" / "notebook_times.py"
    spec = importlib.util.spec_from_file_location("notebook_times", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_addoption(parser):
    parser.addoption(
        "--notebook-share",
        metavar="K/N",
        help="run only the K-th of N shares of the notebooks (make test runs two shares side by "
        "side); notebooks that share a training run stay in one share",
    )


def pytest_collection_modifyitems(config, items):
    """With `--notebook-share K/N`, keep the cells of the K-th share's notebooks only."""
    share = config.getoption("notebook_share")
    if not share:
        return
    k, n = (int(part) for part in share.split("/"))
    notebooks = sorted({Path(str(item.fspath)) for item in items})
    times = _notebook_times()
    # The Makefile's portable pass (ATEN_CPU_CAPABILITY=default) has its own measured times.
    portable = os.environ.get("ATEN_CPU_CAPABILITY") == "default"
    seconds = times.PORTABLE_SECONDS if portable else times.SECONDS
    keep = set(times.shares(notebooks, n, seconds)[k - 1])
    kept = [item for item in items if Path(str(item.fspath)) in keep]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
