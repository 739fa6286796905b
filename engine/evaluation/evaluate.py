"""Evaluation behind ``test.py``: a trained detector on a protocol's test rows, or a predictions.csv recomputed
without the model -> metrics and tables."""

from __future__ import annotations

import json
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

from . import coverage, tables
from .calibration import Calibration, fit_calibration
from .outputs import write_report
from .predictions import read_prediction_scores, read_prediction_status
from .receipts import receipts
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
    """What evaluating a checkpoint works on: the model and its config, the test rows (those given to the model, and
    each test row's extraction status), the output folder and the key its scores are kept under
    (``engine.evaluation.score_cache``)."""

    model: Any
    config: dict[str, Any]
    class_names: dict[str, Any]
    info: dict[str, Any]
    table: SplitTable
    resolved: Any
    out_dir: Path
    key: dict[str, Any]
    to_score: np.ndarray  # the test rows given to the model (not the placeholders of videos without a crop)
    extraction: np.ndarray  # per test row: "" (a crop) or its source video's extraction status


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
    own_data = dict(config["data"])
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
    out_dir = out_dir or _default_eval_parent(checkpoint) / default_eval_name(
        resolved, own_data, config["data"], perturbations
    )
    extraction = coverage.extraction_statuses(table, resolved.test)
    to_score = resolved.test[extraction == ""]
    key = scoring_key(checkpoint, table.csv_path, table.root, to_score, config, perturbations)
    return EvaluationPlan(model, config, class_names, info, table, resolved, out_dir, key, to_score, extraction)


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
    calibrate: str | None = None,
    calibration_csv: str | Path | None = None,
    min_coverage: float | None = None,
) -> dict[str, Any]:
    """Score the test rows of a protocol (default: the checkpoint's own protocol, fold and CSV) and write the report.

    The scores are kept in ``out_dir/scores.npz`` (``engine.evaluation.score_cache``); evaluating into the same folder
    again with the same checkpoint, CSV, rows and scoring settings rereads them instead of running the model (not
    with ``rescore``). ``calibrate``: fit that map (temperature, platt, isotonic) on ``calibration_csv`` (default:
    the protocol's validation rows of the CSV), else the map stored in the checkpoint is applied. ``min_coverage``:
    a ``CoverageError`` once the report is written when fewer of the test rows were scored."""
    plan = plan_evaluation(
        checkpoint, config_overrides, out_dir, perturbations, requested_config, protocol=protocol, fold=fold
    )
    model, config, class_names, info = plan.model, plan.config, plan.class_names, plan.info
    table, resolved, out_dir, key = plan.table, plan.resolved, plan.out_dir, plan.key
    reused = None if rescore else load_scores(out_dir, key, len(table))
    if reused is not None:
        scores, fine, status = reused
        log.info(
            f"scores of the {len(plan.to_score)} test rows reused from {out_dir / SCORES_NAME} (same checkpoint, "
            "CSV, rows and scoring settings; --rescore runs the model again)"
        )
    else:
        scores, fine, status = score_table(
            model, table, plan.to_score, config, device, perturbations, workers=workers, progress=progress
        )
    probability_map, fitted_here = _probability_map(
        calibrate, calibration_csv, plan, device=device, workers=workers, progress=progress, checkpoint=checkpoint
    )
    if dist is not None and not dist.is_main:
        return {}
    if reused is None:
        save_scores(out_dir, key, plan.to_score, scores, fine, status)
    placeholders = plan.extraction != ""
    status[resolved.test[placeholders]] = plan.extraction[placeholders]
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
        status=status,
        probability_map=probability_map,
        receipts=receipts(table, resolved.test, config, checkpoint, config["train"]["seed"]),
    )
    if fitted_here:
        tables.write_json(out_dir / CALIBRATION_FILE, probability_map.to_dict())
    payload["out_dir"] = str(out_dir)
    coverage.check_min_coverage(payload["coverage"], min_coverage, str(out_dir))
    return payload


CALIBRATION_FILE = "calibration.json"  # a map fitted by test.py --calibrate; predict.py --calibration reads it


