import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mixer_edu.support import plan, runtime


def test_precision_auto_means_bf16_only_where_the_hardware_has_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)
    assert plan.resolve_precision("auto", cpu, 128) == "bf16"
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    assert plan.resolve_precision("auto", cpu, 128) == "fp32"
    assert plan.resolve_precision("bf16", cpu, 128) == "bf16"
    assert plan.resolve_precision("auto", "mps", 128) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'fp32', 'bf16'"):
        plan.resolve_precision("fp16", cpu, 128)


def test_evaluation_and_training_share_one_auto_precision_rule(monkeypatch):
    """The GPU rule: bf16 only from LARGE_GPU_BATCH up, for predict as for the trainer."""
    gpu = plan.DeviceDescription("cuda", "a GPU", bf16=True)
    small, large = plan.LARGE_GPU_BATCH - 1, plan.LARGE_GPU_BATCH
    assert plan.auto_precision(gpu, small) == "fp32"
    assert plan.auto_precision(gpu, large) == "bf16"
    for batch in (small, large):
        chosen = plan.plan_run(gpu, batch, precision="auto").precision
        assert chosen == plan.auto_precision(gpu, batch)
    monkeypatch.setattr(plan, "describe_device", lambda device: gpu)
    assert plan.resolve_precision("auto", "cpu", small) == "fp32"  # the GPU rule, not "bf16"


def test_autocast_runs_matmuls_in_bf16_only_when_asked():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with runtime.autocast(a.device, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with runtime.autocast(a.device, "fp32"):
        assert (a @ b).dtype == torch.float32
    with runtime.autocast("mps", "fp32"):  # fp32 touches no device: fine on any machine
        assert (a @ b).dtype == torch.float32


def test_devices_resolve_by_name_and_unknown_ones_are_rejected():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device(None) == runtime.default_device()
    with pytest.raises(ValueError, match="device must be one of 'cuda', 'mps', 'cpu'"):
        runtime.resolve_device("xla")


def test_seed_everything_repeats_every_global_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(()).item()  # noqa: NPY002

    runtime.seed_everything(5)
    first = draw()
    runtime.seed_everything(5)
    assert draw() == first
    runtime.seed_everything(6)
    assert draw() != first


def test_epoch_seeds_differ_between_epochs_and_runs():
    seeds = {runtime.epoch_seed(seed, epoch) for seed in range(3) for epoch in range(1, 50)}
    assert len(seeds) == 3 * 49


def test_keep_freed_memory_reports_whether_it_applied():
    assert isinstance(runtime.keep_freed_memory(), bool)


@pytest.mark.skipif(sys.platform == "win32", reason="signals and /proc: POSIX")
def test_pool_workers_end_when_the_command_that_started_them_is_killed(tmp_path):
    # A killed `python -m mixer_edu.tools.reference` once left its two workers training for half
    # an hour, holding both cores. SIGKILL: the parent gets no chance to clean up.
    script = tmp_path / "pool.py"
    script.write_text(
        "import os, time\n"
        "from mixer_edu.support.runtime import one_thread_processes\n"
        "if __name__ == '__main__':\n"
        "    pool = one_thread_processes(1)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 600)\n"
        "    time.sleep(600)\n"
    )
    command = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(command.stdout.readline())
        assert _alive(worker)
    finally:
        command.kill()
        command.wait()
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), f"worker {worker} still runs after its parent was killed"


def _alive(pid: int) -> bool:
    """Whether a process `pid` exists and is not a zombie (Linux, macOS)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())
