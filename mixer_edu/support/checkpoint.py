"""Checkpoints: save training state so that nothing is lost, and read it back safely.

A checkpoint is a `torch.save`d dict (`REQUIRED_KEYS`, plus the optimiser, scheduler, random
states and recipe in `checkpoint.pt`), written atomically, versioned (`FORMAT`) and loaded with
`weights_only=True`. This module knows nothing of the course's models: rebuilding one from a
checkpoint, with layer classes only through an allow-list, is `mixer_edu.models.load_model`.
The file layout and why each rule exists: docs/training.md, "Checkpoints".
"""

from __future__ import annotations

import importlib.metadata
import io
import random
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import disk
from .errors import MixerEduError

CHECKPOINT_NAME = "checkpoint.pt"
SNAPSHOT_DIR = "snapshots"
REQUIRED_KEYS = ("model_name", "model_config", "model", "epoch", "dataset", "classes")
RESUME_KEYS = ("optimizer", "scheduler", "rng", "train_config")  # only in DIR/checkpoint.pt
# The temporary files `save_atomic` writes: `.checkpoint.pt.k2j4_x9q.tmp` (mkstemp's 8 letters).
TEMPORARY_NAME = re.compile(r"^\.(checkpoint\.pt|epoch_\d+\.pt|metrics\.jsonl)\.[a-z0-9_]{8}\.tmp$")


class CheckpointVersionError(MixerEduError, ValueError):
    """A checkpoint written by a mixer_edu version whose files this version cannot read."""


def snapshot_path(out: str | Path, epoch: int) -> Path:
    """`out/snapshots/epoch_NNN.pt`: the model weights after `epoch` epochs (0: initial)."""
    return Path(out) / SNAPSHOT_DIR / f"epoch_{epoch:03d}.pt"


def list_snapshots(out: str | Path) -> list[Path]:
    """The snapshot files of a training run, in epoch order."""
    return sorted((Path(out) / SNAPSHOT_DIR).glob("epoch_*.pt"))


# --------------------------------------------------------------------------------------------
# Writing and reading files.
# --------------------------------------------------------------------------------------------


def save_atomic(obj: dict, path: str | Path, what: str = "a checkpoint") -> Path:
    """`torch.save(obj, path)` through a temporary file and a rename, so `path` is never partial.

    The dict is stamped with `FORMAT` and the package version, and serialized in memory first,
    so a full disk is reported with the size needed (`mixer_edu.support.disk.DiskFullError`).

    Args:
        obj: the checkpoint dict.
        path: where it goes.
        what: what to call the file in a disk-full message.
    """
    buffer = io.BytesIO()
    torch.save({**obj, **version_stamp()}, buffer)
    return disk.write_atomic(buffer.getvalue(), path, what)


# --------------------------------------------------------------------------------------------
# Versions: what wrote a checkpoint, and whether this version can read it.
# --------------------------------------------------------------------------------------------

# The layout of the dict described in the module docstring. Raise it when a change means that
# an older mixer_edu could not use the file; files without the field are format 1.
FORMAT = 1


def package_version() -> str:
    try:
        return importlib.metadata.version("mixer-edu")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def version_stamp() -> dict:
    """`{"format": FORMAT, "mixer_edu_version": "0.1.0"}`: stored in every file we write."""
    return {"format": FORMAT, "mixer_edu_version": package_version()}


def _written_by(checkpoint: dict) -> str:
    return (
        f"mixer_edu {checkpoint.get('mixer_edu_version', 'before 0.1.0')} (checkpoint format "
        f"{checkpoint.get('format', 1)})"
    )


def check_format(checkpoint: dict, path: Path) -> None:
    """Refuse, naming both versions, a checkpoint from a newer mixer_edu than this one."""
    written = checkpoint.get("format", 1)
    if not isinstance(written, int) or written > FORMAT:
        raise CheckpointVersionError(
            f"{path} was written by {_written_by(checkpoint)}, a newer layout than this "
            f"mixer_edu {package_version()} reads (formats up to {FORMAT}). Upgrade mixer_edu "
            "(pip install -U mixer-edu, or git pull in the course folder) to use it."
        )


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint or snapshot written by `mixer_edu.train`, with clear errors."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; train first (python -m mixer_edu.train ... --out DIR) "
            "or pass the path of a DIR/checkpoint.pt or DIR/snapshots/epoch_NNN.pt file."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # any failure to parse the bytes means: not a checkpoint we wrote
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: "
            f"{_first_sentence(error)}); it may be truncated or not written by mixer_edu. "
            "Delete it and train again, or use another run's checkpoint."
        ) from None
    if not isinstance(checkpoint, dict):
        kind = type(checkpoint).__name__
        raise ValueError(f"{path} is not a mixer_edu checkpoint: it holds a {kind}.")
    check_format(checkpoint, path)
    if missing := [key for key in REQUIRED_KEYS if key not in checkpoint]:
        if "mixer_edu_version" in checkpoint:  # ours, but a layout this version does not know
            raise CheckpointVersionError(
                f"{path} was written by {_written_by(checkpoint)}, which this mixer_edu "
                f"{package_version()} cannot read: it has no {', '.join(missing)}. Use the "
                "mixer_edu version that wrote it, or train again."
            )
        raise ValueError(f"{path} is not a mixer_edu checkpoint: it has no {', '.join(missing)}.")
    return checkpoint


