"""Device data: the data set lives on the training device and is augmented a whole batch at a time.

The whole data set is one uint8 tensor `(N, 3, H, W)` on the device; each step shuffles, crops
and flips (the lesson's `mixer_edu.data.crop_and_flip`, on the whole batch at once), normalises
and optionally mixes a batch with a few tensor operations, all drawn from a CPU generator seeded
with the epoch's seed. Why, and how it matches torchvision's
per-image path: docs/training.md, "The data set on the device".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.nn import functional as F

from . import data  # the lesson's crop_and_flip, called through the module (tests patch it)
from .data import (
    CROP_PADDING,
    batch_augmentation,
    dataset_classes,
    load_dataset,
    make_loaders,
    normalization,
)
from .support import distributed
from .support.plan import DEVICE_AUGMENTATIONS
from .support.validation import check_positive_int


class DeviceLoader:
    """A data set on one device, served in shuffled, augmented, normalised batches.

    Iterate it like a DataLoader: `for images, labels in loader` gives `images (B, 3, H, W)`
    float32 (normalised) and `labels (B,)` int64, or soft targets `(B, classes)` float when
    CutMix/MixUp mixed the batch, all on `device`. `len(loader)` is the number of batches.

    Args:
        images: uint8 `(N, 3, H, W)` (any device; copied to `device` once).
        labels: integer `(N,)`.
        batch_size: images per batch.
        device: where the data set lives and the batches are made.
        train: shuffle and augment (training); False: the images in order, unchanged (test).
        augment: `'crop-flip'` (random crop after `padding` zero pixels on each side, then a
            horizontal flip with probability 1/2) or `'none'`. Only when `train`.
        padding: the crop's padding, `mixer_edu.data.CROP_PADDING` as in `augmentation`.
        batch_augment: `'none'`, `'cutmix'`, `'mixup'` or `'cutmix-mixup'` (see
            `mixer_edu.data.batch_augmentation`), applied with probability `batch_augment_prob`.
        num_classes: for the mixed soft targets (default: the largest label + 1).
        drop_last: drop the last incomplete batch (default: True when `train`, so every step
            sees the same number of images).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        device: str | torch.device = "cpu",
        train: bool = True,
        augment: str = "crop-flip",
        padding: int = CROP_PADDING,
        batch_augment: str = "none",
        batch_augment_alpha: float = 1.0,
        batch_augment_prob: float = 1.0,
        num_classes: int | None = None,
        drop_last: bool | None = None,
    ):
        _check_images_and_labels(images, labels)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if augment not in DEVICE_AUGMENTATIONS:
            raise ValueError(
                f"augment must be one of {DEVICE_AUGMENTATIONS} on the device, got {augment!r}; "
                "RandAugment and AutoAugment work image by image: use "
                "mixer_edu.data.make_loaders for them."
            )
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a whole number >= 0, got {padding!r}.")
        self.device = torch.device(device)
        self.train = train
        self.augment = augment if train else "none"
        self.padding = padding
        self.drop_last = train if drop_last is None else drop_last
        if self.drop_last and len(labels) < batch_size:
            raise ValueError(
                f"batch_size {batch_size} is larger than the {len(labels)} images and "
                "drop_last is on, so an epoch would have no batch; use a smaller batch_size."
            )
        self.labels = labels.to(self.device, torch.int64)  # (N,)
        self.images = images.to(self.device).contiguous()  # uint8 (N, 3, H, W)
        if self.augment == "crop-flip":  # padded once, not every batch: (N, 3, H + 2p, W + 2p)
            self.padded = F.pad(self.images, (padding,) * 4)
            height, width = images.shape[-2:]  # the images become a view of the padded ones
            self.images = self.padded[..., padding : padding + height, padding : padding + width]
        self.normalize = normalization()
        classes = num_classes or int(labels.max()) + 1
        self.batch_augment = batch_augmentation(
            batch_augment, classes, alpha=batch_augment_alpha, prob=batch_augment_prob
        )
        if self.batch_augment is not None and not train:
            raise ValueError(
                "batch_augment (CutMix / MixUp) applies to training batches only; use "
                "batch_augment='none'."
            )

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch, its seed drawn from torch's global generator (see `batches`)."""
        return self.batches()

    def batches(
        self, seed: int | None = None, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of `(images, labels)` batches, all of its randomness from `seed`.

        Without `seed`, one number is drawn from torch's global CPU generator, so a training
        loop that seeds torch per epoch gets a repeatable epoch. The same seed gives the same
        batches; the test split ignores it.

        With `world_size > 1` (several training processes, `support.distributed`), every batch
        is the same global batch as with one process, and this gives only its part number `rank`:
        images `[rank * B / world_size, (rank + 1) * B / world_size)` of it.
        """
        n, size = len(self.labels), tuple(self.images.shape[-2:])
        if seed is None:
            seed = int(torch.randint(2**62, ()))
        part = self._part(rank, world_size)
        generator = torch.Generator().manual_seed(seed)  # on the CPU: the same numbers anywhere
        order = torch.randperm(n, generator=generator) if self.train else torch.arange(n)
        crops = None
        if self.augment == "crop-flip":
            crops = data.random_crops(n, self.padding, generator)
        mix_seeds = torch.randint(2**62, (len(self),), generator=generator).tolist()
        order = order.to(self.device)
        if crops is not None:
            top, left, flip = (values.to(self.device) for values in crops)
        for number in range(len(self)):
            # The images of this batch, or of this rank's part (CutMix / MixUp needs all of them).
            first = number * self.batch_size
            where = slice(first, min(first + self.batch_size, n))
            if self.batch_augment is None and world_size > 1:
                where = slice(first + part.start, first + part.stop)
            index = order[where]
            if crops is None:
                images = self.images[index]
            else:  # draws are per epoch position, so a batch's crops follow its slot
                images = data.crop_and_flip(
                    self.padded, index, top[where], left[where], flip[where], size
                )
            images, labels = self.normalize(images), self.labels[index]  # float32, int64
            if self.batch_augment is not None:
                with torch.random.fork_rng(devices=[]):  # torchvision draws from the global one
                    torch.manual_seed(mix_seeds[number])
                    images, labels = self.batch_augment(images, labels)
                images, labels = images[part], labels[part]
            yield images, labels

    def _part(self, rank: int, world_size: int) -> slice:
        """The slice of a batch that process `rank` of `world_size` trains on."""
        check_positive_int(world_size, "world_size")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank!r}.")
        if world_size > 1 and (self.batch_size % world_size or not self.drop_last):
            raise ValueError(
                f"batch_size {self.batch_size} must split evenly over {world_size} processes, "
                "with drop_last on (a training loader); choose a multiple of the process count."
            )
        share = self.batch_size // world_size if world_size > 1 else self.batch_size
        return slice(rank * share, (rank + 1) * share)

    def epoch(self, seed: int, rank: int = 0, world_size: int = 1) -> Epoch:
        """`batches(seed, rank, world_size)` as an object with a length, like a DataLoader."""
        self._part(rank, world_size)  # errors now, not at the first batch
        return Epoch(self, seed, rank, world_size)

    @property
    def num_images(self) -> int:
        """Images in the data set."""
        return len(self.labels)

    def __repr__(self) -> str:
        n, shape = len(self.labels), tuple(self.images.shape[1:])
        return (
            f"{type(self).__name__}({n} images {shape} on {self.device}, batch {self.batch_size}, "
            f"{'train' if self.train else 'test'}, augment={self.augment!r}, "
            f"batch_augment={self.batch_augment is not None}, drop_last={self.drop_last})"
        )


class Epoch:
    """One epoch of a `DeviceLoader` from a fixed seed: iterate it once or again, ask its length."""

    def __init__(self, loader: DeviceLoader, seed: int, rank: int = 0, world_size: int = 1):
        self.loader, self.seed, self.rank, self.world_size = loader, seed, rank, world_size

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.loader.batches(self.seed, self.rank, self.world_size)


def _check_images_and_labels(images, labels) -> None:
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(
            "images and labels must be torch.Tensors; convert a numpy array (N, H, W, 3) with "
            "torch.from_numpy(array).permute(0, 3, 1, 2)."
        )
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}; the "
            "device path keeps raw pixels and normalises each batch itself."
        )
    if len(images) == 0:
        raise ValueError("images is empty; a DeviceLoader needs at least one image.")
    if labels.shape != images.shape[:1] or labels.is_floating_point():
        raise ValueError(
            f"labels must be integers of shape ({len(images)},), one per image, got "
            f"{labels.dtype} {tuple(labels.shape)}."
        )


def tensors_of(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 images `(N, 3, H, W)` and int64 labels `(N,)` a torchvision CIFAR10 has read."""
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2)  # (N, H, W, 3) -> (N, 3, H, W)
    return images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.int64)


