"""Receipts of a result: what it was computed from, so that two results can be shown to come from the same rows
(``test.py --compare`` checks them) and a number can be traced to its checkpoint and config.

- ``checkpoint_sha256``: the SHA-256 of the checkpoint file's bytes (a model folder: of its weights file; a hub id:
  the id as given; no model: None).
- ``test_rows``: the fingerprint of the protocol's test rows, keys and labels (``data.fingerprint``).
- ``config_sha256``: the SHA-256 of the run config as canonical JSON (sorted keys), the seed beside it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from data.fingerprint import rows_fingerprint

from .score_cache import file_digest


def checkpoint_digest(checkpoint: str | Path | None) -> str | None:
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    if path.is_file():
        return file_digest(path)
    weights = path / "model.safetensors"
    if path.is_dir() and weights.is_file():
        return file_digest(weights)
    return None


def config_digest(config: Mapping[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def receipts(table, test_rows: np.ndarray, config: Mapping[str, Any], checkpoint=None, seed=None) -> dict[str, Any]:
    return {
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "checkpoint_sha256": checkpoint_digest(checkpoint),
        "test_rows": rows_fingerprint(table, np.sort(test_rows)),
        "config_sha256": config_digest(config),
        "seed": seed,
    }
