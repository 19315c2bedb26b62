"""The benchmark's loop rows: the whole training loop next to the model-only step.

`python -m mixer_edu.tools.bench --loop` measures, for each precision, on one model and one
device:

    model-only   the bench's training step (`tools.bench_core.training_step`) on one fixed batch,
                 `batches` times: forward, loss, backward, clipping, AdamW; no data at all;
                 and, for the evaluation, forward passes (`inference_step`) on a fixed batch
                 over as many test images
    loop         `mixer_edu.train.train_one_epoch`, the trainer's own epoch function, over one
                 epoch of the trainer's data path (`DeviceLoader`: crop-flip and normalisation
                 a batch at a time on the device) of `batches` batches, with the recipe's label
                 smoothing, clipping, learning-rate schedule and running metrics
    evaluation   `mixer_edu.evaluation.evaluate` on a test split of a fifth as many images
                 (CIFAR-10's 10,000 test images next to its 50,000 training images)
    data         the loader's epoch alone: its batches, cropped and flipped, no model
    checkpoint   what the trainer writes after every epoch: the weights' snapshot and the
                 checkpoint (weights, AdamW's state, scheduler, random generators), atomically
    compiled ... with `compiled=True` (`--compile`), the model-only step, the loop and the
                 evaluation again on the trainer's compiled step (`mixer_edu.support.compiled_step`)

and reports training images per second and the fraction of model-only speed the loop reaches
(`report_loop`), and where an epoch's time goes, projected to CIFAR-10's size (`report_epoch`),
without the evaluation that follows every epoch (loop against model-only training steps) and
with it (loop and evaluation against the model-only steps and forward passes of the same work).
timm's model-only step runs in the same measurement, so the loop can be compared with the
reference implementation's bare step.
All of them take turns (`mixer_edu.tools.bench_core.time_alternating`), so a shared machine's
drift touches them alike. The images are random uint8 pictures: cropping costs the same
whatever they show.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ..config import TrainConfig
from ..device_data import DeviceLoader
from ..evaluation import evaluate
from ..support import compiled_step
from ..support.plan import describe_device, plan_run
from ..support.run_files import epoch_files, write_epoch_files
from ..train import clip_and_update, forward_loss, train_one_epoch, train_step, warmup_cosine
from .bench_core import (
    build_pair,
    configuration,
    inference_step,
    median_seconds,
    random_batch,
    sync,
    time_alternating,
    training_step,
)

CIFAR_TRAIN, CIFAR_TEST, CLASSROOM_EPOCHS = 50_000, 10_000, 30  # the classroom run's size


def loop_benchmark(
    config: str = "cifar",
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    batch_size: int | None = None,
    batches: int = 10,
    repeats: int = 3,
    device: str | torch.device = "cpu",
    clock=time.perf_counter,
    compiled: bool = False,
) -> dict:
    """Seconds per epoch of the model-only step, the loop, the evaluation, the data alone and
    the checkpoint, per precision; with `compiled`, also of the compiled step (and its compile).
    The loop is the trainer's own `train_one_epoch`, not a copy of it."""
    device = torch.device(device)
    kwargs, batch = configuration(config, batch_size)
    size, classes = kwargs["img_size"], kwargs["num_classes"]
    n_train, n_test = batches * batch, max(batch, batches * batch // 5)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_test, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, classes, (n_train + n_test,), generator=generator)
    train_loader = DeviceLoader(images[:n_train], labels[:n_train], batch, device=device)
    test_loader = DeviceLoader(
        images[n_train:], labels[n_train:], 2 * batch, device=device, train=False
    )
    ours, theirs = (m.to(device) if m is not None else None for m in build_pair(kwargs))
    fixed_images, fixed_labels = random_batch(kwargs, batch, device)
    eval_batches = len(test_loader)
    fixed_test_images = torch.randn(2 * batch, 3, size, size, device=device)
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="mixer-edu-bench-"))
    for precision in precisions:
        epochs = {
            "ours model-only": _repeat(
                training_step(ours, fixed_images, fixed_labels, precision), batches
            ),
            "ours loop": _loop_epoch(ours, train_loader, precision),
            "ours evaluation": lambda p=precision: evaluate(ours, test_loader, device, p),
            "ours model-only evaluation": _repeat(
                inference_step(ours, fixed_test_images, precision), eval_batches
            ),
        }
        epochs["ours data"] = lambda: [None for _ in train_loader.epoch(seed=0)]
        epochs["ours checkpoint"], epochs["ours checkpoint write"] = _checkpoint(
            ours, folder, batch
        )
        if theirs is not None:
            step = training_step(theirs, fixed_images, fixed_labels, precision)
            epochs["timm model-only"] = _repeat(step, batches)
        compile_seconds = None
        if compiled:
            loop_epoch = _loop_epoch(ours, train_loader, precision)
            loop_epoch.compiled = _build_compiled(ours, loop_epoch.optimizer, len(fixed_images))
            fast_epochs = {
                "compiled model-only": _compiled_epoch(
                    ours, fixed_images, fixed_labels, precision, batches
                ),
                "compiled loop": loop_epoch,
                "compiled evaluation": lambda p=precision, f=loop_epoch.compiled: evaluate(
                    f.evaluator, test_loader, device, p
                ),
            }
            compile_seconds = _first_call_seconds(fast_epochs, device, clock)
            epochs |= {f"ours {name}": epoch for name, epoch in fast_epochs.items()}
        with compiled_step.tf32_matmuls(device.type == "cuda"):  # as the trainer runs fp32 there
            times = time_alternating(epochs, 1, repeats, device, warmup=1, clock=clock)
        rows.append(
            {"precision": precision, "seconds": median_seconds(times), "compile": compile_seconds}
        )
    return {
        "config": config,
        "batch_size": batch,
        "train_images": n_train,
        "test_images": n_test,
        "device": str(device),
        "rows": rows,
    }


