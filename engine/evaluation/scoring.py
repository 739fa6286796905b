"""Scores of a detector on a table's rows: one array per perturbation (NaN where unscored), fine-grained
predictions, each row's status (``engine.evaluation.coverage``), and one error naming the rows whose score is not
finite."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from common.errors import UserError
from data.csv_dataset import SplitDataset
from data.loader import build_loader
from data.perturb import Perturbation
from data.schema import SplitTable
from engine.device import channels_last_on, resolve_precision
from engine.inference.forward import score_loader

from .coverage import scoring_statuses

log = logging.getLogger("cael")


def _subset_predictions(
    model, table, rows, config, device, *, perturb=None, workers="auto", progress=True, description="test"
):
    dataset = SplitDataset(
        table,
        rows,
        size=config["model"]["image-size"],
        on_error=config["data"]["on-error"],
        perturb=perturb,
        crop=config["data"].get("crop", "resize"),
    )
    loader = build_loader(dataset, batch_size=int(config["eval"]["batch-size"]), train=False, workers=workers)
    precision = resolve_precision(config["train"]["precision"], device)
    return score_loader(
        model,
        loader,
        device,
        precision=precision,
        channels_last=channels_last_on(config["train"]["channels-last"], device),
        progress=progress,
        description=description,
    )


def _scores_by_row(n_rows: int, predictions) -> np.ndarray:
    scores = np.full(n_rows, np.nan)
    scores[predictions.indices] = predictions.scores
    return scores


class NonFiniteScoreError(UserError, ValueError):
    """Scores that are NaN, infinite or missing where a metric needs them; the message names the rows."""


def check_finite_scores(table: SplitTable, rows: np.ndarray, scores: np.ndarray, what: str, allow: bool) -> int:
    """Count of ``rows`` whose score is not finite; an error naming them unless ``allow`` (then a warning)."""
    bad = rows[~np.isfinite(scores[rows])]
    if len(bad) == 0:
        return 0
    shown = ", ".join(f"line {table.line(r)} ({table.column('path')[r]})" for r in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    if not allow:
        raise NonFiniteScoreError(
            f"{len(bad)} {what} of {table.csv_path} are NaN, infinite or missing ({shown}{more}): fix the scores "
            "(an fp16 overflow? evaluate with --precision bf16 or fp32), "
            "or pass --allow-nonfinite to report them as left out."
        )
    log.warning(
        f"{len(bad)} {what} are NaN, infinite or missing ({shown}{more}); they are left out and counted in the tables"
    )
    return len(bad)


def score_table(
    model,
    table: SplitTable,
    rows: np.ndarray,
    config,
    device,
    perturbations: Sequence[Perturbation],
    *,
    workers="auto",
    progress=True,
):
    """Scores per table row (NaN where unscored) for the clean images and each perturbation, fine predictions, and
    the status of each of ``rows`` (by table row; "" elsewhere): scored, non-finite, missing-file or unreadable.

    A non-finite model output stops evaluation with the rows named, unless ``eval.allow-nonfinite`` is on.
    """
    model.to(device)
    if channels_last_on(config["train"]["channels-last"], device):
        model.to(memory_format=torch.channels_last)
    allow = bool(config["eval"].get("allow-nonfinite", False))
    clean = _subset_predictions(model, table, rows, config, device, workers=workers, progress=progress)
    if clean.skipped:
        log.warning(
            f"skipped {clean.skipped} unreadable test images (data.on-error: skip); "
            "they are left out and counted in the tables"
        )
    check_finite_scores(table, clean.indices, _scores_by_row(len(table), clean), "model scores", allow)
    scores = {"clean": _scores_by_row(len(table), clean)}
    status = np.full(len(table), "", dtype=object)
    status[rows] = scoring_statuses(table, rows, clean.indices, scores["clean"])
    for perturbation in perturbations:
        result = _subset_predictions(
            model,
            table,
            rows,
            config,
            device,
            perturb=perturbation,
            workers=workers,
            progress=progress,
            description=perturbation.name,
        )
        scores[perturbation.name] = _scores_by_row(len(table), result)
        check_finite_scores(
            table, result.indices, scores[perturbation.name], f"model scores under {perturbation.name}", allow
        )
    fine = {}
    for level, values in clean.fine.items():
        predicted = np.full(len(table), -1, dtype=np.int64)
        predicted[clean.indices] = values
        fine[level] = predicted
    return scores, fine, status
