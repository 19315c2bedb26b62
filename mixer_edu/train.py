"""Training a Mixer: one plain loop, and everything around it that keeps a run safe.

The loop (`train_one_epoch`) is the one every PyTorch classifier uses:

    for images, labels in loader:
        logits = model(images)                       # (B, 3, 32, 32) -> (B, 10)
        loss = cross_entropy(logits, labels)         # with label smoothing
        loss.backward()                              # gradients of every weight
        clip the gradient norm, optimizer.step()     # AdamW
        scheduler.step()                             # learning rate for the next step

The recipe choices, and why:

- **AdamW** (Adam with decoupled weight decay): the optimiser the Mixer paper and timm use.
  Weight decay pulls weight matrices towards zero; biases and LayerNorm parameters are not
  decayed (shrinking them has no regularising effect, it only shifts or rescales activations).
- **Linear warmup, then cosine decay.** At the start the weights are random and Adam's running
  averages are empty, so big steps are unstable: the learning rate rises linearly from almost 0
  to `lr` over the first `warmup_epochs`, then follows half a cosine down to 0 at the last step.
- **Label smoothing** (0.1): the target puts 0.9 on the true class and spreads 0.1 over all
  classes, so the model is not pushed towards infinitely confident logits.
- **Gradient clipping**: when the norm of all gradients together exceeds `clip_grad`, they are
  scaled down, so one bad batch cannot throw the weights far away.
- **bf16 autocast**: matrix multiplications run in bfloat16 (8 bits of mantissa instead of 23,
  the same exponent range as float32, so no loss scaling is needed) where the hardware does it
  natively (recent GPUs; CPUs with AVX512-BF16 or AMX), while the weights, the optimiser and
  reductions such as LayerNorm stay in float32. `precision="auto"` picks it where supported.

Around the loop, `train` keeps the run safe and reproducible:

- Every epoch it writes `out/checkpoint.pt` (atomically, `mixer_edu.checkpoint`), a small
  snapshot of the weights `out/snapshots/epoch_NNN.pt` (epoch 0 = the initial weights), and one
  line of metrics to `out/metrics.jsonl`.
- **Exact resume.** Each epoch starts by seeding the random generators from `(seed, epoch)`, so
  the epoch's shuffling, augmentation and dropout depend on nothing else. Continuing from the
  checkpoint of epoch k (with `resume=True`) therefore repeats epochs k+1, k+2, ... exactly, and
  an interrupted-then-resumed run ends with bit-for-bit the same weights as an uninterrupted one.
- **Ctrl-C** stops training; the checkpoint of the last finished epoch stays valid (a checkpoint
  is never half-written), and `--resume` repeats the interrupted epoch from its start.

Run `python -m mixer_edu.train --help` for the command line; `recipe()` gives the defaults.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import math
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .data import batch_mixing, dataset_classes, dataset_label, make_loaders
from .models import create_model, model_config
from .validation import check_positive_int

PRECISIONS = ("auto", "fp32", "bf16")
METRICS_NAME = "metrics.jsonl"


# --------------------------------------------------------------------------------------------
# The recipe.
# --------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes (stored in its checkpoint)."""

    model_name: str = "mixer_cifar_small"
    dataset: str = "cifar10"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 3.0
    label_smoothing: float = 0.1
    clip_grad: float = 1.0
    augment: str = "crop-flip"
    mixing: str = "none"  # CutMix / Mixup on whole batches (mixer_edu.data.batch_mixing)
    mixing_prob: float = 0.5
    drop_path_rate: float = 0.0
    seed: int = 0
    train_images: int | None = None  # use only the first n training images (quick runs)
    test_images: int | None = None
    model_overrides: dict = field(default_factory=dict)

    def model_kwargs(self) -> dict:
        """The model's full configuration (`mixer_edu.models.model_config`)."""
        overrides = dict(self.model_overrides)
        if self.drop_path_rate:
            overrides["drop_path_rate"] = self.drop_path_rate
        return model_config(self.model_name, **overrides)


RECIPES = {
    # Classroom CIFAR-10: Mixer with the width and depth of the reference repositories
    # (C=128, 8 blocks), trained for 30 epochs with crop+flip and label smoothing.
    "cifar10": dict(model_name="mixer_cifar_small", dataset="cifar10", epochs=30),
    # The stand-in with the full budget (offline classrooms).
    "standin": dict(
        model_name="mixer_cifar_small", dataset="standin", epochs=15, warmup_epochs=1.0
    ),
    # Fast mode (CI, MIXER_EDU_FAST=1): about a minute on 2 CPU cores.
    "fast": dict(
        model_name="mixer_cifar_tiny", dataset="standin", epochs=4, batch_size=64, warmup_epochs=0.5
    ),
}


