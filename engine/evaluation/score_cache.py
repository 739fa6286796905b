"""Scores kept beside an evaluation's report, so that evaluating the same checkpoint on the same rows again (the
folds of ``test.py --runs`` rerun for another table, another ``--level``, other intervals) rereads them instead
of running the model over every test image again.

``OUT/scores.npz`` holds the scores of the test rows exactly as the model gave them (float64, not the six decimals
of predictions.csv, so the tables are the same to the last digit) with the key they were computed under: the
checkpoint's and the CSV's bytes (SHA-256), the data root, the protocol's test rows and every setting that changes a
score (the model, data and precision sections of the config, the perturbations). A different key, a missing or
unreadable file: the model scores the rows again. Image files are not hashed (a million of them would cost more than
scoring): after changing images in place, pass ``--rescore``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_bytes_atomic

log = logging.getLogger("cael")

SCORES_NAME = "scores.npz"
KEY_VERSION = 2  # 2: each row's status is kept beside its scores
# Sections and keys of the run config that do not change a score (how it is reported, how fast it is computed).
REPORTING_ONLY = {
    "eval": {"batch-size", "bootstrap", "interval", "bootstrap-max-rows", "threshold", "video-aggregation"}
    | {"allow-nonfinite", "roc-log-fpr", "conventions", "missing"},
    "data": {"workers", "csv", "root"},  # the CSV and the root are keyed by their content and resolved path
}
SCORING_TRAIN_KEYS = ("precision", "channels-last")


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, modified_ns: int) -> str:
    """SHA-256 of a file's bytes (cached per path, size and modification time: the CSV of six folds is read once)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    stat = os.stat(path)
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def scoring_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a run config that change what the model outputs for an image."""
    kept = {}
    for section in ("model", "data", "eval"):
        values = config.get(section) or {}
        kept[section] = {k: v for k, v in values.items() if k not in REPORTING_ONLY.get(section, ())}
    train = config.get("train") or {}
    kept["train"] = {k: train.get(k) for k in SCORING_TRAIN_KEYS}
    return kept


def scoring_key(
    checkpoint: str | Path,
    csv_path: Path,
    root: Path,
    test_rows: np.ndarray,
    config: Mapping[str, Any],
    perturbations: Sequence[Any],
) -> dict[str, Any]:
    """What the scores of ``test_rows`` depend on; equal keys give equal scores (images unchanged)."""
    checkpoint = Path(checkpoint)
    rows = np.ascontiguousarray(test_rows, dtype=np.int64)
    return {
        "version": KEY_VERSION,
        "checkpoint": file_digest(checkpoint) if checkpoint.is_file() else str(checkpoint),
        "csv": file_digest(csv_path),
        "root": str(Path(root).resolve()),
        "test_rows": [int(len(rows)), hashlib.sha256(rows.tobytes()).hexdigest()],
        "perturbations": [p.name for p in perturbations],
        "config": json.loads(json.dumps(scoring_config(config), sort_keys=True, default=str)),
    }


def save_scores(
    out_dir: Path,
    key: Mapping[str, Any],
    rows: np.ndarray,
    scores: Mapping[str, np.ndarray],
    fine: Mapping[str, np.ndarray],
    status: np.ndarray,
) -> Path:
    """Write ``out_dir/scores.npz`` atomically: the key, the test rows and their scores, fine predictions and
    statuses."""
    arrays = {"key": np.frombuffer(json.dumps(key, sort_keys=True).encode(), dtype=np.uint8), "rows": rows}
    arrays["status"] = status[rows].astype(str)
    arrays |= {f"score/{name}": values[rows] for name, values in scores.items()}
    arrays |= {f"fine/{level}": values[rows] for level, values in fine.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(out_dir / SCORES_NAME, buffer.getvalue())


def load_scores(out_dir: Path, key: Mapping[str, Any], table_rows: int):
    """(scores, fine, status) by table row as ``score_table`` returns them when ``out_dir/scores.npz`` was computed
    under ``key``; None (and why, in the log) when there is none or it was computed under another key."""
    path = out_dir / SCORES_NAME
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        log.warning(f"{path} cannot be read ({type(error).__name__}: {error}): the model scores the rows again")
        return None
    if arrays.get("key") is None or json.loads(arrays["key"].tobytes()) != json.loads(json.dumps(key, sort_keys=True)):
        log.info(f"{path} was computed for another checkpoint, CSV, rows or settings: the model scores the rows again")
        return None
    rows = arrays["rows"]
    scores, fine = {}, {}
    status = np.full(table_rows, "", dtype=object)
    status[rows] = arrays["status"].astype(object)
    for name, values in arrays.items():
        kind, _, entry = name.partition("/")
        if kind == "score":
            scores[entry] = np.full(table_rows, np.nan)
            scores[entry][rows] = values
        elif kind == "fine":
            fine[entry] = np.full(table_rows, -1, dtype=np.int64)
            fine[entry][rows] = values
    return scores, fine, status
