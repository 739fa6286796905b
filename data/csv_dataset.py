"""A dataset over a subset of a split CSV: decoded, resized uint8 RGB images with labels and row indices.
(``data/datasets.py`` is another thing: the command that writes such CSVs from public datasets.)

Samples are keyed ``(position, seed)`` by the samplers of ``data.loader``: the seed makes each sample's
augmentation a pure function of (run seed, epoch, position), whatever the number of workers, so a resumed run
sees exactly the images an uninterrupted one would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from common.errors import ConfigError, UserError

from .decoding import ImageDecodeError
from .images import CROP_POLICIES, fit_to_size, load_image
from .schema import SplitTable
from .transforms import apply_augment, build_augment, split_native

log = logging.getLogger(__name__)

ON_ERROR = ("error", "skip")


class CorruptImageError(UserError, RuntimeError):
    """A missing or undecodable image met during a run with ``data.on-error: error``."""


class SplitDataset(Dataset):
    """Rows ``rows`` of ``table``, each decoded to a uint8 (3, size, size) tensor.

    ``targets`` maps extra target names (e.g. ``level2``) to an int array over the table (-1 = no label).
    ``on_error='skip'`` turns unreadable images into ``None`` samples, dropped and counted by ``collate``.
    ``perturb(image, row)`` is a deterministic test-time perturbation applied last.
    """

    def __init__(
        self,
        table: SplitTable,
        rows: Sequence[int],
        *,
        size: int,
        augment: Sequence[Mapping[str, Any]] | None = None,
        on_error: str = "error",
        targets: Mapping[str, np.ndarray] | None = None,
        perturb: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
        crop: str = "resize",
    ):
        if on_error not in ON_ERROR:
            raise ConfigError(f"data config key 'on-error' must be one of {', '.join(ON_ERROR)}; got {on_error!r}.")
        self.rows = np.asarray(rows, dtype=np.int64)
        # NumPy string arrays, not lists of str: forked workers then share them without copy-on-read growth.
        self.paths = np.array(table.resolved_paths(self.rows), dtype=np.str_)
        # placeholder rows (a source video without crops; data.protocols leaves them out of training) are never
        # decoded: they come as skipped samples, counted by collate and unscored in evaluation
        self.placeholders = table.placeholder_mask()[self.rows]
        self.labels = table.labels[self.rows].astype(np.int64)
        self.size = size
        native, sized = split_native(augment)
        self.native_augment = build_augment(native, size)  # JPEG / blur at the image's own resolution
        self.augment = build_augment(sized, size)
        if crop not in CROP_POLICIES:
            raise ValueError(f"data config key 'crop' must be one of {', '.join(CROP_POLICIES)}; got {crop!r}.")
        self.crop = crop
        # decode at native resolution only when something must happen there (otherwise the fast resized decode)
        self.native = crop != "resize" or self.native_augment is not None or perturb is not None
        self.on_error = on_error
        self.perturb = perturb  # test-time robustness (data/perturb.py), at native resolution, before resizing
        self.targets = {
            name: np.asarray(values)[self.rows].astype(np.int64) for name, values in (targets or {}).items()
        }

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        position, seed = key if isinstance(key, tuple) else (key, None)
        path = str(self.paths[position])
        if self.placeholders[position]:
            return None
        try:
            image = load_image(path, None if self.native else self.size)
        except ImageDecodeError as error:
            if self.on_error == "error":
                raise CorruptImageError(
                    f"{error}; fix or remove it, or set data.on-error: skip to skip such images."
                ) from error
            log.warning("skipping %s", error)
            return None
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            if self.native:
                image = apply_augment(self.native_augment, image)
                if self.perturb is not None:
                    image = self.perturb(image, int(self.rows[position]))
                image = fit_to_size(image, self.size, self.crop)
            image = apply_augment(self.augment, image)
        sample = {"image": image, "label": self.labels[position], "index": self.rows[position]}
        for name, values in self.targets.items():
            sample[name] = values[position]
        return sample


def collate(samples: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Batch the samples, dropping skipped (``None``) ones and counting them in ``batch['skipped']``."""
    kept = [s for s in samples if s is not None]
    skipped = len(samples) - len(kept)
    if not kept:
        return {
            "image": torch.empty(0, 3, 0, 0, dtype=torch.uint8),
            "label": torch.empty(0, dtype=torch.long),
            "index": torch.empty(0, dtype=torch.long),
            "skipped": skipped,
        }
    batch = default_collate(kept)
    batch["skipped"] = skipped
    return batch
