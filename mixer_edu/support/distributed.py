"""Training on several processes with PyTorch's DistributedDataParallel (DDP).

    torchrun --nproc-per-node 2 -m mixer_edu.train --dataset standin --out runs/two

`torchrun` starts N copies of the trainer and tells each its number, the *rank* (0..N-1), through
environment variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`). Every rank holds a full copy of the
model. One step, with the recipe's batch size B (the *global* batch, the same for any N):

    every rank makes the same global batch of B images (the batches come from the epoch's seed)
    rank r trains on its slice   images[r * B/N : (r + 1) * B/N]
    loss.backward()              DDP averages the gradients of all ranks (an all-reduce), so each
                                 rank holds the gradient of the mean loss over all B images
    clip, optimizer.step()       the same update everywhere: the copies stay identical

So N processes compute what one process computes on the whole batch, up to float rounding (the
sums are added in another order), a recipe means the same thing on 1 or N GPUs, and resume stays
exact. Randomness inside the model (DropPath) is seeded per rank (`rank_seed`), so ranks do not
draw the same masks for different images. Only rank 0 writes checkpoints, metrics and progress
bars; it also evaluates, while the others wait. GPUs talk through NCCL, CPU processes through gloo.

Without torchrun (`WORLD_SIZE` unset or 1) everything here does nothing, and `train` runs as one
process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

# Rank r > 0 seeds its in-model randomness with epoch seed + r * RANK_SEED_STEP: far from the
# epoch seeds of any realistic run (seed * 100_003 + epoch).
RANK_SEED_STEP = 1_000_000_007


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the GPU of this process on its machine
    started: bool = False  # this process started the process group (and ends it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0


def _environment() -> Ranks:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    return Ranks(rank, world, local)


def is_main_process() -> bool:
    """False only in a torchrun process other than rank 0 (for printing in `main`)."""
    return _environment().is_main


@contextlib.contextmanager
def processes(device: torch.device) -> Iterator[tuple[Ranks, torch.device]]:
    """Join the other training processes, if torchrun started several; yields `(ranks, device)`.

    On CUDA each rank takes the GPU `LOCAL_RANK` (one GPU per process). The process group is
    ended on the way out, when this call started it.
    """
    ranks = _environment()
    if ranks.world_size == 1:
        yield ranks, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Ranks(ranks.rank, ranks.world_size, ranks.local_rank, started), device
    finally:
        if started:
            dist.destroy_process_group()


def describe(ranks: Ranks, batch_size: int) -> str:
    """'' for one process, else '; 2 processes (gloo), 64 images each per step'."""
    if ranks.world_size == 1:
        return ""
    backend = dist.get_backend() if dist.is_initialized() else "?"
    local = local_batch_size(batch_size, ranks)
    return f"; {ranks.world_size} processes ({backend}), {local} images each per step"


def local_batch_size(batch_size: int, ranks: Ranks) -> int:
    """Each rank's share of the global batch; a `ValueError` unless it divides evenly."""
    if batch_size % ranks.world_size:
        raise ValueError(
            f"batch_size {batch_size} does not split evenly over {ranks.world_size} processes; "
            f"choose a multiple of {ranks.world_size} (the batch size is the global one: every "
            "process trains on batch_size / processes images per step)."
        )
    return batch_size // ranks.world_size


def rank_seed(seed: int, ranks: Ranks) -> int:
    """The seed of this rank's in-model randomness; rank 0 (and a single process) keeps `seed`."""
    return seed + ranks.rank * RANK_SEED_STEP


def wrap(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """`DistributedDataParallel(model)` when several processes train, else `model` itself."""
    if ranks.world_size == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def combine_stats(stats: dict, ranks: Ranks, device: torch.device) -> dict:
    """An epoch's training statistics over all ranks: mean loss and accuracy, summed speed.

    Every rank trains on the same number of images, so the mean of the ranks' means is the mean
    over all images. `grad_norm` is already the same everywhere (the gradients were averaged).
    """
    if ranks.world_size == 1:
        return stats
    values = [stats["loss"], stats["acc"], stats["images_per_second"]]
    values = torch.tensor(values, dtype=torch.float64, device=device)  # NCCL: on the GPU
    dist.all_reduce(values)
    loss, acc, speed = values.tolist()
    world = ranks.world_size
    return {**stats, "loss": loss / world, "acc": acc / world, "images_per_second": speed}


def barrier(ranks: Ranks) -> None:
    """Wait until every rank gets here (nothing to wait for in a single process)."""
    if ranks.world_size > 1:
        dist.barrier()


@contextlib.contextmanager
def main_first(ranks: Ranks):
    """Run the block on rank 0 first, then on the others: one process downloads or generates the
    data set, the others then find it on disk."""
    if not ranks.is_main:
        barrier(ranks)
    yield
    if ranks.is_main:
        barrier(ranks)


# --------------------------------------------------------------------------------------------
# The per-image loader on several ranks.
# --------------------------------------------------------------------------------------------


class RankBatches(Sampler):
    """Batch indices for one rank: rank r's slice of every global batch of a seeded shuffle.

    All ranks draw the same permutation (from `seed`, set by the trainer every epoch with
    `set_seed`), cut it into global batches of `batch_size` (dropping the rest, as the
    single-process loader does) and take their own `batch_size / world_size` images of each.
    """

    def __init__(self, n: int, batch_size: int, ranks: Ranks):
        self.n, self.batch_size, self.ranks = n, batch_size, ranks
        self.local = local_batch_size(batch_size, ranks)
        self.seed = 0

    def set_seed(self, seed: int) -> None:
        self.seed = seed

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed))
        first = self.ranks.rank * self.local
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start + first : start + first + self.local].tolist()


def shard_per_image(loader: DataLoader, ranks: Ranks) -> DataLoader:
    """The training `DataLoader` of `make_loaders`, giving this rank its slice of each batch."""
    if ranks.world_size == 1:
        return loader
    return DataLoader(
        loader.dataset,
        batch_sampler=RankBatches(len(loader.dataset), loader.batch_size, ranks),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
    )
