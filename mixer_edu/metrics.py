"""A run's metrics file: `out/metrics.jsonl`, one JSON line per finished epoch.

JSON lines are plain text: a crash can cost at most the line being written, any tool can read
them, and `read_metrics` gives them back as a list of dicts for the pictures of training. A line
cut short by a hard kill (`kill -9`, a power cut) can only be the last one; `read_metrics` skips
it, and a resumed run rewrites the file without it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

METRICS_NAME = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a `metrics.jsonl` file (or of a run folder), one dict per epoch."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_NAME
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines[:-1]]
    if lines:
        try:
            records.append(json.loads(lines[-1]))
        except json.JSONDecodeError:
            pass  # the last line was cut short by a crash while it was written: its epoch is lost
    return records


def append_metrics(path: str | Path, record: dict) -> None:
    """Add one epoch's record as a line at the end of the file."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def keep_metrics_up_to(path: str | Path, epoch: int) -> None:
    """Drop the lines of epochs after `epoch` (a run stopped before their checkpoint was saved)."""
    path = Path(path)
    if not path.exists():
        return
    kept = "".join(json.dumps(r) + "\n" for r in read_metrics(path) if r["epoch"] <= epoch)
    # A new file renamed over the old one (as for checkpoints): a crash now loses nothing.
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as f:
            f.write(kept)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def epoch_line(record: dict, epochs: int) -> str:
    """One line of progress: 'epoch   3/30 | train loss 1.234 acc  55.0% | test ...'.

    The learning rate is the one the epoch started with (the schedule changes it every step).
    """
    return (
        f"epoch {record['epoch']:3d}/{epochs} | train loss {record['train_loss']:.3f} "
        f"acc {record['train_acc']:6.1%} | test loss {record['test_loss']:.3f} "
        f"acc {record['test_acc']:6.1%} | lr at start {record['lr']:.2e} | "
        f"{record['images_per_sec']:6.0f} img/s | {record['dataset']}"
    )
