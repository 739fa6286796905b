"""predictions.csv, the file every table can be recomputed from: written per scored row by test.py, and its
``score*`` columns read back by ``test.py --predictions`` and ``--compare``."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from common.atomic import atomic_output
from data.schema import OPTIONAL_COLUMNS, SchemaError, SplitTable

GROUP_COLUMNS_IN_PREDICTIONS = OPTIONAL_COLUMNS  # the schema's optional columns, in its order


STATUS_COLUMN = "status"
CALIBRATED_COLUMN = "calibrated"


def _written_by_us(column: str) -> bool:
    """Columns this file's writer makes (a predictions.csv read back is not given them twice)."""
    return column in ("score", STATUS_COLUMN, CALIBRATED_COLUMN) or column.startswith(("score_", "pred_"))


def write_predictions(
    path: Path,
    table: SplitTable,
    rows: np.ndarray,
    scores_by_row: Mapping[str, np.ndarray],
    fine: Mapping[str, tuple[np.ndarray, Sequence[str]]],
    *,
    status: np.ndarray | None = None,
    calibrated: np.ndarray | None = None,
) -> None:
    """One line per test row of the protocol: path, label, score (+ perturbed scores; empty where unscored), the
    calibrated probability where a map was applied, the row's status (scored, or why not), group columns, the CSV's
    other columns."""
    extra = [
        c
        for c in table.column_names
        if c not in ("path", "label", *GROUP_COLUMNS_IN_PREDICTIONS) and not _written_by_us(c)
    ]
    groups = [c for c in GROUP_COLUMNS_IN_PREDICTIONS if table.has(c)]
    score_columns = ["score" if name == "clean" else f"score_{name}" for name in scores_by_row]
    header = ["path", "label", *score_columns]
    header += [CALIBRATED_COLUMN] if calibrated is not None else []
    header += [STATUS_COLUMN] if status is not None else []
    header += [*groups, *[f"pred_{level}" for level in fine], *extra]

    positions = rows.tolist()

    def picked(column: str) -> list[str]:
        values = table.column(column)
        return [values[i] for i in positions]

    def numbers(values: np.ndarray) -> list[str]:
        return [f"{s:.6f}" if math.isfinite(s) else "" for s in values[rows].tolist()]

    columns = [picked("path"), table.labels[rows].tolist()]
    columns += [numbers(values) for values in scores_by_row.values()]
    if calibrated is not None:
        columns.append(numbers(calibrated))
    if status is not None:
        columns.append(status[rows].tolist())
    columns += [picked(c) for c in groups]
    for pred, names in fine.values():
        lookup = np.asarray([*names, ""], dtype=object)  # -1 (no prediction) reads as the empty string
        columns.append(lookup[np.where(pred[rows] >= 0, pred[rows], len(names))].tolist())
    columns += [picked(c) for c in extra]
    with atomic_output(path, "w") as handle:  # column-wise: a million rows in seconds, not a Python loop per row
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(zip(*columns))


def read_prediction_status(table: SplitTable) -> np.ndarray | None:
    """The ``status`` column of a predictions.csv by row (None for a file written before it existed)."""
    if not table.has(STATUS_COLUMN):
        return None
    return np.array([value.strip() for value in table.column(STATUS_COLUMN)], dtype=object)


def read_prediction_scores(table: SplitTable, path: Path) -> dict[str, np.ndarray]:
    """``score*`` columns as float arrays (NaN where empty); a value that is not a number is an error naming it."""
    score_columns = [c for c in table.column_names if c == "score" or c.startswith("score_")]
    if "score" not in score_columns:
        raise SchemaError(
            f"{path} has no 'score' column: give a predictions.csv written by test.py (path,label,score,...)."
        )
    scores = {}
    for column in score_columns:
        texts = np.asarray(table.column(column), dtype=object)
        texts[texts == ""] = "nan"  # an empty score is a row the model did not score
        try:
            values = texts.astype(np.float64)
        except ValueError:
            row = next(i for i, text in enumerate(texts) if not _is_number(text))
            raise SchemaError(
                f"{path} line {table.line(row)}: {column} {texts[row]!r} is not a number; "
                "scores are probabilities of fake."
            ) from None
        scores["clean" if column == "score" else column[len("score_") :]] = values
    return scores


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
