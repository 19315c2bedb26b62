import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixer_edu import data
from mixer_edu import train as training
from mixer_edu.config import TrainConfig, recipe
from mixer_edu.evaluation import evaluate, predict
from mixer_edu.models import load_model
from mixer_edu.support import checkpoint as ckpt
from mixer_edu.support.metrics import read_metrics

ROOT = Path(__file__).resolve().parent.parent


def small(**changes) -> TrainConfig:
    """A very small Mixer and a slice of the stand-in: each run takes a second or two."""
    recipe = dict(
        model_name="mixer_cifar_tiny",
        dataset="standin",
        batch_size=32,
        train_images=256,
        test_images=64,
        model_overrides={"num_blocks": 2, "embed_dim": 32},
    )
    return TrainConfig(**{**recipe, **changes})


@pytest.fixture(scope="module")
def short_run(data_root, tmp_path_factory):
    """600 steps of a two-block Mixer on 3,200 stand-in images (about 10 s on 2 cores).

    A Mixer starts on a plateau (zero-initialised head) for a few hundred steps whose length
    depends on the seed; 600 steps get past it with every seed we tried.
    """
    config = small(epochs=6, warmup_epochs=0.3, augment="none", train_images=3200, test_images=500)
    out = tmp_path_factory.mktemp("short-run")
    return training.train(config, out=out, data_root=data_root, progress=False)


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
    assert all(r["images_per_second"] > 0 for r in records)
    snapshots = [p.name for p in ckpt.list_snapshots(out)]
    assert snapshots == [f"epoch_{epoch:03d}.pt" for epoch in range(7)]
    initial, state = load_model(out / "snapshots" / "epoch_000.pt")
    assert state["epoch"] == 0 and torch.count_nonzero(initial.head.weight) == 0  # untrained
    # Loaded onto the trained model's device (a GPU where there is one): compared there.
    device = next(short_run.model.parameters()).device
    model, state = load_model(out / "checkpoint.pt", device=device)
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
    logits, labels = predict(short_run.model, test_loader)
    assert logits.shape == (500, 10) and labels.shape == (500,)
    stats = evaluate(short_run.model, test_loader)
    correct = (logits.argmax(1) == labels).sum().item()
    assert stats["acc"] * 500 == pytest.approx(correct)  # the same predictions, counted
    # The run measured the same images through its own data path, in its own precision (bf16 on
    # a GPU): only an image whose top two logits nearly tie may come out differently there.
    recorded = round(short_run.final["test_acc"] * 500)
    assert short_run.final["test_acc"] * 500 == pytest.approx(recorded)  # a count of images
    top2 = logits.topk(2, dim=1).values
    near_ties = (top2[:, 0] - top2[:, 1] < 0.05).sum().item()
    assert abs(recorded - correct) <= near_ties


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


@pytest.fixture
def deterministic_on_gpu():
    """On a GPU, deterministic kernels for bit-identical reruns: cuBLAS with a fixed workspace
    (CUBLAS_WORKSPACE_CONFIG, set in conftest.py before CUDA starts) and
    `torch.use_deterministic_algorithms` (warn_only: an op without a deterministic kernel warns
    instead of failing; the Mixer's ops have one). On the CPU the kernels are deterministic."""
    if not torch.cuda.is_available():
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(before)


