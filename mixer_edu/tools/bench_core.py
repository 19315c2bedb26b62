"""What the benches share: the configurations, the models and steps they time, the clock that
times them, and the machine they run on.

`bench` (the command and the model rows), `bench_loop` (the whole training loop) and
`bench_memory` (gradient checkpointing) all build on this module and on nothing of each other:

- `CONFIGS` and `configuration`: the model and batch size of `cifar`, `s16` and `quick`;
- `build_pair`, `random_batch`: our model and timm's with the same weights, a fixed batch;
- `training_step`, `inference_step`: the functions that are timed (the trainer's own step);
- `time_alternating`, `median_seconds`: the models take turns in ABBA order, so a shared
  machine's drift touches them alike, and the median of the repeats is kept;
- `machine_summary`, `peak_gflops`: what the machine is and its measured matmul throughput, the
  100% of the "% of peak" columns.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from ..mixer import MlpMixer
from ..support import compiled_step
from ..support.peaks import datasheet_peak, matmul_size
from ..support.runtime import autocast, cpu_name
from ..train import train_step

CONFIGS = {
    "cifar": dict(
        model=dict(img_size=32, patch_size=4, embed_dim=128, num_blocks=8, num_classes=10),
        batch_size=128,
        calls=5,
    ),
    "s16": dict(
        model=dict(img_size=224, patch_size=16, embed_dim=512, num_blocks=8, num_classes=1000),
        batch_size=16,
        calls=2,
    ),
    "quick": dict(
        model=dict(img_size=32, patch_size=4, embed_dim=32, num_blocks=2, num_classes=10),
        batch_size=16,
        calls=1,
    ),
}


def configuration(config: str, batch_size: int | None = None) -> tuple[dict, int]:
    """`(model keyword arguments, batch size)` of a configuration in `CONFIGS`.

    Args:
        config: 'cifar', 's16' or 'quick'.
        batch_size: overrides the configuration's batch size when given.
    """
    spec = CONFIGS[config]
    return spec["model"], batch_size or spec["batch_size"]


# --------------------------------------------------------------------------------------------
# The models and the steps that are timed.
# --------------------------------------------------------------------------------------------


def build_pair(model_kwargs: dict, seed: int = 0) -> tuple[nn.Module, nn.Module | None]:
    """Our model and timm's, with the same weights (timm: None when it is not installed)."""
    torch.manual_seed(seed)
    ours = MlpMixer(**model_kwargs)
    try:
        from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer
    except ImportError:
        return ours, None
    theirs = TimmMlpMixer(**model_kwargs)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, theirs


def random_batch(model_kwargs: dict, batch: int, device: torch.device):
    """A fixed batch for timing: `(images (B, 3, H, W) float32, labels (B,))` on `device`."""
    size = model_kwargs["img_size"]
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, model_kwargs["num_classes"], (batch,), device=device)
    return images, labels


def training_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, precision: str):
    """A function doing the trainer's own step (`mixer_edu.train.train_step`) on a fixed batch:
    forward, label-smoothed loss, backward, gradient clipping, AdamW."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        model.train()  # (cheap) the loop benchmark evaluates the same model in between
        train_step(model, images, labels, optimizer, precision=precision)

    return step


def inference_step(model: nn.Module, images: torch.Tensor, precision: str):
    """A function doing one forward pass without gradients, in eval mode."""

    @torch.no_grad()
    def step():
        model.eval()  # (cheap) the loop benchmark trains the same model in between
        with autocast(images.device, precision):
            model(images)

    return step


# --------------------------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for the device to finish: GPU kernels run asynchronously, a CPU's ops do not."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_alternating(
    steps: dict, calls: int, repeats: int, device, warmup: int = 2, clock=time.perf_counter
) -> dict:
    """Seconds per call of each function, a list per name, taking turns in ABBA order.

    `clock` is wall time by default; `time.process_time` counts only the CPU time this process
    got, which makes one-thread comparisons robust on a machine shared with other work.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    names = list(steps)
    times = {name: [] for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]  # ABBA: no side always goes first
        for name in order:
            sync(device)
            start = clock()
            for _ in range(calls):
                steps[name]()
            sync(device)
            times[name].append((clock() - start) / calls)
    return times


def median_seconds(times: dict) -> dict:
    """The median of each name's measurements in a `time_alternating` result."""
    return {name: statistics.median(seconds) for name, seconds in times.items()}


# --------------------------------------------------------------------------------------------
# The machine.
# --------------------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the CPU's model name."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def matmul_gflops(
    dtype=torch.float32,
    size: int = 1024,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    clock=time.perf_counter,
) -> float:
    """This machine's matmul throughput: the best GFLOP/s of (size x size) @ (size x size).

    The best of a few repeats, not their median: other work on the machine can only slow a
    measurement down, and this number stands for what the hardware can do.
    """
    device = torch.device(device)
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b  # warm up
    calls = max(1, int(2e9 / (2 * size**3)))  # about 2 GFLOP per measurement
    rates = []
    for _ in range(repeats):
        sync(device)
        start = clock()
        for _ in range(calls):
            a @ b
        sync(device)
        rates.append(2 * size**3 * calls / (clock() - start) / 1e9)
    return max(rates)


def machine_summary(
    device: str | torch.device = "cpu", quick: bool = False, clock=time.perf_counter
) -> dict:
    """What this machine is, and its measured matmul throughput in fp32 and bf16 (GFLOP/s); on a
    CUDA GPU also in TF32 (fp32 matmuls on tensor cores, as the trainer runs them there)."""
    device = torch.device(device)
    size, repeats = matmul_size(device, quick), 2 if quick else 5
    name = device_name(device)
    machine = {
        "device": f"{device.type}: {name}",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_size": size,
        "fp32_matmul_gflops": matmul_gflops(torch.float32, size, repeats, device, clock),
        "bf16_matmul_gflops": matmul_gflops(torch.bfloat16, size, repeats, device, clock),
    }
    if device.type == "cuda":
        with compiled_step.tf32_matmuls(True):
            tf32 = matmul_gflops(torch.float32, size, repeats, device, clock)
        machine["tf32_matmul_gflops"] = tf32
    if (known := datasheet_peak(name)) is not None:
        machine["datasheet"], machine["datasheet_tflops"] = known
    return machine


def peak_gflops(machine: dict, precision: str) -> float:
    """The measured matmul throughput of `precision` ('fp32' or 'bf16'), the 100% of its rows.

    fp32 on a CUDA GPU is the TF32 matmul: the trainer runs fp32 matmuls in TF32 there."""
    if precision == "fp32" and "tf32_matmul_gflops" in machine:
        return machine["tf32_matmul_gflops"]
    return machine[f"{precision}_matmul_gflops"]
