"""Every picture of a trained checkpoint, written as PNG files (and a GIF over training).

`render_checkpoint(checkpoint, out)` is what `python -m mixer_edu.viz CHECKPOINT --out DIR` runs
(`mixer_edu.viz.cli`). It draws three groups of pictures, each from what the run left behind:
the model (`_model_pictures`), the run folder's metrics and snapshots (`_run_pictures`) and the
test set, when it can be loaded (`_test_pictures`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import data
from ..evaluation import predict
from ..models import load_model
from ..support.checkpoint import list_snapshots
from ..support.metrics import read_metrics
from ..support.validation import check_positive_int
from .channel_mixing import plot_channel_mixing
from .over_training import plot_token_mixing_over_training, save_token_mixing_animation
from .patches import plot_patches
from .stem import plot_stem_filters
from .token_mixing import plot_token_mixing
from .training import plot_confusion_matrix, plot_misclassified, plot_training_curves


class _Pictures:
    """Saves figures into one folder and remembers every path written, in order."""

    def __init__(self, out: Path):
        self.out = out
        self.written: list[Path] = []

    def save(self, fig: Figure, filename: str) -> None:
        path = self.out / filename
        fig.savefig(path, dpi=120)
        plt.close(fig)
        self.written.append(path)


def render_checkpoint(
    checkpoint,
    out,
    *,
    data_root=None,
    test_images: int | None = None,
    gif: bool = True,
    say=print,
) -> list[Path]:
    """Write every picture of a trained checkpoint into `out` as PNG files; return their paths.

    From the model: the token-mixing units of every block (pairs by frequency) and of block 0 in
    plain order, the stem filters. From the run folder (when present): the training curves
    (`metrics.jsonl`); with its snapshots, what training changed in every block's token-mixing
    units (now minus epoch 0), and block 0's units over training, as weights and as changes
    (PNG), and the changes as an animation (GIF).
    From the test set (when it can be loaded; the stand-in is generated if missing, CIFAR-10 is
    never downloaded here): the patches of one image, the channel-mixing responses to it in the
    first and the last block, the confusion matrix and misclassified images.

    Args:
        checkpoint: `DIR/checkpoint.pt`, a snapshot `DIR/snapshots/epoch_NNN.pt`, or `DIR`.
        out: folder for the pictures (created if needed).
        data_root: the data folder (default `mixer_edu.data.default_data_root()`).
        test_images: use only the first n test images (default: all).
        gif: also write the animation over training.
        say: where the one-line notes on skipped pictures go.
    """
    checkpoint = Path(checkpoint)
    model, state = load_model(checkpoint)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pictures = _Pictures(out)
    about = dict(
        model_name=f"{state['model_name']}, epoch {state['epoch']}", dataset=state["dataset"]
    )

    _model_pictures(pictures, model, about)
    _run_pictures(pictures, model, _run_folder(checkpoint), about, gif=gif, say=say)
    test_set = _test_data(state["dataset"], data_root, test_images, say)
    if test_set is not None:
        _test_pictures(pictures, model, test_set, list(state["classes"]), about)
    return pictures.written


def _run_folder(checkpoint_path: Path) -> Path:
    """The training run a checkpoint or snapshot file belongs to."""
    if checkpoint_path.is_dir():
        return checkpoint_path
    parent = checkpoint_path.parent
    return parent.parent if parent.name == "snapshots" else parent


def _model_pictures(pictures: _Pictures, model: nn.Module, about: dict) -> None:
    """Every block's token-mixing units (pairs), block 0's in stored order, the stem filters."""
    for block in range(len(model.blocks)):
        figure = plot_token_mixing(model, block, **about)
        pictures.save(figure, f"token_mixing_block_{block:02d}.png")
    figure = plot_token_mixing(model, 0, mode="plain", **about)
    pictures.save(figure, "token_mixing_block_00_plain.png")
    pictures.save(plot_stem_filters(model, **about), "stem_filters.png")


def _run_pictures(
    pictures: _Pictures, model: nn.Module, run: Path, about: dict, *, gif: bool, say: Callable
) -> None:
    """The training curves, and with two snapshots or more what training changed."""
    metrics = read_metrics(run)
    if metrics:
        pictures.save(plot_training_curves(metrics), "training_curves.png")
    else:
        say(f"skipped the training curves: no metrics.jsonl in {run}")
    snapshots = list_snapshots(run)
    if len(snapshots) < 2:
        say(f"skipped the pictures over training: fewer than 2 snapshots in {run / 'snapshots'}")
        return
    initial, _ = load_model(snapshots[0])
    for block in range(len(model.blocks)):
        figure = plot_token_mixing(model, block, initial=initial, **about)
        pictures.save(figure, f"token_mixing_change_block_{block:02d}.png")
    pictures.save(plot_token_mixing_over_training(snapshots), "token_mixing_over_training.png")
    figure = plot_token_mixing_over_training(snapshots, change=True)
    pictures.save(figure, "token_mixing_change_over_training.png")
    if gif:
        path = pictures.out / "token_mixing_change_over_training.gif"
        pictures.written.append(save_token_mixing_animation(snapshots, path, change=True))


def _test_data(dataset: str, data_root, test_images: int | None, say):
    """The test split (normalised, first `test_images` images), or None with a message."""
    try:
        test_set = data.load_dataset(
            dataset,
            train=False,
            root=data_root,
            transform=data.test_transform(),
            download=dataset == "standin",  # generate the stand-in; never fetch 170 MB here
        )
    except data.DatasetUnavailableError as error:
        say(f"skipped the pictures that need test images: {str(error).splitlines()[0]}")
        return None
    if test_images is not None:
        check_positive_int(test_images, "test_images")
        test_set = torch.utils.data.Subset(test_set, range(min(test_images, len(test_set))))
    return test_set


def _test_pictures(pictures: _Pictures, model, test_set, classes: list[str], about: dict) -> None:
    """One test image's patches and channel-mixing maps; then how the model did on all of them."""
    image, _ = test_set[0]  # normalised (3, H, W)
    shown = data.denormalize(image)
    pictures.save(
        plot_patches(shown, model.stem.patch_size, dataset=about["dataset"]), "patches.png"
    )
    for block in sorted({0, len(model.blocks) - 1}):
        figure = plot_channel_mixing(model, image, block, image_for_display=shown, **about)
        pictures.save(figure, f"channel_mixing_block_{block:02d}.png")

    loader = torch.utils.data.DataLoader(test_set, batch_size=256)
    logits, labels = predict(model, loader, precision="fp32")
    predictions = logits.argmax(1)
    figure = plot_confusion_matrix(labels, predictions, classes, **about)
    pictures.save(figure, "confusion_matrix.png")
    wrong = torch.nonzero(predictions != labels).flatten()[:16].tolist()
    images = torch.zeros(len(labels), *shown.shape)
    for index in wrong:  # only the images that are shown need to be read again
        images[index] = data.denormalize(test_set[index][0])
    probabilities = logits.softmax(1)
    figure = plot_misclassified(
        images, labels, predictions, classes, probabilities=probabilities, **about
    )
    pictures.save(figure, "misclassified.png")
