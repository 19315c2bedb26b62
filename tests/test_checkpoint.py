import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mixer_edu import create_model, model_config
from mixer_edu.config import TrainConfig
from mixer_edu.mixer import MixerBlock
from mixer_edu.models import decode_config, load_model
from mixer_edu.support import checkpoint as ckpt

from .helpers import randomize_


def _checkpoint(model_name="mixer_cifar_tiny", **overrides):
    model = randomize_(create_model(model_name, **overrides))
    return model, {
        "model_name": model_name,
        "model_config": ckpt.encode_config(model_config(model_name, **overrides)),
        "model": ckpt.model_state(model),
        "epoch": 3,
        "dataset": "standin",
        "classes": ["a"] * 10,
    }


def test_load_model_rebuilds_the_same_model_in_eval_mode(tmp_path):
    model, state = _checkpoint(drop_path_rate=0.1)
    path = ckpt.save_atomic(state, tmp_path / "run" / "checkpoint.pt")
    loaded, checkpoint = load_model(path)
    assert not loaded.training and checkpoint["epoch"] == 3
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model.eval()(images))
    assert load_model(tmp_path / "run")[1]["epoch"] == 3  # a run folder works too


def test_interrupted_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = ckpt.save_atomic({"epoch": 1}, tmp_path / "checkpoint.pt")
    before = path.read_bytes()

    def interrupted_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_atomic({"epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_truncated_or_foreign_files_give_clear_errors(tmp_path):
    _, state = _checkpoint()
    path = ckpt.save_atomic(state, tmp_path / "checkpoint.pt")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable checkpoint.*truncated"):
        ckpt.load_checkpoint(path)
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a mixer_edu checkpoint: it has no model_name"):
        ckpt.load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="python -m mixer_edu.train"):
        ckpt.load_checkpoint(tmp_path / "nothing.pt")


def test_weights_of_another_configuration_give_a_clear_error_not_a_size_dump():
    _, state = _checkpoint(embed_dim=32)
    model = create_model("mixer_cifar_tiny")  # embed_dim 64
    with pytest.raises(ValueError, match=r"another configuration.*another shape.*load_model"):
        ckpt.load_weights(model, state["model"])
    with pytest.raises(ValueError, match=r"holds a mixer_cifar_tiny.*embed_dim: checkpoint 32"):
        ckpt.check_same_model(state, "mixer_cifar_tiny", model_config("mixer_cifar_tiny"), "x")
    ckpt.check_same_model(
        state, "mixer_cifar_tiny", model_config("mixer_cifar_tiny", embed_dim=32), "x"
    )


def test_classes_in_the_config_are_stored_by_name_and_resolved_from_the_allow_list():
    config = {"embed_dim": 8, "block_layer": MixerBlock, "act_layer": torch.nn.GELU}
    encoded = ckpt.encode_config(config)
    assert encoded["block_layer"] == {"class": "mixer_edu.mixer.MixerBlock"}
    assert decode_config(encoded) == config


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "builtins.eval",
        "mixer_edu.support.checkpoint.save_atomic",  # a function in mixer_edu is not a layer either
        "mixer_edu.support.checkpoint.os",  # nor a module that mixer_edu imports
        "torch.nn.modules.module.Module",  # not defined in an allowed module
    ],
)
def test_a_crafted_checkpoint_naming_any_other_callable_is_refused_before_a_call(
    tmp_path, monkeypatch, name
):
    _, state = _checkpoint()
    state["model_config"]["block_layer"] = {"class": name}
    path = ckpt.save_atomic(state, tmp_path / "checkpoint.pt")
    called = []
    monkeypatch.setattr("os.system", lambda *args: called.append(args))
    monkeypatch.setattr("builtins.eval", lambda *args: called.append(args))
    monkeypatch.setattr(ckpt, "save_atomic", lambda *args: called.append(args))
    with pytest.raises(ValueError, match="not one of mixer_edu's layer classes"):
        load_model(path)
    assert not called


def test_a_snapshot_is_a_model_but_not_a_checkpoint_to_resume(tmp_path):
    _, state = _checkpoint()
    path = ckpt.save_atomic(state, tmp_path / "snapshots" / "epoch_003.pt")
    assert load_model(path)[1]["epoch"] == 3
    with pytest.raises(ValueError, match="snapshot.*cannot continue"):
        ckpt.load_resumable(path, TrainConfig.field_names())


def _die_during_save(path):
    """In a child process: `save_atomic(path)` killed (as by kill -9) just before its rename."""
    code = (
        "import os, sys, torch\n"
        "from mixer_edu.support import checkpoint as ckpt\n"
        "os.replace = lambda *args: os._exit(9)  # no except, no finally: as kill -9\n"
        "ckpt.save_atomic({'weights': torch.zeros(3)}, sys.argv[1])\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code, str(path)], env=env, timeout=120)
    assert result.returncode == 9


def test_temporaries_of_a_killed_save_are_removed_and_nothing_else(tmp_path):
    _die_during_save(tmp_path / "checkpoint.pt")
    _die_during_save(tmp_path / "snapshots" / "epoch_002.pt")
    left = sorted(p.name for p in tmp_path.rglob("*.tmp"))
    assert len(left) == 2 and all(ckpt.TEMPORARY_NAME.match(name) for name in left)
    others = [
        tmp_path / ".notes.tmp",
        tmp_path / "checkpoint.pt.tmp",
        tmp_path / "my.checkpoint.pt.abcd1234.tmp",
        tmp_path / "other" / ".checkpoint.pt.abcd1234.tmp",  # not the run folder
    ]
    for path in others:
        path.parent.mkdir(exist_ok=True)
        path.write_text("not ours")
    removed = ckpt.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == left
    assert (
        not list((tmp_path / "snapshots").iterdir()) and not (tmp_path / "checkpoint.pt").exists()
    )
    assert all(path.read_text() == "not ours" for path in others)


def test_model_state_strips_the_torch_compile_prefix():
    model = create_model("mixer_cifar_tiny")
    wrapper = torch.nn.Module()
    wrapper._orig_mod = model  # what torch.compile's OptimizedModule looks like
    assert ckpt.model_state(wrapper).keys() == model.state_dict().keys()


def test_random_generator_states_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)  # noqa: NPY002
    ckpt.save_atomic({"rng": ckpt.rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())  # noqa: NPY002
    torch.rand(10), random.random(), np.random.rand()  # noqa: NPY002 - move all generators on
    state = torch.load(tmp_path / "rng.pt", weights_only=True)["rng"]
    ckpt.set_rng_state(state)
    again = (torch.rand(3), random.random(), np.random.rand())  # noqa: NPY002
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


def test_snapshot_paths_sort_by_epoch(tmp_path):
    for epoch in (10, 2, 0):
        ckpt.save_atomic({"epoch": epoch}, ckpt.snapshot_path(tmp_path, epoch))
    assert [p.name for p in ckpt.list_snapshots(tmp_path)] == [
        "epoch_000.pt",
        "epoch_002.pt",
        "epoch_010.pt",
    ]
