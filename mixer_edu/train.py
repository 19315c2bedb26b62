"""Training a Mixer: one plain loop, and everything around it that keeps a run safe.

The loop (`train_one_epoch`) is the one every PyTorch classifier uses:

    for images, labels in loader:
        logits = model(images)                       # (B, 3, 32, 32) -> (B, 10)
        loss = cross_entropy(logits, labels)         # with label smoothing
        loss.backward()                              # gradients of every weight
        clip the gradient norm, optimizer.step()     # AdamW
        scheduler.step()                             # learning rate for the next step

The recipe (`mixer_edu.config.TrainConfig`), and why:

- **AdamW** with weight decay on the weight matrices only, and a **linear warmup, then cosine
  decay** of the learning rate (`mixer_edu.optim`).
- **Label smoothing** (0.1): the target puts 0.9 on the true class and spreads 0.1 over all
  classes, so the model is not pushed towards infinitely confident logits.
- **Gradient clipping**: when the norm of all gradients together exceeds `clip_grad`, they are
  scaled down, so one bad batch cannot throw the weights far away.
- **bf16 autocast** where the hardware computes in bfloat16 natively (`mixer_edu.runtime`).

Around the loop, `train` keeps the run safe and reproducible:

- Every epoch it appends one line to `out/metrics.jsonl` (`mixer_edu.metrics`), then writes a
  small snapshot of the weights `out/snapshots/epoch_NNN.pt` (epoch 0 = the initial weights) and
  `out/checkpoint.pt`, atomically (`mixer_edu.checkpoint`).
- **Exact resume.** Each epoch starts by seeding the random generators from `(seed, epoch)`, so
  the epoch's shuffling, augmentation and dropout depend on nothing else. Continuing from the
  checkpoint of epoch k (with `resume=True`) therefore repeats epochs k+1, k+2, ... exactly, and
  an interrupted-then-resumed run ends with bit-for-bit the same weights as an uninterrupted one.
- **Ctrl-C** stops training; the checkpoint of the last finished epoch stays valid (a checkpoint
  is never half-written), and `--resume` repeats the interrupted epoch from its start.
- **Divergence.** When a loss or a weight becomes inf or nan (usually: the learning rate is far
  too high), training stops with a `TrainingDivergedError` naming the epoch and the step, before
  anything of that epoch is written: the checkpoint keeps the last finite weights.
- A run killed outright (`kill -9`) can leave a checkpoint's temporary file behind; the next run
  in the folder removes it, and `--resume` drops metrics lines whose checkpoint never came.

How it runs is decided, and printed, at the start (`mixer_edu.plan.plan_run`, rules backed by
measurements): the precision; the data path (crop-flip and no augmentation run on the data set
kept on the device, `mixer_edu.device_data`; RandAugment and AutoAugment on torchvision's
per-image loader, `mixer_edu.data`); eager or compiled steps; loader workers. Started by
`torchrun --nproc-per-node N -m mixer_edu.train ...`, N processes share every batch through
DistributedDataParallel (`mixer_edu.distributed`), and rank 0 alone writes and prints.

Run `python -m mixer_edu.train --help` for the command line.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import distributed
from .config import (
    RECIPES,
    RunOptions,
    TrainConfig,
    add_arguments,
    default_out,
    recipe,
    split_arguments,
)
from .data import batch_mixing, dataset_classes, dataset_label, make_loaders
from .device_data import DeviceLoader, device_loaders
from .errors import TrainingDivergedError, command_line, exit_status
from .evaluation import evaluate, predict
from .metrics import METRICS_NAME, append_metrics, epoch_line, keep_metrics_up_to, read_metrics
from .models import create_model
from .optim import lr_factor, parameter_groups, warmup_cosine
from .paths import check_folder, writable_folder
from .plan import describe_device, plan_run
from .runtime import autocast, epoch_seed, prepare, resolve_device, seed_everything
from .support import fast_step

# Importable from here as before: the notebooks and the pictures use them with `train`.
__all__ = [
    "RECIPES",
    "RunOptions",
    "TrainConfig",
    "TrainResult",
    "clip_and_update",
    "evaluate",
    "forward_loss",
    "lr_factor",
    "main",
    "predict",
    "read_metrics",
    "recipe",
    "train",
    "train_one_epoch",
]


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler,
    device: torch.device,
    precision: str = "fp32",
    label_smoothing: float = 0.1,
    clip_grad: float | None = 1.0,
    mixing=None,
    progress: str | None = None,
    fast=None,
) -> dict:
    """One pass over `loader`. Returns mean `loss`, `acc`, `grad_norm` and `images_per_sec`.

    `fast`: the step's two halves compiled (`mixer_edu.support.fast_step.build`), or None: the
    plain functions below.
    """
    forward, update = (fast.forward_loss, fast.update) if fast else (forward_loss, clip_and_update)
    model.train()
    # Sums stay on the device: calling .item() every step would make a GPU wait for each step.
    total_loss, correct, grad_norm_sum = (torch.zeros((), device=device) for _ in range(3))
    first_bad_step = torch.full((), -1, device=device)  # the first step whose loss is inf or nan
    seen = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=progress, leave=False, disable=progress is None, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        images, targets = mixing(images, labels) if mixing is not None else (images, labels)

        loss, logits = forward(model, images, targets, precision, label_smoothing)
        first_bad_step = _note_nonfinite(loss, step, first_bad_step)

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = update(model, optimizer, clip_grad)
        if clip_grad:
            grad_norm_sum += grad_norm
        scheduler.step()

        hard = targets.argmax(1) if targets.ndim == 2 else targets  # (B,) class indices
        total_loss += loss.detach() * len(images)
        correct += (logits.argmax(1) == hard).sum()
        seen += len(images)
        if step % 10 == 0:  # reading values waits for the device: only every 10 steps
            _stop_if_diverged(first_bad_step, total_loss, len(loader))
            bar.set_postfix(
                loss=f"{total_loss.item() / seen:.3f}", acc=f"{correct.item() / seen:.1%}"
            )
    seconds = time.perf_counter() - start
    _stop_if_diverged(first_bad_step, total_loss, len(loader))
    return {
        "loss": total_loss.item() / seen,
        "acc": correct.item() / seen,
        "grad_norm": grad_norm_sum.item() / len(loader) if clip_grad else None,
        "images_per_sec": seen / seconds,
    }


def forward_loss(model, images, targets, precision="fp32", label_smoothing=0.1):
    """The step's first half: `(loss, logits)` of a batch, logits (B, classes).

    `targets`: class indices (B,), or soft labels (B, classes) after CutMix / Mixup. The loss is
    computed in float32 even when the forward pass runs in bf16."""
    with autocast(images.device, precision):
        logits = model(images)  # (B, 3, H, W) -> (B, classes)
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
    return loss, logits


def clip_and_update(model, optimizer, clip_grad):
    """The step's second half, after `loss.backward()`: clip the norm of all gradients together
    to `clip_grad` (None: no clipping), then one AdamW step. Returns the norm before clipping."""
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), clip_grad) if clip_grad else None
    optimizer.step()
    return grad_norm


def _note_nonfinite(loss: torch.Tensor, step: int, first_bad_step: torch.Tensor) -> torch.Tensor:
    """`step` if `loss` is the first inf or nan of the epoch, else `first_bad_step` unchanged.

    Computed on the device (no waiting for it), read by `_stop_if_diverged`."""
    is_first = (first_bad_step < 0) & ~torch.isfinite(loss.detach())
    return torch.where(is_first, step, first_bad_step)


def _stop_if_diverged(first_bad_step: torch.Tensor, total_loss: torch.Tensor, steps: int) -> None:
    """Raise `TrainingDivergedError` once a loss was not finite: nothing learns after that."""
    if (step := int(first_bad_step.item())) >= 0:
        raise TrainingDivergedError(
            f"the training loss became {total_loss.item()} at step {step + 1} of {steps}"
        )


# --------------------------------------------------------------------------------------------
# A whole run: set-up, resume, the epochs, and what is written.
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
        **options: the `RunOptions` fields: `out` (default `runs/MODEL-DATASET`), `resume`
            (continue from `out/checkpoint.pt` if there is one; a finished run is only loaded),
            `overwrite`, `precision`, `device`, `compile`, `data_path`, `data_root`,
            `num_workers`, `progress`. Under `torchrun`, every process trains its share of each
            batch (`mixer_edu.distributed`).

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
    with distributed.processes(resolve_device(run.device)) as (ranks, device):
        plan = plan_run(
            describe_device(device), config.batch_size, config.augment,
            precision=run.precision, data_path=run.data_path, compile=run.compile,
            num_workers=run.num_workers,
        )  # fmt: skip
        with fast_step.run_settings(plan):  # TF32 and the compile cache, as the plan says
            return _train(config, run, out, plan, ranks, device)


def _train(config, run: RunOptions, out: Path, plan, ranks, device) -> TrainResult:
    """`train` after the choices are made: set up, resume, the epochs, what is written."""
    prepare(device)
    say = tqdm.write if run.progress and ranks.is_main else (lambda message: None)
    # Data first: a missing data set should stop the run before anything is written.
    train_loader, test_loader, mixing = _make_data(config, run, plan, device, ranks)

    seed_everything(config.seed)
    model = create_model(config.model_name, **config.model_kwargs()).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    steps = len(train_loader)
    warmup_steps = max(1, round(config.warmup_epochs * steps))
    scheduler = warmup_cosine(optimizer, warmup_steps, config.epochs * steps)

    if ranks.is_main:
        writable_folder(out, "the output folder (out, --out)")
        ckpt.remove_stale_temporaries(out)  # left by a run killed while it wrote a checkpoint
    start_epoch = _start_or_resume(
        out, run, config, model, optimizer, scheduler, say, ranks, plan.data_path
    )
    distributed.barrier(ranks)  # every rank has decided before rank 0 writes
    if start_epoch == 0 and ranks.is_main:
        _save(out, 0, config, model, optimizer, scheduler, plan)
    say(
        f"Training {config.model_name} on the {dataset_label(config.dataset)} "
        f"({_image_count(train_loader)} training images) for {config.epochs} epochs; writing "
        f"to {out}\n{plan.summary()}{distributed.describe(ranks, config.batch_size)}"
    )
    stepper = distributed.wrap(model, ranks, device)  # DDP averages gradients over processes
    fast = None  # the fast path: the same two halves of the step, compiled
    if plan.compile_mode:
        fast = fast_step.build(
            forward_loss, clip_and_update, stepper, optimizer, plan.compile_mode, say
        )
    evaluator = fast.evaluator if fast else model  # rank 0 alone evaluates: no DDP needed
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            seed = epoch_seed(config.seed, epoch)  # this epoch's randomness only
            seed_everything(distributed.rank_seed(seed, ranks))
            batches = _epoch_batches(train_loader, seed, ranks)
            lr = optimizer.param_groups[0]["lr"]
            bar = f"epoch {epoch}/{config.epochs}" if run.progress and ranks.is_main else None
            train_stats = train_one_epoch(
                stepper, batches, optimizer, scheduler, device, plan.precision,
                config.label_smoothing, config.clip_grad, mixing, progress=bar, fast=fast,
            )  # fmt: skip
            train_stats = distributed.combine_stats(train_stats, ranks, device)
            if ranks.is_main:
                test_stats = evaluate(evaluator, test_loader, device, plan.precision)
                _check_finite(model, test_stats)  # never save weights that are inf or nan
                record = _epoch_record(epoch, lr, train_stats, test_stats, config, plan, device)
                # Metrics before the checkpoint: a resume drops a line whose checkpoint never came.
                append_metrics(out / METRICS_NAME, record)
                _save(out, epoch, config, model, optimizer, scheduler, plan)
                say(epoch_line(record, config.epochs))
            distributed.barrier(ranks)
    except TrainingDivergedError as error:
        raise TrainingDivergedError(_diverged_message(error, epoch, config, out)) from None
    except KeyboardInterrupt:
        if ranks.is_main:
            tqdm.write(
                f"\nInterrupted during epoch {epoch}. {out / ckpt.CHECKPOINT_NAME} holds epoch "
                f"{epoch - 1}; continue with --resume (resume=True), which repeats epoch {epoch}."
            )
        raise
    say(f"Done. Checkpoint: {out / ckpt.CHECKPOINT_NAME}  metrics: {out / METRICS_NAME}")
    history = read_metrics(out)
    return TrainResult(out, out / ckpt.CHECKPOINT_NAME, out / METRICS_NAME, model.eval(), history)


def _make_data(config: TrainConfig, run: RunOptions, plan, device, ranks):
    """`(train_loader, test_loader, mixing)` on the data path the plan chose.

    `mixing` is the CutMix/MixUp the loop applies to each batch: None on the device path, where
    the loader mixes whole global batches itself.
    """
    distributed.local_batch_size(config.batch_size, ranks)  # an error before any work
    common = dict(
        root=run.data_root,
        augment=config.augment,
        train_images=config.train_images,
        test_images=config.test_images,
    )
    with distributed.main_first(ranks):  # one process downloads or generates the data set
        if plan.data_path == "device":
            train_loader, test_loader = device_loaders(
                config.dataset, config.batch_size, device=device, mixing=config.mixing,
                mixing_prob=config.mixing_prob, **common,
            )  # fmt: skip
            return train_loader, test_loader, None
        train_loader, test_loader = make_loaders(
            config.dataset, config.batch_size, num_workers=plan.workers, **common
        )
    classes = len(dataset_classes(config.dataset))
    mixing = batch_mixing(config.mixing, classes, prob=config.mixing_prob)
    return distributed.shard_per_image(train_loader, ranks), test_loader, mixing


def _epoch_batches(train_loader, seed: int, ranks):
    """What one epoch iterates: the device loader's batches from `seed`, or the DataLoader
    (its order and its workers' seeds come from torch's global generator, seeded just before,
    or, on several ranks, from `seed`, shared by all ranks)."""
    if isinstance(train_loader, DeviceLoader):
        return train_loader.epoch(seed, ranks.rank, ranks.world_size)
    if isinstance(train_loader.batch_sampler, distributed.RankBatches):
        train_loader.batch_sampler.set_seed(seed)
    return train_loader


def _image_count(loader) -> int:
    return loader.num_images if isinstance(loader, DeviceLoader) else len(loader.dataset)


def _start_or_resume(
    out: Path, run: RunOptions, config, model, optimizer, scheduler, say, ranks, data_path: str
) -> int:
    """The epoch to start after: the checkpoint's when resuming, else 0 (a fresh `out`).

    Every rank reads the checkpoint; only rank 0 deletes an old run's files.
    """
    path = out / ckpt.CHECKPOINT_NAME
    if path.exists() and run.resume:
        saved = ckpt.load_resumable(path)
        _check_resumable(saved, config, path)
        ckpt.load_weights(model, saved["model"], str(path))
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        ckpt.set_rng_state(saved["rng"])
        keep_metrics_up_to(out / METRICS_NAME, saved["epoch"])
        say(f"Resuming {out} from epoch {saved['epoch']} of {config.epochs}.")
        if (started := saved.get("data_path", "per-image")) != data_path:  # older runs: per-image
            say(
                f"note: this run started on the {started} data path and continues on the "
                f"{data_path} one, whose augmentations are drawn with other random numbers; pass "
                f"--data-path {started} (data_path={started!r}) to continue it exactly."
            )
        return saved["epoch"]
    if path.exists() and not run.overwrite:
        epoch = ckpt.load_checkpoint(path)["epoch"]
        raise FileExistsError(
            f"{out} already holds a training run (finished epoch {epoch}); pass resume=True "
            "(--resume) to continue it, overwrite=True (--overwrite) to start again, or choose "
            "another out folder."
        )
    if run.resume:
        say(f"No checkpoint in {out} yet: starting a new run.")
    if ranks.is_main:
        for old in [path, out / METRICS_NAME, *ckpt.list_snapshots(out)]:
            old.unlink(missing_ok=True)
    return 0


def _save(out: Path, epoch: int, config, model, optimizer, scheduler, plan) -> None:
    """The snapshot of `epoch` (the weights) and the checkpoint (everything to continue)."""
    snapshot = {
        "model_name": config.model_name,
        "model_config": ckpt.encode_config(config.model_kwargs()),
        "model": ckpt.model_state(model),
        "epoch": epoch,
        "dataset": config.dataset,
        "dataset_label": dataset_label(config.dataset),
        "classes": list(dataset_classes(config.dataset)),
    }
    ckpt.save_atomic(snapshot, ckpt.snapshot_path(out, epoch))
    full = {
        **snapshot,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": ckpt.rng_state(),
        "train_config": asdict(config),
        "precision": plan.precision,
        "data_path": plan.data_path,
    }
    ckpt.save_atomic(full, out / ckpt.CHECKPOINT_NAME)


def _check_finite(model: nn.Module, test_stats: dict) -> None:
    """Raise `TrainingDivergedError` if a weight or the test loss is inf or nan."""
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise TrainingDivergedError("the weights became inf or nan in the last step")
    if not torch.isfinite(torch.tensor(test_stats["loss"])):
        raise TrainingDivergedError(f"the test loss became {test_stats['loss']}")


def _diverged_message(error: TrainingDivergedError, epoch: int, config, out: Path) -> str:
    lower = min(config.lr / 10, TrainConfig.lr)  # a tenth, and never above the default
    return (
        f"training diverged in epoch {epoch}: {error}. The learning rate ({config.lr:g}) is "
        f"probably too high: try --lr {lower:.2g} (lr={lower:.2g}), and start again with "
        f"--overwrite. {out / ckpt.CHECKPOINT_NAME} still holds epoch {epoch - 1}, the last "
        "finite weights; nothing of this epoch was saved."
    )


def _epoch_record(epoch, lr, train_stats, test_stats, config, plan, device) -> dict:
    """One line of `metrics.jsonl`."""
    return {
        "epoch": epoch,
        "train_loss": train_stats["loss"],
        "train_acc": train_stats["acc"],
        "test_loss": test_stats["loss"],
        "test_acc": test_stats["acc"],
        "lr": lr,
        "grad_norm": train_stats["grad_norm"],
        "images_per_sec": train_stats["images_per_sec"],
        "dataset": dataset_label(config.dataset),
        "model": config.model_name,
        "precision": plan.precision,
        "device": device.type,
        "data_path": plan.data_path,
    }


def _check_resumable(state: dict, config: TrainConfig, path: Path) -> None:
    """A checkpoint continues only the same model and the same recipe (except `epochs`)."""
    ckpt.check_same_model(state, config.model_name, config.model_kwargs(), path)
    saved = dict(state.get("train_config", {}))
    asked = asdict(config)
    saved.pop("epochs", None), asked.pop("epochs")  # a run may be extended or shortened
    if saved != asked:
        difference = ckpt.describe_difference(saved, asked)
        raise ValueError(
            f"{path} was trained with another recipe ({difference}); resuming it with different "
            "settings would not continue the same run. Pass the checkpoint's settings (on the "
            "command line, --resume alone reuses them), or choose another --out folder."
        )


# --------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """`--fast`, then one option per field of `TrainConfig` and `RunOptions`."""
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.train",
        description="Train an MLP-Mixer on CIFAR-10 or the synthetic stand-in.",
        epilog="Unset options come from the recipe of the data set (or from the checkpoint "
        "with --resume). Example: python -m mixer_edu.train --dataset standin --epochs 5 "
        "--out runs/standin",
    )
    parser.add_argument("--fast", action="store_true", help="fast-mode recipe: a tiny model")
    add_arguments(parser.add_argument_group("recipe"), TrainConfig)
    add_arguments(parser.add_argument_group("run"), RunOptions)
    return parser


def config_from_command_line(changes: dict, options: dict, fast: bool = False) -> TrainConfig:
    """The recipe of the data set (or, with `resume`, the checkpoint's), with `changes` applied."""
    config = recipe(changes.get("dataset", "cifar10"), fast=fast)
    if options.get("resume"):
        options.setdefault("out", default_out(replace(config, **changes)))
        path = Path(options["out"]) / ckpt.CHECKPOINT_NAME
        if path.exists():  # the checkpoint's recipe fills the gaps
            config = TrainConfig(**ckpt.load_resumable(path)["train_config"])
    return replace(config, **changes)


@command_line  # bad input, a missing data set, a diverged run: one `error:` line, status 2
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    changes, options = split_arguments(args)
    result = train(config_from_command_line(changes, options, args.fast), **options)
    if not distributed.is_main_process():
        return 0
    print(
        f"Wrote {result.checkpoint}, {result.metrics_path} and "
        f"{len(ckpt.list_snapshots(result.out))} snapshots in {result.out / ckpt.SNAPSHOT_DIR}."
    )
    if final := result.final:
        print(
            f"Final test accuracy {final['test_acc']:.1%} after {final['epoch']} epochs "
            f"({final['dataset']})."
        )
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
