"""Evaluation behind ``test.py``: a trained detector on a protocol's test rows, or a predictions.csv recomputed
without the model -> metrics and tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.config import deep_merge
from data.protocols import load_protocol, require, resolve
from data.schema import SchemaError, SplitTable, check_images_under_root, load_table
from engine.config import DEFAULTS, apply_overrides, flatten_overrides, load_config
from engine.distributed import DistInfo
from model.hub import load_detector

from .outputs import write_report
from .predictions import read_prediction_scores
from .score_cache import SCORES_NAME, load_scores, save_scores, scoring_key
from .scoring import check_finite_scores, score_table

log = logging.getLogger("cael")


def _load_for_evaluation(checkpoint: str | Path, requested_config: Mapping[str, Any] | None):
    """(model, run config on the defaults, class names, card info) of any source ``load_detector`` takes."""
    pretrained = load_detector(checkpoint, requested_config)
    if pretrained.released:
        log.info(f"{checkpoint}: a released CAEL checkpoint, evaluated with our released-mode model")
    # sections a model folder or a released checkpoint lacks take the defaults; the model section is the detector's own
    config = {**deep_merge(load_config(None), pretrained.config), "model": pretrained.config["model"]}
    return pretrained.model, config, pretrained.class_names, pretrained.info


@dataclass
class EvaluationPlan:
    """What evaluating a checkpoint works on: the model and its config, the test rows, the output folder and the key
    its scores are kept under (``engine.evaluation.score_cache``)."""

    model: Any
    config: dict[str, Any]
    class_names: dict[str, Any]
    info: dict[str, Any]
    table: SplitTable
    resolved: Any
    out_dir: Path
    key: dict[str, Any]


def plan_evaluation(
    checkpoint: str | Path,
    config_overrides: Mapping[str, Any],
    out_dir: Path | None,
    perturbations,
    requested_config=None,
    *,
    protocol: str | None = None,
    fold: str | None = None,
) -> EvaluationPlan:
    """The model, config, test rows, output folder and scoring key of evaluating ``checkpoint`` (nothing scored)."""
    model, config, class_names, info = _load_for_evaluation(checkpoint, requested_config)
    # a checkpoint written before an eval key existed takes its default
    config = apply_overrides(deep_merge({"eval": DEFAULTS["eval"]}, config), flatten_overrides(config_overrides))
    if protocol is not None and protocol != config["data"]["protocol"]:
        config["data"]["protocol"], config["data"]["fold"] = protocol, fold  # another protocol: its own fold, if any
    elif fold is not None:
        config["data"]["fold"] = fold
    data = config["data"]
    if not data.get("csv"):
        raise SchemaError(f"{checkpoint} carries no test data: pass --csv SPLITS.csv (and --protocol).")
    table = load_table(data["csv"], data["root"])
    resolved = resolve(data["protocol"], table, data["fold"], data.get("reals", "matched"))
    require(resolved, "test", table, both_classes=False)
    check_images_under_root(table, resolved.test)  # a wrong --data-root, said before the model runs
    out_dir = out_dir or _default_eval_parent(checkpoint) / (
        "eval-" + "-".join(filter(None, [resolved.protocol, resolved.fold]))
    )
    key = scoring_key(checkpoint, table.csv_path, table.root, resolved.test, config, perturbations)
    return EvaluationPlan(model, config, class_names, info, table, resolved, out_dir, key)


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    config_overrides: Mapping[str, Any],
    out_dir: Path | None,
    perturbations,
    device,
    requested_config=None,
    workers="auto",
    progress=True,
    dist: DistInfo | None = None,
    protocol: str | None = None,
    fold: str | None = None,
    rescore: bool = False,
) -> dict[str, Any]:
    """Score the test rows of a protocol (default: the checkpoint's own protocol, fold and CSV) and write the report.

    The scores are kept in ``out_dir/scores.npz`` (``engine.evaluation.score_cache``); evaluating into the same folder
    again with the same checkpoint, CSV, rows and scoring settings rereads them instead of running the model (not
    with ``rescore``)."""
    plan = plan_evaluation(
        checkpoint, config_overrides, out_dir, perturbations, requested_config, protocol=protocol, fold=fold
    )
    model, config, class_names, info = plan.model, plan.config, plan.class_names, plan.info
    table, resolved, out_dir, key = plan.table, plan.resolved, plan.out_dir, plan.key
    reused = None if rescore else load_scores(out_dir, key, len(table))
    if reused is not None:
        scores, fine = reused
        log.info(
            f"scores of the {len(resolved.test)} test rows reused from {out_dir / SCORES_NAME} (same checkpoint, "
            "CSV, rows and scoring settings; --rescore runs the model again)"
        )
    else:
        scores, fine = score_table(
            model, table, resolved.test, config, device, perturbations, workers=workers, progress=progress
        )
    if dist is not None and not dist.is_main:
        return {}
    if reused is None:
        save_scores(out_dir, key, resolved.test, scores, fine)
    if info.get("calibration") is None:
        log.warning(f"{checkpoint} carries no calibrated threshold: Acc@val-thr is n/a (readers fall back to 0.5)")
    fold = f", trained on {resolved.fold}" if resolved.fold else ""
    title = f"{Path(checkpoint).parent.name}: protocol {resolved.protocol}{fold}, test rows of {table.csv_path.name}"
    card_extra = []
    if reused is not None:
        card_extra.append(f"scores reused from {SCORES_NAME}: computed by this checkpoint on these rows before")
    payload = write_report(
        out_dir,
        table,
        resolved,
        scores,
        fine,
        class_names,
        config,
        title=title,
        info=info,
        extra={
            "checkpoint": str(checkpoint),
            "seed": config["train"]["seed"],
            "epoch": info.get("epoch"),
            "scores_reused": reused is not None,
        },
        card_extra=card_extra,
    )
    payload["out_dir"] = str(out_dir)
    return payload


def _default_eval_parent(checkpoint: str | Path) -> Path:
    """Where RUN/eval-* goes: beside a checkpoint file, inside a model folder, under ./<owner--name> for a hub id."""
    path = Path(checkpoint)
    if path.is_dir():
        return path
    if not path.exists():
        return Path.cwd() / str(checkpoint).replace("/", "--")
    return path.parent


def evaluate_predictions(
    predictions_csv: str | Path,
    *,
    protocol: str,
    eval_config: Mapping[str, Any],
    out_dir: Path,
    fold: str | None = None,
) -> dict[str, Any]:
    """Recompute every table from a predictions.csv (no model): its ``score*`` columns are the scores.

    The protocol's test filter is applied (rows of other splits are not scored); a file without a ``split``
    column is taken as test rows only, and the card says so. Missing or non-finite scores of test rows are an
    error naming them unless ``eval_config['allow-nonfinite']``.
    """
    predictions_csv = Path(predictions_csv)
    table = load_table(predictions_csv, root=predictions_csv.parent)
    if len(table) == 0:
        raise SchemaError(f"{predictions_csv} has no rows: give a predictions.csv written by test.py.")
    scores = read_prediction_scores(table, predictions_csv)
    resolved, card_extra = resolve_test_rows(table, protocol, fold)
    if len(resolved.test) == 0:
        raise SchemaError(
            f"{predictions_csv} has no test rows for protocol {resolved.protocol}: check its split column."
        )
    allow = bool(eval_config.get("allow-nonfinite", False))
    for name, values in scores.items():
        check_finite_scores(
            table,
            resolved.test,
            values,
            "test-row scores" if name == "clean" else f"test-row scores under {name}",
            allow,
        )
    outside = resolved.test[(scores["clean"][resolved.test] < 0) | (scores["clean"][resolved.test] > 1)]
    if len(outside):
        note = (
            f"{len(outside)} score(s) outside [0, 1] (e.g. line {table.line(outside[0])}): ranking metrics hold, "
            "accuracies at 0.5 assume probabilities"
        )
        log.warning(note)
        card_extra.append(note)
    config = {"eval": {**eval_config}, "train": {"seed": 0}, "data": {"reals": "matched"}}
    title = f"recomputed from {predictions_csv.name}: protocol {resolved.protocol}"
    card_extra.insert(0, f"recomputed from {predictions_csv} (no model; no calibrated threshold)")
    payload = write_report(out_dir, table, resolved, scores, {}, {}, config, title=title, card_extra=card_extra)
    payload["out_dir"] = str(out_dir)
    return payload


def resolve_test_rows(table: SplitTable, protocol: str, fold: str | None = None):
    """The protocol's test rows and groups of a table holding scores (training-side filters are not needed)."""
    from data.protocols import ResolvedProtocol, _match, report_groups

    spec = load_protocol(protocol)
    notes = []
    test_filter = dict(spec.spec["test"] or {})
    if "split" in test_filter and not table.has("split"):
        test_filter.pop("split")
        notes.append(f"{table.csv_path.name} has no split column: every row is taken as a test row")
    mask = _match(table, test_filter, fold, f"protocol {spec.name} (test)") & (table.labels >= 0)
    rows = np.flatnonzero(mask)
    excluded = int(len(table) - len(rows))
    if excluded:
        notes.append(f"{excluded} row(s) of {table.csv_path.name} outside the protocol's test rows are not scored")
    empty = np.zeros(0, dtype=np.int64)
    resolved = ResolvedProtocol(
        protocol=spec.name,
        fold=fold,
        train=empty,
        val=empty,
        test=rows,
        groups=report_groups(table, rows, spec.report),
        report=spec.report,
    )
    return resolved, notes
