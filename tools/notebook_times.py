"""Which notebooks must run one after the other, and about how long each takes under test.

`make test` runs the notebooks in several processes side by side (nbval in shares:
notebooks/conftest.py and tools/nbval_shares.py; notebooks as scripts: tools/gpu_check.py).
Two rules make that fast and safe:

- notebooks that share a training run (`run_dir("04-training")` in 04 and 05: 05 reads the run
  04 trains) form one group and run in order, in one process;
- the longest groups start first, and shares are filled by their measured times, so that no
  process is left with the long notebooks at the end.

Standard library only: tools/gpu_check.py loads this file where the package and Jupyter may be
missing.
"""

from __future__ import annotations

import re
from pathlib import Path

# Seconds each group takes under nbval in fast mode, one thread per process, in a fresh clone's
# `bash .ci/run` (2-core Intel Xeon VM, 2026-12-04; pytest --durations summed per notebook). A
# notebook not listed counts 5 s.
SECONDS = {  # the main pass, where 04, 06 and exercise 05 train their runs
    "08-Mixer-CNN-And-ViT.ipynb": 174, "06-Gated-MLP-Spatial-Gating.ipynb": 95,
    "03-The-Mixer-Block.ipynb": 74, "02-Token-Mixing-vs-Channel-Mixing.ipynb": 53,
    "04-training": 40, "07-Mixer-As-Attention-Replacement.ipynb": 37,
    "05-Label-Smoothing.ipynb": 25,
}  # fmt: skip
PORTABLE_SECONDS = {  # the portable pass: slower kernels; those runs are already written
    "08-Mixer-CNN-And-ViT.ipynb": 308, "03-The-Mixer-Block.ipynb": 165,
    "02-Token-Mixing-vs-Channel-Mixing.ipynb": 129, "07-Mixer-As-Attention-Replacement.ipynb": 77,
    "04-training": 14, "06-Gated-MLP-Spatial-Gating.ipynb": 7,
}  # fmt: skip
UNLISTED_SECONDS = 5


def group_name(path: Path) -> str:
    """The first training run the notebook shares through `run_dir("...")`, else its name."""
    shared = re.findall(r'run_dir\((?:\\)?"([^"\\]+)', path.read_text(encoding="utf-8"))
    return shared[0] if shared else path.name


def _named_groups(paths: list[Path], seconds: dict) -> list[tuple[str, list[Path]]]:
    """`(group name, its notebooks sorted)` for `paths`, the longest group first."""
    named: dict[str, list[Path]] = {}
    for path in sorted(paths):
        named.setdefault(group_name(path), []).append(path)
    order = sorted(named, key=lambda name: (-seconds.get(name, UNLISTED_SECONDS), name))
    return [(name, named[name]) for name in order]


def groups(paths: list[Path], seconds: dict | None = None) -> list[list[Path]]:
    """`paths` in groups that must run in order (each group's notebooks sorted), the longest
    first by `seconds` (default `SECONDS`)."""
    return [group for _, group in _named_groups(paths, SECONDS if seconds is None else seconds)]


def shares(paths: list[Path], count: int, seconds: dict | None = None) -> list[list[Path]]:
    """`paths` in `count` shares of about equal time: the longest groups first, each into the
    share with the least time so far; a group's notebooks stay together."""
    seconds = SECONDS if seconds is None else seconds
    totals, result = [0.0] * count, [[] for _ in range(count)]
    for name, group in _named_groups(paths, seconds):
        least = totals.index(min(totals))
        totals[least] += seconds.get(name, UNLISTED_SECONDS)
        result[least] += group
    return [sorted(share) for share in result]
