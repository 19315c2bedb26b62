import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixer_edu import checkpoint as ckpt
from mixer_edu import data
from mixer_edu import train as training

ROOT = Path(__file__).resolve().parent.parent
# A very small Mixer and a slice of the stand-in: each run takes a second or two.
SMALL = dict(
    model_name="mixer_cifar_tiny",
    dataset="standin",
    batch_size=32,
    train_images=256,
    test_images=64,
    model_overrides={"num_blocks": 2, "embed_dim": 32},
    progress=False,
)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "shared-data"  # shared with test_data.py
    data.write_standin(root)
    return root


@pytest.fixture(scope="module")
def short_run(data_root, tmp_path_factory):
    """600 steps of a two-block Mixer on 3,200 stand-in images (about 10 s on 2 cores).

    A Mixer starts on a plateau (zero-initialised head) for a few hundred steps whose length
    depends on the seed; 600 steps get past it with every seed we tried.
    """
    out = tmp_path_factory.mktemp("short-run")
    return training.train(
        "mixer_cifar_tiny",
        "standin",
        epochs=6,
        out=out,
        batch_size=32,
        warmup_epochs=0.3,
        augment="none",
        train_images=3200,
        test_images=500,
        model_overrides={"num_blocks": 2, "embed_dim": 32},
        data_root=data_root,
        progress=False,
    )


def test_learning_rate_warms_up_linearly_then_follows_a_cosine_to_zero():
    factors = [training.lr_factor(step, warmup_steps=4, total_steps=12) for step in range(12)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors == sorted(factors[:4]) + sorted(factors[4:], reverse=True)
    assert factors[8] == pytest.approx(0.5)  # halfway through the cosine
    assert training.lr_factor(12, 4, 12) == pytest.approx(0.0)


def test_short_run_on_the_standin_lowers_the_loss_and_beats_chance(short_run):
    history = short_run.history
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.3
    assert history[-1]["test_loss"] < math.log(10) - 0.3  # an untrained model scores log(10)
    assert history[-1]["test_acc"] > 0.25  # chance is 0.10


def test_run_writes_checkpoint_metrics_and_snapshots_as_the_contract_says(short_run):
    out = short_run.out
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 6
    for key in ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]:
        assert all(isinstance(r[key], (int, float)) for r in records)
    assert {r["dataset"] for r in records} == {"synthetic stand-in"}
    assert {r["model"] for r in records} == {"mixer_cifar_tiny"}
    assert all(r["images_per_sec"] > 0 for r in records)
    snapshots = [p.name for p in ckpt.list_snapshots(out)]
    assert snapshots == [f"epoch_{epoch:03d}.pt" for epoch in range(7)]
    initial, state = ckpt.load_model(out / "snapshots" / "epoch_000.pt")
    assert state["epoch"] == 0 and torch.count_nonzero(initial.head.weight) == 0  # untrained
    model, state = ckpt.load_model(out / "checkpoint.pt")
    assert state["epoch"] == 6 and state["dataset"] == "standin"
    assert state["classes"] == list(data.dataset_classes("standin"))
    for key in ("optimizer", "scheduler", "rng", "train_config"):
        assert key in state
    for name, tensor in model.state_dict().items():  # the checkpoint holds the trained weights
        assert torch.equal(tensor, short_run.model.state_dict()[name])


