"""What pytest (with --nbval) collects under notebooks/.

The course notebooks (`notebooks/NN-*.ipynb`) and the exercises' instructor notebooks
(`notebooks/exercises/solutions/NN-*.ipynb`) are committed executed, and nbval re-runs and compares
them. The student notebooks (`notebooks/exercises/NN-*.ipynb`) are generated from the instructor
notebooks with their solutions replaced by `raise NotImplementedError`, and committed unexecuted:
nbval must not collect them. `tests/test_exercises.py` checks them instead (up to date with their
sources, and failing only with NotImplementedError).
"""

import re
from pathlib import Path

# Patterns are relative to this folder; `[0-9]*` cannot match `solutions/...`.
collect_ignore_glob = ["exercises/[0-9]*.ipynb"]


# Seconds each notebook (or group) takes under nbval in fast mode, one thread, in a fresh clone
# where it trains its runs (2-core Intel Xeon VM, 2026-12-04), to balance `--notebook-share`; a
# notebook not listed counts 6 s.
SECONDS = {
    "08-Mixer-CNN-And-ViT.ipynb": 215, "03-The-Mixer-Block.ipynb": 100,
    "02-Token-Mixing-vs-Channel-Mixing.ipynb": 75, "06-Gated-MLP-Spatial-Gating.ipynb": 70,
    "07-Mixer-As-Attention-Replacement.ipynb": 60, "04-training": 50,
}  # fmt: skip


def pytest_addoption(parser):
    parser.addoption(
        "--notebook-share",
        metavar="K/N",
        help="run only the K-th of N shares of the notebooks (make test runs two shares side by "
        "side); notebooks that share a training run stay in one share",
    )


def _group(path: Path) -> str:
    """The notebook's group: the first training run it shares through `run_dir("...")` (04
    trains the run that 05 reads), else its own name."""
    shared = re.findall(r'run_dir\((?:\\)?"([^"\\]+)', path.read_text(encoding="utf-8"))
    return shared[0] if shared else path.name


def shares(paths: list[Path], count: int) -> list[list[Path]]:
    """`paths` in `count` shares of about equal time (longest groups first, each into the share
    with the least time so far); a group's notebooks stay together, in order."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(paths):
        groups.setdefault(_group(path), []).append(path)
    totals, result = [0.0] * count, [[] for _ in range(count)]
    for name in sorted(groups, key=lambda name: (-SECONDS.get(name, 6), name)):
        least = totals.index(min(totals))
        totals[least] += SECONDS.get(name, 6)
        result[least] += groups[name]
    return [sorted(share) for share in result]


def pytest_collection_modifyitems(config, items):
    """With `--notebook-share K/N`, keep the cells of the K-th share's notebooks only."""
    share = config.getoption("notebook_share")
    if not share:
        return
    k, n = (int(part) for part in share.split("/"))
    notebooks = sorted({Path(str(item.fspath)) for item in items})
    keep = set(shares(notebooks, n)[k - 1])
    kept = [item for item in items if Path(str(item.fspath)) in keep]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
