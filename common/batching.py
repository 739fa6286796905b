"""Batches of any iterable, for streams whose length is not known in advance (video frames, face crops)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")


def batched(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of ``size`` items (the last one shorter), read lazily; ``itertools.batched`` of Python 3.12."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