def _loop_epoch(model, loader: DeviceLoader, precision: str):
    """One epoch as the trainer runs it: its epoch function, AdamW, warmup-cosine schedule,
    label smoothing 0.1 and clipping at 1 (the recipe's), on the loader's batches of seed 0.
    Setting `epoch.compiled` (a `compiled_step.build` result) runs it on the compiled step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = warmup_cosine(optimizer, 1, 10**9)

    def epoch():
        batches = loader.epoch(seed=0)
        train_one_epoch(
            model,
            batches,
            optimizer,
            scheduler,
            loader.device,
            precision=precision,
            compiled=epoch.compiled,
        )

    epoch.compiled = None
    epoch.optimizer = optimizer
    return epoch


def _build_compiled(model, optimizer, batch_size: int):
    """The trainer's compiled step for `model` and `optimizer`: the compiled halves of the step in
    `mixer_edu.train`, with the plan's mode (CUDA graphs on a GPU at small batches)."""
    device = next(model.parameters()).device
    mode = plan_run(describe_device(device), batch_size, compile=True).compile_mode
    return compiled_step.build(forward_loss, clip_and_update, model, optimizer, mode)


def _compiled_epoch(model, images, labels, precision: str, batches: int):
    """The trainer's step on the compiled step on one fixed batch, `batches` times."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    compiled = _build_compiled(model, optimizer, len(images))

    def step():
        model.train()
        train_step(model, images, labels, optimizer, precision=precision, compiled=compiled)

    return _repeat(step, batches)


def _first_call_seconds(epochs: dict, device, clock) -> float:
    """Seconds of the first call of each (compiling) epoch function, together."""
    start = clock()
    for epoch in epochs.values():
        epoch()
    sync(device)
    return clock() - start


def _checkpoint(model, folder: Path, batch_size: int) -> tuple:
    """What the trainer does after an epoch, in two parts (`run_files.EpochWriter`): `copy`,
    which the loop waits for (`run_files.epoch_files`: the state copied to the CPU), and `write`,
    which runs in the background during the next epoch (`run_files.write_epoch_files`: a
    snapshot of the weights, then the checkpoint with AdamW's state, the scheduler's and the
    random generators' states). The files' small fields (names, the recipe) are the classroom
    recipe's."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():  # AdamW's state as after a step: two moments per weight
        optimizer.state[p] = {
            "step": torch.tensor(1.0),
            "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": torch.zeros_like(p),
        }
    state = dict(
        config=TrainConfig(),
        model=model,
        optimizer=optimizer,
        scheduler=warmup_cosine(optimizer, 1, 10**9),
        plan=plan_run(describe_device(next(model.parameters()).device), batch_size),
    )
    copied = []

    def copy():
        copied[:] = epoch_files(1, **state)

    def write():
        if not copied:
            copy()
        write_epoch_files(folder, 1, None, *copied)

    return copy, write


def _repeat(step, times: int):
    def epoch():
        for _ in range(times):
            step()

    return epoch


def report_loop(loop: dict) -> str:
    """The loop rows: training images per second and the fraction of model-only speed."""
    n = loop["train_images"]
    lines = [
        f"loop, {loop['config']}: one epoch of {n} random uint8 images (batch "
        f"{loop['batch_size']}, crop-flip on {loop['device']}) through train_one_epoch, then "
        f"evaluate on {loop['test_images']}; training images per second",
        f"{'':6s}{'model-only':>12s}{'loop':>10s}{'% of model':>12s}"
        f"{'loop+eval':>11s}{'% of model':>12s}{'timm model':>12s}{'loop/timm':>11s}",
    ]
    for row in loop["rows"]:
        seconds = row["seconds"]
        model = n / seconds["ours model-only"]
        loop_rate = n / seconds["ours loop"]
        with_eval = n / (seconds["ours loop"] + seconds["ours evaluation"])
        # the same work without data: training steps, then forward passes over the test images
        model_with_eval = n / (seconds["ours model-only"] + seconds["ours model-only evaluation"])
        line = f"{row['precision']:6s}{model:12.1f}{loop_rate:10.1f}{loop_rate / model:12.1%}"
        line += f"{with_eval:11.1f}{with_eval / model_with_eval:12.1%}"
        if "timm model-only" in seconds:
            timm = n / seconds["timm model-only"]
            line += f"{timm:12.1f}{loop_rate / timm:11.2f}"
        lines.append(line)
    return "\n".join(lines)


def report_epoch(loop: dict) -> str:
    """Where an epoch's time goes, and the classroom run's time projected from it.

    An epoch is the loop (data and steps), the evaluation and the checkpoint. Its parts: the
    data alone, the model-only steps, the rest of the loop (the running metrics, the schedule,
    the hand-over between data and steps), the evaluation and the checkpoint, each a fraction
    of the epoch. The projection scales the loop and the evaluation to CIFAR-10's 50,000
    training and 10,000 test images and adds one checkpoint per epoch, for 30 epochs, plus the
    compile time of the compiled step (its first calls).
    """
    n, n_test, batch = loop["train_images"], loop["test_images"], loop["batch_size"]
    train_scale = (CIFAR_TRAIN // batch * batch) / n
    lines = [
        f"epoch parts, {loop['config']}: fraction of one epoch (loop + evaluation + checkpoint: "
        "its copy, and its write where that outlasts the next epoch); "
        f"{CLASSROOM_EPOCHS} epochs projected to {CIFAR_TRAIN:,} training and {CIFAR_TEST:,} "
        "test images",
        f"{'':6s}{'path':>9s}{'data':>8s}{'step':>8s}{'rest':>8s}{'eval':>8s}{'ckpt':>8s}"
        f"{'epoch s':>10s}{'compile s':>11s}{f'{CLASSROOM_EPOCHS} epochs s':>14s}",
    ]
    for row in loop["rows"]:
        seconds = row["seconds"]
        paths = [("eager", "ours ")]
        if "ours compiled loop" in seconds:
            paths.append(("compiled", "ours compiled "))
        for path, prefix in paths:
            loop_s, step_s = seconds[prefix + "loop"], seconds[prefix + "model-only"]
            data_s, eval_s = seconds["ours data"], seconds[prefix + "evaluation"]
            # The loop waits for the copy, and for the write only where it outlasts an epoch.
            trained = loop_s * train_scale + eval_s * CIFAR_TEST / n_test
            write_s = seconds.get("ours checkpoint write", 0.0)
            ckpt_s = seconds["ours checkpoint"] + max(0.0, write_s - trained)
            epoch_s = loop_s + eval_s + ckpt_s
            parts = [data_s, step_s, loop_s - data_s - step_s, eval_s, ckpt_s]
            full_epoch = trained + ckpt_s
            compile_s = row.get("compile") if path == "compiled" else 0.0
            total = CLASSROOM_EPOCHS * full_epoch + (compile_s or 0.0)
            line = f"{row['precision']:6s}{path:>9s}" + "".join(
                f"{p / epoch_s:8.1%}" for p in parts
            )
            line += f"{full_epoch:10.2f}{compile_s or 0.0:11.1f}{total:14.0f}"
            lines.append(line)
    return "\n".join(lines)
