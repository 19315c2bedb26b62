"""The benchmark's loop rows: the whole training loop next to the model-only step.

`python -m mixer_edu.support.bench --loop` measures, for each precision, on one model and one
device:

    model-only   the bench's training step (`support.bench.training_step`) on one fixed batch,
                 `batches` times: forward, loss, backward, clipping, AdamW; no data at all;
                 and, for the evaluation, forward passes (`inference_step`) on a fixed batch
                 over as many test images
    loop         `mixer_edu.train.train_one_epoch`, the trainer's own epoch function, over one
                 epoch of the trainer's data path (`DeviceLoader`: crop-flip and normalisation
                 a batch at a time on the device) of `batches` batches, with the recipe's label
                 smoothing, clipping, learning-rate schedule and running metrics
    evaluation   `mixer_edu.evaluation.evaluate` on a test split of a fifth as many images
                 (CIFAR-10's 10,000 test images next to its 50,000 training images)

and reports training images per second and the fraction of model-only speed the loop reaches,
without the evaluation that follows every epoch (loop against model-only training steps) and
with it (loop and evaluation against the model-only steps and forward passes of the same work).
timm's model-only step runs in the same measurement, so the loop can be compared with the
reference implementation's bare step.
All of them take turns (`mixer_edu.support.bench.time_alternating`), so a shared machine's drift
touches them alike. The images are random uint8 pictures: cropping costs the same whatever
they show.
"""

from __future__ import annotations

import statistics
import time

import torch

from ..evaluation import evaluate
from ..train import warmup_cosine
from .bench import (
    CONFIGS,
    build_pair,
    inference_step,
    random_batch,
    time_alternating,
    training_step,
)
from .device_data import DeviceLoader


def loop_benchmark(
    config: str = "cifar",
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    batch_size: int | None = None,
    batches: int = 10,
    repeats: int = 3,
    device: str | torch.device = "cpu",
    clock=time.perf_counter,
) -> dict:
    """Seconds per epoch of the model-only step, the loop and the evaluation, per precision."""
    from ..train import train_one_epoch  # the trainer's own code path, not a copy of it

    device = torch.device(device)
    spec = CONFIGS[config]
    batch, kwargs = batch_size or spec["batch_size"], spec["model"]
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
    for precision in precisions:
        epochs = {
            "ours model-only": _repeat(
                training_step(ours, fixed_images, fixed_labels, precision), batches
            ),
            "ours loop": _loop_epoch(train_one_epoch, ours, train_loader, precision),
            "ours evaluation": lambda p=precision: evaluate(ours, test_loader, device, p),
            "ours model-only evaluation": _repeat(
                inference_step(ours, fixed_test_images, precision), eval_batches
            ),
        }
        if theirs is not None:
            step = training_step(theirs, fixed_images, fixed_labels, precision)
            epochs["timm model-only"] = _repeat(step, batches)
        times = time_alternating(epochs, 1, repeats, device, warmup=1, clock=clock)
        median = {name: statistics.median(seconds) for name, seconds in times.items()}
        rows.append({"precision": precision, "seconds": median})
    return {
        "config": config,
        "batch_size": batch,
        "train_images": n_train,
        "test_images": n_test,
        "device": str(device),
        "rows": rows,
    }


def _loop_epoch(train_one_epoch, model, loader: DeviceLoader, precision: str):
    """One epoch as the trainer runs it: its epoch function, AdamW, warmup-cosine schedule,
    label smoothing 0.1 and clipping at 1 (the recipe's), on the loader's batches of seed 0."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = warmup_cosine(optimizer, 1, 10**9)

    def epoch():
        batches = loader.epoch(seed=0)
        train_one_epoch(model, batches, optimizer, scheduler, loader.device, precision=precision)

    return epoch


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
