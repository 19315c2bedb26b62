"""The loaders of one training run, on the data path its plan chose, shared among ranks."""

from __future__ import annotations

from ..data import batch_mixing, dataset_classes, make_loaders
from . import distributed
from .device_data import DeviceLoader, device_loaders


def run_loaders(config, *, data_root, plan, device, ranks):
    """`(train_loader, test_loader, mixing)` for `config` on the plan's data path.

    `mixing` is the CutMix/MixUp the loop applies to each batch: None on the device path, where
    the loader mixes whole global batches itself.
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
                mixing=config.mixing,
                mixing_prob=config.mixing_prob,
                **common,
            )
            return train_loader, test_loader, None
        train_loader, test_loader = make_loaders(
            config.dataset, config.batch_size, num_workers=plan.workers, **common
        )
    classes = len(dataset_classes(config.dataset))
    mixing = batch_mixing(config.mixing, classes, prob=config.mixing_prob)
    return distributed.shard_per_image(train_loader, ranks), test_loader, mixing


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
