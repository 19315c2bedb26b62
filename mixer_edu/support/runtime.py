"""Where and how the computation runs: device, precision, random seeds, memory allocator.

Nothing here changes *what* a model computes; it decides where (CPU, CUDA GPU, Apple's MPS),
in which number format (float32, or bfloat16 autocast), and how reproducibly. Training,
benchmarks, the masked-language-model experiment and the notebooks all take these settings
from here, so a machine-specific trick lives in one place, with its reason, and the modules a
student reads (the model, the loop) stay free of them.

**bf16 autocast.** Under `torch.autocast(..., dtype=torch.bfloat16)` matrix multiplications run
in bfloat16 (8 bits of mantissa instead of 23, the same exponent range as float32, so no loss
scaling is needed), while the weights, the optimiser and reductions such as LayerNorm stay in
float32. It pays off only where the hardware computes in bfloat16 natively (recent GPUs, CPUs
with AVX512-BF16 or AMX, Arm with BF16); elsewhere it is emulated and slower, so
`precision="auto"` chooses it only there.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import platform
import random
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .validation import check_choice

FAST_ENV = "MIXER_EDU_FAST"  # fast mode: short runs on the stand-in, as in CI


def fast_mode() -> bool:
    """True when `MIXER_EDU_FAST` is set to anything but '', '0', 'false' or 'no'."""
    return os.environ.get(FAST_ENV, "").strip().lower() not in ("", "0", "false", "no")


PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("cuda", "mps", "cpu")


# --------------------------------------------------------------------------------------------
# Device.
# --------------------------------------------------------------------------------------------


DEVICE_ENV = "MIXER_EDU_DEVICE"


def default_device() -> torch.device:
    """`MIXER_EDU_DEVICE` if set (e.g. `cpu`), else the fastest: CUDA, else MPS, else the CPU."""
    if os.environ.get(DEVICE_ENV, "").strip():
        return resolve_device(os.environ[DEVICE_ENV].strip())
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None` -> `default_device()`; a name such as 'cuda' or 'cuda:1' -> that device."""
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except RuntimeError:  # torch's message lists twenty device types a student never meets
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}.") from None
    check_choice(device.type, DEVICES, "device")
    check_available(device)
    return device


def check_available(device: torch.device) -> None:
    """Raise a clear `ValueError` when `device` is a GPU this machine does not have."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if not available.get(device.type, True):
        raise ValueError(
            f"device {device.type!r} was asked for, but torch finds no {device.type} device on "
            f"this machine; use device 'cpu' (--device cpu), or leave it unset for the fastest "
            "device available."
        )


def available_cores() -> int:
    """CPU cores this process may run on (a container's or `taskset`'s limit, where the OS says)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def cpu_name() -> str:
    """The processor's model name, e.g. 'AMD EPYC 7B13', for printing what a run ran on."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def where_runs_ran(device: str, jobs: int) -> str:
    """`'cpu (AMD EPYC 7B13), one thread per run'`: the machine and threads behind saved runs."""
    machine = cpu_name() if device == "cpu" else torch.cuda.get_device_name()
    threads = torch.get_num_threads()
    how = "one thread per run" if jobs > 1 else f"{threads} thread{'s' * (threads > 1)}"
    return f"{device} ({machine}), {how}"


def one_thread_processes(jobs: int) -> ProcessPoolExecutor:
    """A pool of `jobs` fresh processes of one thread each, so that runs in parallel share the
    cores without fighting over them (spawned: nothing of this process's state is copied).

    A worker ends when the process that started it ends, however that ended: a killed command
    leaves no orphan training on, holding the cores."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(jobs, context, initializer=_one_thread_worker)


def _one_thread_worker() -> None:
    """Start a pool worker: one thread, the trainer's allocator settings (`keep_freed_memory`),
    and a watch that ends the worker when its parent is gone."""
    torch.set_num_threads(1)
    keep_freed_memory()  # without it, testing a run pays a page fault per 4 KB of activations
    parent = multiprocessing.parent_process()  # its sentinel closes when the parent dies

    def end_with_parent() -> None:
        parent.join()
        os._exit(1)  # no clean-up to run: the parent that would read the result is gone

    threading.Thread(target=end_with_parent, daemon=True).start()


def default_num_workers(cores: int | None = None) -> int:
    """DataLoader worker processes for `cores` CPU cores (default: this process's): none on 1-2
    cores, where decoding in the main process is fastest (workers would take cores from the
    model), else half the cores, at most 8."""
    cores = available_cores() if cores is None else cores
    return 0 if cores <= 2 else min(8, cores // 2)


# --------------------------------------------------------------------------------------------
# Precision.
# --------------------------------------------------------------------------------------------


def cpu_supports_bf16() -> bool:
    """True when this CPU computes in bfloat16 natively (x86 AVX512-BF16 or AMX, Arm BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no cheap way to ask, stay with float32
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16", "bf16"))


def supports_bf16(device: torch.device) -> bool:
    """True when `device` computes in bfloat16 natively, so bf16 autocast is faster there."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_supports_bf16()
    return False  # MPS: bf16 support depends on the macOS version; float32 is the safe choice


def autocast(device: str | torch.device, precision: str):
    """The context under which forward passes run: bf16 autocast, or nothing for fp32.

    Works on every device type (cpu, cuda, mps): the device of the tensors decides.
    """
    device = torch.device(device)
    if check_choice(precision, PRECISIONS, "precision") != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


# --------------------------------------------------------------------------------------------
# Random seeds.
# --------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global random generators (torch: every device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global generator is what we reseed
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: a function of (seed, epoch) only, so resumed epochs repeat."""
    return seed * 100_003 + epoch


# --------------------------------------------------------------------------------------------
# Memory allocator (a machine trick, kept here, off the reading path).
# --------------------------------------------------------------------------------------------

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the system.

    Why: a CPU training or evaluation step allocates and frees the same large activations again
    and again. By default glibc serves big blocks with fresh `mmap`s and hands freed memory back
    to the system, so every step pays a page fault for each 4 KB page it touches again. Raising
    the mmap threshold to 256 MB (above the activations of a test batch of 500 images: 65 MB for
    the tiny CNN) and the trim threshold to 2 GB keeps those pages in the process
    (`python -m mixer_edu.tools.bench --default-malloc` measures the difference). A glibc that
    refuses more than 32 MB gets 32 MB. Process-wide and harmless: the memory stays with the
    process until it exits.

    Returns False (and changes nothing) where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        threshold_set = any(
            libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(mb * 2**20)) for mb in (256, 32)
        )
        return bool(threshold_set and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1)))
    except (OSError, AttributeError, TypeError):
        return False


def prepare(device: torch.device) -> None:
    """Process-wide settings for computing on `device` (today: the CPU allocator)."""
    if device.type == "cpu":
        keep_freed_memory()
