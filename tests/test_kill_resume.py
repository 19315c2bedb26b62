"""Killed at any moment: a run SIGKILLed again and again, resumed each time, ends exactly like
an uninterrupted one, with one metrics line per epoch.

The training runs in a forked child (no new interpreter to start: a kill every ~0.1 s stays
cheap), the test kills it after a delay drawn from a seeded generator, and resumes. The delays
spread the kills over loading, training, evaluating and the three writes of each epoch. A run
that gets further than `MOST_EPOCHS` epochs is killed there, whatever its delay: the delays come
from a rough timing, and a machine that speeds up after it would otherwise let the run finish
after a few kills.
"""

import multiprocessing
import os
import random
import signal
import threading
import time

import torch

from mixer_edu import train as training
from mixer_edu.config import TrainConfig
from mixer_edu.support import checkpoint as ckpt
from mixer_edu.support.metrics import METRICS_NAME, read_metrics

KILLS = 25
MIN_KILLS = 10
# A killed run writes at most this many epochs' snapshots (one more may slip in before the kill
# lands): the 60 epochs take more than MIN_KILLS kills on any machine.
MOST_EPOCHS = 2
# Runs that must finish get this long: far more than they need (seconds), so that a machine
# slowed down by other work does not turn them into kills.
UNHURRIED = 900
# Many short epochs: 2 steps of 16 images each, a model of one block.
CONFIG = dict(
    model_name="mixer_cifar_tiny",
    dataset="standin",
    batch_size=16,
    train_images=32,
    test_images=16,
    epochs=60,
    warmup_epochs=0.5,
    model_overrides={"num_blocks": 1, "embed_dim": 16},
)


def _train(out, data_root, resume):
    try:
        # tqdm guards its bars with a lock shared between processes, inherited over fork from
        # this test's process: a sibling killed while holding it would block this child for
        # ever (seen in CI as a test that never ended). The child takes a lock of its own.
        training.tqdm.set_lock(threading.RLock())
        torch.set_num_threads(1)
        training.train(
            TrainConfig(**CONFIG), out=out, data_root=data_root, resume=resume,
            progress=False, num_workers=0, precision="fp32",
        )  # fmt: skip
    except BaseException:  # noqa: BLE001 - any failure shows as the exit status
        os._exit(1)
    os._exit(0)  # never run pytest's clean-up in the child


def _run_until(out, data_root, resume, delay, most_epochs=None):
    """Train in a child; kill it after `delay` s, or once it has written `most_epochs` new
    snapshots (None: no such limit). True if it was killed, False if it finished."""
    child = multiprocessing.get_context("fork").Process(
        target=_train, args=(out, data_root, resume)
    )
    snapshots = len(ckpt.list_snapshots(out))
    child.start()
    if most_epochs is None:
        child.join(delay)
    else:
        end = time.perf_counter() + delay
        while child.exitcode is None and time.perf_counter() < end:
            if len(ckpt.list_snapshots(out)) >= snapshots + most_epochs:
                break
            child.join(0.002)  # a look every 2 ms: an epoch takes tens of them
    if child.exitcode is None:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    assert child.exitcode in (0, -signal.SIGKILL), f"the run failed: exit {child.exitcode}"
    return child.exitcode == -signal.SIGKILL


def _epochs_done(out) -> int:
    """How many epochs the run in `out` has saved (0 before its first checkpoint)."""
    done = out / ckpt.CHECKPOINT_NAME
    return ckpt.load_checkpoint(done)["epoch"] if done.exists() else 0


def _timed(function, *args, **kwargs) -> float:
    begin = time.perf_counter()
    assert not function(*args, **kwargs)  # finished, not killed
    return time.perf_counter() - begin


def test_a_run_killed_at_random_moments_ends_bit_identical_to_an_uninterrupted_one(
    data_root, tmp_path
):
    reference = tmp_path / "reference"
    whole = _timed(_run_until, reference, data_root, resume=False, delay=UNHURRIED)
    start = _timed(_run_until, reference, data_root, resume=True, delay=UNHURRIED)  # loads
    epoch = max(whole - start, 0.01) / CONFIG["epochs"]
    out = tmp_path / "killed"
    # Kill times in units of this machine's speed: after the start-up, anywhere in the next two
    # epochs (so about one epoch per kill: the run cannot finish first). Seeded: the same kills
    # on every run of the test.
    draws = random.Random(24)
    kills, moments = 0, []
    while kills < KILLS and _epochs_done(out) < CONFIG["epochs"]:
        moments.append(draws.uniform(0.5 * start, start + 2 * epoch))
        kills += _run_until(out, data_root, resume=True, delay=moments[-1], most_epochs=MOST_EPOCHS)
    # The epochs last milliseconds, so the timing above is rough; MOST_EPOCHS keeps a run that is
    # faster than timed from finishing after too few kills. Fewer than MIN_KILLS would test too
    # little.
    assert kills >= MIN_KILLS, f"the run finished after only {kills} kills, at {moments}"
    assert not _run_until(out, data_root, resume=True, delay=UNHURRIED)  # to the end

    final, expected = (ckpt.load_checkpoint(p / ckpt.CHECKPOINT_NAME) for p in (out, reference))
    assert final["epoch"] == CONFIG["epochs"]
    for key in expected["model"]:
        assert torch.equal(final["model"][key], expected["model"][key]), key
    lines = (out / METRICS_NAME).read_text().splitlines()
    assert len(lines) == CONFIG["epochs"]
    records, reference_records = read_metrics(out), read_metrics(reference)
    assert [r["epoch"] for r in records] == list(range(1, CONFIG["epochs"] + 1))
    for record, same in zip(records, reference_records, strict=True):
        assert (record["train_loss"], record["test_loss"]) == (
            same["train_loss"],
            same["test_loss"],
        )
    assert len(ckpt.list_snapshots(out)) == CONFIG["epochs"] + 1
    assert not [p for p in out.rglob("*.tmp")]
