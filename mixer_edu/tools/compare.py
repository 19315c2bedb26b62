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

It is built from the trainer's own pieces, so a comparison trains the way the course's main run
does: the batches come from `device_data.DeviceLoader` (random crop after 4 pixels of
padding, then a horizontal flip, as the recipe), each epoch is `mixer_edu.train.train_one_epoch`
(label smoothing, gradient clipping), the optimiser and schedule come from `mixer_edu.train`
(AdamW without decay on biases and norms, linear warmup then cosine) and the accuracies from
`mixer_edu.evaluation.predict`. Everything runs on the model's device.

Every epoch's batches, crops and flips come from `(seed, epoch)`, and so does the randomness
inside the model (DropPath), under a forked generator that leaves the caller's random state as it
was: two runs with the same seed differ only in the model (and in what `transform` does to the
images). Runs are in float32 by default, so a CPU with bfloat16 units trains like one without.
Accuracies from such short runs still differ a little between machines (float rounding takes
another path), so notebooks print them in cells that nbval does not compare.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..data import dataset_classes, load_dataset
from ..device_data import DeviceLoader
from ..evaluation import predict
from ..support.metrics import mean_and_range
from ..support.runtime import epoch_seed
from ..train import parameter_groups, train_one_epoch, warmup_cosine


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
    train_acc: float  # on the training images without augmentation, after training
    per_class_acc: list[float]
    seconds: float  # training only, without the evaluations
    images_per_second: float  # training images per second, in the median epoch
    test_acc_per_epoch: list[float] = field(default_factory=list)  # at each of tested_epochs
    tested_epochs: list[int] = field(default_factory=list)
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
    clip_grad: float | None = 1.0,
    augment: str = "crop-flip",
    batch_augment: str = "none",
    transform: Callable[[Tensor], Tensor] | None = None,
    precision: str = "fp32",
    seed: int = 0,
    test_epochs: Collection[int] | None = None,
) -> BriefRun:
    """Train `model` for `epochs` epochs on `train` and measure it on `test`.

    Args:
        model: any classifier `(B, 3, 32, 32) -> (B, classes)`; trained in place, on its device.
        train, test: from `load_images`.
        epochs, batch_size, lr, weight_decay, warmup_epochs, label_smoothing, clip_grad: the
            recipe (AdamW; linear warmup, then cosine decay to zero, as `mixer_edu.train`).
        augment: `'crop-flip'` (the recipe's random crop and flip) or `'none'`.
        batch_augment: `'none'`, `'mixup'`, `'cutmix'` or `'cutmix-mixup'`, on every batch.
        transform: applied to every normalised batch, training and test alike, after the
            augmentation (e.g. an `ImagePermutation`), so a fixed rearrangement is the same for
            every image.
        precision: `'fp32'`, `'bf16'` or `'auto'` (bf16 where the hardware computes in it).
        seed: seeds the batch order, the crops and flips, and the model's own randomness.
        test_epochs: the epochs after which `test` is measured (default: every epoch; the last
            is always measured). Testing is not free: a long run on few images tests less often.
    """
    device = next(model.parameters()).device
    loader = DeviceLoader(
        train.images, train.labels, batch_size, device=device, augment=augment,
        batch_augment=batch_augment, num_classes=len(train.classes),
    )  # fmt: skip
    test_epochs = set(range(1, epochs + 1) if test_epochs is None else test_epochs) | {epochs}
    optimizer = torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr)
    steps = len(loader)
    scheduler = warmup_cosine(optimizer, max(1, round(warmup_epochs * steps)), epochs * steps)
    test_acc_per_epoch, tested_epochs, per_class, epoch_seconds = [], [], [], []
    for epoch in range(1, epochs + 1):
        with _seeded(epoch_seed(seed, epoch), device):  # DropPath's draws, for this epoch only
            start = time.perf_counter()
            batches = _Transformed(loader.epoch(epoch_seed(seed, epoch)), transform)
            train_one_epoch(
                model,
                batches,
                optimizer,
                scheduler,
                device,
                precision=precision,
                label_smoothing=label_smoothing,
                clip_grad=clip_grad,
            )
            epoch_seconds.append(time.perf_counter() - start)
        if epoch in test_epochs:
            test_acc, per_class = accuracy(model, test, transform, precision=precision)
            test_acc_per_epoch.append(test_acc)
            tested_epochs.append(epoch)
    return BriefRun(
        params=sum(p.numel() for p in model.parameters()),
        test_acc=test_acc_per_epoch[-1],
        train_acc=accuracy(model, train, transform, precision=precision)[0],
        per_class_acc=per_class,  # after the last epoch
        seconds=sum(epoch_seconds),
        # The median epoch: the first steps in a fresh process pay one-off costs (kernel choice,
        # memory allocation) that can make the first epoch many times slower than the rest.
        images_per_second=steps * batch_size / statistics.median(epoch_seconds),
        test_acc_per_epoch=test_acc_per_epoch,
        tested_epochs=tested_epochs,
        model=model.eval(),
    )


