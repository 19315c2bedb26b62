"""The hardware's rates that the benchmark's "% of peak" is measured against.

A step's FLOP/s means something only next to what the hardware can do: a large square matmul
measured on this machine (`mixer_edu.tools.bench_core.matmul_gflops`, sized by `matmul_size`),
and, for GPUs whose figures NVIDIA publishes, the datasheet's peak beside it.
"""

from __future__ import annotations

import torch

# NVIDIA's datasheet peaks, dense (without 2:4 sparsity), TFLOP/s: plain fp32 (CUDA cores),
# TF32 and bf16 (tensor cores). H100 SXM (the H200 has the same chip and rates): NVIDIA H100
# Tensor Core GPU datasheet, "FP32 67, TF32 Tensor Core 989*, BF16 Tensor Core 1,979*" with
# "* with sparsity", i.e. 494 and 989 dense; H100 PCIe: 51, 756* and 1,513*. A100 (SXM and
# PCIe): NVIDIA's "Hopper architecture in depth" blog, table 3: FP32 19.5, TF32 156, BF16 312.
DATASHEET_TFLOPS = {
    "H100/H200 SXM": {"fp32": 67.0, "tf32": 494.0, "bf16": 989.0},
    "H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "bf16": 756.0},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
}


def datasheet_peak(name: str) -> tuple[str, dict] | None:
    """`(part, peaks)` from `DATASHEET_TFLOPS` for a device name such as 'NVIDIA H200', or None
    for a device we have no cited figures for (the NVL parts, other GPUs, CPUs)."""
    if "NVL" in name:
        return None
    if "H200" in name or ("H100" in name and "PCIe" not in name):
        part = "H100/H200 SXM"
    elif "H100" in name:
        part = "H100 PCIe"
    elif "A100" in name:
        part = "A100"
    else:
        return None
    return part, DATASHEET_TFLOPS[part]


def matmul_size(device: torch.device, quick: bool = False) -> int:
    """The side of the square matmul that stands for the hardware's rate: large enough to keep
    every unit busy (8192 on a GPU: 1.1 TFLOP per call; 1024 on a CPU, whose few cores a 2
    GFLOP product already saturates)."""
    if device.type == "cuda":
        return 1024 if quick else 8192
    return 256 if quick else 1024


def describe_machine(machine: dict) -> str:
    """The first line of the report: the device, the measured matmuls, the datasheet's peaks."""
    size = machine.get("matmul_size", 1024)
    rates = [("fp32", "fp32_matmul_gflops"), ("TF32", "tf32_matmul_gflops")]
    rates.append(("bf16", "bf16_matmul_gflops"))
    measured = ", ".join(
        f"{machine[key]:.0f} GFLOP/s {label}" for label, key in rates if key in machine
    )
    line = (
        f"{machine['device']}, {machine['threads']} threads, torch {machine['torch']}, "
        f"malloc {machine['malloc']}, {machine['clock']}; measured matmul ({size}^3): {measured}"
    )
    if "datasheet" in machine:
        peaks = machine["datasheet_tflops"]
        line += (
            f"; datasheet ({machine['datasheet']}, dense): {peaks['fp32']:g} fp32, "
            f"{peaks['tf32']:g} TF32, {peaks['bf16']:g} bf16 TFLOP/s"
        )
    return line
