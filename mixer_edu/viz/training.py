"""How training went: the curves per epoch, the confusion matrix and the misclassified images."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..support.metrics import read_metrics
from ..support.validation import check_positive_int, check_tensor
from .layout import image_hwc, set_title, show_rgb, to_numpy


def _labels(values) -> torch.Tensor:
    """Class indices from a list, numpy array or tensor on any device, as a flat CPU tensor."""
    return torch.as_tensor(to_numpy(values)).long().flatten()


def plot_training_curves(metrics, *, title: str | None = None) -> Figure:
    """Loss, accuracy and learning rate per epoch, for the training and the test set.

    Args:
        metrics: `DIR/metrics.jsonl` (or `DIR`), or the list of per-epoch dicts, each with
            `epoch`, `train_loss`, `test_loss`, `train_acc`, `test_acc` and optionally `lr`,
            `model` and `dataset` (its label, e.g. "synthetic stand-in").

    `figure.shown`: `epoch` and one array per plotted field.
    """
    if isinstance(metrics, (str, Path)):
        records = read_metrics(metrics)
        if not records:
            raise FileNotFoundError(
                f"no metrics in {metrics}; python -m mixer_edu.train ... --out DIR writes one "
                "line per epoch to DIR/metrics.jsonl."
            )
    else:
        records = list(metrics)
    if not records:
        raise ValueError("the metrics are empty: train for at least one epoch first.")
    epochs = np.array([int(r["epoch"]) for r in records])
    panels = [("loss", ["train_loss", "test_loss"]), ("accuracy", ["train_acc", "test_acc"])]
    if all("lr" in r for r in records):
        panels.append(("learning rate", ["lr"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.9), layout="constrained")
    shown = dict(epoch=epochs)
    for ax, (label, keys) in zip(axes, panels, strict=True):
        for key in keys:
            # float() also reads a 0-d tensor, on any device
            shown[key] = np.array([float(r.get(key, np.nan)) for r in records])
            legend = key.split("_")[0] if label != "learning rate" else None
            ax.plot(epochs, shown[key], marker="o", markersize=3, label=legend)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        # metrics.jsonl records the learning rate the epoch started with
        ax.set_ylabel(label if label != "learning rate" else "learning rate at the epoch's start")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if label != "learning rate":
            ax.legend()
    what = f"Training curves ({len(records)} epochs)"
    model, dataset = records[-1].get("model"), records[-1].get("dataset")
    set_title(fig, what, title=title, model_name=model, dataset=dataset)
    fig.shown = shown
    return fig


def confusion_counts(targets, predictions, num_classes: int) -> np.ndarray:
    """`(num_classes, num_classes)` counts: row = true class, column = predicted class."""
    targets, predictions = _labels(targets), _labels(predictions)
    if targets.shape != predictions.shape:
        raise ValueError(
            f"targets ({len(targets)}) and predictions ({len(predictions)}) must have the same "
            "length."
        )
    index = targets * num_classes + predictions
    counts = torch.bincount(index, minlength=num_classes**2)
    return to_numpy(counts.reshape(num_classes, num_classes))


def plot_confusion_matrix(
    targets,
    predictions,
    classes: Sequence[str],
    *,
    model_name: str | None = None,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """Which classes the model confuses: row = true class, column = predicted class.

    Cells show the share of each true class (rows add up to 100%), with the counts in
    `figure.shown["counts"]` (and `figure.shown["percent"]`, the numbers written in the cells).
    `targets` and `predictions` may be lists, arrays or tensors on any device.
    """
    classes = list(classes)
    counts = confusion_counts(targets, predictions, len(classes))
    totals = counts.sum(axis=1, keepdims=True)
    percent = 100 * counts / np.where(totals > 0, totals, 1)
    size = 1.8 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), layout="constrained")
    picture = ax.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    for (row, column), value in np.ndenumerate(percent):
        colour = "white" if value > 55 else "black"
        ax.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(picture, ax=ax, shrink=0.8, label="% of the true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    what = f"Confusion matrix on {counts.sum()} images (accuracy {100 * accuracy:.1f}%)"
    set_title(fig, what, title=title, model_name=model_name, dataset=dataset)
    fig.shown = dict(counts=counts, percent=percent)
    return fig


def plot_misclassified(
    images: torch.Tensor,
    targets,
    predictions,
    classes: Sequence[str],
    *,
    probabilities: torch.Tensor | None = None,
    num_images: int = 16,
    model_name: str | None = None,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """The first `num_images` test images the model got wrong, with true and predicted class.

    Args:
        images: `(B, C, H, W)` with values in [0, 1] (use `mixer_edu.data.denormalize`).
        targets, predictions: `(B,)` class indices.
        classes: class names.
        probabilities: optional `(B, num_classes)` softmax outputs, to show the model's
            confidence in its wrong answer.

    Tensors may be on any device. `figure.shown`: `indices` (positions in the batch of the
    images shown).
    """
    check_tensor(images, "images")
    check_positive_int(num_images, "num_images")
    targets, predictions = _labels(targets), _labels(predictions)
    if probabilities is not None:
        probabilities = to_numpy(probabilities)  # (B, num_classes)
    wrong = torch.nonzero(targets != predictions).flatten()[:num_images].tolist()
    # A fixed grid for num_images, however many mistakes there are: the same figure size always.
    columns = min(4, num_images)
    rows = math.ceil(num_images / columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(2.0 * columns, 2.15 * rows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        show_rgb(ax, image_hwc(images[index]), interpolation="nearest")
        truth, guess = int(targets[index]), int(predictions[index])
        confidence = ""
        if probabilities is not None:
            confidence = f" ({100 * float(probabilities[index, guess]):.0f}%)"
        ax.set_title(f"true: {classes[truth]}\npredicted: {classes[guess]}{confidence}", fontsize=8)
    if not wrong:
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    total = int((targets != predictions).sum())
    what = f"Misclassified test images: {len(wrong)} of {total} mistakes in {len(targets)} images"
    set_title(fig, what, title=title, model_name=model_name, dataset=dataset)
    fig.shown = dict(indices=wrong)
    return fig
