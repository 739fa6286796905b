"""What a detector was trained on: a small record of its training CSV kept in every checkpoint (``trained_on``), the
line the model card and the tools print from it, and the caveat for inputs that are not of that kind.

The demo (``data/make_demo.py``) is recognised by its source datasets, the two synthetic cameras of
``make_demo.CAMERAS``: a detector trained only on them has learnt 64 px procedural faces, and its scores on real
photos mean nothing. A checkpoint written before the record existed carries none: nothing is claimed about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .make_demo import CAMERAS, SIZE
from .schema import SplitTable

# Source datasets listed in the record; a CSV with more names keeps the first ones and a count of the rest.
MAX_SOURCE_DATASETS = 20
DEMO_CAVEAT = f"trained on synthetic {SIZE} px demo data: scores on real photos mean nothing"


def describe_training_data(table: SplitTable, split_rows: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The record of the rows a run reads (``{"train": rows, "val": rows}``): the CSV and its data root, real and
    fake rows per split, and the source datasets; ``kind`` is ``demo`` when every row comes from the demo's cameras.
    Plain values only (a checkpoint is loaded with weights_only=True)."""
    rows = {
        split: {
            "real": int(np.count_nonzero(table.labels[r] == 0)),
            "fake": int(np.count_nonzero(table.labels[r] == 1)),
        }
        for split, r in split_rows.items()
    }
    used = np.concatenate([np.asarray(r, dtype=np.int64) for r in split_rows.values()] or [np.zeros(0, np.int64)])
    sources: list[str] = []
    if table.has("source_dataset") and len(used):
        sources = np.unique(np.asarray(table.column("source_dataset"), dtype=np.str_)[used]).tolist()
    demo = bool(sources) and set(sources) <= set(CAMERAS)
    return {
        "kind": "demo" if demo else "csv",
        "csv": str(Path(table.csv_path).resolve()),
        "root": str(Path(table.root).resolve()),
        "rows": rows,
        "source_datasets": sources[:MAX_SOURCE_DATASETS],
        "more_source_datasets": max(0, len(sources) - MAX_SOURCE_DATASETS),
    }


def training_summary(record: Mapping[str, Any] | None) -> str | None:
    """One line saying what the detector was trained on, or None where the checkpoint records nothing."""
    if not isinstance(record, Mapping) or "rows" not in record:
        return None
    counts = "; ".join(
        f"{split} {c.get('real', 0):,} real / {c.get('fake', 0):,} fake" for split, c in record["rows"].items()
    )
    sources = ", ".join(record.get("source_datasets") or []) or "no source_dataset column"
    if record.get("more_source_datasets"):
        sources += f" and {record['more_source_datasets']} more"
    what = record.get("csv")
    if record.get("kind") == "demo":
        what = f"synthetic {SIZE} px demo data ({what})"
    return f"trained on {what}: {counts} rows; source datasets: {sources}"


def inputs_caveat(record: Mapping[str, Any] | None, inputs: Iterable[str | Path]) -> str | None:
    """The caveat for scoring ``inputs`` with a detector trained on ``record``'s data, or None when there is none to
    give: a demo-trained detector on anything outside its demo data folder gets ``DEMO_CAVEAT``."""
    if not isinstance(record, Mapping) or record.get("kind") != "demo":
        return None
    root = record.get("root")
    paths = [Path(path).resolve() for path in inputs]
    if root and paths and all(path.is_relative_to(Path(root).resolve()) for path in paths):
        return None
    return DEMO_CAVEAT
