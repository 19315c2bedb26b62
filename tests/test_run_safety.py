"""What a classroom does to a run: two runs in one folder, a full disk, a changed recipe on
resume, checkpoints from another version, and folders named as students name them."""

import errno
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from mixer_edu import train as training
from mixer_edu.config import RECIPES, TrainConfig
from mixer_edu.models import load_model
from mixer_edu.support import checkpoint as ckpt
from mixer_edu.support import disk
from mixer_edu.support.disk import DiskFullError
from mixer_edu.support.metrics import METRICS_NAME, read_metrics
from mixer_edu.support.run_lock import LOCK_NAME, RunFolderBusyError, run_lock
from tests.test_failures import ROOT, TINY, _tiny_config, assert_one_error_line, run_command

QUIET = dict(progress=False, num_workers=0)


def options(data_root, out, **more):
    return dict(out=out, data_root=data_root, **QUIET, **more)


def weights(out: Path) -> dict:
    return ckpt.load_checkpoint(out / ckpt.CHECKPOINT_NAME)["model"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- Two runs, one folder --------------------------------------------------------------------


def _hold_the_lock(out, ready):
    with run_lock(out):
        ready.send("locked")
        signal.pause()  # until the test kills this process


def test_a_second_run_into_a_live_runs_folder_is_refused_and_a_killed_run_blocks_nothing(
    data_root, tmp_path
):
    out = tmp_path / "run"
    ready, child_end = multiprocessing.get_context("fork").Pipe()
    other = multiprocessing.get_context("fork").Process(
        target=_hold_the_lock, args=(out, child_end)
    )
    other.start()
    try:
        assert ready.poll(30) and ready.recv() == "locked"
        config = TrainConfig(**_tiny_config())
        with pytest.raises(RunFolderBusyError, match=rf"in use by another training run \(process "
                           rf"{other.pid} on host .*, started .*, command: "):  # fmt: skip
            training.train(config, **options(data_root, out))
        assert os.listdir(out) == [LOCK_NAME]  # the refused run wrote nothing
        result = run_command("train", *TINY, "--out", out, data_root=data_root)
        assert_one_error_line(result, "is in use by another training run", f"process {other.pid}")
    finally:
        os.kill(other.pid, signal.SIGKILL)  # no clean-up: the kernel drops the lock
        other.join()
    training.train(TrainConfig(**_tiny_config()), **options(data_root, out))
    assert ckpt.load_checkpoint(out / ckpt.CHECKPOINT_NAME)["epoch"] == 1


def test_a_run_that_stops_before_writing_leaves_no_folder_and_no_lock(data_root, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    out = tmp_path / "new"
    with pytest.raises(ValueError, match="is a file"):
        training.train(TrainConfig(**_tiny_config()), **options(a_file, out))
    assert not out.exists()


# --- Full disk or quota ------------------------------------------------------------------------


def _fast_config(**changes) -> TrainConfig:
    """The recipe of the command line TINY (`--fast` with its changes)."""
    tiny = dict(train_images=64, test_images=32, batch_size=32, epochs=1)
    return TrainConfig(**{**RECIPES["fast"], **tiny, **changes})


def _limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_checkpoint_that_does_not_fit_keeps_the_last_one_and_resume_continues(
    data_root, tmp_path
):
    reference = tmp_path / "reference"
    training.train(_fast_config(), **options(data_root, reference))
    full_size = (reference / ckpt.CHECKPOINT_NAME).stat().st_size  # epoch 1: with AdamW's state
    out = tmp_path / "run"
    env = {**os.environ, "MIXER_EDU_DATA": str(data_root), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mixer_edu.train", *TINY, "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
        preexec_fn=_limit_file_size(full_size * 3 // 4),
    )  # fmt: skip
    line = assert_one_error_line(result, "could not write the checkpoint of epoch 1", "--resume")
    assert disk.size_text(full_size) in line and "file-size limit" in line
    assert ckpt.load_checkpoint(out / ckpt.CHECKPOINT_NAME)["epoch"] == 0  # the last one, whole
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    resumed = training.train(_fast_config(), **options(data_root, out, resume=True))
    assert [r["epoch"] for r in resumed.history] == [1]  # the orphan line of epoch 1 is gone
    assert same_weights(weights(out), weights(reference))


def test_a_metrics_line_that_does_not_fit_leaves_no_half_line(data_root, tmp_path, monkeypatch):
    real_write_all = disk._write_all
    calls = []

    def full_at_the_third_write(fd, data):  # snapshot 0, checkpoint 0, then the metrics line
        calls.append(len(data))
        if len(calls) == 3:
            os.write(fd, data[:7])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write_all(fd, data)

    monkeypatch.setattr(disk, "_write_all", full_at_the_third_write)
    out = tmp_path / "run"
    with pytest.raises(DiskFullError, match=r"could not write the metrics line of epoch 1 \(.*"
                       r"metrics.jsonl, \d+ bytes\) because of a full disk.*--resume"):  # fmt: skip
        training.train(TrainConfig(**_tiny_config()), **options(data_root, out))
    assert (out / METRICS_NAME).read_bytes() == b""
    assert ckpt.load_checkpoint(out / ckpt.CHECKPOINT_NAME)["epoch"] == 0
    monkeypatch.undo()
    result = training.train(TrainConfig(**_tiny_config()), **options(data_root, out, resume=True))
    assert [r["epoch"] for r in result.history] == [1]


def test_the_background_writer_writes_in_order_and_raises_a_failed_write_at_the_next_save(
    tmp_path, monkeypatch
):
    """EpochWriter: metrics line, snapshot, checkpoint, one epoch at a time; the copies it
    writes are taken when `save` is called, and a failed write surfaces at the next `save`."""
    from mixer_edu.support.run_files import EpochWriter

    config = TrainConfig(**_tiny_config())
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = training.warmup_cosine(optimizer, 1, 10)
    plan = type("Plan", (), {"precision": "fp32", "data_path": "loader",
                             "device": torch.device("cpu")})()  # fmt: skip
    state = dict(config=config, model=model, optimizer=optimizer, scheduler=scheduler, plan=plan)
    order = []
    real_write_atomic = disk.write_atomic

    def noting_write_atomic(data, path, what):
        order.append(what)
        if what == "the checkpoint of epoch 2":
            raise DiskFullError(errno.ENOSPC, "could not write the checkpoint of epoch 2")
        return real_write_atomic(data, path, what)

    monkeypatch.setattr(disk, "write_atomic", noting_write_atomic)
    with pytest.raises(DiskFullError, match="epoch 2"), EpochWriter(tmp_path) as writer:
        writer.save(1, {"epoch": 1}, **state)
        with torch.no_grad():
            model.weight.fill_(7.0)  # after save: the queued copy keeps the old weights
        writer.save(2, {"epoch": 2}, **state)
        writer.save(3, {"epoch": 3}, **state)  # raises epoch 2's error; epoch 3 is not written
    assert order == ["the snapshot of epoch 1", "the checkpoint of epoch 1",
                     "the snapshot of epoch 2", "the checkpoint of epoch 2"]  # fmt: skip
    saved = ckpt.load_checkpoint(tmp_path / ckpt.CHECKPOINT_NAME)
    assert saved["epoch"] == 1 and not torch.equal(saved["model"]["weight"], model.weight)
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]  # a resume drops line 2


# --- Changed recipe on resume --------------------------------------------------------------------


def _rewrite_checkpoint(out: Path, **changes) -> None:
    path = out / ckpt.CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    torch.save(state, path)


def test_resuming_with_another_recipe_names_every_differing_field_with_both_values(
    data_root, tmp_path
):
    training.train(TrainConfig(**_tiny_config()), **options(data_root, tmp_path))
    changed = TrainConfig(**_tiny_config(lr=0.002, batch_size=16, seed=3))
    with pytest.raises(ValueError) as refused:
        training.train(changed, **options(data_root, tmp_path, resume=True))
    message = str(refused.value)
    for part in ("lr: checkpoint 0.001, asked 0.002", "batch_size: checkpoint 32, asked 16",
                 "seed: checkpoint 0, asked 3", "Only epochs may change"):  # fmt: skip
        assert part in message, message


def test_resuming_with_more_epochs_another_precision_or_device_continues_and_says_so(
    data_root, tmp_path, capsys
):
    training.train(TrainConfig(**_tiny_config()), **options(data_root, tmp_path, precision="fp32"))
    _rewrite_checkpoint(tmp_path, precision="bf16", device="cuda")  # as if trained on a lab GPU
    capsys.readouterr()
    run = options(data_root, tmp_path, resume=True, precision="fp32") | {"progress": True}
    result = training.train(TrainConfig(**_tiny_config(epochs=2)), **run)
    said = capsys.readouterr().out
    assert "epochs changed from 1 to 2" in said
    assert "trained in bf16 and continues in fp32" in said and "bit for bit" in said
    assert "trained on cuda and continues on cpu" in said
    assert [r["epoch"] for r in result.history] == [1, 2]


# --- Checkpoints across versions --------------------------------------------------------------


def test_a_checkpoint_records_the_package_version_and_format(data_root, tmp_path):
    training.train(TrainConfig(**_tiny_config()), **options(data_root, tmp_path))
    for path in (tmp_path / ckpt.CHECKPOINT_NAME, ckpt.snapshot_path(tmp_path, 1)):
        saved = ckpt.load_checkpoint(path)
        assert saved["format"] == ckpt.FORMAT
        assert saved["mixer_edu_version"] == ckpt.package_version()


@pytest.mark.parametrize(
    "changes, fragment",
    [
        (dict(format=ckpt.FORMAT + 1, mixer_edu_version="9.0"), "written by mixer_edu 9.0 "
         f"(checkpoint format {ckpt.FORMAT + 1}), a newer layout than this mixer_edu "),
        (dict(model_config=None, mixer_edu_version="9.0"), "written by mixer_edu 9.0 (checkpoint "
         "format 1), which this mixer_edu"),
        (dict(train_config="new-field", mixer_edu_version="9.0"), "whose recipe has settings "
         "this mixer_edu"),
    ],
)  # fmt: skip
def test_a_checkpoint_this_version_cannot_read_names_both_versions(
    data_root, tmp_path, changes, fragment
):
    training.train(TrainConfig(**_tiny_config()), **options(data_root, tmp_path))
    if changes.get("train_config") == "new-field":
        saved = torch.load(tmp_path / ckpt.CHECKPOINT_NAME, weights_only=True)["train_config"]
        changes["train_config"] = {**saved, "ema_decay": 0.999}
    _rewrite_checkpoint(tmp_path, **changes)
    with pytest.raises(ckpt.CheckpointVersionError) as refused:
        training.train(TrainConfig(**_tiny_config()), **options(data_root, tmp_path, resume=True))
    assert fragment in str(refused.value) and ckpt.package_version() in str(refused.value)


def test_a_checkpoint_from_before_the_version_fields_still_loads_and_resumes(data_root, tmp_path):
    training.train(TrainConfig(**_tiny_config()), **options(data_root, tmp_path))
    _rewrite_checkpoint(tmp_path, format=None, mixer_edu_version=None, device=None)
    model, saved = load_model(tmp_path / ckpt.CHECKPOINT_NAME)
    assert "format" not in saved and saved["epoch"] == 1
    result = training.train(
        TrainConfig(**_tiny_config(epochs=2)), **options(data_root, tmp_path, resume=True)
    )
    assert [r["epoch"] for r in result.history] == [1, 2]


# --- Paths as students have them ---------------------------------------------------------------


def _listing(folder: Path) -> list:
    """Every path under `folder` with its size and modification time: any write changes it."""
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_folders_with_spaces_and_accents_work_in_train_and_on_the_command_line(data_root, tmp_path):
    data = tmp_path / "données du cours"
    shutil.copytree(data_root, data)
    untouched = _listing(data)
    training.train(TrainConfig(**_tiny_config()), **options(data, tmp_path / "mes runs" / "été 1"))
    assert read_metrics(tmp_path / "mes runs" / "été 1")[0]["epoch"] == 1
    assert _listing(data) == untouched  # a data folder that holds the data is only read
    out = tmp_path / "Übungen mit Leerzeichen" / "run ø"
    result = run_command("train", *TINY, "--out", out, "--data-root", data, data_root=data_root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ckpt.load_checkpoint(out / ckpt.CHECKPOINT_NAME)["epoch"] == 1


READ_ONLY_SCRIPT = """
import os, sys
from mixer_edu import train
data, empty, out = sys.argv[1:4]
tiny = ["--fast", "--train-images", "64", "--test-images", "32", "--batch-size", "32",
        "--epochs", "1", "--workers", "0", "--no-progress"]
print("read-only data:", train.main([*tiny, "--data-root", data, "--out", out + "/a"]))
print("unwritable empty data:", train.main([*tiny, "--data-root", empty, "--out", out + "/b"]))
print("unwritable out:", train.main([*tiny, "--data-root", data, "--out", data + "/run"]))
"""


def _as_a_student():
    """Drop root's rights (root ignores file permissions) to those of `nobody`."""
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)


# As root, mount the folders read-only in a private mount namespace (root ignores chmod, not a
# read-only mount, which is also how a classroom server shares its course data); exit 97 where
# this sandbox does not allow it.
MOUNT_READ_ONLY = (
    'while [ "$1" != -- ]; do mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" '
    '|| exit 97; shift; done; shift; exec "$@"'
)


def _run_read_only(command: list[str], read_only: list[Path], **kwargs):
    """Run `command` with the folders `read_only` not writable for it, however the tests run.

    Not root: chmod (done by the caller) is enough. Root: a read-only mount if the sandbox
    allows it, else the command as user `nobody`; None where neither can be done here.
    """
    if os.geteuid() != 0:
        return subprocess.run(command, **kwargs)
    if shutil.which("unshare"):
        mounted = ["unshare", "-m", "sh", "-c", MOUNT_READ_ONLY, "sh", *map(str, read_only), "--"]
        result = subprocess.run([*mounted, *command], **kwargs)
        if result.returncode != 97:
            return result
    try:
        result = subprocess.run(command, preexec_fn=_as_a_student, **kwargs)
    except PermissionError:  # root's Python (e.g. under /root) is not nobody's
        return None
    if "ModuleNotFoundError" in result.stderr or "PermissionError: [Errno 13]" in result.stderr:
        return None  # nobody cannot read this checkout
    return result


def test_a_read_only_data_folder_with_the_data_works_and_unwritable_folders_get_one_line(
    data_root,
):
    """Real permissions: chmod, or as root a read-only mount (root ignores chmod)."""
    base = Path(tempfile.mkdtemp(prefix="mixer-edu-ro-"))
    try:
        data, empty, out = base / "lesen nur", base / "leer", base / "out"
        shutil.copytree(data_root, data)
        empty.mkdir()
        out.mkdir()
        for folder, _, files in os.walk(base):
            os.chmod(folder, 0o777 if Path(folder) == out else 0o555)
            for name in files:
                os.chmod(Path(folder) / name, 0o444)
        before = sorted(p.relative_to(data) for p in data.rglob("*"))
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
        result = _run_read_only(
            [sys.executable, "-c", READ_ONLY_SCRIPT, str(data), str(empty), str(out)],
            [data, empty],
            capture_output=True, text=True, env=env, timeout=300, cwd=base,
        )  # fmt: skip
        if result is None:
            pytest.skip("running as root without mount namespaces, and user nobody cannot run "
                        "this Python or read this checkout")  # fmt: skip
        assert "read-only data: 0" in result.stdout, result.stdout + result.stderr
        assert "unwritable empty data: 2" in result.stdout and "unwritable out: 2" in result.stdout
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 2 and "Traceback" not in result.stderr, result.stderr
        assert f"cannot write the synthetic stand-in into the data folder {empty}" in errors[0]
        assert f"cannot write into the output folder (out, --out) {data}/run" in errors[1]
        assert sorted(p.relative_to(data) for p in data.rglob("*")) == before  # nothing written
    finally:
        for folder, _, _ in os.walk(base):
            os.chmod(folder, 0o755)
        shutil.rmtree(base)
