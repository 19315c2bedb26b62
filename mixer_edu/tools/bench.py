"""Benchmark: how fast our Mixer trains and infers, next to timm's, on this machine.

`python -m mixer_edu.tools.bench` builds `mixer_edu`'s `MlpMixer` and timm's `MlpMixer` with
the same configuration and the same weights, and measures, in one process:

- **training steps** per second (forward, backward and an AdamW step on a fixed batch), and
- **inference** (a forward pass without gradients, eval mode),

in float32 and in bf16 autocast, as images per second. The two models take turns (ours, timm,
timm, ours, ...) over several repeats and the medians are reported, because a shared machine's
speed drifts: alternating exposes both to the same drift.

It also reports the work a step does, counted by `torch.utils.flop_counter` (a matmul of
(m, k) @ (k, n) is 2mkn floating-point operations), and the machine's measured matmul
throughput in each precision (a large square matmul in float32 and in bfloat16, GFLOP/s). The
ratio of a row's FLOP/s to the matmul peak *of its own precision* says how much of what the
hardware can do in that precision a step achieves: everything that is not a matmul (GELU,
LayerNorm, copies, memory allocation, the optimizer) eats into it. (bf16 matmuls run several
times faster than fp32 ones on GPUs and on CPUs with bf16 units, so a bf16 row measured against
the fp32 peak could read far above 100%, which says nothing.) The matmul is large enough to
reach the hardware's rate (`mixer_edu.support.peaks.matmul_size`: 8192^3 on a GPU); on CUDA the
fp32 rows and their matmul run in TF32, as the trainer runs them there, and for GPUs whose
figures NVIDIA publishes the datasheet's peaks are printed beside the measured ones.

`--data` also measures the input pipeline alone, in images per second, next to the model-only
training step: the batch path of `device_data` (the data set on the device, augmented
a batch at a time) and, for 32x32 images, the per-image torchvision path of
`mixer_edu.data.make_loaders` in this process (0 workers). A loop that prepares a batch and then
trains on it reaches at most data / (data + model) of the model-only speed: the "loop ceiling".

`--loop` also measures the whole training loop, data, step and evaluation, through the
trainer's own `train_one_epoch`, next to the model-only step, and reports the fraction of
model-only speed the loop reaches (`mixer_edu.tools.bench_loop`).

`--grad-checkpointing` measures instead what `set_grad_checkpointing(True)` trades: peak memory
and time of a training pass with it off and on (`mixer_edu.tools.bench_memory`).

Process-wide settings apply to both models alike: torch's thread count (`--threads`) and the
allocator (`support.runtime.keep_freed_memory`, which the trainer also applies; `--default-malloc`
leaves glibc's defaults). On a shared machine, check that nothing else is running (`uptime`):
two threads that wait for each other slow down many times over when another process takes a core.
There, `--threads 1 --cpu-time` gives robust ratios: one thread waits for no one, and the clock
counts only the CPU time this process got (images per CPU-second; with several threads it would
also count the time threads spend spinning while they wait for each other).

Configurations: `cifar` (32x32 images, 4x4 patches, width 128, 8 blocks, batch 128: the shape
of `mixer_cifar_small`), `s16` (Mixer-S/16 at 224x224, batch 16), `quick` (a very small model
for tests). Speed is measured here, never asserted by the tests.

This module is the command, the model and data rows and their tables. What every bench shares
(the configurations, the timed steps, the alternating clock, the machine's matmul peaks) is in
`mixer_edu.tools.bench_core`; `bench_loop` and `bench_memory` build on that module only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..data import ImageTensors, NormalizeBatch, augmentation
from ..device_data import DeviceLoader
from ..support import compiled_step
from ..support.errors import command_line, exit_status
from ..support.paths import check_folder
from ..support.peaks import describe_machine
from ..support.runtime import keep_freed_memory, resolve_device
from ..support.validation import check_positive_int
from .bench_core import (
    CONFIGS,
    build_pair,
    configuration,
    device_name,
    inference_step,
    machine_summary,
    median_seconds,
    peak_gflops,
    random_batch,
    time_alternating,
    training_step,
)
from .bench_loop import loop_benchmark, report_epoch, report_loop
from .bench_memory import measure_checkpointing, report_checkpointing

# --------------------------------------------------------------------------------------------
# Measuring.
# --------------------------------------------------------------------------------------------


def count_flops(model: nn.Module, images: torch.Tensor, train: bool) -> int:
    """FLOPs of one forward pass (`train=False`) or one forward and backward pass."""
    with FlopCounterMode(display=False) as counter:
        if train:
            model(images).sum().backward()
        else:
            with torch.no_grad():
                model(images)
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def benchmark(
    config: str = "cifar",
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    calls: int | None = None,
    repeats: int = 5,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    clock=time.perf_counter,
) -> dict:
    """Measure one configuration; returns a dict of everything `report` prints."""
    device = torch.device(device)
    kwargs, batch = configuration(config, batch_size)
    images, labels = random_batch(kwargs, batch, device)
    ours, theirs = build_pair(kwargs)
    models = {"ours": ours} if theirs is None else {"ours": ours, "timm": theirs}
    result = {
        "config": config,
        "model": kwargs,
        "batch_size": batch,
        "train_flops_per_image": count_flops(ours, images[:2].cpu(), train=True) / 2,
        "infer_flops_per_image": count_flops(ours, images[:2].cpu(), train=False) / 2,
        "rows": [],
    }
    models = {name: model.to(device) for name, model in models.items()}
    for precision in precisions:
        for kind in ("train", "infer"):
            steps = {
                name: training_step(model, images, labels, precision)
                if kind == "train"
                else inference_step(model, images, precision)
                for name, model in models.items()
            }
            with compiled_step.tf32_matmuls(device.type == "cuda"):  # as the trainer runs fp32
                times = time_alternating(
                    steps, calls or CONFIGS[config]["calls"], repeats, device, clock=clock
                )
            row = {"kind": kind, "precision": precision}
            for name, median in median_seconds(times).items():
                row[f"{name}_images_per_second"] = batch / median
                row[f"{name}_spread"] = (max(times[name]) - min(times[name])) / median
            result["rows"].append(row)
    return result


def data_benchmark(
    config: str = "cifar",
    batch_size: int | None = None,
    batches: int = 20,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    clock=time.perf_counter,
) -> dict:
    """Images per second of the input pipeline alone: one epoch of `batches` batches of random
    uint8 images, crop-flip augmented and normalised, taking turns like the models.

    Rows: `'device batches'` (`DeviceLoader` on `device`) and, for 32x32 images (the crop size
    of `mixer_edu.data.augmentation`), `'per-image, 0 workers'` (torchvision, one image at a
    time in this process, each batch then copied to `device`, as `make_loaders` and the trainer
    do). The pictures' content does not change the cost of cropping, so random ones do.
    """
    device = torch.device(device)
    kwargs, batch = configuration(config, batch_size)
    size, n = kwargs["img_size"], batches * batch
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, kwargs["num_classes"], (n,))
    on_device = DeviceLoader(images, labels, batch, device=device)

    def device_epoch():
        for _ in on_device:
            pass

    epochs = {"device batches": device_epoch}
    if size == 32:
        stored = _ArrayDataset(images.permute(0, 2, 3, 1).numpy(), labels.tolist())
        per_image = torch.utils.data.DataLoader(
            ImageTensors(stored, augmentation("crop-flip")),
            batch_size=batch,
            shuffle=True,
            drop_last=True,
            collate_fn=NormalizeBatch(),
        )

        def per_image_epoch():
            for x, y in per_image:
                x.to(device, non_blocking=True), y.to(device, non_blocking=True)

        epochs["per-image, 0 workers"] = per_image_epoch
    times = time_alternating(epochs, 1, repeats, device, warmup=1, clock=clock)
    rows = [
        {"path": name, "images_per_second": n / seconds}
        for name, seconds in median_seconds(times).items()
    ]
    return {"config": config, "batch_size": batch, "images": n, "device": str(device), "rows": rows}


class _ArrayDataset:
    """What `ImageTensors` reads from a torchvision `CIFAR10`: uint8 `data (N, H, W, 3)`,
    `targets` and `classes`."""

    def __init__(self, data, targets):
        self.data, self.targets, self.classes = data, targets, sorted(set(targets))


# --------------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------------


def _matmul_label(machine: dict, precision: str) -> str:
    """'fp32', or 'TF32' where fp32 matmuls run in TF32 (on CUDA, as the trainer runs them)."""
    return "TF32" if precision == "fp32" and "tf32_matmul_gflops" in machine else precision


def report(machine: dict, result: dict) -> str:
    """The table `python -m mixer_edu.tools.bench` prints for one configuration."""
    m, batch = result["model"], result["batch_size"]
    train_flops, infer_flops = result["train_flops_per_image"], result["infer_flops_per_image"]
    precisions = dict.fromkeys(row["precision"] for row in result["rows"])
    lines = [
        f"\n{result['config']}: {m['img_size']}x{m['img_size']} images, patch {m['patch_size']}, "
        f"width {m['embed_dim']}, {m['num_blocks']} blocks, batch {batch}; "
        f"{train_flops / 1e6:.0f} MFLOP per image per training step "
        f"({infer_flops / 1e6:.0f} forward)",
        "% of peak: each row's FLOP/s as "
        + ", ".join(
            f"% of {_matmul_label(machine, p)} matmul ({peak_gflops(machine, p):.0f} GFLOP/s)"
            for p in precisions
        ),
        f"{'':12s}{'ours img/s':>12s}{'timm img/s':>12s}{'ours/timm':>11s}"
        f"{'ours, % of peak':>17s}{'timm, %':>9s}",
    ]
    for row in result["rows"]:
        ours, theirs = row["ours_images_per_second"], row.get("timm_images_per_second")
        flops = train_flops if row["kind"] == "train" else infer_flops
        peak = peak_gflops(machine, row["precision"]) * 1e9
        line = f"{row['kind'] + ' ' + row['precision']:12s}{ours:12.1f}"
        if theirs:
            line += f"{theirs:12.1f}{ours / theirs:11.2f}{ours * flops / peak:17.0%}"
            line += f"{theirs * flops / peak:9.0%}"
        else:
            line += f"{'-':>12s}{'-':>11s}{ours * flops / peak:17.0%}{'-':>9s}"
        lines.append(line)
    by_key = {(r["kind"], r["precision"]): r for r in result["rows"]}
    bf16, fp32 = by_key.get(("train", "bf16")), by_key.get(("train", "fp32"))
    if bf16 and fp32 and "timm_images_per_second" in fp32:
        ratio = bf16["ours_images_per_second"] / fp32["timm_images_per_second"]
        lines.append(f"training, ours in bf16 autocast / timm in fp32: {ratio:.2f}x")
    return "\n".join(lines)


def report_data(data: dict, result: dict) -> str:
    """The input pipeline's rows next to our model-only training steps (`--data`)."""
    steps = {
        r["precision"]: r["ours_images_per_second"] for r in result["rows"] if r["kind"] == "train"
    }
    lines = [
        f"data, {data['config']}: {data['images']} random uint8 images (crop-flip, normalise), "
        f"batch {data['batch_size']}, on {data['device']}",
        "loop ceiling = data / (data + model step): the most of model-only speed a loop that "
        "prepares a batch, then trains on it, can reach",
        f"{'':22s}{'img/s':>12s}" + "".join(f"{'ceiling, ' + p + ' step':>22s}" for p in steps),
    ]
    for row in data["rows"]:
        rate = row["images_per_second"]
        line = f"{row['path']:22s}{rate:12.0f}"
        line += "".join(f"{rate / (rate + model):22.1%}" for model in steps.values())
        lines.append(line)
    return "\n".join(lines)


