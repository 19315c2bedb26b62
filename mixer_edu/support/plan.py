"""How a training run executes on this machine: precision, data path, step mode, loader workers.

None of these choices changes what a run learns (bf16 rounds differently, and the two data paths
draw other, equally distributed crops); they decide how fast it goes. `plan_run` makes them from
the run options (`'auto'` where the user did not choose) and a description of the device, by the
rules in its docstring, and the trainer prints them at the start of a run (`RunPlan.summary`).

The rules come from measurements (`python -m mixer_edu.tools.bench`), cited with the machine
they were made on. A rule is a default, never a restriction: every choice can be made by hand
(`precision=`, `data_path=`, `compile=`, `num_workers=`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .runtime import PRECISIONS, available_cores, cpu_name, default_num_workers, supports_bf16
from .validation import check_choice, check_positive_int

# The augmentations the device data path makes a whole batch at a time (`mixer_edu.device_data`);
# the others (RandAugment, AutoAugment) work image by image, in DataLoader workers.
DEVICE_AUGMENTATIONS = ("none", "crop-flip")

DATA_PATHS = ("auto", "device", "per-image")
COMPILE_CHOICES = ("auto", True, False)
# From this batch size up, a GPU step is bound by arithmetic rather than by kernel launches
# (see plan_run): bf16 pays off, CUDA graphs no longer do.
LARGE_GPU_BATCH = 512
# An automatic compile is kept for runs of at least this many training steps. On one H200 at the
# classroom batch (2026-12-04, tools/profile_step.py and the classroom run) the compile took 70 s
# on a fresh machine and 12 s from the cache, and saved about 11 ms a step (4.2 ms compiled
# against 15-17 ms eager): it pays back after about 6,400 steps cold and 1,100 from the cache.
MIN_COMPILED_STEPS = 4000


@dataclass(frozen=True)
class DeviceDescription:
    """What the rules need to know about a device (tests pass made-up ones)."""

    type: str  # 'cpu', 'cuda' or 'mps'
    name: str  # e.g. 'NVIDIA H200' or 'AMD EPYC', for the printed summary
    bf16: bool  # computes in bfloat16 natively (see mixer_edu.support.runtime.supports_bf16)
    cores: int = 1  # CPU cores this process may use (for loader workers)


def describe_device(device: torch.device) -> DeviceDescription:
    """The `DeviceDescription` of a real device on this machine."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        name = cpu_name()
    else:
        name = "Apple GPU"
    return DeviceDescription(device.type, name, supports_bf16(device), available_cores())


@dataclass(frozen=True)
class RunPlan:
    """The choices `plan_run` made."""

    device: DeviceDescription
    precision: str  # 'fp32' or 'bf16'
    data_path: str  # 'device' (mixer_edu.device_data) or 'per-image' (mixer_edu.data)
    step: str  # 'eager', 'compile' or 'cuda-graphs' (torch.compile, mode="reduce-overhead")
    workers: int  # DataLoader worker processes (0 on the device path: there is no DataLoader)
    tf32: bool = False  # float32 matmuls on TF32 tensor cores (mixer_edu.support.compiled_step)
    why: str = ""  # the reason for the step mode, when the plan chose it
    auto_compile: bool = False  # compiled because compile was 'auto' (see `for_steps`)

    @property
    def compile_mode(self) -> str | None:
        """The `mode` for `torch.compile`, or None when steps run eagerly."""
        return {"eager": None, "compile": "default", "cuda-graphs": "reduce-overhead"}[self.step]

    def for_steps(self, steps: int) -> RunPlan:
        """This plan for a run of `steps` training steps: a compile the plan chose by itself
        is dropped when the run is too short to pay it back (`MIN_COMPILED_STEPS`)."""
        if not self.auto_compile or steps >= MIN_COMPILED_STEPS:
            return self
        why = (
            f"auto: {steps:,} steps are too few to pay back a compile, which pays from about "
            f"{MIN_COMPILED_STEPS:,}"
        )
        return replace(self, step="eager", why=why, auto_compile=False)

    def summary(self) -> str:
        """One line for the start of a run."""
        data = {
            "device": "on the device, augmented a batch at a time",
            "per-image": f"per-image torchvision loader, {self.workers} worker processes",
        }[self.data_path]
        step = {
            "eager": "eager steps",
            "compile": "compiled steps (forward+backward, clipping+AdamW)",
            "cuda-graphs": "compiled steps (forward+backward, clipping+AdamW) replayed as CUDA "
            "graphs",
        }[self.step]
        why = f" ({self.why})" if self.why else ""
        precision = f"{self.precision} with TF32 matmuls" if self.tf32 else self.precision
        return f"{self.device.type} ({self.device.name}): {precision}, data {data}, {step}{why}"


def auto_precision(device: DeviceDescription, batch_size: int) -> str:
    """The one `'auto'` precision rule (see the table in `plan_run`): bf16 where the device
    computes in it natively, except on a GPU at batches below `LARGE_GPU_BATCH`."""
    small_gpu_batch = device.type == "cuda" and batch_size < LARGE_GPU_BATCH
    return "bf16" if device.bf16 and not small_gpu_batch else "fp32"


