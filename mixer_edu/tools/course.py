"""The notebooks' one door to the course's helpers: run mode, set-up, one-line checks, runs.

Notebooks import the lessons (`mixer_edu.patching`, `mixer`, `train`, ...), `mixer_edu.viz`,
`mixer_edu.exercises` and this module, nothing else: what they need from the tools and the
machinery (short comparison runs from `tools.compare`, saved runs) is passed on from here.

Three environment variables choose how much a notebook does, and where:

- `MIXER_EDU_FAST=1`: fast mode, as in CI. Training uses the synthetic stand-in data and runs
  only briefly; every output that depends on it says so.
- `MIXER_EDU_DATASET=standin`: use the synthetic stand-in instead of CIFAR-10 (for a classroom
  without internet), with the full training budget.

- `MIXER_EDU_DEVICE=cpu` (or `cuda`, `mps`): the device the notebooks (and the package's
  commands) train and predict on, instead of the fastest one this machine has.

By default (none set) the notebooks download and use the real CIFAR-10, on the fastest device.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.cbook
import numpy as np
import torch
from PIL import Image

from ..data import DATASETS
from ..models import load_model
from ..support.checkpoint import snapshot_path
from ..support.metrics import mean_and_range
from ..support.paths import project_folder
from ..support.runtime import FAST_ENV, fast_mode, resolve_device, seed_everything
from ..support.validation import check_choice
from . import reference, reference_text
from .compare import format_runs, format_seed_runs, load_images, train_briefly, train_seeds

# Passed on to the notebooks (see the module docstring).
__all__ = [
    "DATASET_ENV",
    "FAST_ENV",
    "cmp",
    "course_dataset",
    "course_device",
    "describe_mode",
    "fast_mode",
    "format_runs",
    "format_seed_runs",
    "load_images",
    "load_model",
    "mean_and_range",
    "reference_runs",
    "run_dir",
    "sample_photo",
    "setup_notebook",
    "snapshot_path",
    "text_reference_runs",
    "train_briefly",
    "train_seeds",
]

DATASET_ENV = "MIXER_EDU_DATASET"


def course_dataset() -> str:
    """The dataset the notebooks train on: `'standin'` in fast mode, else `MIXER_EDU_DATASET`."""
    if fast_mode():
        return "standin"
    name = os.environ.get(DATASET_ENV, "cifar10").strip().lower() or "cifar10"
    return check_choice(name, DATASETS, DATASET_ENV)


def course_device() -> torch.device:
    """The one device a notebook trains and predicts on: `MIXER_EDU_DEVICE`, else the fastest.

    The same device `mixer_edu.train.train` picks when given none.

    A notebook calls this once, at its top, and passes the result on: to `train(device=...)`,
    `load_model(..., device=...)` and `.to(device)` for anything it feeds a model itself. The
    package's loaders and `predict` move their batches to the model's device on their own.
    """
    return resolve_device(None)


def describe_mode() -> str:
    """One stable line saying what this run of a notebook will do."""
    if fast_mode():
        return (
            f"Fast mode ({FAST_ENV}=1): short training runs on the synthetic stand-in data. "
            "Numbers and pictures from training are NOT CIFAR-10 results."
        )
    if course_dataset() == "standin":
        return (
            f"Offline mode ({DATASET_ENV}=standin): full training runs on the synthetic "
            "stand-in data, not CIFAR-10."
        )
    return "Full mode: training runs on CIFAR-10 (downloaded on first use into data/)."


def run_dir(name: str) -> Path:
    """Where a notebook's training run lives: `runs/<name>-<dataset>[-fast]` in the repository.

    Fast-mode runs get their own folder, so a short stand-in run is never mistaken for a full one
    when a notebook "loads the checkpoint if present". The folder is in the repository (as
    `data/` is), or in the working directory when the package is installed elsewhere, so notebooks
    in different folders find each other's runs.

    The path is relative to the working directory (`../runs/...` from `notebooks/`), so what a
    notebook prints about its run is the same on every machine.
    """
    suffix = "-fast" if fast_mode() else ""
    folder = project_folder() / "runs" / f"{name}-{course_dataset()}{suffix}"
    try:
        return Path(os.path.relpath(folder))
    except ValueError:  # Windows: the working directory is on another drive
        return folder


def reference_runs(name: str) -> reference.ReferenceRuns:
    """The saved reference experiment `name` (`tools.experiments`), for the course's data.

    These are the runs a notebook's prose interprets: 3 seeds each, long enough to be in the
    regime the prose names. The stand-in's are committed (`reference/standin-reference/`). With
    CIFAR-10 (full mode), the CIFAR-10 runs made by `python -m mixer_edu.tools.reference
    --dataset cifar10 --budget full` are used where they exist; otherwise the stand-in's, and a
    line says so.
    """
    if course_dataset() == "cifar10":
        runs = reference.load(name, "cifar10", "full")
        if runs is not None:
            return runs
        print(
            f"No CIFAR-10 reference runs yet ({reference.COMMAND} --dataset cifar10 --budget full "
            "makes them, best on a GPU); these are the synthetic stand-in's:"
        )
    runs = reference.load(name)
    if runs is None:
        raise FileNotFoundError(
            f"reference/standin-reference/{name}.json is missing; make it with "
            f"{reference.COMMAND} --only {name}"
        )
    return runs


def text_reference_runs() -> reference_text.TextRuns:
    """Notebook 07's saved text experiment (`tools.reference_text`): both token mixers, trained
    until their held-out accuracy settled, three seeds each."""
    runs = reference_text.load()
    if runs is None:
        raise FileNotFoundError(
            f"reference/text-reference/{reference_text.NAME}.json is missing; make it with "
            f"{reference.COMMAND} --only {reference_text.NAME}"
        )
    return runs


def setup_notebook(seed: int = 0, banner: bool = True) -> None:
    """Seed every random generator and print the run mode, so each notebook starts the same way.

    `banner=False` skips the run-mode line, for notebooks that train nothing on images (it would
    warn about stand-in results that the notebook never shows).
    """
    seed_everything(seed)  # students' own code may use any of the global generators
    if banner:
        print(describe_mode())


def sample_photo(size: int = 224) -> torch.Tensor:
    """A real photograph that ships with matplotlib (Grace Hopper), as a batch of one image.

    The 512x600 portrait is cropped to a centred square and resized to `size` x `size`.

    Returns:
        `(1, 3, size, size)` float tensor with values in [0, 1].
    """
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as photo:
        square = photo.convert("RGB").crop((0, 44, 512, 556))  # 512x512 around the face
        square = square.resize((size, size), Image.Resampling.LANCZOS)
    pixels = torch.tensor(np.array(square), dtype=torch.float32) / 255  # (H, W, 3)
    return pixels.permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)


EXPECTATIONS = ("same", "different")


def cmp(
    name: str,
    ours: torch.Tensor,
    reference: torch.Tensor,
    atol: float = 1e-5,
    exact: bool = False,
    expect: str = "same",
) -> None:
    """Compare two tensors; print what was expected, what was found, and whether that held.

    After Karpathy's makemore `cmp`, with two differences. First, two float computations that
    differ only in the order of their additions agree up to rounding, and *how much* they differ
    depends on the CPU's BLAS kernels and the thread count; so the line says only what the maths
    guarantees, whether the largest difference is within `atol`, never its size:

        stem as Linear | expected: same      | got: same (max diff <= 1e-05)     | as expected ✓
        shuffled in    | expected: different | got: different (max diff > 1e-05) | as expected ✓

    Second, a check states its expectation (`expect="same"` or `"different"`), so a difference
    that the lesson predicts reads as a success, and one that it does not reads as a failure.

    Pass `exact=True` only where the two tensors are equal by construction (a copy, a reshape, a
    permutation, integer work): then "same" means bitwise equal (`identical`). It prints rather
    than returns, so a cell ending with `cmp(...)` shows just that line.

    Args:
        name: what is compared (the start of the line).
        ours, reference: tensors of the same shape (any device and float dtype).
        atol: the largest absolute difference still called the same.
        exact: require bitwise equality instead of closeness.
        expect: `'same'` or `'different'`, what the lesson predicts.
    """
    check_choice(expect, EXPECTATIONS, "expect")
    if ours.shape != reference.shape:
        print(f"{name:24s} | shape {tuple(ours.shape)} != {tuple(reference.shape)}")
        return
    ours, reference = ours.detach().cpu(), reference.detach().cpu()
    if exact:
        same = torch.equal(ours, reference)
        got = "identical (bitwise)" if same else "not identical"
        wanted = "identical" if expect == "same" else "different"
    else:
        diff = (ours.double() - reference.double()).abs().max().item() if ours.numel() else 0.0
        same = diff <= atol
        got = f"same (max diff <= {atol:.0e})" if same else f"different (max diff > {atol:.0e})"
        wanted = expect
    verdict = "as expected ✓" if same == (expect == "same") else "NOT as expected ✗"
    print(f"{name:24s} | expected: {wanted:9s} | got: {got:29s} | {verdict}")