def test_evaluate_counts_correct_predictions(short_run, data_root):
    _, test_loader = data.make_loaders(
        "standin", 100, root=data_root, train_images=100, test_images=500
    )
    logits, labels = training.predict(short_run.model, test_loader)
    assert logits.shape == (500, 10) and labels.shape == (500,)
    stats = training.evaluate(short_run.model, test_loader)
    assert stats["acc"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert stats["acc"] == pytest.approx(short_run.final["test_acc"])


class _InterruptAfter:
    """A loader that raises KeyboardInterrupt (as Ctrl-C does) after `n` batches."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.n:
                raise KeyboardInterrupt
            yield batch


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_interrupted_then_resumed_run_ends_with_the_same_weights(
    precision, data_root, tmp_path, monkeypatch
):
    # CutMix, DropPath and crop-flip all draw random numbers: resume must repeat them exactly.
    recipe = dict(SMALL, mixing="cutmix", drop_path_rate=0.1, precision=precision, seed=3)
    recipe.update(epochs=3, data_root=data_root)
    straight = training.train(out=tmp_path / "straight", **recipe)

    real_epoch = training.train_one_epoch
    calls = []

    def interrupted_in_epoch_2(model, loader, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            loader = _InterruptAfter(loader, 3)  # 3 optimiser steps into epoch 2, then Ctrl-C
        return real_epoch(model, loader, *args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", interrupted_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        training.train(out=tmp_path / "resumed", **recipe)
    monkeypatch.setattr(training, "train_one_epoch", real_epoch)
    _, left = ckpt.load_model(tmp_path / "resumed")  # Ctrl-C left a usable checkpoint
    assert left["epoch"] == 1

    resumed = training.train(out=tmp_path / "resumed", resume=True, **recipe)
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[-1]["test_acc"] == straight.history[-1]["test_acc"]


def test_resuming_with_another_model_gives_a_clear_error(data_root, tmp_path):
    training.train(out=tmp_path, epochs=1, data_root=data_root, **SMALL)
    other = dict(SMALL, model_overrides={"num_blocks": 3, "embed_dim": 32})
    with pytest.raises(ValueError, match=r"num_blocks: checkpoint 2, asked 3"):
        training.train(out=tmp_path, epochs=2, data_root=data_root, resume=True, **other)
    with pytest.raises(ValueError, match=r"another recipe \(lr: checkpoint 0.001, asked 0.002"):
        training.train(out=tmp_path, epochs=2, data_root=data_root, resume=True, **SMALL, lr=2e-3)


def test_an_existing_run_is_kept_unless_resume_or_overwrite_is_asked_for(data_root, tmp_path):
    training.train(out=tmp_path, epochs=1, data_root=data_root, **SMALL)
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
        training.train(out=tmp_path, epochs=1, data_root=data_root, **SMALL)
    finished = training.train(out=tmp_path, epochs=1, data_root=data_root, resume=True, **SMALL)
    assert len(finished.history) == 1  # already finished: loaded, not trained again
    again = training.train(out=tmp_path, epochs=1, data_root=data_root, overwrite=True, **SMALL)
    assert len(again.history) == 1


def test_precision_auto_means_bf16_only_where_the_hardware_has_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: True)
    assert training.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: False)
    assert training.resolve_precision("auto", cpu) == "fp32"
    assert training.resolve_precision("bf16", cpu) == "bf16"
    assert training.resolve_precision("auto", torch.device("mps")) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        training.resolve_precision("fp16", cpu)


def test_weight_decay_skips_biases_and_norms():
    model = training.create_model("mixer_cifar_tiny")
    decay, no_decay = training.parameter_groups(model, 0.05)
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.05
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_fast_recipe_uses_the_standin():
    assert training.recipe(fast=True)["dataset"] == "standin"
    assert training.recipe("cifar10")["model_name"] == "mixer_cifar_small"
    with pytest.raises(ValueError, match="no recipe"):
        training.recipe("imagenet")


def _cli(*args, data_root):
    env = {**os.environ, data.DATA_ENV: str(data_root)}
    return subprocess.run(
        [sys.executable, "-m", "mixer_edu.train", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def test_command_line_trains_resumes_and_says_where_it_wrote(
    data_root, tmp_path, monkeypatch, capsys
):
    common = ["--dataset", "standin", "--model", "mixer_cifar_tiny", "--batch-size", "32"]
    common += ["--train-images", "128", "--test-images", "64", "--seed", "1"]
    first = _cli(*common, "--epochs", "1", "--out", str(tmp_path), data_root=data_root)
    assert first.returncode == 0, first.stderr
    assert str(tmp_path / "checkpoint.pt") in first.stdout
    assert "synthetic stand-in" in first.stdout
    # The rest in this process (the same main(), without another interpreter start-up).
    monkeypatch.setenv(data.DATA_ENV, str(data_root))
    assert training.main(["--resume", "--epochs", "2", "--out", str(tmp_path)]) == 0
    assert "Resuming" in capsys.readouterr().out
    assert [r["epoch"] for r in training.read_metrics(tmp_path)] == [1, 2]
    assert training.main([*common, "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
