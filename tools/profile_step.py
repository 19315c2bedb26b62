"""Where one training step's time goes: the trainer's loop profiled on the device, op by op.

    python tools/profile_step.py                  # the classroom recipe's model and batch, CUDA
    python tools/profile_step.py --eager          # the plain step, without the compiled step
    python tools/profile_step.py --steps 100 --rows 30

It builds what `python -m mixer_edu.train` builds for the classroom recipe (mixer_cifar_small,
batch 128, crop-flip on the device, the plan's compiled step), times its first steps (the
compile, or the compile cache's load), then runs `--steps` more steps of `train_one_epoch` under
`torch.profiler` and prints the wall time per step and the ops that take the most time on the
CPU and on the device. Random images, so no data set is needed. For a GPU machine (see
tools/gpu_check.py); on a CPU it works too.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from mixer_edu.device_data import DeviceLoader
from mixer_edu.models import create_model
from mixer_edu.support import compiled_step
from mixer_edu.support.plan import describe_device, plan_run
from mixer_edu.support.runtime import resolve_device
from mixer_edu.tools.bench_core import sync
from mixer_edu.train import (
    clip_and_update,
    forward_loss,
    parameter_groups,
    train_one_epoch,
    warmup_cosine,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--eager", action="store_true", help="the plain step, no compiled step")
    args = parser.parse_args()

    device = resolve_device(args.device)
    batch = 128
    plan = plan_run(describe_device(device), batch, "crop-flip", compile=not args.eager)
    print(plan.summary())
    model = create_model("mixer_cifar_small").to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.05), lr=1e-3)
    scheduler = warmup_cosine(optimizer, 10, 10**6)
    images = torch.randint(0, 256, (batch * (args.steps + 20), 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (len(images),))
    loader = DeviceLoader(images, labels, batch, device=device, augment="crop-flip")

    with compiled_step.run_settings(plan):
        compiled = None
        if plan.compile_mode:
            mode = plan.compile_mode
            compiled = compiled_step.build(forward_loss, clip_and_update, model, optimizer, mode)
        options = dict(
            precision=plan.precision, label_smoothing=0.1, clip_grad=1.0, compiled=compiled
        )

        def steps(count: int, seed: int) -> float:
            subset = [b for _, b in zip(range(count), loader.epoch(seed=seed), strict=False)]
            sync(device)
            start = time.perf_counter()
            train_one_epoch(model, subset, optimizer, scheduler, device, **options)
            sync(device)
            return time.perf_counter() - start

        print(f"first 3 steps (compile or cache load): {steps(3, 0):.1f} s")
        print(f"next 17 steps: {steps(17, 1) / 17 * 1e3:.2f} ms a step")
        activities = [ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        with profile(activities=activities) as profiler:
            seconds = steps(args.steps, 2)
        print(f"{args.steps} profiled steps: {seconds / args.steps * 1e3:.2f} ms a step "
              f"({batch * args.steps / seconds:,.0f} img/s, profiler on)")  # fmt: skip
        table = profiler.key_averages()
        print(table.table(sort_by="self_cpu_time_total", row_limit=args.rows))
        if device.type == "cuda":
            print(table.table(sort_by="self_cuda_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