def device_loaders(
    name: str,
    batch_size: int = 128,
    *,
    device: str | torch.device = "cpu",
    root: str | Path | None = None,
    augment: str = "crop-flip",
    batch_augment: str = "none",
    batch_augment_prob: float = 1.0,
    train_images: int | None = None,
    test_images: int | None = None,
    test_batch_size: int | None = None,
    download: bool = True,
) -> tuple[DeviceLoader, DeviceLoader]:
    """Training and test `DeviceLoader`s for `'cifar10'` or `'standin'`, like `make_loaders`.

    The arguments mean what they mean for `mixer_edu.data.make_loaders`; `device` is where the
    data set is kept and augmented, `batch_augment` the CutMix/MixUp done on
    each training batch.
    """
    num_classes = len(dataset_classes(name))
    splits = []
    for train, first in ((True, train_images), (False, test_images)):
        images, labels = tensors_of(load_dataset(name, train, root, None, download))
        if first is not None:
            check_positive_int(first, "train_images" if train else "test_images")
            images, labels = images[:first], labels[:first]
        splits.append((images, labels))
    (train_x, train_y), (test_x, test_y) = splits
    common = dict(device=device, num_classes=num_classes)
    train_loader = DeviceLoader(
        train_x, train_y, batch_size, augment=augment, batch_augment=batch_augment,
        batch_augment_prob=batch_augment_prob,
        **common,
    )  # fmt: skip
    test_loader = DeviceLoader(
        test_x, test_y, test_batch_size or 2 * batch_size, train=False, **common
    )
    return train_loader, test_loader


