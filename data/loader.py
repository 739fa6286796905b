"""Loaders: seeded epoch samplers (shuffled or class-balanced, DDP-sharded, resumable mid-epoch), an evaluation
sampler that scores every row exactly once across ranks, and worker/pinning settings sized to the machine.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from common.errors import ConfigError

from .csv_dataset import SplitDataset, collate


def _generator(*keys: int) -> torch.Generator:
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


class TrainSampler(Sampler):
    """Yields ``(position, sample_seed)`` keys for one rank's share of an epoch.

    The order is a function of (seed, epoch) only: shuffled, or drawn with replacement with class-balanced
    weights (``labels`` given). ``set_epoch(epoch, skip=k)`` starts the epoch after this rank's first k samples,
    which is how a run resumed mid-epoch continues exactly where it stopped.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int,
        labels: np.ndarray | None = None,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        if num_samples == 0:
            raise ConfigError("the training subset is empty: check the protocol and the CSV's split column.")
        self.num_samples, self.seed, self.shuffle = num_samples, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.weights = None
        if labels is not None:
            counts = np.bincount(labels, minlength=2).astype(np.float64)
            self.weights = torch.from_numpy(1.0 / counts[labels])
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.world_size) - self.skip

    def __iter__(self):
        generator = _generator(self.seed, self.epoch)
        n = self.num_samples
        if self.weights is not None:
            order = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        elif self.shuffle:
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        seeds = torch.randint(0, 2**62, (n,), generator=generator)
        total = math.ceil(n / self.world_size) * self.world_size
        if total > n:  # pad by wrapping so every rank takes the same number of steps (as DistributedSampler)
            order, seeds = torch.cat((order, order[: total - n])), torch.cat((seeds, seeds[: total - n]))
        mine = slice(self.rank, total, self.world_size)
        for position, seed in list(zip(order[mine].tolist(), seeds[mine].tolist()))[self.skip :]:
            yield position, seed


class EvalSampler(Sampler):
    """This rank's rows ``rank, rank + world, ...``: no padding, so across ranks every row is scored exactly once."""

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1):
        self.positions = list(range(rank, num_samples, world_size))

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self):
        return iter(self.positions)


def default_workers(world_size: int = 1) -> int:
    """Worker processes per rank: the CPU cores this process may use, shared among ranks, one left for the main loop."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(16, cores // max(1, world_size) - 1))


def resolve_workers(value, world_size: int = 1) -> int:
    if value in (None, "auto"):
        return default_workers(world_size)
    if isinstance(value, int) and value >= 0:
        return value
    raise ConfigError(f"data config key 'workers' must be 'auto' or a number >= 0; got {value!r}.")


def build_loader(
    dataset: SplitDataset,
    *,
    batch_size: int,
    train: bool,
    seed: int = 0,
    workers="auto",
    balanced: bool = False,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool | None = None,
    prefetch_factor: int = 4,
) -> DataLoader:
    """A DataLoader of uint8 batches: pinned when CUDA is present, persistent workers, seeded sampling."""
    if train:
        sampler = TrainSampler(
            len(dataset), seed=seed, labels=dataset.labels if balanced else None, rank=rank, world_size=world_size
        )
    else:
        sampler = EvalSampler(len(dataset), rank=rank, world_size=world_size)
    num_workers = resolve_workers(workers, world_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        drop_last=train if drop_last is None else drop_last,
        persistent_workers=num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        # A generator of its own: creating iterators never draws from the global RNG (exact resume).
        generator=torch.Generator().manual_seed(seed),
    )