def _interrupted_and_straight(config, tmp_path, monkeypatch, **options):
    """An uninterrupted run, and one stopped by Ctrl-C 3 steps into epoch 2, then resumed."""
    straight = training.train(config, out=tmp_path / "straight", **options)
    real_epoch = training.train_one_epoch
    calls = []

    def interrupted_in_epoch_2(model, loader, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            loader = _InterruptAfter(loader, 3)  # 3 optimiser steps into epoch 2, then Ctrl-C
        return real_epoch(model, loader, *args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", interrupted_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        training.train(config, out=tmp_path / "resumed", **options)
    monkeypatch.setattr(training, "train_one_epoch", real_epoch)
    _, left = load_model(tmp_path / "resumed")  # Ctrl-C left a usable checkpoint
    assert left["epoch"] == 1
    resumed = training.train(config, out=tmp_path / "resumed", resume=True, **options)
    return straight, resumed


def _assert_same_run(straight, resumed):
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[-1]["test_acc"] == straight.history[-1]["test_acc"]


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_interrupted_then_resumed_run_ends_with_the_same_weights(
    precision, data_root, tmp_path, monkeypatch, deterministic_on_gpu
):
    # CutMix, DropPath and crop-flip all draw random numbers: resume must repeat them exactly.
    # The default device (a GPU where there is one) and data path (the data on the device).
    config = small(batch_augment="cutmix", drop_path_rate=0.1, seed=3, epochs=3)
    options = dict(precision=precision, data_root=data_root, progress=False)
    _assert_same_run(*_interrupted_and_straight(config, tmp_path, monkeypatch, **options))


def test_resume_is_exact_with_two_loader_workers_on_the_per_image_path(
    data_root, tmp_path, monkeypatch, deterministic_on_gpu
):
    # Each epoch starts new workers seeded from that epoch's seed, so the resumed epoch 2 gets
    # the workers (and crops) the uninterrupted run's epoch 2 got.
    config = small(batch_augment="cutmix", seed=4, epochs=3, train_images=128, test_images=32)
    options = dict(data_path="per-image", num_workers=2, data_root=data_root, progress=False)
    straight, resumed = _interrupted_and_straight(config, tmp_path, monkeypatch, **options)
    assert straight.history[0]["data_path"] == "per-image"
    _assert_same_run(straight, resumed)


def test_resuming_with_another_model_gives_a_clear_error(data_root, tmp_path):
    options = dict(out=tmp_path, data_root=data_root, progress=False)
    training.train(small(epochs=1), **options)
    other = small(epochs=2, model_overrides={"num_blocks": 3, "embed_dim": 32})
    with pytest.raises(ValueError, match=r"num_blocks: checkpoint 2, asked 3"):
        training.train(other, resume=True, **options)
    with pytest.raises(ValueError, match=r"another recipe \(lr: checkpoint 0.001, asked 0.002"):
        training.train(small(epochs=2, lr=2e-3), resume=True, **options)


def test_an_existing_run_is_kept_unless_resume_or_overwrite_is_asked_for(data_root, tmp_path):
    options = dict(out=tmp_path, data_root=data_root, progress=False)
    training.train(small(epochs=1), **options)
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
        training.train(small(epochs=1), **options)
    finished = training.train(small(epochs=1), resume=True, **options)
    assert len(finished.history) == 1  # already finished: loaded, not trained again
    again = training.train(small(epochs=1), overwrite=True, **options)
    assert len(again.history) == 1


def test_recipe_fields_given_as_run_options_are_a_type_error_naming_the_fix(tmp_path):
    with pytest.raises(TypeError, match=r"epochs: part of the recipe.*TrainConfig\(epochs="):
        training.train(small(), out=tmp_path, epochs=2)


def test_fast_recipe_uses_the_standin():
    assert recipe(fast=True).dataset == "standin"
    assert recipe("cifar10") == TrainConfig()  # the defaults are the CIFAR-10 recipe
    assert recipe("standin", epochs=2).epochs == 2
    with pytest.raises(ValueError, match="dataset must be one of 'cifar10', 'standin'"):
        recipe("imagenet")


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
    # A metrics line whose checkpoint was never written (a crash in between) is dropped.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "test_acc": -1.0}) + "\n")
    # The rest in this process (the same main(), without another interpreter start-up).
    monkeypatch.setenv(data.DATA_ENV, str(data_root))
    assert training.main(["--resume", "--epochs", "2", "--out", str(tmp_path)]) == 0
    assert "Resuming" in capsys.readouterr().out
    records = read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["test_acc"] >= 0
    assert training.main([*common, "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert training.main([*common, "--clip-grad", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "error: clip_grad must be >= 0, got -1.0" in capsys.readouterr().err


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_evaluate_takes_batches_from_anywhere_to_the_models_device_and_answers_on_the_cpu(
    device,
):
    from mixer_edu.device_data import DeviceLoader
    from mixer_edu.models import create_model

    model = create_model("mixer_cifar_tiny", num_blocks=1, embed_dim=16).to(device)
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    results = []
    for where in dict.fromkeys(["cpu", device]):  # batches made on the CPU, and on the device
        loader = DeviceLoader(images, labels, 8, device=where, train=False)
        logits, seen = predict(model, loader, precision="fp32")
        assert logits.device.type == seen.device.type == "cpu" and torch.equal(seen, labels)
        results.append(evaluate(model, loader, precision="fp32"))
    # Normalising on the GPU may round the last bit differently from the CPU: close, not equal.
    assert results[-1] == pytest.approx(results[0], rel=1e-4)