def load_resumable(path: str | Path, recipe_fields: set[str]) -> dict:
    """`load_checkpoint`, for a checkpoint that training can continue from (not a snapshot).

    `recipe_fields` are the setting names this version's recipe (`TrainConfig`) has.
    """
    checkpoint = load_checkpoint(path)
    check_recipe_fields(checkpoint, path, recipe_fields)
    if missing := [key for key in RESUME_KEYS if key not in checkpoint]:
        raise ValueError(
            f"{path} holds only a model's weights (a snapshot: no {', '.join(missing)}), so "
            "training cannot continue from it. Resume from the run's own checkpoint.pt, or "
            "start a new run with --overwrite."
        )
    return checkpoint


def check_recipe_fields(checkpoint: dict, path: Path, recipe_fields: set[str]) -> None:
    """Refuse a recipe with settings other than `recipe_fields`, this version's (a newer one)."""
    if unknown := sorted(set(checkpoint.get("train_config", {})) - set(recipe_fields)):
        raise CheckpointVersionError(
            f"{path} was written by {_written_by(checkpoint)}, whose recipe has settings this "
            f"mixer_edu {package_version()} does not know ({', '.join(unknown)}), so the run "
            "cannot be continued exactly. Upgrade mixer_edu to resume it; its weights still "
            "load with mixer_edu.models.load_model."
        )


def _first_sentence(error: Exception, limit: int = 120) -> str:
    """The start of an error's message: torch's messages about broken files run on for lines."""
    text = " ".join(str(error).split()).split(". ")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def remove_stale_temporaries(out: str | Path) -> list[Path]:
    """Delete the temporary files a killed `save_atomic` left in the run folder `out`.

    Only names of `TEMPORARY_NAME`'s pattern are touched, and only in `out` and its
    `snapshots/`; nothing else in the folder is. Returns what was removed.
    """
    removed = []
    for folder in (Path(out), Path(out) / SNAPSHOT_DIR):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if TEMPORARY_NAME.match(path.name) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------
# Models.
# --------------------------------------------------------------------------------------------


def encode_config(config: dict) -> dict:
    """The model config with classes (e.g. `block_layer`) replaced by their import path."""
    return {
        key: {"class": f"{value.__module__}.{value.__qualname__}"}
        if isinstance(value, type)
        else value
        for key, value in config.items()
    }


def model_state(model: nn.Module) -> dict:
    """The model's state_dict, without the `_orig_mod.` prefix `torch.compile` adds."""
    model = getattr(model, "_orig_mod", model)
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def describe_difference(saved: dict, requested: dict) -> str:
    """'embed_dim: checkpoint 64, asked 128; ...' for the keys whose values differ."""
    unset = "(default)"
    return "; ".join(
        f"{key}: checkpoint {saved.get(key, unset)!r}, asked {requested.get(key, unset)!r}"
        for key in sorted(set(saved) | set(requested), key=str)
        if saved.get(key) != requested.get(key)
    )


def load_weights(model: nn.Module, state_dict: dict, source: str = "the checkpoint") -> None:
    """`model.load_state_dict(state_dict, strict=True)`, after checking names and shapes, so a
    mismatch gives one readable sentence instead of a wall of tensor sizes.

    Args:
        model: the model to fill (a compiled one is unwrapped).
        state_dict: the weights, with timm's key names.
        source: what to call the weights' origin in the message.
    """
    model = getattr(model, "_orig_mod", model)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    theirs = {key: tuple(value.shape) for key, value in state_dict.items()}
    problems = []
    if missing := sorted(set(ours) - set(theirs)):
        problems.append(f"missing {len(missing)} weights (e.g. {missing[0]})")
    if unexpected := sorted(set(theirs) - set(ours)):
        problems.append(f"{len(unexpected)} unexpected weights (e.g. {unexpected[0]})")
    if shapes := [key for key in sorted(set(ours) & set(theirs)) if ours[key] != theirs[key]]:
        key = shapes[0]
        problems.append(
            f"{len(shapes)} weights of another shape (e.g. {key}: {theirs[key]} in "
            f"{source}, {ours[key]} in the model)"
        )
    if problems:
        raise ValueError(
            f"{source} was saved from a model with another configuration: {'; '.join(problems)}. "
            "Build the model with the checkpoint's own configuration: "
            "mixer_edu.models.load_model(path) does that for you."
        )
    model.load_state_dict(state_dict, strict=True)


def check_same_model(checkpoint: dict, model_name: str, config: dict, path) -> None:
    """Raise a clear `ValueError` unless `checkpoint` holds the model `model_name` with `config`.

    Args:
        checkpoint: the loaded checkpoint dict.
        model_name, config: the model the run asks for (`create_model`'s name and keywords).
        path: the checkpoint's file, for the message.
    """
    saved_name, saved = checkpoint["model_name"], checkpoint["model_config"]
    requested = encode_config(config)
    if saved_name != model_name or saved != requested:
        difference = describe_difference(saved, requested)
        raise ValueError(
            f"{path} holds a {saved_name} model, but you asked for {model_name} "
            f"({difference or 'same configuration'}). To resume it, use --model {saved_name} "
            "with the same configuration; to start a new run, choose another --out folder or "
            "pass --overwrite."
        )


# --------------------------------------------------------------------------------------------
# Random generators.
# --------------------------------------------------------------------------------------------


def rng_state() -> dict:
    """The states of Python's, numpy's and torch's (CPU and CUDA) global random generators."""
    version, mt_state, gauss = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - the global generator is what we save
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators saved by `rng_state`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
