"""A run's metrics file: `out/metrics.jsonl`, one JSON line per finished epoch.

JSON lines are plain text: a crash can cost at most the line being written, any tool can read
them, and `read_metrics` gives them back as a list of dicts for the pictures of training. A line
cut short by a hard kill (`kill -9`, a power cut) can only be the last one; `read_metrics` skips
it, and a resumed run rewrites the file without it. Each line is flushed to the disk before the
checkpoint of its epoch is written (`mixer_edu.support.disk.append_line`), and a write that
fails (a full disk) leaves no half line.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import disk

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
    """Add one epoch's record as a line at the end of the file, whole and on disk, or not at all."""
    what = f"the metrics line of epoch {record.get('epoch')}"
    disk.append_line(path, json.dumps(record), what)


def keep_metrics_up_to(path: str | Path, epoch: int) -> None:
    """Drop the lines of epochs after `epoch` (a run stopped before their checkpoint was saved)."""
    path = Path(path)
    if not path.exists():
        return
    kept = "".join(json.dumps(r) + "\n" for r in read_metrics(path) if r["epoch"] <= epoch)
    # A new file renamed over the old one (as for checkpoints): a crash now loses nothing.
    disk.write_atomic(kept.encode("utf-8"), path, "the metrics file")


def epoch_line(record: dict, epochs: int) -> str:
    """One line of progress: 'epoch   3/30 | train loss 1.234 acc  55.0% | test ...'.

    The learning rate is the one the epoch started with (the schedule changes it every step).
    """
    return (
        f"epoch {record['epoch']:3d}/{epochs} | train loss {record['train_loss']:.3f} "
        f"acc {record['train_acc']:6.1%} | test loss {record['test_loss']:.3f} "
        f"acc {record['test_acc']:6.1%} | lr at start {record['lr']:.2e} | "
        f"{record['images_per_second']:6.0f} img/s | {record['dataset']}"
    )


def epoch_record(
    epoch: int, lr: float, train_stats: dict, test_stats: dict, *, config, plan
) -> dict:
    """One line of `metrics.jsonl`: the epoch's training and test numbers, and how it ran."""
    return {
        "epoch": epoch,
        "train_loss": train_stats["loss"],
        "train_acc": train_stats["acc"],
        "test_loss": test_stats["loss"],
        "test_acc": test_stats["acc"],
        "lr": lr,
        "grad_norm": train_stats["grad_norm"],
        "images_per_second": train_stats["images_per_second"],
        "dataset": config.dataset_label(),
        "model": config.model_name,
        "precision": plan.precision,
        "device": plan.device.type,
        "data_path": plan.data_path,
    }


def mean_and_range(values: list[float], spec: str = "5.1%") -> str:
    """`mean (lowest - highest)` of one number over seeds, each formatted with `spec`.

    The course reports every small comparison over several seeds this way (notebooks 02, 03, 07
    and 08): the mean says where the runs land, the range how far one run can be from it.
    """
    return f"{statistics.mean(values):{spec}} ({min(values):{spec}} - {max(values):{spec}})"
