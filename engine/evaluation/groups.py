"""Per-group numbers of one evaluation: every group's metrics under every score column, and the attribution
accuracy of the fine-grained heads (computed here; written by ``engine.evaluation.tables`` and ``outputs``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from data.schema import SplitTable

from .calibration import calibration_metrics
from .coverage import count
from .metrics import BOOTSTRAP_MAX_ROWS, compute_metrics


def evaluate_groups(
    table: SplitTable,
    groups: Mapping[str, np.ndarray],
    scores_by_row: Mapping[str, np.ndarray],
    eval_config: Mapping[str, Any],
    seed: int = 0,
    calibrated_threshold: float | None = None,
    *,
    status: np.ndarray | None = None,
    calibrated: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of every group under every score column (``clean`` and each perturbation).

    ``scores_by_row[name]`` is indexed by table row; a non-finite value (an unscored row left out by ``--missing
    exclude``) leaves the row out of that group's metrics and is counted in ``n_unscored`` (shown in the table).
    The bootstrap resamples videos (or identities) when the CSV has them; the unit is in ``bootstrap_unit``.
    ``status`` (by table row, ``engine.evaluation.coverage``): each group's rows of each status, in ``coverage``.
    The clean scores' calibration metrics are in ``calibration``; those of ``calibrated`` probabilities (a fitted
    map applied to the clean scores) in ``calibration_calibrated``.
    """
    results = {}
    for group, rows in groups.items():
        entry: dict[str, Any] = {}
        for name, scores in scores_by_row.items():
            values = scores[rows]
            scored = rows[np.isfinite(values)]
            clusters, unit = table.cluster_codes(scored)
            metrics = compute_metrics(
                table.labels[scored],
                scores[scored],
                threshold=eval_config["threshold"],
                calibrated_threshold=calibrated_threshold,
                bootstrap=eval_config["bootstrap"] if name == "clean" else 0,
                seed=seed,
                clusters=clusters,
                videos=table.video_codes(scored),
                frames=table.frame_codes(scored),
                video_aggregation=eval_config["video-aggregation"],
                interval=eval_config.get("interval", "auto"),
                max_bootstrap_rows=eval_config.get("bootstrap-max-rows", BOOTSTRAP_MAX_ROWS),
            )
            metrics["bootstrap_unit"] = unit
            metrics["n_unscored"] = int(len(rows) - len(scored))
            if name == "clean":
                labels = table.labels[scored]
                metrics["calibration"] = calibration_metrics(labels, scores[scored])
                if calibrated is not None:
                    metrics["calibration_calibrated"] = calibration_metrics(labels, calibrated[scored])
                if status is not None:
                    metrics["coverage"] = count(status, rows)
            entry[name] = metrics
        results[group] = entry
    return results


def attribution(
    table: SplitTable, rows: np.ndarray, predicted: np.ndarray, level: str, column: str, names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy and confusion matrix of a fine-grained head on the test fakes whose class it knows."""
    lookup = {name: i for i, name in enumerate(names)}
    values = table.values(column, rows)
    known = np.array([table.labels[r] == 1 and v in lookup for r, v in zip(rows, values)], dtype=bool)
    truth = np.array([lookup[v] for v, k in zip(values, known) if k], dtype=np.int64)
    guess = predicted[known]
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (truth, guess), 1)
    return {
        "level": level,
        "column": column,
        "classes": list(names),
        "n": int(known.sum()),
        "accuracy": float((truth == guess).mean()) if len(truth) else None,
        "confusion": matrix.tolist(),
    }
