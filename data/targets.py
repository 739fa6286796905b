"""Training targets beyond real/fake: per-row class indices of the fine-grained heads (forgery type, generator)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .schema import SchemaError

FINE_LEVELS = {"level2": "forgery_type", "level3": "generator"}


def fine_targets(table, train_rows: np.ndarray, model_config: dict[str, Any]):
    """Per-row class indices of the fine-grained heads (-1: no fine label, e.g. real images) and their names."""
    if not model_config.get("fine-grained-heads"):
        return {}, {}
    targets, names = {}, {}
    for level, column in FINE_LEVELS.items():
        values = table.column(column)
        classes = sorted({values[i] for i in train_rows if table.labels[i] == 1})
        expected = model_config[f"{level}-num-classes"]
        if len(classes) != expected:
            raise SchemaError(
                f"model.{level}-num-classes is {expected} but the training fakes of {table.csv_path} have "
                f"{len(classes)} {column} values ({', '.join(classes)}): set model.{level}-num-classes={len(classes)}."
            )
        lookup = {name: i for i, name in enumerate(classes)}
        targets[level] = np.array(
            [lookup.get(v, -1) if table.labels[i] == 1 else -1 for i, v in enumerate(values)], dtype=np.int64
        )
        names[level] = classes
    return targets, names