def check_arguments(args: argparse.Namespace) -> None:
    """Bad numbers, an absent device or a --json path that cannot be written: fail before the
    minutes of measuring, not after them."""
    for name in ("calls", "repeats", "batch_size", "threads"):
        if getattr(args, name) is not None:
            check_positive_int(getattr(args, name), "--" + name.replace("_", "-"))
    resolve_device(args.device)
    if args.json is not None:
        if args.json.is_dir():
            raise ValueError(f"--json {args.json} is a folder; give a file name, e.g. bench.json.")
        check_folder(args.json.parent, "the folder of --json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.tools.bench",
        description="Training and inference throughput of mixer_edu's MlpMixer next to timm's.",
    )
    add = parser.add_argument
    add("--config", choices=[*CONFIGS, "all"], default="all", help="all: cifar and s16")
    add("--precision", choices=("fp32", "bf16", "both"), default="both")
    add("--calls", type=int, help="steps per timed measurement (default: 5 cifar, 2 s16)")
    add("--repeats", type=int, default=5, help="alternating measurements (default 5)")
    add("--batch-size", type=int, help="override the configuration's batch size")
    add("--threads", type=int, help="torch threads (default: torch's choice)")
    add("--device", default="cpu", help="cpu or cuda")
    add(
        "--cpu-time",
        action="store_true",
        help="time with the process's CPU time instead of wall time (robust on a shared "
        "machine with --threads 1; images per CPU-second)",
    )
    add(
        "--default-malloc",
        action="store_true",
        help="leave glibc malloc's defaults (by default freed memory is kept for reuse, for "
        "both models, as mixer_edu.train does; see keep_freed_memory)",
    )
    add(
        "--data",
        action="store_true",
        help="also measure the input pipeline alone (device batches and the per-image loader) "
        "next to the model-only training step",
    )
    add(
        "--loop",
        action="store_true",
        help="also measure the whole training loop (data, step, evaluation, through the "
        "trainer's train_one_epoch) next to the model-only step (mixer_edu.tools.bench_loop)",
    )
    add("--loop-batches", type=int, default=10, help="batches per loop epoch (default 10)")
    add(
        "--compile",
        action="store_true",
        help="with --loop: also time the trainer's compiled step (mixer_edu.support.compiled_step: "
        "the step compiled, CUDA graphs on a GPU), its compile time included in the projection",
    )
    add("--quick", action="store_true", help="a tiny model, 1 call, 2 repeats (for tests)")
    add(
        "--grad-checkpointing",
        action="store_true",
        help="instead: peak memory and time of a training pass with gradient checkpointing off "
        "and on (default config s16)",
    )
    add("--json", type=Path, help="also write the results to this file")
    return parser


