"""What a training run keeps on disk: start or resume, the per-epoch save, divergence messages.

`mixer_edu.train` calls these at marked places; the files themselves (atomic writes, safe
loading) are `checkpoint`'s and `metrics`' business. docs/training.md tells the whole story.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .distributed import describe
from .errors import TrainingDivergedError
from .metrics import METRICS_NAME, append_metrics, keep_metrics_up_to
from .resume_changes import check_resumable, run_changes


def start_or_resume(
    out: Path, *, run, print_once, ranks, config, model, optimizer, scheduler, plan
) -> int:
    """The epoch to start after: the checkpoint's when resuming, else 0 (a fresh `out`).

    Args:
        out: the run folder. config, run: `TrainConfig` and `RunOptions`.
        model, optimizer, scheduler: loaded in place from the checkpoint when resuming.
        print_once: prints a line (or nothing). ranks: every rank reads; only rank 0 deletes.
        plan: its precision, data path and device are compared with the run's start.
    """
    if ranks.is_main:  # (run_lock has checked that `out` can be written)
        ckpt.remove_stale_temporaries(out)  # left by a run killed while it wrote
    path = out / ckpt.CHECKPOINT_NAME
    if path.exists() and run.resume:
        saved = ckpt.load_resumable(path, config.field_names())
        notes = check_resumable(saved, config, path)  # refuses, or says what changed
        notes += run_changes(saved, plan.precision, plan.data_path, plan.device.type)
        ckpt.load_weights(model, saved["model"], str(path))
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        ckpt.set_rng_state(saved["rng"])
        keep_metrics_up_to(out / METRICS_NAME, saved["epoch"])
        print_once(f"Resuming {out} from epoch {saved['epoch']} of {config.epochs}.")
        for note in notes:
            print_once(note)
        return saved["epoch"]
    if path.exists() and not run.overwrite:
        epoch = ckpt.load_checkpoint(path)["epoch"]
        raise FileExistsError(
            f"{out} already holds a training run (finished epoch {epoch}); pass resume=True "
            "(--resume) to continue it, overwrite=True (--overwrite) to start again, or choose "
            "another out folder."
        )
    if run.resume:
        print_once(f"No checkpoint in {out} yet: starting a new run.")
    if ranks.is_main:
        for old in [path, out / METRICS_NAME, *ckpt.list_snapshots(out)]:
            old.unlink(missing_ok=True)
    return 0


def start_message(config, out: Path, images: int, plan, ranks) -> str:
    """What a run prints as it starts: model, data, epochs, folder, the plan, the processes."""
    return (
        f"Training {config.model_name} on the {config.dataset_label()} ({images} "
        f"training images) for {config.epochs} epochs; writing to {out}\n{plan.summary()}"
        f"{describe(ranks, config.batch_size)}"
    )


def end_message(result) -> str:
    """What the command prints when a run has finished: its files and its final accuracy."""
    snapshots = len(ckpt.list_snapshots(result.out))
    lines = [
        f"Wrote {result.checkpoint}, {result.metrics_path} and {snapshots} snapshots in "
        f"{result.out / ckpt.SNAPSHOT_DIR}."
    ]
    if final := result.final:
        lines.append(
            f"Final test accuracy {final['test_acc']:.1%} after {final['epoch']} epochs "
            f"({final['dataset']})."
        )
    return "\n".join(lines)


def epoch_files(epoch: int, *, config, model, optimizer, scheduler, plan) -> tuple[dict, dict]:
    """`(snapshot, checkpoint)` of `epoch`: the weights, and everything to continue.

    Every tensor is a copy on the CPU, so training may go on changing the originals while the
    copies are written.
    """
    snapshot = {
        "model_name": config.model_name,
        "model_config": ckpt.encode_config(config.model_kwargs()),
        "model": on_cpu(ckpt.model_state(model)),
        "epoch": epoch,
        "dataset": config.dataset,
        "dataset_label": config.dataset_label(),
        "classes": list(config.classes()),
    }
    full = {
        **snapshot,
        "optimizer": on_cpu(optimizer.state_dict()),
        "scheduler": scheduler.state_dict(),
        "rng": ckpt.rng_state(),
        "train_config": asdict(config),
        "precision": plan.precision,
        "data_path": plan.data_path,
        "device": plan.device.type,  # a resume on another device says so
    }
    return snapshot, full


def write_epoch_files(out: Path, epoch: int, record: dict | None, snapshot: dict, full: dict):
    """Epoch `epoch`'s metrics line (`record`; None: none), snapshot and checkpoint, in that
    order, each written atomically (`epoch_files` made the last two)."""
    if record is not None:
        append_metrics(out / METRICS_NAME, record)
    ckpt.save_atomic(snapshot, ckpt.snapshot_path(out, epoch), f"the snapshot of epoch {epoch}")
    ckpt.save_atomic(full, out / ckpt.CHECKPOINT_NAME, f"the checkpoint of epoch {epoch}")


def on_cpu(value):
    """`value` with every tensor in it copied to the CPU (dicts and lists walked)."""
    if torch.is_tensor(value):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(on_cpu(item) for item in value)
    return value


class EpochWriter:
    """Writes each epoch's files in a background thread while the next epoch trains.

    For epoch N, in this order: the metrics line, the snapshot, the checkpoint (a resume drops
    a metrics line whose checkpoint never came). What is written is copied to the CPU first
    (`epoch_files`), so the GPU does not wait for the disk; one epoch is written at a time, and
    a write that failed (a full disk) raises its error at the next `save` or when the run ends.

        with EpochWriter(out) as writer:
            writer.save(epoch, record, config=..., model=..., optimizer=..., ...)
    """

    def __init__(self, out: Path, enabled: bool = True):
        self.out, self.enabled = Path(out), enabled
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="epoch-writer")
        self._pending = None

    def save(self, epoch: int, record: dict | None, **state) -> None:
        """Queue epoch `epoch`'s files (`record`: its metrics line, None for epoch 0)."""
        self.wait()
        if self.enabled:
            files = epoch_files(epoch, **state)
            self._pending = self._pool.submit(self._write, epoch, record, *files)

    def _write(self, epoch: int, record: dict | None, snapshot: dict, full: dict) -> None:
        write_epoch_files(self.out, epoch, record, snapshot, full)

    def wait(self) -> None:
        """Until the queued files are written; raises the error of a write that failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if kind is None:
                self.wait()
            else:  # finish what was queued; the error already raised wins
                with contextlib.suppress(Exception):
                    self.wait()
        finally:
            self._pool.shutdown(wait=True)


# Divergence: a loss or a weight that is inf or nan stops the run before anything is written.


def note_nonfinite(loss: torch.Tensor, step: int, first_bad_step: torch.Tensor) -> torch.Tensor:
    """`step` if `loss` is the first inf or nan of the epoch, else `first_bad_step` unchanged.

    Computed on the device (no waiting for it), read by `stop_if_diverged`."""
    is_first = (first_bad_step < 0) & ~torch.isfinite(loss.detach())
    return torch.where(is_first, step, first_bad_step)


def stop_if_diverged(first_bad_step: torch.Tensor, total_loss: torch.Tensor, steps: int) -> None:
    """Raise `TrainingDivergedError` once a loss was not finite: nothing learns after that."""
    if (step := int(first_bad_step.item())) >= 0:
        raise TrainingDivergedError(
            f"the training loss became {total_loss.item()} at step {step + 1} of {steps}"
        )


def check_finite(model: nn.Module, test_stats: dict) -> None:
    """Raise `TrainingDivergedError` if a weight or the test loss is inf or nan."""
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise TrainingDivergedError("the weights became inf or nan in the last step")
    if not torch.isfinite(torch.tensor(test_stats["loss"])):
        raise TrainingDivergedError(f"the test loss became {test_stats['loss']}")


class StopMessages:
    """Around the epoch loop: a run that diverges or is interrupted (Ctrl-C) ends with a message
    saying which epoch `out` holds and what to do next. The loop sets `.epoch` to the epoch it
    trains."""

    def __init__(self, config, out: Path, ranks):
        self.config, self.out, self.is_main = config, out, ranks.is_main
        self.epoch = 0

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if isinstance(error, TrainingDivergedError):
            message = diverged_message(error, self.epoch, self.config, self.out)
            raise TrainingDivergedError(message) from None
        if kind is KeyboardInterrupt and self.is_main:
            tqdm.write(interrupted_message(self.epoch, self.out))
        return False  # the error, if any, goes on


def diverged_message(error: TrainingDivergedError, epoch: int, config, out: Path) -> str:
    """The error a diverged run ends with: what happened, what to try, what `out` holds."""
    lower = min(config.lr / 10, type(config).lr)  # a tenth, and never above the default
    return (
        f"training diverged in epoch {epoch}: {error}. The learning rate ({config.lr:g}) is "
        f"probably too high: try --lr {lower:.2g} (lr={lower:.2g}), and start again with "
        f"--overwrite. {out / ckpt.CHECKPOINT_NAME} still holds epoch {epoch - 1}, the last "
        "finite weights; nothing of this epoch was saved."
    )


def interrupted_message(epoch: int, out: Path) -> str:
    return (
        f"\nInterrupted during epoch {epoch}. {out / ckpt.CHECKPOINT_NAME} holds epoch "
        f"{epoch - 1}; continue with --resume (resume=True), which repeats epoch {epoch}."
    )
