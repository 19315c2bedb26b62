"""Short, equal-budget training runs for comparing models and ablations in the notebooks.

`mixer_edu.train` trains one registered Mixer with checkpoints and resuming, for the course's main
run. The comparisons in notebooks 02, 03 and 08 need something smaller: several models (a Mixer
with a part switched off, a CNN, a ViT) trained for a few epochs on the same images, in the same
order, with the same recipe, and a fixed rearrangement of the pixels where an experiment asks for
one. `train_briefly` does that in memory, without writing anything:

    data = load_images("standin", train=True, limit=2000)      # uint8 images, as tensors
    test = load_images("standin", train=False, limit=1000)
    run = train_briefly(model, data, test, epochs=3)           # AdamW, warmup + cosine
    print(run.test_acc, run.params, run.images_per_second)

Every run starts from `torch.manual_seed(seed)` for its batches and flips, so two runs differ only
in the model (and in what `transform` does to the images). Accuracies from such short runs differ
a little between machines (float rounding takes another path), so notebooks print them in cells
that nbval does not compare.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import dataset_classes, load_dataset, normalization
from .optim import lr_factor


@dataclass
class ImageData:
    """A split of a data set held in memory: `images` uint8 `(n, 3, 32, 32)`, `labels` `(n,)`."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]
    dataset: str

    def __len__(self) -> int:
        return len(self.labels)


def load_images(dataset: str, train: bool = True, limit: int | None = None) -> ImageData:
    """The first `limit` images of a split of `'cifar10'` or `'standin'`, as tensors."""
    split = load_dataset(dataset, train=train)
    images = torch.from_numpy(split.data[:limit]).permute(0, 3, 1, 2).contiguous()  # (n, 3, H, W)
    labels = torch.tensor(split.targets[:limit])
    return ImageData(images, labels, dataset_classes(dataset), dataset)


@dataclass
class BriefRun:
    """What `train_briefly` measured."""

    params: int
    test_acc: float
    train_acc: float  # on the training images as they were trained on (flips off), after training
    per_class_acc: list[float]
    seconds: float  # training only, without the evaluations
    images_per_second: float  # training images per second
    test_acc_per_epoch: list[float] = field(default_factory=list)
    model: nn.Module | None = None


def train_briefly(
    model: nn.Module,
    train: ImageData,
    test: ImageData,
    epochs: int = 3,
    *,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    warmup_epochs: float = 0.5,
    label_smoothing: float = 0.1,
    flip: bool = True,
    transform: Callable[[Tensor], Tensor] | None = None,
    seed: int = 0,
) -> BriefRun:
    """Train `model` for `epochs` epochs on `train` and measure it on `test`.

    Args:
        model: any classifier `(B, 3, 32, 32) -> (B, classes)`; trained in place on the CPU.
        train, test: from `load_images`.
        epochs, batch_size, lr, weight_decay, warmup_epochs, label_smoothing: the recipe
            (AdamW; linear warmup, then cosine decay to zero, as `mixer_edu.train`).
        flip: flip each training image horizontally with probability 1/2.
        transform: applied to every normalised batch, training and test alike, after the flip
            (e.g. an `ImagePermutation`), so a fixed rearrangement is the same for every image.
        seed: seeds the batch order and the flips.
    """
    normalize = normalization()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = len(train) // batch_size
    total, warmup = epochs * steps_per_epoch, round(warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total)
    )
    generator = torch.Generator().manual_seed(seed)
    test_acc_per_epoch, seconds = [], 0.0
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(train), generator=generator)
        for step in range(steps_per_epoch):
            batch = order[step * batch_size : (step + 1) * batch_size]
            images = train.images[batch]
            if flip:
                flipped = torch.rand(len(batch), generator=generator) < 0.5
                images = torch.where(flipped[:, None, None, None], images.flip(-1), images)
            images = normalize(images)
            if transform is not None:
                images = transform(images)
            loss = F.cross_entropy(
                model(images), train.labels[batch], label_smoothing=label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        seconds += time.perf_counter() - start
        test_acc_per_epoch.append(accuracy(model, test, transform)[0])
    per_class = accuracy(model, test, transform)[1]
    return BriefRun(
        params=sum(p.numel() for p in model.parameters()),
        test_acc=test_acc_per_epoch[-1],
        train_acc=accuracy(model, train, transform)[0],
        per_class_acc=per_class,
        seconds=seconds,
        images_per_second=epochs * steps_per_epoch * batch_size / seconds,
        test_acc_per_epoch=test_acc_per_epoch,
        model=model.eval(),
    )


@torch.no_grad()
def accuracy(
    model: nn.Module, data: ImageData, transform=None, batch_size: int = 500
) -> tuple[float, list[float]]:
    """Top-1 accuracy of `model` on `data`, overall and per class (NaN for an absent class)."""
    model.eval()
    normalize = normalization()
    predictions = []
    for start in range(0, len(data), batch_size):
        images = normalize(data.images[start : start + batch_size])
        if transform is not None:
            images = transform(images)
        predictions.append(model(images).argmax(dim=1))
    correct = (torch.cat(predictions) == data.labels).float()
    per_class = [correct[data.labels == k].mean().item() for k in range(len(data.classes))]
    return correct.mean().item(), per_class


def format_runs(runs: dict[str, BriefRun]) -> str:
    """A table with one line per run: parameters, accuracies and training speed."""
    lines = [f"{'':30s} {'params':>8s} {'test acc':>9s} {'train acc':>10s} {'train img/s':>12s}"]
    for name, run in runs.items():
        lines.append(
            f"{name:30s} {run.params:8,d} {run.test_acc:9.1%} {run.train_acc:10.1%} "
            f"{run.images_per_second:12.0f}"
        )
    return "\n".join(lines)
