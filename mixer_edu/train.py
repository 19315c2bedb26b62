"""Training a Mixer, top to bottom: the step, the optimiser and its schedule, then a whole run.

    for images, labels in loader:
        loss = cross_entropy(model(images), labels)   # (B, 3, 32, 32) -> (B, 10), smoothed
        loss.backward(); clip the gradient norm       # gradients of every weight
        optimizer.step(); scheduler.step()            # AdamW, warmup then cosine

`train(config, out=...)` reads in the order a run happens: data, model, optimiser and schedule,
the epochs (train, evaluate, write), the result. Resume, several processes (torchrun) and the
device data path are short marked branches into `mixer_edu.support`. docs/training.md explains
the recipe, exact resume and what a run writes; `python -m mixer_edu.train --help` the command.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import RunOptions, TrainConfig, default_out, from_command_line
from .device_data import epoch_batches, image_count, run_loaders
from .evaluation import evaluate
from .models import create_model
from .support import checkpoint as ckpt
from .support import compiled_step, distributed, machine, run_files
from .support.errors import command_line, exit_status
from .support.metrics import METRICS_NAME, epoch_line, epoch_record, read_metrics
from .support.paths import check_folder
from .support.runtime import autocast, epoch_seed, seed_everything

# --------------------------------------------------------------------------------------------
# One step, and one epoch of them.
# --------------------------------------------------------------------------------------------


def forward_loss(model, images, targets, precision="fp32", label_smoothing=0.1):
    """The step's first half: `(loss, logits)` of a batch.

    Args:
        images: `(B, 3, H, W)`; targets: class indices `(B,)`, or soft labels `(B, classes)`
            after CutMix / Mixup. precision: `'fp32'` or `'bf16'` (autocast of the forward; the
            loss is computed in float32 either way). label_smoothing: of the cross-entropy.
    """
    with autocast(images.device, precision):
        logits = model(images)  # (B, 3, H, W) -> (B, classes)
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
    return loss, logits


def clip_and_update(model, optimizer, clip_grad):
    """The step's second half, after `loss.backward()`: clip the norm of all gradients together
    to `clip_grad` (0 or None: no clipping), then one AdamW step. Returns the norm before."""
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), clip_grad) if clip_grad else None
    optimizer.step()
    return grad_norm


def train_step(
    model,
    images,
    targets,
    optimizer,
    *,
    precision="fp32",
    label_smoothing=0.1,
    clip_grad=1.0,
    compiled=None,
):
    """Forward, loss, backward, clipping, AdamW: one step. Returns `(loss, logits, grad_norm)`.

    Args:
        precision, label_smoothing: `forward_loss`'s. clip_grad: `clip_and_update`'s.
        compiled: these same two halves compiled (`support.compiled_step.build`), or None:
            the plain functions above.
    """
    forward, update = (forward_loss, clip_and_update)
    if compiled is not None:  # the same two functions, compiled
        forward, update = compiled.forward_loss, compiled.update
    loss, logits = forward(model, images, targets, precision, label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = update(model, optimizer, clip_grad)
    return loss, logits, grad_norm


def train_one_epoch(
    model,
    loader,
    optimizer,
    scheduler,
    device,
    *,
    batch_augment=None,
    progress=False,
    desc=None,
    **step_options,
) -> dict:
    """One pass over `loader`: `train_step` on every batch, then the schedule's next rate.

    Args:
        batch_augment: CutMix / Mixup `(images, labels) -> (images, targets)`, or None.
        progress: show a progress bar, titled `desc`.
        **step_options: `train_step`'s `precision`, `label_smoothing`, `clip_grad` and `compiled`.

    Returns:
        Mean `loss`, `acc` and `grad_norm` of the epoch, and `images_per_second`.
    """
    model.train()
    # Sums stay on the device: calling .item() every step would make a GPU wait for each step.
    total_loss, correct, grad_norm_sum = (torch.zeros((), device=device) for _ in range(3))
    first_bad_step = torch.full((), -1, device=device)  # the first step whose loss is inf or nan
    seen, start = 0, time.perf_counter()
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        targets = labels
        if batch_augment is not None:  # CutMix / MixUp: soft targets (B, classes)
            images, targets = batch_augment(images, labels)
        loss, logits, grad_norm = train_step(model, images, targets, optimizer, **step_options)
        scheduler.step()

        first_bad_step = run_files.note_nonfinite(loss, step, first_bad_step)
        class_indices = targets.argmax(1) if targets.ndim == 2 else targets  # (B,)
        total_loss += loss.detach() * len(images)
        correct += (logits.argmax(1) == class_indices).sum()
        grad_norm_sum += grad_norm if grad_norm is not None else 0
        seen += len(images)
        if step % 10 == 0:  # reading values waits for the device: only every 10 steps
            run_files.stop_if_diverged(first_bad_step, total_loss, len(loader))
            bar.set_postfix(
                loss=f"{total_loss.item() / seen:.3f}", acc=f"{correct.item() / seen:.1%}"
            )
    run_files.stop_if_diverged(first_bad_step, total_loss, len(loader))
    return {
        "loss": total_loss.item() / seen,
        "acc": correct.item() / seen,
        "grad_norm": grad_norm_sum.item() / len(loader) if grad_norm is not None else None,
        "images_per_second": seen / (time.perf_counter() - start),
    }


# --------------------------------------------------------------------------------------------
# The optimiser: AdamW, weight decay on the weight matrices, linear warmup then cosine decay.
# --------------------------------------------------------------------------------------------


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay the weight matrices; leave biases and LayerNorm parameters (1-D) alone.

    Shrinking a bias or a LayerNorm scale only shifts or rescales activations: it does not
    regularise.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_factor(step: int, warmup_steps: int, total_steps: int, final: float = 0.0) -> float:
    """The learning rate at `step` as a fraction of the peak: linear warmup, then cosine to `final`.

    Random weights and Adam's empty running averages make big first steps unstable, so the
    rate rises from 1 / warmup_steps of the peak, then follows half a cosine down.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decayed = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, decayed)))


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int, final: float = 0.0):
    """A scheduler that sets the learning rate to `lr_factor(step, ...)` x the peak each step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, final)
    )


# --------------------------------------------------------------------------------------------
# A whole run.
# --------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What `train` returns: where it wrote, the trained model and the metrics per epoch."""

    out: Path
    checkpoint: Path
    metrics_path: Path
    model: nn.Module
    history: list[dict]

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def train(config: TrainConfig | None = None, **options) -> TrainResult:
    """Train as `config` says (default: `TrainConfig()`), writing everything into `out`.

    Args:
        config: the recipe (`TrainConfig`, or `recipe(dataset, fast=...)`).
        **options: the `RunOptions` fields (`out`, `resume`, `overwrite`, `precision`, `device`,
            `compile`, `data_path`, `data_root`, `num_workers`, `progress`).

    Returns:
        `TrainResult` with the output paths, the trained model (eval mode) and the metrics.

    Raises:
        TrainingDivergedError: a loss or a weight became inf or nan; `out` keeps the last finite
            epoch. DatasetUnavailableError: the data set is missing (the message says what to do).

    Example:
        >>> result = train(recipe("standin", epochs=5), out="runs/standin", resume=True)
    """
    config = config if config is not None else TrainConfig()
    run = RunOptions.from_keywords(options)
    out = Path(run.out) if run.out is not None else default_out(config)
    check_folder(out, "the output folder (out, --out)")  # before any data is read
    # The machine: the processes (torchrun), a lock on `out`, the plan and its settings.
    with machine.prepared(config, run, out) as (ranks, device, plan, print_once):
        # Data first: a missing data set should stop the run before anything is written.
        train_loader, test_loader, batch_augment = run_loaders(
            config, data_root=run.data_root, plan=plan, device=device, ranks=ranks
        )
        plan = plan.for_steps(config.epochs * len(train_loader))  # a short run is not compiled

        # The model, the optimiser and the schedule.
        seed_everything(config.seed)
        model = create_model(config.model_name, **config.model_kwargs()).to(device)
        optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
        steps = len(train_loader)
        warmup_steps = max(1, round(config.warmup_epochs * steps))
        scheduler = warmup_cosine(optimizer, warmup_steps, config.epochs * steps)

        # Resume: continue from out/checkpoint.pt, or start a fresh run there.
        save = dict(config=config, model=model, optimizer=optimizer, scheduler=scheduler, plan=plan)
        start_epoch = run_files.start_or_resume(
            out, run=run, print_once=print_once, ranks=ranks, **save
        )
        distributed.barrier(ranks)  # every rank has decided before rank 0 writes
        print_once(run_files.start_message(config, out, image_count(train_loader), plan, ranks))

        # DDP and the compiled step: the model wrapped (DDP averages gradients), and the step's two
        # halves compiled as planned (None: the plain step).
        ddp_model = distributed.wrap(model, ranks, device)
        compiled = compiled_step.as_planned(
            forward_loss, clip_and_update, ddp_model, optimizer, plan, print_once
        )
        evaluator = (
            compiled.evaluator if compiled else model
        )  # rank 0 alone evaluates: no DDP needed

        # The epochs. Rank 0 evaluates and writes; each epoch's files are written in the
        # background while the next epoch trains.
        writer = run_files.EpochWriter(out, enabled=ranks.is_main)
        with writer, run_files.StopMessages(config, out, ranks) as stop:
            if start_epoch == 0:
                writer.save(0, None, **save)  # epoch 0: the initial weights
            for epoch in range(start_epoch + 1, config.epochs + 1):
                stop.epoch = epoch  # named in the message if it diverges or is interrupted
                seed = epoch_seed(config.seed, epoch)  # this epoch's randomness: exact resume
                seed_everything(distributed.rank_seed(seed, ranks))
                lr = optimizer.param_groups[0]["lr"]
                train_stats = train_one_epoch(
                    ddp_model, epoch_batches(train_loader, seed, ranks), optimizer, scheduler,
                    device, batch_augment=batch_augment, precision=plan.precision,
                    label_smoothing=config.label_smoothing, clip_grad=config.clip_grad,
                    compiled=compiled, progress=run.progress and ranks.is_main,
                    desc=f"epoch {epoch}/{config.epochs}",
                )  # fmt: skip
                train_stats = distributed.combine_stats(train_stats, ranks, device)
                if ranks.is_main:
                    test_stats = evaluate(evaluator, test_loader, device, plan.precision)
                    run_files.check_finite(model, test_stats)  # never save inf or nan weights
                    record = epoch_record(
                        epoch, lr, train_stats, test_stats, config=config, plan=plan
                    )
                    writer.save(epoch, record, **save)
                    print_once(epoch_line(record, config.epochs))
                distributed.barrier(ranks)
    print_once(f"Done. Checkpoint: {out / ckpt.CHECKPOINT_NAME}  metrics: {out / METRICS_NAME}")
    history = read_metrics(out)
    return TrainResult(out, out / ckpt.CHECKPOINT_NAME, out / METRICS_NAME, model.eval(), history)


# --------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------


@command_line  # bad input, a missing data set, a diverged run: one `error:` line, status 2
def main(argv: list[str] | None = None) -> int:
    config, options = from_command_line(argv)
    result = train(config, **options)
    if distributed.is_main_process():
        print(run_files.end_message(result))
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
