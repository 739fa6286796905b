"""Distributed helpers for ``torchrun``: process-group setup, rank queries, gathering evaluation results."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from common.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False  # a process group was joined (torchrun), even with a single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Training goes through DDP: every run under torchrun, ``--nproc_per_node=1`` included."""
        return self.initialized or self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (a no-op for a plain ``python`` run)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    world_size = int(os.environ["WORLD_SIZE"])
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, initialized=True)


def device_for(info: DistInfo, requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda", info.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {requested!r} was requested but CUDA is not available here: use --set train.device=cpu."
        )
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    if device.type == "cuda" and device.index is None:  # name the card: logs and checkpoints say cuda:N
        return torch.device("cuda", torch.cuda.current_device())
    return device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def gather_arrays(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenate each rank's arrays on every rank (arrays of different lengths per rank are fine)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return arrays
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, arrays)
    return tuple(np.concatenate([part[i] for part in gathered]) for i in range(len(arrays)))


def gather_objects(value) -> list:
    """Every rank's ``value``, in rank order (a one-element list for a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