def _probability_map(calibrate, calibration_csv, plan: EvaluationPlan, *, checkpoint, **scoring):
    """(the calibration map to report, whether it was fitted here): fitted by ``calibrate`` on held-out rows, else the
    checkpoint's own (None, said once, when it stores none)."""
    if calibrate:
        if calibration_csv is not None:
            labels, probabilities, source = held_out_scores(calibration_csv, plan, **scoring)
        else:
            rows = plan.resolved.val
            if len(rows) == 0:
                raise SchemaError(
                    f"--calibrate needs held-out rows: protocol {plan.resolved.protocol} gives no validation rows in "
                    f"{plan.table.csv_path}; pass --calibration-csv VAL.csv (a split CSV or a predictions.csv)."
                )
            labels, probabilities = _score_rows(plan, plan.table, rows, **scoring)
            source = f"validation rows of {plan.table.csv_path.name} ({plan.resolved.protocol})"
        fitted = fit_calibration(calibrate, labels, probabilities, source=source)
        log.info(f"calibration: {fitted.describe()}")
        return fitted, True
    stored = Calibration.from_dict(((plan.info.get("calibration") or {}).get("probability")))
    if stored is None:
        log.info(
            f"{checkpoint} stores no calibration map (trained before maps were fitted, or train.calibrate none): "
            "the probabilities are the model's own; test.py --calibrate fits one"
        )
    return stored, False


def _score_rows(plan: EvaluationPlan, table: SplitTable, rows: np.ndarray, *, device, workers, progress):
    """(labels, probabilities) of the rows the model scored among ``rows`` (crops only: never a video's placeholder)."""
    rows = rows[coverage.extraction_statuses(table, rows) == ""]
    config = plan.config
    scores, _, status = score_table(plan.model, table, rows, config, device, [], workers=workers, progress=progress)
    kept = rows[status[rows] == coverage.SCORED]
    return table.labels[kept], scores["clean"][kept]


def held_out_scores(calibration_csv, plan: EvaluationPlan | None = None, **scoring):
    """(labels, probabilities, description) of the rows a map is fitted on: a predictions.csv's scored rows (a
    ``score`` column), or a split CSV scored by the plan's model (its validation rows where it has a split column)."""
    path = Path(calibration_csv)
    held_out = load_table(path, root=path.parent if plan is None else None)
    if held_out.has("score"):
        scores = read_prediction_scores(held_out, path)["clean"]
        status = read_prediction_status(held_out)
        usable = np.isfinite(scores) & (held_out.labels >= 0)
        if status is not None:
            usable &= status == coverage.SCORED
        rows = np.flatnonzero(usable)
        return held_out.labels[rows], scores[rows], f"scored rows of {path.name}"
    if plan is None:
        raise SchemaError(
            f"--calibration-csv {path} has no score column: with --predictions give a predictions.csv of held-out rows "
            "(test.py writes one), or evaluate a checkpoint, which scores a split CSV's rows itself."
        )
    rows = np.flatnonzero(held_out.labels >= 0)
    if held_out.has("split"):
        rows = np.flatnonzero(np.asarray(held_out.column("split"), dtype=object) == "val")
        if len(rows) == 0:
            raise SchemaError(f"--calibration-csv {path} has a split column but no val rows: fit on held-out rows.")
    labels, probabilities = _score_rows(plan, held_out, rows, **scoring)
    return labels, probabilities, f"rows of {path.name} scored by the model"


def default_eval_name(resolved, own_data: Mapping[str, Any], data: Mapping[str, Any], perturbations) -> str:
    """``eval-<protocol>[-<fold>]``, and what sets this evaluation's scores apart from the run's own test rows: another
    CSV (``-on-<stem>``), perturbations (``-perturb-<names>``), another crop (``-crop-<policy>``), so that results
    of other settings are written beside the earlier ones, never over them."""
    parts = ["eval", resolved.protocol, resolved.fold]
    own_csv = own_data.get("csv")
    if data.get("csv") and (not own_csv or Path(data["csv"]).resolve() != Path(own_csv).resolve()):
        parts.append("on-" + Path(data["csv"]).stem)
    if perturbations:
        parts.append("perturb-" + "-".join(p.name for p in perturbations))
    if data.get("crop", "resize") != own_data.get("crop", "resize"):
        parts.append("crop-" + str(data["crop"]))
    return "-".join(str(part) for part in parts if part)