# --------------------------------------------------------------------------------------------
# The loaders of one training run, on the data path its plan chose, shared among ranks.
# --------------------------------------------------------------------------------------------


def run_loaders(config, *, data_root, plan, device, ranks):
    """`(train_loader, test_loader, batch_augment)` for `config` on the plan's data path.

    `batch_augment` is the CutMix/MixUp the loop applies to each batch: None on the device path,
    where the loader blends whole global batches itself.
    """
    distributed.local_batch_size(config.batch_size, ranks)  # an error before any work
    common = dict(
        root=data_root,
        augment=config.augment,
        train_images=config.train_images,
        test_images=config.test_images,
    )
    with distributed.main_first(ranks):  # one process downloads or generates the data set
        if plan.data_path == "device":
            train_loader, test_loader = device_loaders(
                config.dataset,
                config.batch_size,
                device=device,
                batch_augment=config.batch_augment,
                batch_augment_prob=config.batch_augment_prob,
                **common,
            )
            return train_loader, test_loader, None
        train_loader, test_loader = make_loaders(
            config.dataset, config.batch_size, num_workers=plan.workers, **common
        )
    classes = len(dataset_classes(config.dataset))
    batch_augment = batch_augmentation(
        config.batch_augment, classes, prob=config.batch_augment_prob
    )
    return distributed.shard_per_image(train_loader, ranks), test_loader, batch_augment


def epoch_batches(train_loader, seed: int, ranks):
    """What one epoch iterates: the device loader's batches from `seed`, or the DataLoader
    (its order and its workers' seeds come from torch's global generator, seeded just before,
    or, on several ranks, from `seed`, shared by all ranks)."""
    if isinstance(train_loader, DeviceLoader):
        return train_loader.epoch(seed, ranks.rank, ranks.world_size)
    if isinstance(train_loader.batch_sampler, distributed.RankBatches):
        train_loader.batch_sampler.set_seed(seed)
    return train_loader


def image_count(loader) -> int:
    """Training images per epoch, for the first line of a run."""
    return loader.num_images if isinstance(loader, DeviceLoader) else len(loader.dataset)
