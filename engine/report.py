"""Evaluation reports: per-group metrics, and tables as console text, Markdown, CSV and LaTeX (booktabs), and
``predictions.csv`` (from which every table can be recomputed without the model). The figures are engine/figures.py.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_output
from data.protocols import OVERALL
from data.schema import OPTIONAL_COLUMNS, SplitTable

from .figures import plot_confusion, plot_roc  # noqa: F401  (the figures moved to engine/figures.py)
from .metrics import BOOTSTRAP_MAX_ROWS, compute_metrics

# (key in the metrics dict, column title, is a percentage-like score)
TABLE_COLUMNS = [
    ("n_real", "real", False),
    ("n_fake", "fake", False),
    ("auc", "AUC", True),
    ("ap", "AP", True),
    ("eer", "EER", True),
    ("acc", "Acc@0.5", True),
    ("acc_calibrated", "Acc@val-thr", True),
    ("acc_oracle", "Acc oracle", True),
    ("balanced_acc", "BAcc", True),
    ("real_acc", "Real acc", True),
    ("fake_acc", "Fake acc", True),
    ("tpr_at_fpr_1e-2", "TPR@1%", True),
    ("tpr_at_fpr_1e-3", "TPR@0.1%", True),
]
GROUP_COLUMNS_IN_PREDICTIONS = OPTIONAL_COLUMNS  # the schema's optional columns, in its order
# Per-metric n/a reasons worth one note per table (group names listed), not one per group.
NOTED_METRICS = {"tpr_at_fpr_1e-2": "TPR@1%", "tpr_at_fpr_1e-3": "TPR@0.1%", "video_auc": "Video AUC"}


def group_label(group: str) -> str:
    return "overall" if group == OVERALL else group.split("=", 1)[1]


def evaluate_groups(
    table: SplitTable,
    groups: Mapping[str, np.ndarray],
    scores_by_row: Mapping[str, np.ndarray],
    eval_config: Mapping[str, Any],
    seed: int = 0,
    calibrated_threshold: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of every group under every score column (``clean`` and each perturbation).

    ``scores_by_row[name]`` is indexed by table row; a non-finite value (a skipped image, or a non-finite score the
    user allowed) leaves the row out of that group's metrics and is counted in ``n_unscored`` (shown in the table).
    The bootstrap resamples videos (or identities) when the CSV has them; the unit is in ``bootstrap_unit``.
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
            entry[name] = metrics
        results[group] = entry
    return results


def interval_card_line(eval_config: Mapping[str, Any], unit: str) -> str:
    """The protocol card's line on the AUC's 95% interval: which method, over which unit, for which groups."""
    samples = int(eval_config.get("bootstrap") or 0)
    if not samples:
        return "AUC 95% CI: off (--bootstrap 0)"
    method = eval_config.get("interval", "auto")
    normal = (
        "DeLong's normal-theory interval (AUC +- 1.96 SE)"
        if unit == "images"
        else f"Obuchowski's normal-theory interval over {unit} (DeLong's for clustered data)"
    )
    bootstrap = f"percentile bootstrap, {samples} resamples of {unit}, stratified by class"
    if method == "bootstrap":
        return f"AUC 95% CI: {bootstrap}"
    if method == "delong":
        return f"AUC 95% CI: {normal}"
    limit = int(eval_config.get("bootstrap-max-rows", BOOTSTRAP_MAX_ROWS))
    return (
        f"AUC 95% CI: {bootstrap}, in groups of up to {limit:,} rows; larger groups: {normal}, which agrees with the "
        "bootstrap at such sizes (each group's method: auc_ci_method in metrics.json, and the table notes)"
    )


def format_or_na(value, spec: str = ".4f", *, percent: bool = False) -> str:
    """The one formatter of printed numbers: "n/a" for a missing or NaN value (never a silent 0 or "nan"), else
    ``value`` in ``spec`` (``percent``: times 100, two decimals, as every table prints scores)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if percent:
        return f"{100 * value:.2f}"
    return format(value, spec) if spec else str(value)