def runs_folder_name(prefix: str, protocol: str, config_overrides: Mapping[str, Any], perturbations) -> str:
    """``<prefix>-<protocol>`` of ``test.py --runs``, with the suffixes of ``default_eval_name`` for a CSV, a crop or
    perturbations given on the command line (the runs' own rows and settings otherwise)."""
    data = (config_overrides or {}).get("data") or {}
    parts = [prefix, protocol]
    if data.get("csv"):
        parts.append("on-" + Path(data["csv"]).stem)
    if perturbations:
        parts.append("perturb-" + "-".join(p.name for p in perturbations))
    if data.get("crop"):
        parts.append("crop-" + str(data["crop"]))
    return "-".join(parts)


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
    calibrate: str | None = None,
    calibration_csv: str | Path | None = None,
    min_coverage: float | None = None,
) -> dict[str, Any]:
    """Recompute every table from a predictions.csv (no model): its ``score*`` columns are the scores.

    The protocol's test filter is applied (rows of other splits are not scored); a file without a ``split``
    column is taken as test rows only, and the card says so. Its ``status`` column says why a row has no score;
    a file without one (written before it existed): missing or non-finite scores of test rows are an error naming
    them unless ``eval_config['allow-nonfinite']``. A calibration map is fitted with ``calibrate`` on
    ``calibration_csv`` (a predictions.csv of held-out rows), else taken from the metrics.json beside the file.
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
    recorded = read_prediction_status(table)
    status = np.full(len(table), "", dtype=object)
    if recorded is None:
        checked = resolved.test
        status[checked] = np.where(np.isfinite(scores["clean"][checked]), coverage.SCORED, "non-finite")
    else:
        status[resolved.test] = np.where(recorded[resolved.test] == "", "non-finite", recorded[resolved.test])
        checked = resolved.test[recorded[resolved.test] == coverage.SCORED]
    for name, values in scores.items():
        check_finite_scores(
            table,
            checked,
            values,
            "test-row scores" if name == "clean" else f"test-row scores under {name}",
            allow,
        )
    outside = checked[(scores["clean"][checked] < 0) | (scores["clean"][checked] > 1)]
    if len(outside):
        note = (
            f"{len(outside)} score(s) outside [0, 1] (e.g. line {table.line(outside[0])}): ranking metrics hold, "
            "accuracies at 0.5 assume probabilities"
        )
        log.warning(note)
        card_extra.append(note)
    if calibrate:
        labels, probabilities, source = held_out_scores(calibration_csv) if calibration_csv else (None, None, None)
        if labels is None:
            raise SchemaError(
                "--calibrate with --predictions needs --calibration-csv: a predictions.csv of held-out (validation) "
                "rows to fit the map on."
            )
        probability_map = fit_calibration(calibrate, labels, probabilities, source=source)
    else:
        probability_map = _map_beside(predictions_csv)
    config = {"eval": {**eval_config}, "train": {"seed": 0}, "data": {"reals": "matched"}}
    title = f"recomputed from {predictions_csv.name}: protocol {resolved.protocol}"
    card_extra.insert(0, f"recomputed from {predictions_csv} (no model; no calibrated threshold)")
    payload = write_report(
        out_dir,
        table,
        resolved,
        scores,
        {},
        {},
        config,
        title=title,
        card_extra=card_extra,
        status=status,
        probability_map=probability_map,
        receipts=receipts(table, resolved.test, config),
    )
    if calibrate:
        tables.write_json(out_dir / CALIBRATION_FILE, probability_map.to_dict())
    payload["out_dir"] = str(out_dir)
    coverage.check_min_coverage(payload["coverage"], min_coverage, str(out_dir))
    return payload


def _map_beside(predictions_csv: Path) -> Calibration | None:
    """The calibration map of the evaluation that wrote ``predictions_csv`` (its metrics.json), if any."""
    metrics = predictions_csv.parent / "metrics.json"
    if not metrics.is_file():
        return None
    try:
        stored = json.loads(metrics.read_text()).get("probability_map")
    except (OSError, ValueError, AttributeError):
        log.warning(f"{metrics} cannot be read: no calibration map is applied")
        return None
    return Calibration.from_dict(stored)


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
