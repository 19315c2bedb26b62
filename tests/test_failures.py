"""Expected failures end in one clear line; nothing is lost or half-written (docs/errors.md).

Every command is run as a student runs it (a new interpreter), and must exit with status 2,
print exactly one line starting with `error:` on stderr, and show no traceback.
"""

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mixer_edu import data
from mixer_edu import train as training
from mixer_edu.config import TrainConfig
from mixer_edu.support import checkpoint as ckpt
from mixer_edu.support import standin
from mixer_edu.support.errors import TrainingDivergedError, command_line
from mixer_edu.support.metrics import METRICS_NAME, keep_metrics_up_to, read_metrics

ROOT = Path(__file__).resolve().parent.parent
# A tiny run of the command line: the fast recipe's model, 64 images, one epoch.
TINY = ["--fast", "--train-images", "64", "--test-images", "32", "--batch-size", "32"]
TINY += ["--epochs", "1", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(data_root, tmp_path_factory):
    """A one-epoch run: its checkpoint.pt and snapshots/epoch_001.pt."""
    out = tmp_path_factory.mktemp("finished")
    config = TrainConfig(**_tiny_config())
    training.train(config, out=out, data_root=data_root, progress=False, num_workers=0)
    return out


def _tiny_config(**changes) -> dict:
    recipe = dict(
        model_name="mixer_cifar_tiny",
        dataset="standin",
        batch_size=32,
        train_images=64,
        test_images=32,
        epochs=1,
        model_overrides={"num_blocks": 2, "embed_dim": 32},
    )
    return {**recipe, **changes}


def run_command(module: str, *args, data_root, cwd=ROOT):
    """`python -m mixer_edu.<module> args` with the stand-in in `data_root`, offline."""
    env = {
        **os.environ,
        data.DATA_ENV: str(data_root),
        "PYTHONPATH": str(ROOT),
        # Any download fails at once (a closed local port), with or without internet.
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "no_proxy": "",
    }
    return subprocess.run(
        [sys.executable, "-m", f"mixer_edu.{module}", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def assert_one_error_line(result, *fragments) -> str:
    """Exit status 2, one `error:` line on stderr that holds every fragment, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------
# python -m mixer_edu.train
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("truncated", "is not a readable checkpoint ("),
        ("text", "is not a readable checkpoint"),
        ("snapshot", "holds only a model's weights (a snapshot"),
    ],
)
def test_resume_from_a_file_that_is_no_checkpoint_is_one_error_line(
    finished_run, data_root, tmp_path, content, fragment
):
    path = tmp_path / "checkpoint.pt"
    if content == "truncated":
        path.write_bytes((finished_run / "checkpoint.pt").read_bytes()[:5000])
    elif content == "text":
        path.write_text("hello, I am not a checkpoint\n")
    else:
        shutil.copy(ckpt.snapshot_path(finished_run, 1), path)
    result = run_command("train", *TINY, "--resume", "--out", tmp_path, data_root=data_root)
    assert_one_error_line(result, fragment, str(path))


def test_an_output_folder_that_is_a_file_or_not_writable_is_one_error_line(data_root, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = run_command("train", *TINY, "--out", a_file, data_root=data_root)
    assert_one_error_line(result, f"{a_file} is a file, not a folder")
    if Path("/sys").is_dir():  # Linux: nobody, not even root, may create a folder in /sys
        result = run_command("train", *TINY, "--out", "/sys/mixer-edu-test", data_root=data_root)
        assert_one_error_line(result, "cannot write into the output folder")


def test_a_data_root_that_is_a_file_is_one_error_line(data_root, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    args = ("train", *TINY, "--out", tmp_path / "run", "--data-root", a_file)
    result = run_command(*args, data_root=data_root)
    assert_one_error_line(result, f"the data folder {a_file} is a file")
    assert not (tmp_path / "run").exists()  # nothing written before the data is there


def test_missing_cifar10_is_one_short_error_line_with_both_ways_out(tmp_path):
    args = ["--dataset", "cifar10", "--train-images", "64", "--epochs", "1", "--workers", "0"]
    result = run_command("train", *args, "--out", tmp_path / "run", data_root=tmp_path)
    line = assert_one_error_line(result, "CIFAR-10 is not in", "--dataset standin")
    assert len(line) < 700 and "MIXER_EDU_DATA" in line


def test_missing_cifar10_raises_without_a_chained_traceback(tmp_path, monkeypatch):
    def offline(self):
        raise OSError("no internet here")

    monkeypatch.setattr(data.SafeCIFAR10, "download", offline)
    with pytest.raises(data.DatasetUnavailableError) as error:
        data.load_dataset("cifar10", root=tmp_path)
    # What a notebook shows: one exception, not the download's thirty frames before it.
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert "no internet here" in str(error.value)


def test_a_planted_pickle_in_the_data_folder_stops_training_and_runs_nothing(data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(standin.standin_root(data_root), standin.standin_root(root))
    folder = standin.standin_root(root) / standin.BASE_FOLDER
    marker = tmp_path / "marker"
    # Loading this file with pickle.load would run os.system("touch marker").
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    (folder / "data_batch_2").write_bytes(payload)
    manifest = json.loads((folder / standin.MANIFEST).read_text())
    manifest["md5"]["data_batch_2"] = standin.md5sum(folder / "data_batch_2")  # as an attacker
    (folder / standin.MANIFEST).write_text(json.dumps(manifest))
    result = run_command("train", *TINY, "--out", tmp_path / "run", data_root=root)
    assert_one_error_line(result, str(folder / "data_batch_2"), "os.system", "nothing in it")
    assert not marker.exists()
    # The payload is real: plain pickle calls whatever it names with the command (here `len`).
    harmless = payload.replace(b"cos\nsystem", b"cbuiltins\nlen")
    assert pickle.loads(harmless) == len(f"touch {marker}")


def test_a_diverging_run_stops_keeps_the_finite_checkpoint_and_exits_2(data_root, tmp_path):
    result = run_command("train", *TINY, "--lr", "1e6", "--out", tmp_path, data_root=data_root)
    assert_one_error_line(result, "training diverged in epoch 1", "--lr 0.001", "epoch 0")
    checkpoint = ckpt.load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(w).all() for w in checkpoint["model"].values())
    assert read_metrics(tmp_path) == []  # no line for the epoch that diverged


# --------------------------------------------------------------------------------------------
# The other commands.
# --------------------------------------------------------------------------------------------


def test_viz_of_a_truncated_file_is_one_error_line(finished_run, data_root, tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes((finished_run / "checkpoint.pt").read_bytes()[:5000])
    result = run_command("viz", path, "--out", tmp_path / "pictures", data_root=data_root)
    assert_one_error_line(result, f"{path} is not a readable checkpoint")


def test_viz_of_a_checkpoint_naming_os_system_is_refused(finished_run, data_root, tmp_path):
    state = ckpt.load_checkpoint(ckpt.snapshot_path(finished_run, 1))
    marker = tmp_path / "marker"
    state["model_config"]["block_layer"] = {"class": "os.system"}
    state["model_config"]["embed_dim"] = f"touch {marker}"
    path = ckpt.save_atomic(state, tmp_path / "crafted.pt")
    result = run_command("viz", path, "--out", tmp_path / "pictures", data_root=data_root)
    assert_one_error_line(result, "'os.system', which is not one of mixer_edu's layer classes")
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, args, fragment",
    [
        ("mlm", ["--fast", "--steps", "0"], "steps must be a positive int, got 0"),
        (
            "mlm",
            ["--fast", "--heads", "3", "--d-model", "64"],
            "num_heads=3 must divide d_model=64",
        ),
        ("tools.bench", ["--quick", "--calls", "0"], "--calls must be a positive int"),
        ("tools.bench", ["--quick", "--device", "banana"], "device must be one of"),
        ("support.standin", ["--root", "{a_file}"], "is inside {a_file}, which is a file"),
    ],
)
def test_other_commands_end_bad_input_in_one_error_line(tmp_path, module, args, fragment):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    args = [arg.format(a_file=a_file) for arg in args]
    result = run_command(module, *args, data_root=tmp_path)
    assert_one_error_line(result, fragment.format(a_file=a_file))


# --------------------------------------------------------------------------------------------
# In this process: the pieces behind the lines above.
# --------------------------------------------------------------------------------------------


def test_command_line_turns_expected_errors_into_status_2_and_keeps_bugs_visible(capsys):
    @command_line
    def main(argv):
        raise argv

    assert main(ValueError("bad\nvalue")) == 2
    assert capsys.readouterr().err == "error: bad value\n"  # one line, even for two
    assert main(FileNotFoundError("no such file")) == 2
    assert main(TrainingDivergedError("nan")) == 2
    assert main(KeyboardInterrupt()) == 130
    with pytest.raises(RuntimeError, match="a bug"):  # a bug keeps its traceback
        main(RuntimeError("a bug"))
    with pytest.raises(KeyError):
        main(KeyError("a bug"))


def test_a_loss_that_turns_nan_stops_the_run_and_the_last_checkpoint_stays(
    data_root, tmp_path, monkeypatch
):
    config = TrainConfig(**_tiny_config(epochs=2))
    options = dict(out=tmp_path, data_root=data_root, progress=False, num_workers=0)
    training.train(TrainConfig(**_tiny_config(epochs=1)), **options)
    saved = (tmp_path / "checkpoint.pt").read_bytes()
    real = torch.nn.functional.cross_entropy

    def nan_from_epoch_2(logits, targets, **kwargs):
        return real(logits, targets, **kwargs) * float("nan")

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", nan_from_epoch_2)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2: the training loss became nan at "
                       r"step 1 of 2.*--lr.*holds epoch 1, the last finite weights"):  # fmt: skip
        training.train(config, resume=True, **options)
    assert (tmp_path / "checkpoint.pt").read_bytes() == saved  # not overwritten
    assert not ckpt.snapshot_path(tmp_path, 2).exists()
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]


def test_metrics_cut_short_by_a_crash_are_repaired_on_resume(data_root, tmp_path):
    options = dict(out=tmp_path, data_root=data_root, progress=False, num_workers=0)
    training.train(TrainConfig(**_tiny_config(epochs=1)), **options)
    with open(tmp_path / METRICS_NAME, "a") as f:
        f.write('{"epoch": 2, "train_loss": 2.3')  # kill -9 in the middle of writing epoch 2
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]
    stale = tmp_path / ".checkpoint.pt.k2j4_x9q.tmp"  # and a temporary left by the same kill
    stale.write_bytes(b"partial")
    result = training.train(TrainConfig(**_tiny_config(epochs=2)), resume=True, **options)
    assert [r["epoch"] for r in result.history] == [1, 2]
    lines = (tmp_path / METRICS_NAME).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # every line whole again
    assert ckpt.load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2  # they agree
    assert not stale.exists()


def test_rewriting_the_metrics_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / METRICS_NAME
    path.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)))
    before = path.read_text()

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        keep_metrics_up_to(path, 1)
    assert path.read_text() == before and list(tmp_path.iterdir()) == [path]


def test_the_weights_are_checked_before_anything_is_saved(data_root, tmp_path, monkeypatch):
    """Even when every loss was finite, weights that became nan in the last step are not saved."""
    options = dict(out=tmp_path, data_root=data_root, progress=False, num_workers=0)
    real_step = torch.optim.AdamW.step

    def step_to_nan(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(np.nan)
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", step_to_nan)
    with pytest.raises(TrainingDivergedError, match="weights became inf or nan"):
        training.train(TrainConfig(**_tiny_config(batch_size=64)), **options)
    assert ckpt.load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 0


def test_an_interrupted_run_says_which_epoch_the_folder_holds_and_how_to_go_on(tmp_path, capsys):
    from types import SimpleNamespace

    from mixer_edu.support.run_files import StopMessages

    with pytest.raises(KeyboardInterrupt):
        with StopMessages(TrainConfig(), tmp_path, SimpleNamespace(is_main=True)) as stop:
            stop.epoch = 3
            raise KeyboardInterrupt
    printed = capsys.readouterr().out
    assert "Interrupted during epoch 3" in printed and "holds epoch 2" in printed
    assert "--resume" in printed

    with pytest.raises(TrainingDivergedError, match="diverged in epoch 4: the loss") as stopped:
        with StopMessages(TrainConfig(), tmp_path, SimpleNamespace(is_main=False)) as stop:
            stop.epoch = 4
            raise TrainingDivergedError("the loss became nan")
    assert stopped.value.__suppress_context__  # one message, not two chained tracebacks
    with StopMessages(TrainConfig(), tmp_path, SimpleNamespace(is_main=True)):
        pass  # a run that ends normally says nothing
    assert capsys.readouterr().out == ""
