import random

import numpy as np
import pytest
import torch

from mixer_edu.support import runtime


def test_precision_auto_means_bf16_only_where_the_hardware_has_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu) == "fp32"
    assert runtime.resolve_precision("bf16", cpu) == "bf16"
    assert runtime.resolve_precision("auto", "mps") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'fp32', 'bf16'"):
        runtime.resolve_precision("fp16", cpu)


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
