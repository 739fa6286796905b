"""Evaluation protocols as data: a YAML file + a split CSV (+ a fold) -> train / val / test rows and test groups.

A subset is a filter: ``{column: value or [values], real: {...}, fake: {...}}``; the ``real``/``fake`` filters
apply only to rows of that label, and ``"{fold}"`` stands for the fold chosen by name. Report groups: for each
column of ``report`` present in the CSV and each of its values, the test fakes with that value scored against
the real test images of the same source dataset(s); for ``source_dataset``, all that dataset's test rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from common.errors import UserError

from .schema import SchemaError, SplitTable

log = logging.getLogger("cael")

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"
SUBSETS = ("train", "val", "test")
OVERALL = "overall"
MISSING_VALUE = "(missing)"


class ProtocolError(UserError, ValueError):
    """A protocol that cannot be resolved on this CSV; the message names the protocol, fold and column."""


@dataclass
class Protocol:
    name: str
    spec: dict[str, Any]
    path: Path | None = None

    @property
    def fold_by(self) -> str | None:
        return self.spec.get("fold-by")

    @property
    def report(self) -> list[str]:
        return list(self.spec.get("report", []))


@dataclass
class ResolvedProtocol:
    protocol: str
    fold: str | None
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # "column=value" or "overall" -> test rows
    report: list[str] = field(default_factory=list)  # the protocol's report columns (absent ones are noted)
    # train / val -> the placeholder rows (source videos without crops, extraction_status) its filters passed and that
    # were left out: never loaded for training or validation. Test keeps them: evaluation counts them unscored.
    not_extracted: dict[str, np.ndarray] = field(default_factory=dict)

    def subset(self, name: str) -> np.ndarray:
        return getattr(self, name)


def available_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))


def load_protocol(name_or_path: str | Path) -> Protocol:
    path = Path(name_or_path)
    if not path.is_file():
        path = PROTOCOL_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ProtocolError(
            f"unknown protocol {name_or_path!r}: choose one of {', '.join(available_protocols())} or give a YAML file."
        )
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - {"name", "description", "fold-by", "report", *SUBSETS}
    if unknown:
        raise ProtocolError(f"protocol file {path} has unknown key(s) {', '.join(sorted(unknown))}.")
    for subset in SUBSETS:
        if subset not in spec:
            raise ProtocolError(f"protocol file {path} lacks the '{subset}' filter (use {{}} for all rows).")
    return Protocol(name=spec.get("name", path.stem), spec=spec, path=path)


def _match(table: SplitTable, spec: Mapping[str, Any], fold: str | None, context: str) -> np.ndarray:
    """Boolean mask of the rows that pass ``spec``."""
    mask = np.ones(len(table), dtype=bool)
    for key, wanted in (spec or {}).items():
        if key in ("real", "fake"):
            label = 0 if key == "real" else 1
            mask &= (table.labels != label) | _match(table, wanted, fold, context)
            continue
        if not table.has(key):
            raise ProtocolError(
                f"{context} filters on column '{key}', which {table.csv_path} lacks: add it to the CSV."
            )
        values = wanted if isinstance(wanted, list) else [wanted]
        values = {str(v).replace("{fold}", fold) if fold is not None else str(v) for v in values}
        if any("{fold}" in v for v in values):
            raise ProtocolError(f"{context} needs a fold: pass --fold NAME.")
        mask &= np.isin(np.asarray(table.column(key), dtype=object), list(values))
    return mask


def folds(protocol: Protocol, table: SplitTable) -> list[str]:
    """The folds of a protocol on this CSV: values of ``fold-by`` among the fake training rows."""
    if protocol.fold_by is None:
        return []
    if not table.has(protocol.fold_by):
        raise ProtocolError(
            f"protocol {protocol.name} folds by column '{protocol.fold_by}', which {table.csv_path} lacks."
        )
    split_only = {k: v for k, v in protocol.spec["train"].items() if k == "split"}
    rows = np.flatnonzero(_match(table, split_only, None, f"protocol {protocol.name}") & (table.labels == 1))
    column = table.column(protocol.fold_by)
    unnamed = [i for i in rows if not column[i]]
    if unnamed:
        raise ProtocolError(
            f"protocol {protocol.name} folds by '{protocol.fold_by}', but {len(unnamed)} fake training row(s) of "
            f"{table.csv_path} have no {protocol.fold_by} (e.g. line {table.line(unnamed[0])}): "
            "fill it in or drop those rows."
        )
    return sorted({column[i] for i in rows})


def _factorize(column: list[str], rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct values of ``column`` at ``rows`` (sorted; an empty value is ``MISSING_VALUE``, a visible group of
    its own) and each row's index among them: one dictionary pass, so that a group is an integer comparison."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(column[i] or MISSING_VALUE, len(index)) for i in rows), np.int64, len(rows))
    names = sorted(index)
    rank = np.empty(len(names), np.int64)
    rank[[index[name] for name in names]] = np.arange(len(names))
    return names, rank[codes] if len(codes) else codes


def report_groups(table: SplitTable, test_rows: np.ndarray, columns: list[str]) -> dict[str, np.ndarray]:
    """``overall`` plus, per report column and value, the test rows scored together.

    A fake group is scored against the test reals of its own source dataset(s). The values are coded once per
    column, so a table of G groups over N rows costs O(N) string work and G integer passes (not G string passes).
    """
    test_rows = np.sort(test_rows)
    groups = {OVERALL: test_rows}
    fake, real = table.labels[test_rows] == 1, table.labels[test_rows] == 0
    source_names, sources = (
        _factorize(table.column("source_dataset"), test_rows) if table.has("source_dataset") else (None, None)
    )
    reals_of: dict[bytes, np.ndarray] = {}  # the reals of a set of source datasets, computed once per set
    for column in columns:
        if not table.has(column):
            continue
        names, codes = (
            (source_names, sources) if column == "source_dataset" else _factorize(table.column(column), test_rows)
        )
        if column == "source_dataset":
            for code, value in enumerate(names):
                groups[f"{column}={value}"] = test_rows[codes == code]
            continue
        for code in np.unique(codes[fake]):
            fakes = fake & (codes == code)
            if sources is None:
                reals = real
            else:
                key = np.unique(sources[fakes]).tobytes()
                if key not in reals_of:
                    reals_of[key] = real & np.isin(sources, np.frombuffer(key, np.int64))
                reals = reals_of[key]
            groups[f"{column}={names[code]}"] = test_rows[fakes | reals]
    return groups


REAL_POLICIES = ("matched", "all")


def match_reals(table: SplitTable, rows: np.ndarray) -> np.ndarray:
    """``rows`` without the reals whose source dataset has no fake among ``rows`` (the source is then no label)."""
    if not table.has("source_dataset") or len(rows) == 0:
        return rows
    sources = np.asarray(table.column("source_dataset"), dtype=object)[rows]
    fake_sources = set(sources[table.labels[rows] == 1])
    keep = (table.labels[rows] == 1) | np.isin(sources, list(fake_sources))
    return rows[keep]


def resolve(
    protocol: Protocol | str, table: SplitTable, fold: str | None = None, reals: str = "matched"
) -> ResolvedProtocol:
    """Rows of each subset and the test groups of ``protocol`` on ``table`` for ``fold``.

    ``reals``: for a protocol with folds, ``matched`` (default) keeps the training and validation reals of the fold's
    own source dataset(s) only, so that the source dataset cannot become a shortcut for the label; ``all`` keeps
    every real the filters pass.
    """
    if reals not in REAL_POLICIES:
        raise ProtocolError(f"data.reals must be one of {', '.join(REAL_POLICIES)}; got {reals!r}.")
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    if protocol.fold_by is not None:
        available = folds(protocol, table)
        if fold is None:
            raise ProtocolError(
                f"protocol {protocol.name} needs --fold: one of {', '.join(available)} (values of "
                f"'{protocol.fold_by}')."
            )
        if fold not in available:
            raise ProtocolError(
                f"protocol {protocol.name} has no fold {fold!r} on {table.csv_path}: choose one of "
                f"{', '.join(available)}."
            )
    elif fold is not None:
        raise ProtocolError(f"protocol {protocol.name} has no folds; drop --fold {fold}.")
    valid = table.labels >= 0
    placeholders = table.placeholder_mask()
    subsets, not_extracted = {}, {}
    for name in SUBSETS:
        context = f"protocol {protocol.name} ({name})"
        passed = _match(table, protocol.spec[name], fold, context) & valid
        if name != "test" and placeholders.any():
            not_extracted[name] = np.flatnonzero(passed & placeholders)
            passed &= ~placeholders
        subsets[name] = np.flatnonzero(passed)
        if name != "test" and protocol.fold_by is not None and reals == "matched":
            subsets[name] = match_reals(table, subsets[name])
    _say_not_extracted(protocol.name, table, not_extracted)
    overlap = set(subsets["test"]) & (set(subsets["train"]) | set(subsets["val"]))
    if overlap:
        line = table.line(min(overlap))
        raise ProtocolError(
            f"protocol {protocol.name}: {len(overlap)} test row(s) are also training/validation rows (e.g. line "
            f"{line} of {table.csv_path})."
        )
    groups = report_groups(table, subsets["test"], protocol.report)
    return ResolvedProtocol(
        protocol=protocol.name,
        fold=fold,
        groups=groups,
        report=list(protocol.report),
        not_extracted=not_extracted,
        **subsets,
    )


def _say_not_extracted(protocol: str, table: SplitTable, not_extracted: dict[str, np.ndarray]) -> None:
    """One log line counting the placeholder rows left out of training and validation, by status."""
    parts = []
    for name, rows in not_extracted.items():
        if len(rows):
            statuses = ", ".join(f"{status} {count}" for status, count in table.placeholder_statuses(rows).items())
            parts.append(f"{len(rows)} from {name} ({statuses})")
    if parts:
        log.info(
            f"protocol {protocol}: left out {' and '.join(parts)}: placeholder rows of source videos that gave no "
            f"crop (extraction_status in {table.csv_path.name}); they are never loaded for training or validation"
        )


def require(resolved: ResolvedProtocol, subset: str, table: SplitTable, both_classes: bool = True) -> np.ndarray:
    """The rows of a subset a run needs, or one error saying why the subset cannot be used."""
    rows = resolved.subset(subset)
    where = f"protocol {resolved.protocol}" + (f" fold {resolved.fold}" if resolved.fold else "")
    if len(rows) == 0:
        raise SchemaError(
            f"{where}: the {subset} subset of {table.csv_path} is empty: check its split column (python -m "
            f"data.validate {table.csv_path})."
        )
    if both_classes and len(set(table.labels[rows].tolist())) < 2:
        only = "real" if table.labels[rows[0]] == 0 else "fake"
        raise SchemaError(
            f"{where}: the {subset} subset of {table.csv_path} holds only {only} images; it needs both classes."
        )
    return rows
