import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixer_edu import data
from mixer_edu import train as training
from mixer_edu.config import config_from_command_line
from mixer_edu.device_data import DeviceLoader
from mixer_edu.models import load_model
from mixer_edu.support import compiled_step, distributed
from mixer_edu.support.metrics import read_metrics

ROOT = Path(__file__).resolve().parent.parent


def test_the_ranks_parts_of_a_device_batch_make_up_the_single_process_batch():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(48) % 10
    for batch_augment in ("none", "cutmix"):
        loader = DeviceLoader(images, labels, 16, batch_augment=batch_augment)
        whole = list(loader.epoch(seed=7))
        parts = [list(loader.epoch(seed=7, rank=r, world_size=2)) for r in range(2)]
        assert len(parts[0]) == len(whole) == 3
        for number, (x, y) in enumerate(whole):
            assert torch.equal(torch.cat([p[number][0] for p in parts]), x)
            assert torch.equal(torch.cat([p[number][1] for p in parts]), y)
    with pytest.raises(ValueError, match="multiple of the process count"):
        loader.epoch(seed=0, rank=0, world_size=3)


def test_rank_batches_split_every_global_batch_of_one_shuffle():
    ranks = [distributed.Ranks(rank, 2) for rank in range(2)]
    samplers = [distributed.RankBatches(50, 8, r) for r in ranks]
    for sampler in samplers:
        sampler.set_seed(3)
    first, second = (list(s) for s in samplers)
    assert len(first) == len(second) == 6 and all(len(b) == 4 for b in first + second)
    seen = [i for a, b in zip(first, second, strict=True) for i in a + b]
    assert len(set(seen)) == 48 and seen != sorted(seen)  # shuffled, no image twice
    samplers[0].set_seed(4)
    assert list(samplers[0]) != first


def test_a_global_batch_that_does_not_split_evenly_is_an_error_naming_the_fix():
    with pytest.raises(ValueError, match="choose a multiple of 3"):
        distributed.local_batch_size(32, distributed.Ranks(0, 3))
    assert distributed.local_batch_size(32, distributed.Ranks(1, 4)) == 8
    assert distributed.rank_seed(5, distributed.Ranks(0, 2)) == 5  # rank 0 = one process


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_torchrun_with_two_cpu_processes_trains_like_one_process_on_the_same_global_batch(
    compiled, data_root, tmp_path
):
    """2 processes on gloo, each 16 of the 32 images per step, against 1 process on all 32.

    Not bit for bit: DDP averages the two halves' gradients, so the sums run in another order
    (float rounding, about 1e-6 here after 16 steps); DropPath is off, whose masks are drawn per
    rank. CutMix and crop-flip are on: the device path mixes the whole global batch on every rank.
    `compiled`: the two processes run the compiled step (`mixer_edu.support.compiled_step`; graphs
    captured with aot_eager, as in tests/test_compiled_step.py), the one process the eager step.
    """
    if compiled and torch.__version__ < "2.7":
        # On torch 2.6 (the floor) this run once never finished within 240 s in a fresh clone's CI,
        # where it had passed in about 20 s the run before: a hang not yet understood, left open
        # in the GPU and floor issue rather than hidden behind a longer time limit.
        pytest.skip("torch < 2.7: two compiled DDP processes hung once here (not yet understood)")
    args = ["--model", "mixer_cifar_tiny", "--batch-size", "32", "--train-images", "256"]
    args += ["--test-images", "64", "--epochs", "2", "--batch-augment", "cutmix", "--seed", "2"]
    args += ["--precision", "fp32", "--device", "cpu", "--dataset", "standin"]
    args += ["--compile"] if compiled else []
    env = {**os.environ, data.DATA_ENV: str(data_root), "OMP_NUM_THREADS": "1"}
    env[compiled_step.BACKEND_ENV] = "aot_eager"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "mixer_edu.train", *args]
    ran = subprocess.run(
        [*command, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=240,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    # Only rank 0 printed and wrote: one start line, one line per epoch, one set of files.
    assert ran.stdout.count("Training mixer_cifar_tiny") == 1, ran.stdout
    assert "2 processes (gloo), 16 images each per step" in ran.stdout
    assert ("under DistributedDataParallel the model is compiled" in ran.stdout) == compiled
    assert ran.stdout.count("Wrote ") == 1 and ran.stdout.count("epoch   2/2 | train") == 1
    written = sorted(  # (the hidden .run.lock is the folder's lock, empty once the run ends)
        p.relative_to(tmp_path / "two").as_posix()
        for p in (tmp_path / "two").rglob("*")
        if not p.name.startswith(".")
    )
    snapshots = [f"snapshots/epoch_00{e}.pt" for e in range(3)]
    assert written == ["checkpoint.pt", "metrics.jsonl", "snapshots", *snapshots]

    config = config_from_command_line(
        {"model_name": "mixer_cifar_tiny", "batch_size": 32, "train_images": 256,
         "test_images": 64, "epochs": 2, "batch_augment": "cutmix", "seed": 2,
         "dataset": "standin"},
        {},
    )  # fmt: skip
    one = training.train(
        config, out=tmp_path / "one", precision="fp32", device="cpu", data_root=data_root,
        progress=False,
    )  # fmt: skip
    two, saved = load_model(tmp_path / "two")
    assert saved["epoch"] == 2
    for name, tensor in one.model.state_dict().items():
        torch.testing.assert_close(two.state_dict()[name], tensor, rtol=0, atol=1e-4)
    two_history = read_metrics(tmp_path / "two")
    for mine, theirs in zip(one.history, two_history, strict=True):
        assert theirs["train_loss"] == pytest.approx(mine["train_loss"], rel=1e-4)
        assert theirs["test_loss"] == pytest.approx(mine["test_loss"], rel=1e-4)
