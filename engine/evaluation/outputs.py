"""Every output of one evaluation: metrics.json, the markdown, CSV and LaTeX tables, the calibration tables, ROC,
reliability and risk-coverage figures, confusion matrices and predictions.csv (every test row with its status)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data.schema import SplitTable, report_column_notes
from data.targets import FINE_LEVELS
from engine import figures

from . import calibration_report, conventions, coverage, groups, tables
from .calibration import Calibration
from .card import protocol_card
from .predictions import write_predictions

log = logging.getLogger("cael")


def write_report(
    out_dir: Path,
    table: SplitTable,
    resolved,
    scores,
    fine,
    class_names,
    config,
    *,
    title: str,
    extra: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
    card_extra: Sequence[str] = (),
    status: np.ndarray | None = None,
    probability_map: Calibration | None = None,
    receipts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every evaluation output for one checkpoint; returns the metrics payload.

    ``status``: each test row's status by table row (``engine.evaluation.coverage``; None: every row with a score is
    scored); unscored rows count as ``eval.missing`` says. ``probability_map``: a fitted calibration map whose
    calibrated numbers are reported beside the raw ones."""
    out_dir.mkdir(parents=True, exist_ok=True)
    eval_config = config["eval"]
    test = np.sort(resolved.test)
    settings = report_settings(table, resolved, config, scores, probability_map)
    replaced = replaced_settings(out_dir / "metrics.json", settings)
    if replaced:
        log.warning(f"{out_dir} held a report of other settings ({replaced}): it is replaced")
        card_extra = [*card_extra, f"replaces the earlier report in this folder, of other settings ({replaced})"]
    if status is None:
        status = np.full(len(table), "", dtype=object)
        status[test] = np.where(np.isfinite(scores["clean"][test]), coverage.SCORED, "non-finite")
    policy = eval_config.get("missing", "exclude")
    counted = {name: coverage.apply_missing(values, status, policy) for name, values in scores.items()}
    calibrated = None
    if probability_map is not None:
        calibrated = np.full(len(table), np.nan)
        finite = np.isfinite(counted["clean"])
        calibrated[finite] = probability_map.apply(counted["clean"][finite])
    threshold = (info or {}).get("calibration")
    results = groups.evaluate_groups(
        table,
        resolved.groups,
        counted,
        eval_config,
        seed=int(config["train"]["seed"]),
        calibrated_threshold=threshold["threshold"] if threshold else None,
        status=status,
        calibrated=calibrated,
    )
    summary = coverage.coverage_summary(table, test, status)
    perturbations = [name for name in scores if name != "clean"]
    header, rows, notes = tables.metrics_rows(results, perturbations)
    notes += report_column_notes(table.csv_path.name, table.column_names, resolved.report)
    detector = (config.get("model") or {}).get("name")
    figure_title = figures.describe_run(
        detector, resolved.protocol, resolved.fold, f"test rows of {table.csv_path.name}"
    )
    palettes = figures.table_palettes(table)
    card = [*card_extra, *protocol_card(table, resolved, config, info)]
    card.insert(len(card_extra), coverage.coverage_line(summary, policy))
    map_line = probability_map.describe() if probability_map is not None else None
    card.append(
        f"probabilities: raw (the model's softmax) and calibrated ({map_line}): calibration.md"
        if map_line
        else "probabilities: the model's own (no calibration map stored or fitted): calibration.md"
    )
    chosen = conventions.parse_conventions(eval_config.get("conventions"))
    frames_per_video = ((config.get("data") or {}).get("face-extraction") or {}).get("frames")
    card += conventions.evaluate_groups(results, table, resolved.groups, counted["clean"], chosen, frames_per_video)
    attribution = {}
    for level, predicted in fine.items():
        names = class_names.get(level)
        if not names:
            continue
        entry = groups.attribution(table, resolved.test, predicted[resolved.test], level, FINE_LEVELS[level], names)
        attribution[level] = entry
        figures.plot_confusion(
            out_dir / f"confusion_{level}.png",
            np.asarray(entry["confusion"]),
            names,
            f"{figure_title}\n{FINE_LEVELS[level]} attribution (acc {_pct(entry['accuracy'])})",
            palette=palettes.get(FINE_LEVELS[level]),
        )
    payload = {
        "title": title,
        "protocol": resolved.protocol,
        "fold": resolved.fold,
        "csv": str(table.csv_path),
        "groups": results,
        "coverage": {**summary, "missing": policy},
        "attribution": attribution,
        "calibration": threshold,
        "probability_map": probability_map.to_dict() if probability_map is not None else None,
        "receipts": dict(receipts) if receipts is not None else None,
        "settings": settings,
        "card": card,
        "definitions": conventions.OUR_RULES,
        **(extra or {}),
    }
    tables.write_json(out_dir / "metrics.json", payload)
    (out_dir / "table.md").write_text(tables.to_markdown(header, rows, notes, title=title, card=card))
    tables.write_csv_table(out_dir / "table.csv", header, rows, notes, card)
    label = "tab:" + "-".join(filter(None, [resolved.protocol, resolved.fold]))
    (out_dir / "table.tex").write_text(
        tables.to_latex(header, rows, caption=title + " (scores in %)", label=label, notes=notes, card=card)
    )
    figures.plot_roc(
        out_dir / "roc.png",
        table,
        resolved.groups,
        counted["clean"],
        results,
        figure_title,
        log_fpr=bool(eval_config.get("roc-log-fpr")),
        palettes=palettes,
        fold=resolved.fold,  # its own group is in-domain: named, and the unseen ones drawn alone too
    )
    shown, key = (calibrated, "calibration_calibrated") if calibrated is not None else (counted["clean"], "calibration")
    which = "calibrated probabilities" if calibrated is not None else "the model's probabilities"
    calibration_report.plot_calibration(
        out_dir, table, resolved.groups, shown, results, title=f"{figure_title} ({which})", key=key, palettes=palettes
    )
    named_fine = {level: (values, class_names[level]) for level, values in fine.items() if class_names.get(level)}
    write_predictions(
        out_dir / "predictions.csv", table, test, scores, named_fine, status=status, calibrated=calibrated
    )
    console = tables.to_console(header, rows, notes, card)
    console += conventions.write_tables(out_dir, results, chosen, title=title, card=card, label=label)
    console += "\n\n" + calibration_report.write_calibration_tables(
        out_dir, results, title=title, card=card, label=label, map_line=map_line
    )
    for level, entry in attribution.items():
        console += f"\n{FINE_LEVELS[level]} attribution accuracy on {entry['n']} test fakes: {_pct(entry['accuracy'])}"
    payload["console"] = console
    return payload


