"""The machine side of one training run, set up before the lesson's code runs and put back after.

`train` enters `machine.prepared(...)` once and gets the processes (one, or torchrun's), the
device, the plan and a print function; everything process-wide that this sets (the lock on the
run folder, TF32, the compile cache) is undone when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from . import compiled_step, distributed
from .plan import RunPlan, describe_device, plan_run
from .run_lock import run_lock
from .runtime import prepare, resolve_device


class Machine(NamedTuple):
    """What a run runs on: its processes (`ranks`), `device`, `plan`, and `print_once`, which prints
    a line above the progress bars on the main process and nothing elsewhere."""

    ranks: distributed.Ranks
    device: torch.device
    plan: RunPlan
    print_once: Callable[[str], None]


@contextlib.contextmanager
def prepared(config, run, out: Path) -> Iterator[Machine]:
    """Set up the machine for `config` (a `TrainConfig`) and `run` (its `RunOptions`).

    - DDP: under torchrun, every process trains its share of each batch;
    - one live run per folder: a second run into `out` is refused, naming the first;
    - the plan (precision, data path, compile, workers) and its process-wide settings.
    """
    with (
        distributed.processes(resolve_device(run.device)) as (ranks, device),
        run_lock(out, enabled=ranks.is_main),
    ):
        plan = plan_run(describe_device(device), config.batch_size, config.augment, **run.plan())
        prepare(device)
        with compiled_step.run_settings(plan):  # TF32, compile cache
            print_once = tqdm.write if run.progress and ranks.is_main else (lambda message: None)
            yield Machine(ranks, device, plan, print_once)