def recipe(dataset: str = "cifar10", fast: bool = False) -> dict:
    """Keyword arguments for `train`: the classroom recipe for `dataset`, or fast mode's.

    Example (a notebook):
        >>> from mixer_edu.course import course_dataset, fast_mode
        >>> result = train(**recipe(course_dataset(), fast=fast_mode()), out="runs/04")
    """
    if fast:
        return dict(RECIPES["fast"])
    if dataset not in RECIPES or dataset == "fast":
        raise ValueError(f"no recipe for dataset {dataset!r}; use 'cifar10' or 'standin'.")
    return dict(RECIPES[dataset])


# --------------------------------------------------------------------------------------------
# Devices and precision.
# --------------------------------------------------------------------------------------------


def default_device() -> torch.device:
    """The fastest device here: a CUDA GPU, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_supports_bf16() -> bool:
    """True when this CPU computes in bfloat16 natively (x86 AVX512-BF16 or AMX, Arm BF16).

    Elsewhere bf16 is emulated and slower than float32, so "auto" keeps float32 there.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no cheap way to ask, stay with float32
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16", "bf16"))


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the device computes in bfloat16 natively, else 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_supports_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The context under which forward passes run: bf16 autocast, or nothing for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the system.

    A training or evaluation step allocates and frees the same large activations (16 MB each
    for `mixer_cifar_small` at batch 128) again and again. glibc serves big blocks with fresh
    `mmap`s and returns freed memory at the top of its heap to the system, so the next step
    pays a page fault for every 4 KB it touches again. Raising the mmap threshold to its
    maximum (32 MB) and the trim threshold to 2 GB keeps those pages in the process. Measured
    on the 2-core VM (1 thread, mixer_cifar_small, batch 128): an evaluation forward pass went
    from 355 ms with 20,000-37,000 page faults to 301 ms with none; a training step in steady
    state changed little. Process-wide and harmless (the memory stays with the process until
    it exits). Returns False where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(
            libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(32 * 2**20))
            and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
        )
    except (OSError, AttributeError, TypeError):
        return False


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global generator is what we reseed
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: a function of (seed, epoch) only, so resumed epochs repeat."""
    return seed * 100_003 + epoch


# --------------------------------------------------------------------------------------------
# Optimiser and learning-rate schedule.
# --------------------------------------------------------------------------------------------


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay the weight matrices; leave biases and LayerNorm parameters (1-D) alone."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_factor(step: int, warmup_steps: int, total_steps: int, final: float = 0.0) -> float:
    """The learning rate at `step` as a fraction of the peak: linear warmup, then cosine to `final`.

    Step 0 already uses a small non-zero rate (1 / warmup_steps of the peak).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# --------------------------------------------------------------------------------------------
# The loop.
# --------------------------------------------------------------------------------------------


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
) -> dict:
    """One pass over `loader`. Returns mean `loss`, `acc`, `grad_norm` and `images_per_sec`."""
    model.train()
    # Sums stay on the device: calling .item() every step would make a GPU wait for each step.
    total_loss, correct, grad_norm_sum = (torch.zeros((), device=device) for _ in range(3))
    seen = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=progress, leave=False, disable=progress is None, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        images, targets = mixing(images, labels) if mixing is not None else (images, labels)

        with autocast(device, precision):
            logits = model(images)  # (B, 3, H, W) -> (B, classes)
        # targets: class indices (B,), or soft labels (B, classes) after CutMix / Mixup
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            grad_norm_sum += nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        scheduler.step()

        hard = targets.argmax(1) if targets.ndim == 2 else targets  # (B,) class indices
        total_loss += loss.detach() * len(images)
        correct += (logits.argmax(1) == hard).sum()
        seen += len(images)
        if step % 10 == 0:
            bar.set_postfix(
                loss=f"{total_loss.item() / seen:.3f}", acc=f"{correct.item() / seen:.1%}"
            )
    seconds = time.perf_counter() - start
    return {
        "loss": total_loss.item() / seen,
        "acc": correct.item() / seen,
        "grad_norm": grad_norm_sum.item() / len(loader) if clip_grad else None,
        "images_per_sec": seen / seconds,
    }