def _checkpointing_main(args: argparse.Namespace) -> int:
    """`--grad-checkpointing`: measure (`bench_memory`), print, write `--json`."""
    config = "quick" if args.quick else ("s16" if args.config == "all" else args.config)
    device = torch.device(args.device)
    machine = (
        f"{device.type}: {device_name(device)}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}"
    )
    result = measure_checkpointing(
        config, args.batch_size, device, repeats=2 if args.quick else args.repeats
    )
    print(report_checkpointing(machine, result), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "checkpointing": result}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


@command_line  # bad input ends in one `error:` line and exit status 2
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    check_arguments(args)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.grad_checkpointing:
        return _checkpointing_main(args)
    kept = False if args.default_malloc else keep_freed_memory()
    if args.quick:
        configs, calls, repeats = ["quick"], None, 2
    else:
        configs = ["cifar", "s16"] if args.config == "all" else [args.config]
        calls, repeats = args.calls, args.repeats
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)

    clock = time.process_time if args.cpu_time else time.perf_counter
    machine = machine_summary(args.device, quick=args.quick, clock=clock)
    machine["malloc"] = "keeps freed memory (both models)" if kept else "default"
    machine["clock"] = "process CPU time" if args.cpu_time else "wall time"
    print(describe_machine(machine))
    results = []
    for config in configs:
        result = benchmark(
            config, precisions, calls, repeats, args.batch_size, args.device, clock=clock
        )
        results.append(result)
        print(report(machine, result), flush=True)
        if args.data:
            batches = 4 if args.quick else 20
            data = data_benchmark(
                config, args.batch_size, batches, repeats, args.device, clock=clock
            )
            result["data"] = data
            print(report_data(data, result), flush=True)
        if args.loop:
            batches = 3 if args.quick else args.loop_batches
            loop = loop_benchmark(
                config, precisions, args.batch_size, batches, repeats, args.device, clock=clock,
                compiled=args.compile,
            )  # fmt: skip
            result["loop"] = loop
            print(report_loop(loop), report_epoch(loop), sep="\n", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(exit_status(main()))