def report_settings(table, resolved, config, scores, probability_map) -> dict[str, Any]:
    """What a report's numbers depend on besides the model: the rows (CSV, protocol, fold), what changes the scores
    (perturbations, crop) and how they are reported (interval, resamples, unscored rows, conventions, the map)."""
    eval_config = config["eval"]
    return {
        "csv": str(table.csv_path),
        "protocol": resolved.protocol,
        "fold": resolved.fold,
        "perturbations": [name for name in scores if name != "clean"],
        "crop": (config.get("data") or {}).get("crop", "resize"),
        "interval": eval_config.get("interval", "auto"),
        "bootstrap": eval_config.get("bootstrap"),
        "missing": eval_config.get("missing", "exclude"),
        "conventions": eval_config.get("conventions"),
        "calibration": probability_map.method if probability_map is not None else None,
    }


def replaced_settings(metrics_path: Path, settings: Mapping[str, Any]) -> str | None:
    """'key: old -> new' of each setting in which the report already at ``metrics_path`` differs (None: the same
    settings, no report there, or one written before settings were recorded)."""
    if not metrics_path.is_file():
        return None
    try:
        earlier = json.loads(metrics_path.read_text()).get("settings")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(earlier, dict):
        return None
    changed = [f"{key}: {earlier.get(key)!r} -> {new!r}" for key, new in settings.items() if earlier.get(key) != new]
    return "; ".join(changed) or None


def _pct(value) -> str:
    text = tables.format_or_na(value, percent=True)
    return text if text == "n/a" else f"{text}%"
