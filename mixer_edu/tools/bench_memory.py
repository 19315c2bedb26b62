"""Gradient checkpointing: how much memory it saves and how much time it costs.

`model.set_grad_checkpointing(True)` (`mixer_edu.support.timm_compat`) keeps only each block's input
during the forward pass and recomputes the block's activations during the backward pass: less
memory held at the peak, one more forward pass of work. This module measures both for one
training pass (forward, loss, backward), off and on, on the same model and batch:

    python -m mixer_edu.tools.bench --grad-checkpointing              # Mixer-S/16, batch 16
    python -m mixer_edu.tools.bench --grad-checkpointing --config cifar

Peak memory counts tensors only: on CUDA torch's allocator statistics; on a CPU, where there
are none, torch's profiler records every allocation and free of the pass.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..mixer import MlpMixer
from .bench_core import configuration, median_seconds, random_batch, time_alternating


def _train_pass(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()


def peak_step_memory(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> int:
    """Bytes allocated at the peak of one forward and backward pass, above what was held before.

    On CUDA, torch's allocator statistics. On a CPU there are none, so torch's profiler records
    every allocation and free of the pass (`profile_memory=True`) and the peak of their running
    sum is taken. Both count tensors only; the process's resident memory (what `resource`
    reports) also holds the allocator's cached blocks and would blur the difference.
    """
    model.zero_grad(set_to_none=True)  # gradients are allocated inside the measured pass
    if images.device.type == "cuda":
        torch.cuda.synchronize(images.device)
        start = torch.cuda.memory_allocated(images.device)
        torch.cuda.reset_peak_memory_stats(images.device)
        _train_pass(model, images, labels)
        torch.cuda.synchronize(images.device)
        return torch.cuda.max_memory_allocated(images.device) - start
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        _train_pass(model, images, labels)
    # Allocation (+bytes) and free (-bytes) events in time order; the raw kineto events are
    # used because `profiler.events()` attaches most of them to ops and drops the rest.
    events = [e for e in profiler.profiler.kineto_results.events() if e.name() == "[memory]"]
    held = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        held += event.nbytes()
        peak = max(peak, held)
    return peak


def measure_checkpointing(
    config: str = "s16",
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    repeats: int = 3,
    clock=time.perf_counter,
) -> dict:
    """Peak memory and time of a training pass with `set_grad_checkpointing` off and on."""
    device = torch.device(device)
    kwargs, batch = configuration(config, batch_size)
    torch.manual_seed(0)
    model = MlpMixer(**kwargs).to(device).train()
    images, labels = random_batch(kwargs, batch, device)
    result = {"config": config, "model": kwargs, "batch_size": batch}
    steps = {}
    for name, enabled in [("off", False), ("on", True)]:
        model.set_grad_checkpointing(enabled)
        _train_pass(model, images, labels)  # warm-up
        result[f"peak_bytes_{name}"] = peak_step_memory(model, images, labels)
        steps[name] = lambda enabled=enabled: (
            model.set_grad_checkpointing(enabled),
            _train_pass(model, images, labels),
        )
    times = time_alternating(steps, 1, repeats, device, clock=clock)
    for name, seconds in median_seconds(times).items():
        result[f"seconds_{name}"] = seconds
    model.set_grad_checkpointing(False)
    result["memory_ratio"] = result["peak_bytes_on"] / result["peak_bytes_off"]
    result["time_ratio"] = result["seconds_on"] / result["seconds_off"]
    return result


def report_checkpointing(machine: str, result: dict) -> str:
    """The lines `python -m mixer_edu.tools.bench --grad-checkpointing` prints."""
    mib = 2**20
    return "\n".join(
        [
            f"gradient checkpointing, {result['config']} {result['model']}, batch "
            f"{result['batch_size']}, {machine}",
            f"  peak memory of a training pass: off {result['peak_bytes_off'] / mib:.0f} MiB, "
            f"on {result['peak_bytes_on'] / mib:.0f} MiB (on/off {result['memory_ratio']:.2f})",
            f"  seconds per training pass:      off {result['seconds_off']:.3f}, "
            f"on {result['seconds_on']:.3f} (on/off {result['time_ratio']:.2f})",
        ]
    )
