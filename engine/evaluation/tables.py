"""Tables of evaluations, written: the per-group rows with their notes, and any table as console text, Markdown, CSV
and LaTeX (booktabs); the one formatter of printed numbers. Nothing is computed here (``groups`` computes)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data.protocols import OVERALL

from .coverage import WARN_SHARE

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
# Per-metric n/a reasons worth one note per table (group names listed), not one per group.
NOTED_METRICS = {"tpr_at_fpr_1e-2": "TPR@1%", "tpr_at_fpr_1e-3": "TPR@0.1%", "video_auc": "Video AUC"}


def group_label(group: str) -> str:
    return "overall" if group == OVERALL else group.split("=", 1)[1]


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
    shares = {group: _scored_share(entry["clean"]) for group, entry in results.items()}
    has_coverage = any(share is not None and share < 1.0 for share in shares.values())
    header = ["Group"] + [title for _, title, _ in TABLE_COLUMNS]
    if has_ci:
        header.insert(header.index("AUC") + 1, "AUC 95% CI")
    if has_video:
        header.append("Video AUC")
    if has_coverage:
        header.append("Scored")
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
        if has_coverage:
            share = shares[group]
            low = share is not None and share < 1.0 - WARN_SHARE
            row.append(format_or_na(share, percent=True) + (" !" if low else ""))
            if low:
                lost = ", ".join(f"{n} {s}" for s, n in sorted(clean["coverage"].items()) if s != "scored")
                notes.append(
                    f"! {group_label(group)}: {100 * (1 - share):.1f}% of its rows unscored ({lost}), more than "
                    f"{100 * WARN_SHARE:g}%"
                )
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


def _scored_share(clean: Mapping[str, Any]) -> float | None:
    """Share of a group's test rows that were scored (None where the statuses were not recorded)."""
    coverage = clean.get("coverage")
    if not coverage:
        return None
    total = sum(coverage.values())
    return coverage.get("scored", 0) / total if total else None


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