def resolve_precision(precision: str, device, batch_size: int) -> str:
    """`precision` itself, or for `'auto'` what `auto_precision` picks on `device` and batch."""
    check_choice(precision, PRECISIONS, "precision")
    if precision != "auto":
        return precision
    return auto_precision(describe_device(torch.device(device)), batch_size)


def plan_run(
    device: DeviceDescription,
    batch_size: int,
    augment: str = "crop-flip",
    *,
    precision: str = "auto",
    data_path: str = "auto",
    compile: bool | str = "auto",
    num_workers: int | None = None,
) -> RunPlan:
    """Choose precision, data path, step mode and workers for training on `device`.

    Choices the caller made (anything but `'auto'` / None) are kept; the rest follow this table:

        choice     device  when                          ->  why (measured)
        precision  cpu     bf16 units (AVX512-BF16,      ->  bf16: training steps 2.1-2.9x fp32
                           AMX, Arm BF16)                    (bench, 2-core AVX512-BF16 and AMX)
                   cpu     no bf16 units                 ->  fp32: bf16 is emulated, slower
                   cuda    batch >= LARGE_GPU_BATCH      ->  bf16: 65,500 img/s at batch 1024 (1)
                   cuda    smaller batches               ->  fp32: 9,500 img/s vs 7,200 bf16 at
                                                             batch 128, launch-bound (1)
                   mps     always                        ->  fp32 (bf16 depends on macOS)
        compile    cuda    'auto', >= MIN_COMPILED_STEPS ->  compile: after a 25 s compile the
                           steps (`RunPlan.for_steps`)       classroom epoch trained in 2.7-3.3 s
                                                             instead of 5.7-6.8 s (2): 30 epochs
                                                             pay the compile back
                   cuda    'auto', shorter runs          ->  eager: the compile would cost more
                                                             than it saves
                   cpu/mps 'auto'                        ->  eager: the CPU default stays the
                                                             plain step (not measured compiled)
        step       cuda    compiled, small batch         ->  CUDA graphs: one launch replays the
                                                             step's hundreds of kernels (1)
                   any     compiled otherwise            ->  torch.compile, default mode
                   any     not compiled                  ->  eager
        TF32       cuda    precision 'auto' gave fp32    ->  TF32 matmuls (NVIDIA's datasheet:
                                                             494 TF32 against 67 fp32 TFLOP/s on
                                                             an H100/H200 SXM); an explicit
                                                             precision='fp32' keeps full fp32
        data path  any     augment 'none'/'crop-flip'    ->  'device': a per-image loader with 8
                                                             processes caps a compiled batch-1024
                                                             run at 13,000 img/s (1)
                   any     RandAugment / AutoAugment     ->  'per-image' (torchvision, per image)
        workers    any     'device' path                 ->  0 (no DataLoader)
                   any     'per-image' path              ->  `default_num_workers()`: 0 on 1-2
                                                             cores, else half of them, at most 8

    (1) Measured with `bench` on one NVIDIA H200 (torch 2.11, CUDA 13), 2026-11, not repeated
    here. The break-even batch between 128 and 1024 was not measured; LARGE_GPU_BATCH = 512 lies
    between. (2) The classroom recipe on one NVIDIA H200 (torch 2.11; the model alone compiled,
    CUDA graphs), 2026-12-04, logs in the project's GPU-run notes: 7.4k-8.7k img/s eager,
    15k-18.5k compiled after a 25 s first epoch.
    """
    check_choice(device.type, ("cpu", "cuda", "mps"), "device type")
    check_positive_int(batch_size, "batch_size")
    check_choice(precision, PRECISIONS, "precision")
    check_choice(data_path, DATA_PATHS, "data_path")
    check_choice(compile, COMPILE_CHOICES, "compile")
    small_gpu_batch = device.type == "cuda" and batch_size < LARGE_GPU_BATCH

    tf32 = device.type == "cuda" and precision == "auto"
    if precision == "auto":
        precision = auto_precision(device, batch_size)
    why = ""
    auto_compile = compile == "auto" and device.type == "cuda"
    if compile == "auto":
        compile = auto_compile
        if compile:
            why = "auto: a long GPU run pays the compile back; compiled code is cached"
    if not compile:
        step = "eager"
    else:
        step = "cuda-graphs" if small_gpu_batch else "compile"
    if data_path == "auto":
        data_path = "device" if augment in DEVICE_AUGMENTATIONS else "per-image"
    elif data_path == "device" and augment not in DEVICE_AUGMENTATIONS:
        raise ValueError(
            f"augment={augment!r} works image by image and cannot run on the device path; use "
            "data_path='per-image' (--data-path per-image) or 'auto'."
        )
    if data_path == "device":
        workers = 0
    else:
        workers = default_num_workers(device.cores) if num_workers is None else num_workers
    tf32 = tf32 and precision == "fp32"
    return RunPlan(device, precision, data_path, step, workers, tf32, why, auto_compile)