def metrics_rows(
    results: Mapping[str, Mapping[str, Any]], perturbations: Sequence[str]
) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes) of the per-group table: scores in %, every n/a and every left-out row with its reason."""
    has_ci = any(r["clean"].get("auc_ci95") for r in results.values())
    has_video = any("video_auc" in r["clean"] for r in results.values())
    header = ["Group"] + [title for _, title, _ in TABLE_COLUMNS]
    if has_ci:
        header.insert(header.index("AUC") + 1, "AUC 95% CI")
    if has_video:
        header.append("Video AUC")
    header += [f"AUC {name}" for name in perturbations]
    rows, notes = [], []
    noted: dict[str, list[tuple[str, str]]] = {}
    for group, entry in results.items():
        clean = entry["clean"]
        row = [group_label(group)] + [format_or_na(clean.get(key), "", percent=pct) for key, _, pct in TABLE_COLUMNS]
        if has_ci:
            ci = clean.get("auc_ci95")
            row.insert(header.index("AUC 95% CI"), f"{100 * ci[0]:.2f}-{100 * ci[1]:.2f}" if ci else "n/a")
        if has_video:
            row.append(format_or_na(clean.get("video_auc"), percent=True))
        row += [format_or_na(entry[name].get("auc"), percent=True) for name in perturbations]
        if clean.get("na_reason"):
            notes.append(f"n/a: {group_label(group)}: {clean['na_reason']}")
        elif clean.get("na_reasons"):
            for key, reason in clean["na_reasons"].items():
                if key in NOTED_METRICS:
                    noted.setdefault(NOTED_METRICS[key], []).append((group_label(group), reason))
        for name, metrics in entry.items():
            if metrics.get("n_unscored"):
                which = "" if name == "clean" else f" under {name}"
                notes.append(
                    f"{group_label(group)}: {metrics['n_unscored']} row(s) without a finite score{which} left out"
                )
        rows.append(row)
    by_method: dict[str, list[str]] = {}
    for group, entry in results.items():
        method = entry["clean"].get("auc_ci_method")
        if method and not method.startswith("bootstrap"):
            by_method.setdefault(method, []).append(group_label(group))
    for method, groups in by_method.items():
        notes.append(
            f"AUC 95% CI by {method}'s normal-theory interval (groups above the bootstrap's size): " + ", ".join(groups)
        )
    for title, entries in noted.items():  # groups sharing a reason are listed once, before it
        by_reason: dict[str, list[str]] = {}
        for group, reason in entries:
            by_reason.setdefault(reason, []).append(group)
        notes.append(f"n/a: {title} for " + "; ".join(f"{', '.join(g)} ({r})" for r, g in by_reason.items()))
    return header, rows, notes


def to_markdown(
    header: list[str],
    rows: list[list[str]],
    notes: Sequence[str] = (),
    title: str | None = None,
    card: Sequence[str] = (),
) -> str:
    """A Markdown table, its notes (n/a reasons, left-out rows) and its protocol card under it."""
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    if card:
        lines += ["", "Protocol card:", ""] + [f"- {line}" for line in card]
    return "\n".join(lines) + "\n"


def to_console(header: list[str], rows: list[list[str]], notes: Sequence[str] = (), card: Sequence[str] = ()) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = [
        "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + list(notes) + (["protocol card:"] + [f"  {line}" for line in card] if card else []))


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(
    header: list[str],
    rows: list[list[str]],
    *,
    caption: str,
    label: str,
    notes: Sequence[str] = (),
    card: Sequence[str] = (),
) -> str:
    """A booktabs ``table`` environment (needs ``booktabs``, and ``graphicx`` for wide tables); scores in %."""
    spec = "l" + "r" * (len(header) - 1)
    wide = len(header) > 8
    lines = [
        "% Generated by test.py; needs \\usepackage{booktabs}" + (" and \\usepackage{graphicx}." if wide else "."),
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{{label}}}",
        "\\resizebox{\\linewidth}{!}{%" if wide else "{%",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + " \\\\" for row in rows]
    lines += ["\\bottomrule", "\\end{tabular}%", "}"]
    if notes or card:
        lines.append("\\\\[2pt]{\\footnotesize " + "; ".join(latex_escape(n) for n in [*notes, *card]) + "}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def write_csv_table(
    path: Path, header: list[str], rows: list[list[str]], notes: Sequence[str] = (), card: Sequence[str] = ()
) -> None:
    """The table, then (after an empty line) one ``# note`` line per note and protocol-card line."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
        if notes or card:
            writer.writerow([])
            writer.writerows([[f"# {line}"] for line in [*notes, *card]])


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


def write_predictions(
    path: Path,
    table: SplitTable,
    rows: np.ndarray,
    scores_by_row: Mapping[str, np.ndarray],
    fine: Mapping[str, tuple[np.ndarray, Sequence[str]]],
) -> None:
    """One line per scored row: path, label, score (+ perturbed scores), group columns, the CSV's other columns."""
    extra = [c for c in table.column_names if c not in ("path", "label", *GROUP_COLUMNS_IN_PREDICTIONS)]
    groups = [c for c in GROUP_COLUMNS_IN_PREDICTIONS if table.has(c)]
    score_columns = ["score" if name == "clean" else f"score_{name}" for name in scores_by_row]
    header = ["path", "label", *score_columns, *groups, *[f"pred_{level}" for level in fine], *extra]

    positions = rows.tolist()

    def picked(column: str) -> list[str]:
        values = table.column(column)
        return [values[i] for i in positions]

    columns = [picked("path"), table.labels[rows].tolist()]
    for values in scores_by_row.values():
        columns.append([f"{s:.6f}" if math.isfinite(s) else "" for s in values[rows].tolist()])
    columns += [picked(c) for c in groups]
    for pred, names in fine.values():
        lookup = np.asarray([*names, ""], dtype=object)  # -1 (no prediction) reads as the empty string
        columns.append(lookup[np.where(pred[rows] >= 0, pred[rows], len(names))].tolist())
    columns += [picked(c) for c in extra]
    with atomic_output(path, "w") as handle:  # column-wise: a million rows in seconds, not a Python loop per row
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(zip(*columns))


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