class _Transformed:
    """An epoch's batches with `transform` applied to the images (None: unchanged)."""

    def __init__(self, batches, transform: Callable[[Tensor], Tensor] | None):
        self.batches, self.transform = batches, transform

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for images, labels in self.batches:
            yield (images if self.transform is None else self.transform(images)), labels


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's generators start from `seed` inside, and are as they were after."""
    if device.type == "cpu":  # the CPU generator only: a CPU run must not start CUDA
        forked = torch.random.fork_rng(devices=[])
    else:  # torch 2.6 to 2.11 refuse `device_type=None`, so a type is named only here
        forked = torch.random.fork_rng(device_type=device.type)
    with forked:
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def accuracy(
    model: nn.Module,
    data: ImageData,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 500,
    precision: str = "fp32",
) -> tuple[float, list[float]]:
    """Top-1 accuracy of `model` on `data`, overall and per class (NaN for an absent class).

    The images are normalised (no augmentation), moved to the model's device, and `transform`ed.
    """
    device = next(model.parameters()).device
    loader = DeviceLoader(data.images, data.labels, batch_size, device=device, train=False)
    batches = loader.epoch(seed=0)  # in order, unchanged; a seed, so none is drawn from torch's
    if transform is not None:
        batches = ((transform(images), labels) for images, labels in batches)
    logits, labels = predict(model, batches, device, precision)  # on the CPU
    correct = (logits.argmax(dim=1) == labels).float()
    per_class = [correct[labels == k].mean().item() for k in range(len(data.classes))]
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


def train_seeds(
    build: Callable[[int], nn.Module],
    train: ImageData,
    test: ImageData,
    epochs: int = 3,
    seeds: tuple[int, ...] = (0, 1, 2),
    **recipe,
) -> list[BriefRun]:
    """`train_briefly` once per seed: `build(seed)` makes the model, `seed` orders the batches.

    One run of a small comparison can be luck; several seeds show how much a result moves when
    only the random initial weights and the batch order change. `recipe` goes to `train_briefly`.
    """
    return [train_briefly(build(seed), train, test, epochs, seed=seed, **recipe) for seed in seeds]


def format_seed_runs(runs: dict[str, list[BriefRun]]) -> str:
    """One line per variant: test and train accuracy as mean, then (lowest - highest) over seeds."""
    counts = "/".join(sorted({str(len(seed_runs)) for seed_runs in runs.values()}))
    header = f"{'test acc: mean (range)':>24s}   {'train acc: mean (range)':>24s}"
    lines = [f"{'':30s} {'params':>8s}   {header}   ({counts} seeds each)"]
    for name, seed_runs in runs.items():
        test = mean_and_range([run.test_acc for run in seed_runs])
        train = mean_and_range([run.train_acc for run in seed_runs])
        lines.append(f"{name:30s} {seed_runs[0].params:8,d}   {test:>24s}   {train:>24s}")
    return "\n".join(lines)
