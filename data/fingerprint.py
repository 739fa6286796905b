"""A fingerprint of a set of CSV rows (their keys and labels), so that two results, or a run and its moved data, can be
shown to concern the same rows without comparing the files.

A row's key is its ``path`` as the CSV writes it, relative to the data root (posix separators, no leading ``./``):
the same rows under another root, or in another order, have the same fingerprint; a row dropped or added, or a label
changed, gives another. O(n log n): one sort of the keys, one hash of the sorted (key, label) lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def row_keys(paths: Sequence[str]) -> np.ndarray:
    """The key of each path: posix separators, no leading ``./`` (object array of str)."""
    keys = np.array([path.replace("\\", "/") for path in paths], dtype=object)
    dotted = np.flatnonzero([key.startswith("./") for key in keys])
    for i in dotted:
        key = keys[i]
        while key.startswith("./"):
            key = key[2:]
        keys[i] = key
    return keys


def fingerprint(keys: Sequence[str], labels: Sequence[int]) -> dict:
    """{"rows", "fakes", "sha256"} of (key, label) pairs, whatever their order."""
    keys = np.asarray(keys, dtype=object)
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(keys.astype(str), kind="stable")
    lines = "\n".join(f"{key}\t{label}" for key, label in zip(keys[order].tolist(), labels[order].tolist()))
    return {
        "rows": int(len(keys)),
        "fakes": int((labels == 1).sum()),
        "sha256": hashlib.sha256(lines.encode("utf-8")).hexdigest(),
    }


def rows_fingerprint(table, rows: np.ndarray) -> dict:
    """The fingerprint of ``rows`` of a ``data.schema.SplitTable``."""
    paths = table.column("path")
    rows = np.asarray(rows, dtype=np.int64)
    return fingerprint(row_keys([paths[i] for i in rows.tolist()]), table.labels[rows])


def describe_difference(recorded: dict, found: dict) -> str:
    """One phrase saying how two fingerprints differ (counts first; equal counts: the rows or labels differ)."""
    if recorded["rows"] != found["rows"] or recorded["fakes"] != found["fakes"]:
        return (
            f"{recorded['rows']:,} rows ({recorded['fakes']:,} fake) recorded, {found['rows']:,} rows "
            f"({found['fakes']:,} fake) found"
        )
    return f"the same counts ({found['rows']:,} rows, {found['fakes']:,} fake) but other paths or labels"
