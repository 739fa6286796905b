"""The training data of a run: the protocol's training and validation rows of the CSV as loaders (``build_data``), in
the shape the training loop takes (``TrainData``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from common.errors import ConfigError
from common.keys import Keys
from data.csv_dataset import SplitDataset
from data.fingerprint import splits_fingerprint
from data.loader import build_loader, resolve_workers
from data.protocols import ResolvedProtocol, require, resolve
from data.schema import SchemaError, SplitTable, load_table
from data.targets import fine_targets
from data.trained_on import describe_training_data
from engine.distributed import DistInfo

log = logging.getLogger("cael")


@dataclass
class TrainData:
    """What the loop needs of its data: ``build_data`` makes it from the config's CSV and protocol; a caller may make
    it from anything else (the tests train on an in-memory dataset).

    Batches are ``data.csv_dataset.collate`` dicts: ``image`` (uint8, B x 3 x H x W), ``label``, ``index`` (a row
    number into ``labels``), ``skipped``, and one class index per fine-grained level named in ``class_names``. The
    train loader has a ``batch_size`` and a sampler that takes ``set_epoch(epoch, skip=n)``
    (``data.loader.build_loader`` makes both: its ``TrainSampler`` is what makes mid-epoch resume exact).
    """

    train_loader: DataLoader
    val_loader: DataLoader
    labels: np.ndarray  # 0/1 per row number (a batch's "index"): what validation scores are measured against
    class_counts: np.ndarray  # training rows per class (real, fake), for class-weighted losses
    class_names: dict[str, list[str]] = field(default_factory=dict)  # fine-grained level -> its class names
    table: SplitTable | None = None  # the CSV the rows come from (video and frame keys of validation); None: no CSV
    bn_loader: DataLoader | None = None  # train.precise-bn: a fixed subset of training rows, evaluation transforms
    trained_on: dict[str, Any] | None = None  # data.trained_on record of the rows read, kept in every checkpoint
    fingerprint: dict[str, Any] | None = None  # data.fingerprint of the protocol's subsets, kept in every checkpoint

    def video_keys(self, rows: np.ndarray) -> Keys | None:
        """Each row's video as an integer code (built once per table): validation groups rows without strings."""
        return self.table.video_codes(np.asarray(rows)) if self.table is not None else None

    def frame_keys(self, rows: np.ndarray) -> Keys | None:
        return self.table.frame_codes(np.asarray(rows)) if self.table is not None else None


@dataclass
class RunRows:
    """The rows of a run: its CSV and the protocol's training, validation and test rows of it (read, not opened)."""

    table: SplitTable
    resolved: ResolvedProtocol
    train: np.ndarray
    val: np.ndarray

    @property
    def test(self) -> np.ndarray:
        return self.resolved.test

    def fingerprint(self) -> dict[str, Any]:
        """``data.fingerprint.splits_fingerprint`` of the train, val and test rows (computed once)."""
        if "_fingerprint" not in self.__dict__:
            subsets = {"train": self.train, "val": self.val, "test": self.test}
            self.__dict__["_fingerprint"] = splits_fingerprint(self.table, subsets)
        return self.__dict__["_fingerprint"]


def select_rows(config: dict[str, Any]) -> RunRows:
    """The CSV of ``data.csv`` and the protocol's subsets of it: every error of the CSV, the protocol or the fold comes
    from here, before anything is written."""
    data_cfg = config["data"]
    if not data_cfg["csv"]:
        raise SchemaError("no training data: pass --csv SPLITS.csv (or set data.csv in the config).")
    table = load_table(data_cfg["csv"], data_cfg["root"])
    resolved = resolve(data_cfg["protocol"], table, data_cfg["fold"], data_cfg.get("reals", "matched"))
    return RunRows(table, resolved, require(resolved, "train", table), require(resolved, "val", table))


def build_data(config: dict[str, Any], dist: DistInfo, rows: RunRows | None = None) -> TrainData:
    """The loaders of the protocol's training and validation rows of ``data.csv`` (this rank's share; the test rows
    are never opened), with the fine-grained targets of the model config. ``rows``: ``select_rows(config)`` when the
    caller has it already."""
    data_cfg, model_cfg, precise_bn = config["data"], config["model"], config["train"]["precise-bn"]
    if not isinstance(precise_bn, int) or precise_bn < 0:
        raise ConfigError(f"train.precise-bn must be a number of training images >= 0 (0: off); got {precise_bn!r}.")
    rows = rows if rows is not None else select_rows(config)
    table, resolved, train_rows, val_rows = rows.table, rows.resolved, rows.train, rows.val
    targets, class_names = fine_targets(table, train_rows, model_cfg)
    common = dict(
        size=model_cfg["image-size"],
        on_error=data_cfg["on-error"],
        targets=targets,
        crop=data_cfg.get("crop", "resize"),
    )
    train_set = SplitDataset(table, train_rows, augment=data_cfg["augment"], **common)
    val_set = SplitDataset(table, val_rows, **common)
    train_loader = build_loader(
        train_set,
        batch_size=int(config["train"]["batch-size"]),
        train=True,
        seed=config["train"]["seed"],
        workers=data_cfg["workers"],
        balanced=data_cfg["balanced"],
        rank=dist.rank,
        world_size=dist.world_size,
    )
    val_loader = build_loader(
        val_set,
        batch_size=int(config["eval"]["batch-size"]),
        train=False,
        workers=data_cfg["workers"],
        rank=dist.rank,
        world_size=dist.world_size,
    )
    class_counts = np.bincount(table.labels[train_rows], minlength=2)
    bn_loader = None
    if precise_bn > 0:
        # The same seeded subset on every rank (identical statistics without communication), no augmentation.
        picked = np.random.default_rng(config["train"]["seed"]).permutation(len(train_rows))
        bn_rows = np.sort(train_rows[picked[:precise_bn]])
        bn_loader = build_loader(
            SplitDataset(table, bn_rows, **common),
            batch_size=int(config["train"]["batch-size"]),
            train=False,
            workers=resolve_workers(data_cfg["workers"], dist.world_size),  # this rank's share of the cores
        )
    fold = f" fold {resolved.fold}" if resolved.fold else ""
    log.info(
        f"data: {table.csv_path} protocol {resolved.protocol}{fold}: train {len(train_rows)} rows "
        f"(real {class_counts[0]}, fake {class_counts[1]}), val {len(val_rows)} rows; "
        f"test rows ({len(resolved.test)}) are not read by training"
    )
    trained_on = describe_training_data(table, {"train": train_rows, "val": val_rows})
    return TrainData(
        train_loader,
        val_loader,
        table.labels,
        class_counts,
        class_names,
        table,
        bn_loader,
        trained_on,
        rows.fingerprint(),
    )
