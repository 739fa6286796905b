"""The calibration outputs of one evaluation: calibration.md / .csv / .tex (ECE, Brier, NLL and AURC of each group,
raw and, where a map was applied, calibrated), the reliability diagram and the risk-coverage curves (PNG + PDF, one
panel per level as the ROC figure, in the run's palette)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from data.protocols import OVERALL
from engine import figures

from . import tables
from .calibration import CARD_LINE, reliability, risk_coverage

METRICS = (("ece", "ECE"), ("brier", "Brier"), ("nll", "NLL"), ("aurc", "AURC"))


def calibration_rows(results: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]], bool]:
    """(header, rows, has calibrated columns) of the calibration table; ECE, Brier and AURC in %, NLL in nats."""
    calibrated = any("calibration_calibrated" in entry["clean"] for entry in results.values())
    header = ["Group", "n"] + [title for _, title in METRICS]
    if calibrated:
        header += [f"{title} cal." for _, title in METRICS]
    rows = []
    for group, entry in results.items():
        clean = entry["clean"]
        row = [tables.group_label(group), str(clean["n"])]
        for key in ("calibration", "calibration_calibrated") if calibrated else ("calibration",):
            values = clean.get(key) or {}
            row += [tables.format_or_na(values.get(name), ".4f", percent=name != "nll") for name, _ in METRICS]
        rows.append(row)
    return header, rows, calibrated


def write_calibration_tables(out_dir: Path, results, *, title: str, card, label: str, map_line: str | None) -> str:
    """calibration.md / .csv / .tex; returns the console text."""
    header, rows, calibrated = calibration_rows(results)
    notes = [CARD_LINE, "ECE, Brier and AURC in %, NLL in nats; lower is better for each"]
    notes.append(
        f"cal.: after {map_line}; AUC and the other ranking metrics are of the raw scores"
        if map_line
        else "no calibration map: the model's own probabilities (train.calibrate, or test.py --calibrate)"
    )
    what = f"{title}: calibration"
    (out_dir / "calibration.md").write_text(tables.to_markdown(header, rows, notes, title=what, card=card))
    tables.write_csv_table(out_dir / "calibration.csv", header, rows, notes, card)
    (out_dir / "calibration.tex").write_text(
        tables.to_latex(header, rows, caption=what, label=label + "-calibration", notes=notes)
    )
    return tables.to_console(header, rows, notes[1:])


def _panels(groups, results, palettes, draw, *, title: str, xlabel: str, ylabel: str, diagonal: bool):
    drawn = [g for g in groups if results[g]["clean"]["n"] > 0]
    panels = figures.roc_panels(drawn)
    figure, axes = figures.new_figure(len(panels))
    for axis, (level, members) in zip(axes, panels.items()):
        named, others = figures.named_members(members, {g: results[g]["clean"].get("auc") or 0.0 for g, _ in members})
        curves = ([(OVERALL, OVERALL)] if OVERALL in drawn else []) + named
        for position, (group, name) in enumerate(curves):
            style = {"linestyle": "-", "lw": 2.0} if group == OVERALL else {**figures.style_of(position - 1), "lw": 1.3}
            draw(axis, group, name, figures.colour_of(palettes, level, name), style)
        if diagonal:
            axis.plot([0, 1], [0, 1], color="#999999", ls=":", lw=0.8)
        axis.set_xlim(-0.02, 1.02)
        axis.set_ylim(-0.02, 1.02)
        axis.set_title(OVERALL if level == OVERALL else f"by {figures.LEVEL_TITLES.get(level, level)}", fontsize=9)
        axis.set_xlabel(xlabel, fontsize=8)
        axis.set_ylabel(ylabel, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6.5, loc="upper left", handlelength=3.2)
    figure.suptitle(title, fontsize=10)
    return figure


def reliability_figure(table, groups, probabilities: np.ndarray, results, ece, *, title: str, palettes=None):
    """Fraction of fakes against mean P(fake) in equal-mass bins, one curve per group, the diagonal = calibrated;
    ``ece``: group -> the ECE its legend entry shows."""
    palettes = palettes if palettes is not None else figures.table_palettes(table)

    def draw(axis, group, name, colour, style):
        rows = groups[group]
        rows = rows[np.isfinite(probabilities[rows])]
        bins = reliability(table.labels[rows], probabilities[rows])
        label = f"{name} (ECE {100 * ece[group]:.2f})" if ece.get(group) is not None else name
        axis.plot(bins["confidence"], bins["fraction_fake"], color=colour, label=label, **style)

    return _panels(
        groups,
        results,
        palettes,
        draw,
        title=title,
        xlabel="mean P(fake) in the bin (15 equal-mass bins)",
        ylabel="fraction of fakes in the bin",
        diagonal=True,
    )


def risk_coverage_figure(table, groups, probabilities: np.ndarray, results, aurc, *, title: str, palettes=None):
    """Risk of the 0.5 decision against coverage, rows answered by confidence max(p, 1 - p); ``aurc``: group -> the
    AURC its legend entry shows."""
    palettes = palettes if palettes is not None else figures.table_palettes(table)

    def draw(axis, group, name, colour, style):
        rows = groups[group]
        rows = rows[np.isfinite(probabilities[rows])]
        coverage, risk = risk_coverage(table.labels[rows], probabilities[rows])
        if len(coverage) > figures.ROC_MAX_POINTS:  # the curve at plot resolution
            keep = np.unique(np.linspace(0, len(coverage) - 1, figures.ROC_MAX_POINTS).astype(int))
            coverage, risk = coverage[keep], risk[keep]
        label = f"{name} (AURC {100 * aurc[group]:.2f})" if aurc.get(group) is not None else name
        axis.plot(coverage, risk, color=colour, label=label, **style)

    return _panels(
        groups,
        results,
        palettes,
        draw,
        title=title,
        xlabel="coverage (share of rows answered, most confident first)",
        ylabel="risk (error rate of the answered rows at 0.5)",
        diagonal=False,
    )


def plot_calibration(out_dir: Path, table, groups, probabilities, results, *, title: str, key: str, palettes=None):
    """reliability.png / risk_coverage.png (and their PDFs) of ``probabilities`` (raw or calibrated: ``key`` names
    the metrics their legends show, calibration or calibration_calibrated)."""
    shown = {group: entry["clean"].get(key) or {} for group, entry in results.items()}
    ece = {group: values.get("ece") for group, values in shown.items()}
    aurc = {group: values.get("aurc") for group, values in shown.items()}
    reliability_plot = reliability_figure(
        table, groups, probabilities, results, ece, title=f"{title}\nreliability", palettes=palettes
    )
    coverage_plot = risk_coverage_figure(
        table, groups, probabilities, results, aurc, title=f"{title}\nrisk-coverage", palettes=palettes
    )
    return figures.save_figure(reliability_plot, out_dir / "reliability.png") + figures.save_figure(
        coverage_plot, out_dir / "risk_coverage.png"
    )
