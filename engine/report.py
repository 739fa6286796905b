"""Evaluation reports: per-group metrics, and tables as console text, Markdown, CSV and LaTeX (booktabs), ROC
curves, confusion matrices and ``predictions.csv`` (from which every table can be recomputed without the model).
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data.protocols import OVERALL
from data.schema import SplitTable

from .metrics import compute_metrics

# (key in the metrics dict, column title, is a percentage-like score)
TABLE_COLUMNS = [
    ("n_real", "real", False),
    ("n_fake", "fake", False),
    ("auc", "AUC", True),
    ("ap", "AP", True),
    ("eer", "EER", True),
    ("acc", "Acc", True),
    ("balanced_acc", "BAcc", True),
    ("real_acc", "Real acc", True),
    ("fake_acc", "Fake acc", True),
    ("tpr_at_fpr_1e-2", "TPR@1%", True),
    ("tpr_at_fpr_1e-3", "TPR@0.1%", True),
]
GROUP_COLUMNS_IN_PREDICTIONS = ("split", "forgery_type", "generator", "source_dataset", "video_id")


def group_label(group: str) -> str:
    return "overall" if group == OVERALL else group.split("=", 1)[1]


def evaluate_groups(
    table: SplitTable,
    groups: Mapping[str, np.ndarray],
    scores_by_row: Mapping[str, np.ndarray],
    eval_config: Mapping[str, Any],
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Metrics of every group under every score column (``clean`` and each perturbation).

    ``scores_by_row[name]`` is indexed by table row (NaN where a row was not scored, e.g. a skipped image).
    """
    results = {}
    has_video = table.has("video_id")
    for group, rows in groups.items():
        entry: dict[str, Any] = {}
        for name, scores in scores_by_row.items():
            values = scores[rows]
            scored = rows[np.isfinite(values)]
            videos = table.values("video_id", scored) if has_video else None
            metrics = compute_metrics(
                table.labels[scored], scores[scored], threshold=eval_config["threshold"],
                bootstrap=eval_config["bootstrap"] if name == "clean" else 0, seed=seed,
                videos=videos, video_aggregation=eval_config["video-aggregation"],
            )  # fmt: skip
            metrics["n_unscored"] = int(len(rows) - len(scored))
            entry[name] = metrics
        results[group] = entry
    return results


def _fmt(value, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if percent:
        return f"{100 * value:.2f}"
    return str(value)


def metrics_rows(results: Mapping[str, Mapping[str, Any]], perturbations: Sequence[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, footnotes) of the per-group table: scores in %, n/a with the reason as a footnote."""
    has_ci = any(r["clean"].get("auc_ci95") for r in results.values())
    has_video = any("video_auc" in r["clean"] for r in results.values())
    header = ["Group"] + [title for _, title, _ in TABLE_COLUMNS]
    if has_ci:
        header.insert(header.index("AUC") + 1, "AUC 95% CI")
    if has_video:
        header.append("Video AUC")
    header += [f"AUC {name}" for name in perturbations]
    rows, notes = [], []
    for group, entry in results.items():
        clean = entry["clean"]
        row = [group_label(group)] + [_fmt(clean.get(key), pct) for key, _, pct in TABLE_COLUMNS]
        if has_ci:
            ci = clean.get("auc_ci95")
            row.insert(header.index("AUC 95% CI"), f"{100 * ci[0]:.2f}-{100 * ci[1]:.2f}" if ci else "n/a")
        if has_video:
            row.append(_fmt(clean.get("video_auc"), True))
        row += [_fmt(entry[name].get("auc"), True) for name in perturbations]
        if clean.get("na_reason"):
            notes.append(f"{group_label(group)}: {clean['na_reason']}")
        rows.append(row)
    return header, rows, notes


def to_markdown(header: list[str], rows: list[list[str]], notes: Sequence[str] = (), title: str | None = None) -> str:
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines += [""] + [f"n/a: {note}" for note in notes]
    return "\n".join(lines) + "\n"


def to_console(header: list[str], rows: list[list[str]], notes: Sequence[str] = ()) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [f"n/a: {note}" for note in notes])


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(header: list[str], rows: list[list[str]], *, caption: str, label: str, notes: Sequence[str] = ()) -> str:
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
    if notes:
        lines.append("\\\\[2pt]{\\footnotesize " + "; ".join("n/a: " + latex_escape(n) for n in notes) + "}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def write_csv_table(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def plot_roc(path: Path, table: SplitTable, groups: Mapping[str, np.ndarray], scores: np.ndarray, results, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    figure, axis = plt.subplots(figsize=(5.5, 5))
    for group, rows in groups.items():
        rows = rows[np.isfinite(scores[rows])]
        auc = results[group]["clean"].get("auc")
        if auc is None:
            continue
        fpr, tpr, _ = roc_curve(table.labels[rows], scores[rows])
        axis.plot(fpr, tpr, lw=2.0 if group == OVERALL else 1.2, label=f"{group_label(group)} (AUC {100 * auc:.2f})")
    axis.plot([0, 1], [0, 1], "k:", lw=0.8)
    axis.set_xlabel("false positive rate (real called fake)")
    axis.set_ylabel("true positive rate (fake detected)")
    axis.set_title(title)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_confusion(path: Path, matrix: np.ndarray, names: Sequence[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(1.0 + 0.6 * len(names), 1.0 + 0.6 * len(names)))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    axis.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            axis.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def attribution(table: SplitTable, rows: np.ndarray, predicted: np.ndarray, level: str, column: str, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy and confusion matrix of a fine-grained head on the test fakes whose class it knows."""
    lookup = {name: i for i, name in enumerate(names)}
    values = table.values(column, rows)
    known = np.array([table.labels[r] == 1 and v in lookup for r, v in zip(rows, values)], dtype=bool)
    truth = np.array([lookup[v] for v, k in zip(values, known) if k], dtype=np.int64)
    guess = predicted[known]
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (truth, guess), 1)
    return {
        "level": level, "column": column, "classes": list(names), "n": int(known.sum()),
        "accuracy": float((truth == guess).mean()) if len(truth) else None, "confusion": matrix.tolist(),
    }  # fmt: skip


def write_predictions(path: Path, table: SplitTable, rows: np.ndarray, scores_by_row: Mapping[str, np.ndarray], fine: Mapping[str, tuple[np.ndarray, Sequence[str]]]) -> None:
    """One line per scored row: path, label, score (+ perturbed scores), the group columns and the CSV's other columns."""
    extra = [c for c in table.column_names if c not in ("path", "label", *GROUP_COLUMNS_IN_PREDICTIONS)]
    groups = [c for c in GROUP_COLUMNS_IN_PREDICTIONS if table.has(c)]
    score_columns = ["score" if name == "clean" else f"score_{name}" for name in scores_by_row]
    header = ["path", "label", *score_columns, *groups, *[f"pred_{level}" for level in fine], *extra]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            line = [table.column("path")[row], int(table.labels[row])]
            line += ["" if not np.isfinite(s[row]) else f"{s[row]:.6f}" for s in scores_by_row.values()]
            line += [table.column(c)[row] for c in groups]
            line += [names[int(pred[row])] if pred[row] >= 0 else "" for pred, names in fine.values()]
            line += [table.column(c)[row] for c in extra]
            writer.writerow(line)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


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