@torch.no_grad()
def predict(
    model: nn.Module, loader, device=None, precision: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of every image in `loader`: `(N, classes)` (float32) and `(N,)`."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    precision = resolve_precision(precision, device)
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in loader:
        with autocast(device, precision):
            all_logits.append(model(images.to(device)).float().cpu())
        all_labels.append(labels)
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(
    model: nn.Module, loader, device=None, precision: str = "auto", label_smoothing: float = 0.0
) -> dict:
    """Mean cross-entropy `loss` and accuracy `acc` of `model` on `loader` (in eval mode).

    `precision="auto"` evaluates as `train` trains (bf16 where supported); `device` defaults to
    the model's device.
    """
    logits, labels = predict(model, loader, device, precision)
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return {"loss": loss.item(), "acc": (logits.argmax(1) == labels).float().mean().item()}


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


def train(
    model_name: str = "mixer_cifar_small",
    dataset: str = "cifar10",
    epochs: int = 30,
    out: str | Path | None = None,
    *,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    warmup_epochs: float = 3.0,
    label_smoothing: float = 0.1,
    clip_grad: float = 1.0,
    augment: str = "crop-flip",
    mixing: str = "none",
    mixing_prob: float = 0.5,
    drop_path_rate: float = 0.0,
    seed: int = 0,
    train_images: int | None = None,
    test_images: int | None = None,
    model_overrides: dict | None = None,
    precision: str = "auto",
    device: str | torch.device | None = None,
    compile: bool = False,
    data_root: str | Path | None = None,
    num_workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train `model_name` on `dataset` for `epochs` epochs, writing everything into `out`.

    Args:
        model_name: a name from `mixer_edu.list_models()`.
        dataset: `'cifar10'` or `'standin'`.
        epochs: total epochs of the run (with `resume`, the run continues up to this).
        out: output folder for `checkpoint.pt`, `metrics.jsonl` and `snapshots/epoch_NNN.pt`
            (default `runs/MODEL-DATASET`)
        batch_size, lr, weight_decay, warmup_epochs, label_smoothing, clip_grad: the recipe.
        augment: `'none'`, `'crop-flip'`, `'randaugment'`, `'autoaugment'`.
        mixing, mixing_prob: `'cutmix'`, `'mixup'` or `'cutmix-mixup'` applied to a batch with
            probability `mixing_prob`; `'none'` (default) switches it off.
        drop_path_rate: DropPath on every block's residual branches.
        seed: seeds the initial weights and every epoch's randomness.
        train_images, test_images: train / evaluate on the first n images only (quick runs).
        model_overrides: further keywords for `create_model`.
        precision: `'auto'` (bf16 where the hardware supports it), `'fp32'` or `'bf16'`.
        device: default `default_device()` (cuda, mps, cpu).
        compile: `torch.compile` the model (gains little on CPUs; try it on a GPU).
        data_root: the data folder (default `$MIXER_EDU_DATA` or `data/`).
        num_workers: DataLoader processes (default: what suits this machine).
        resume: continue from `out/checkpoint.pt` if there is one (else start afresh); an
            already finished run is loaded and returned without training.
        overwrite: delete a previous run in `out` and start again.
        progress: show tqdm progress bars and print one line per epoch.

    Returns:
        `TrainResult` with the output paths, the trained model (eval mode) and the metrics.
    """
    config = TrainConfig(
        model_name=model_name,
        dataset=dataset,
        epochs=check_positive_int(epochs, "epochs"),
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        label_smoothing=label_smoothing,
        clip_grad=clip_grad,
        augment=augment,
        mixing=mixing,
        mixing_prob=mixing_prob,
        drop_path_rate=drop_path_rate,
        seed=seed,
        train_images=train_images,
        test_images=test_images,
        model_overrides=dict(model_overrides or {}),
    )
    out = Path(out) if out is not None else default_out(model_name, dataset)
    checkpoint_path, metrics_path = out / ckpt.CHECKPOINT_NAME, out / METRICS_NAME
    device = torch.device(device) if device is not None else default_device()
    precision = resolve_precision(precision, device)
    if device.type == "cpu":
        keep_freed_memory()  # no page faults on every step's fresh activations
    label = dataset_label(config.dataset)
    say = tqdm.write if progress else (lambda message: None)

    # Data first: a missing data set should stop the run before anything is written.
    train_loader, test_loader = make_loaders(
        config.dataset,
        config.batch_size,
        root=data_root,
        augment=config.augment,
        num_workers=num_workers,
        train_images=config.train_images,
        test_images=config.test_images,
    )
    num_classes = len(dataset_classes(config.dataset))
    mix = batch_mixing(config.mixing, num_classes, prob=config.mixing_prob)

    seed_everything(config.seed)
    net = create_model(config.model_name, **config.model_kwargs()).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(net, config.weight_decay), lr=config.lr)
    steps_per_epoch = len(train_loader)
    warmup_steps = max(1, round(config.warmup_epochs * steps_per_epoch))
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps)
    )

    start_epoch = 0
    if checkpoint_path.exists() and resume:
        saved = ckpt.load_checkpoint(checkpoint_path)
        _check_resumable(saved, config, checkpoint_path)
        ckpt.load_weights(net, saved["model"], str(checkpoint_path))
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        ckpt.set_rng_state(saved["rng"])
        start_epoch = saved["epoch"]
        say(f"Resuming {out} from epoch {start_epoch} of {config.epochs}.")
    elif checkpoint_path.exists() and not overwrite:
        epoch = ckpt.load_checkpoint(checkpoint_path)["epoch"]
        raise FileExistsError(
            f"{out} already holds a training run (finished epoch {epoch}); pass resume=True "
            "(--resume) to continue it, overwrite=True (--overwrite) to start again, or choose "
            "another out folder."
        )
    else:
        if resume:
            say(f"No checkpoint in {out} yet: starting a new run.")
        _clear_run(out)
    _keep_metrics_up_to(metrics_path, start_epoch)

    def state(epoch: int, full: bool) -> dict:
        """A snapshot (the model) or, with `full`, everything needed to continue."""
        snapshot = {
            "model_name": config.model_name,
            "model_config": ckpt.encode_config(config.model_kwargs()),
            "model": ckpt.model_state(net),
            "epoch": epoch,
            "dataset": config.dataset,
            "dataset_label": label,
            "classes": list(dataset_classes(config.dataset)),
        }
        if full:
            snapshot["optimizer"] = optimizer.state_dict()
            snapshot["scheduler"] = scheduler.state_dict()
            snapshot["rng"] = ckpt.rng_state()
            snapshot["train_config"] = asdict(config)
            snapshot["precision"] = precision
        return snapshot

    if start_epoch == 0:
        ckpt.save_atomic(state(0, full=False), ckpt.snapshot_path(out, 0))
        ckpt.save_atomic(state(0, full=True), checkpoint_path)
    if progress:
        say(
            f"Training {config.model_name} on the {label} ({len(train_loader.dataset)} training "
            f"images) for {config.epochs} epochs on {device.type} ({precision}); writing to {out}"
        )
    compiled = torch.compile(net) if compile else net
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            seed_everything(epoch_seed(config.seed, epoch))  # this epoch's randomness only
            lr_now = optimizer.param_groups[0]["lr"]
            train_stats = train_one_epoch(
                compiled,
                train_loader,
                optimizer,
                scheduler,
                device,
                precision,
                config.label_smoothing,
                config.clip_grad,
                mix,
                progress=f"epoch {epoch}/{config.epochs}" if progress else None,
            )
            test_stats = evaluate(compiled, test_loader, device, precision)
            record = {
                "epoch": epoch,
                "train_loss": train_stats["loss"],
                "train_acc": train_stats["acc"],
                "test_loss": test_stats["loss"],
                "test_acc": test_stats["acc"],
                "lr": lr_now,
                "grad_norm": train_stats["grad_norm"],
                "images_per_sec": train_stats["images_per_sec"],
                "dataset": label,
                "model": config.model_name,
                "precision": precision,
                "device": device.type,
            }
            ckpt.save_atomic(state(epoch, full=False), ckpt.snapshot_path(out, epoch))
            ckpt.save_atomic(state(epoch, full=True), checkpoint_path)
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            say(_epoch_line(record, config.epochs))
    except KeyboardInterrupt:
        say(
            f"\nInterrupted during epoch {epoch}. {checkpoint_path} holds epoch {epoch - 1}; "
            f"continue with --resume (resume=True), which repeats epoch {epoch} from its start."
        )
        raise
    if progress:
        say(f"Done. Checkpoint: {checkpoint_path}  metrics: {metrics_path}")
    return TrainResult(out, checkpoint_path, metrics_path, net.eval(), read_metrics(metrics_path))


def _epoch_line(record: dict, epochs: int) -> str:
    return (
        f"epoch {record['epoch']:3d}/{epochs} | train loss {record['train_loss']:.3f} "
        f"acc {record['train_acc']:6.1%} | test loss {record['test_loss']:.3f} "
        f"acc {record['test_acc']:6.1%} | lr {record['lr']:.2e} | "
        f"{record['images_per_sec']:6.0f} img/s | {record['dataset']}"
    )


def _check_resumable(state: dict, config: TrainConfig, path: Path) -> None:
    """A checkpoint continues only the same model and the same recipe (except `epochs`)."""
    ckpt.check_same_model(state, config.model_name, config.model_kwargs(), path)
    saved = dict(state.get("train_config", {}))
    asked = asdict(config)
    for key in ("epochs",):  # a run may be extended or shortened
        saved.pop(key, None), asked.pop(key)
    if saved != asked:
        difference = ckpt.describe_difference(saved, asked)
        raise ValueError(
            f"{path} was trained with another recipe ({difference}); resuming it with different "
            "settings would not continue the same run. Pass the checkpoint's settings (on the "
            "command line, --resume alone reuses them), or choose another --out folder."
        )


def _clear_run(out: Path) -> None:
    """Remove the files of an earlier run in `out` (checkpoint, metrics, snapshots)."""
    for path in [out / ckpt.CHECKPOINT_NAME, out / METRICS_NAME, *ckpt.list_snapshots(out)]:
        path.unlink(missing_ok=True)


def _keep_metrics_up_to(path: Path, epoch: int) -> None:
    """Drop metric lines of epochs after `epoch` (left by a run interrupted after writing them)."""
    if path.exists():
        kept = [r for r in read_metrics(path) if r["epoch"] <= epoch]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a `metrics.jsonl` file (or of a run folder), one dict per epoch."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.train",
        description="Train an MLP-Mixer on CIFAR-10 or the synthetic stand-in.",
        epilog="Unset options come from the recipe of the data set (or from the checkpoint "
        "with --resume). Example: python -m mixer_edu.train --dataset standin --epochs 5 "
        "--out runs/standin",
    )
    add = parser.add_argument
    add("--dataset", choices=("cifar10", "standin"), help="data set (default cifar10)")
    add(
        "--model",
        dest="model_name",
        help="model name, see mixer_edu.list_models() (default mixer_cifar_small)",
    )
    add("--epochs", type=int, help="total epochs")
    add("--batch-size", type=int)
    add("--out", type=Path, help="output folder (default runs/MODEL-DATASET)")
    add("--resume", action="store_true", help="continue the run in --out")
    add("--overwrite", action="store_true", help="delete a previous run in --out first")
    add("--seed", type=int)
    add("--fast", action="store_true", help="fast-mode recipe: tiny model, about a minute")
    add("--lr", type=float, help="peak learning rate")
    add("--weight-decay", type=float)
    add("--warmup-epochs", type=float)
    add("--label-smoothing", type=float)
    add("--clip-grad", type=float, help="gradient-norm clipping threshold (0: off)")
    add("--augment", choices=("none", "crop-flip", "randaugment", "autoaugment"))
    add("--mixing", choices=("none", "cutmix", "mixup", "cutmix-mixup"))
    add("--mixing-prob", type=float)
    add("--drop-path", type=float, dest="drop_path_rate")
    add("--train-images", type=int, help="train on the first N images only")
    add("--test-images", type=int, help="evaluate on the first N images only")
    add("--precision", choices=PRECISIONS, default="auto")
    add("--device", help="cuda, mps or cpu (default: the fastest available)")
    add("--compile", action="store_true", help="torch.compile the model")
    add("--data-root", type=Path, help="data folder (default $MIXER_EDU_DATA or data/)")
    add("--workers", type=int, dest="num_workers", help="DataLoader worker processes")
    add("--no-progress", action="store_true", help="no progress bars or epoch lines")
    return parser


RECIPE_KEYS = tuple(f.name for f in TrainConfig.__dataclass_fields__.values())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None and k in RECIPE_KEYS}
    settings = recipe(args.dataset or "cifar10", fast=args.fast)
    out = args.out
    if args.resume:
        out = out or default_out(**{**settings, **given})
        if (out / ckpt.CHECKPOINT_NAME).exists():  # the checkpoint's recipe fills the gaps
            settings = ckpt.load_checkpoint(out / ckpt.CHECKPOINT_NAME)["train_config"]
    settings.update(given)
    out = out or default_out(**settings)
    try:
        result = train(
            out=out,
            precision=args.precision,
            device=args.device,
            compile=args.compile,
            data_root=args.data_root,
            num_workers=args.num_workers,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            **settings,
        )
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileExistsError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    final = result.final
    print(
        f"Wrote {result.checkpoint}, {result.metrics_path} and "
        f"{len(ckpt.list_snapshots(result.out))} snapshots in {result.out / ckpt.SNAPSHOT_DIR}."
    )
    if final:
        print(
            f"Final test accuracy {final['test_acc']:.1%} after {final['epoch']} epochs "
            f"({final['dataset']})."
        )
    return 0


def default_out(model_name: str = "mixer_cifar_small", dataset: str = "cifar10", **_) -> Path:
    """`runs/MODEL-DATASET`: where a run writes when no `out` is given."""
    return Path("runs") / f"{model_name}-{dataset}"


if __name__ == "__main__":
    sys.exit(main())
