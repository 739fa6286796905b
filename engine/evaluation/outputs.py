"""Every output of one evaluation: metrics.json, the markdown, CSV and LaTeX tables, ROC curves, confusion matrices
and predictions.csv."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data.schema import SplitTable, report_column_notes
from data.targets import FINE_LEVELS
from engine import figures

from . import conventions, groups, tables
from .card import protocol_card
from .predictions import write_predictions


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
) -> dict[str, Any]:
    """Every evaluation output for one checkpoint; returns the metrics payload."""
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration = (info or {}).get("calibration")
    results = groups.evaluate_groups(
        table,
        resolved.groups,
        scores,
        config["eval"],
        seed=int(config["train"]["seed"]),
        calibrated_threshold=calibration["threshold"] if calibration else None,
    )
    perturbations = [name for name in scores if name != "clean"]
    header, rows, notes = tables.metrics_rows(results, perturbations)
    notes += report_column_notes(table.csv_path.name, table.column_names, resolved.report)
    detector = (config.get("model") or {}).get("name")
    figure_title = figures.describe_run(
        detector, resolved.protocol, resolved.fold, f"test rows of {table.csv_path.name}"
    )
    palettes = figures.table_palettes(table)
    card = [*card_extra, *protocol_card(table, resolved, config, info)]
    chosen = conventions.parse_conventions(config["eval"].get("conventions"))
    card += conventions.evaluate_groups(results, table, resolved.groups, scores["clean"], chosen)
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
        "attribution": attribution,
        "calibration": calibration,
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
        scores["clean"],
        results,
        figure_title,
        log_fpr=bool(config["eval"].get("roc-log-fpr")),
        palettes=palettes,
        fold=resolved.fold,  # its own group is in-domain: named, and the unseen ones drawn alone too
    )
    named_fine = {level: (values, class_names[level]) for level, values in fine.items() if class_names.get(level)}
    write_predictions(out_dir / "predictions.csv", table, np.sort(resolved.test), scores, named_fine)
    console = tables.to_console(header, rows, notes, card)
    console += conventions.write_tables(out_dir, results, chosen, title=title, card=card, label=label)
    for level, entry in attribution.items():
        console += f"\n{FINE_LEVELS[level]} attribution accuracy on {entry['n']} test fakes: {_pct(entry['accuracy'])}"
    payload["console"] = console
    return payload


def _pct(value) -> str:
    text = tables.format_or_na(value, percent=True)
    return text if text == "n/a" else f"{text}%"
