"""``test.py --compare A B [C ...]``: is a detector's AUC different from a reference's on the same rows?

Each detector is a predictions.csv (or an evaluation folder holding one, or a run folder / checkpoint, evaluated
first), optionally named ``NAME=PATH`` and with several seeds ``NAME=PATH1,PATH2``. Rows are matched by their key (the
``path`` column, ``data.fingerprint.row_keys``); results whose test rows differ are refused unless ``intersect``, then
only the common rows are compared and the rows in one file and not another are counted. Rows unscored by either
detector are left out of the test and counted by status. For each report group of the protocol: each detector's AUC
minus the reference's, its 95% interval and the two-sided p-value of the paired test (``engine.evaluation.paired``:
clustered by video, else identity, else row; DeLong's or the paired bootstrap), and Holm's correction over every test
of the table. Output: compare.json, compare.md / .csv / .tex.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UsageError, UserError
from data.fingerprint import row_keys, rows_fingerprint
from data.protocols import report_groups
from data.schema import SchemaError, SplitTable, load_table

from . import tables
from .coverage import SCORED
from .metrics import BOOTSTRAP_MAX_ROWS, aggregate_by_video
from .paired import SIGNIFICANCE, holm, paired_test
from .predictions import read_prediction_scores, read_prediction_status

log = logging.getLogger("cael")
PREDICTIONS = "predictions.csv"


class CompareError(UserError):
    """Results that cannot be compared as given (other rows, other labels, nothing in common)."""


@dataclass
class Result:
    """One predictions.csv of one detector (one seed)."""

    path: Path
    table: SplitTable
    keys: list[str]  # row key per table row
    index: dict[str, int]  # key -> table row
    scores: np.ndarray  # clean score per table row
    status: np.ndarray  # per table row: scored, or why not
    receipts: dict[str, Any] | None = None


@dataclass
class Detector:
    name: str
    results: list[Result] = field(default_factory=list)


def parse_sources(sources: Sequence[str]) -> list[tuple[str | None, list[str]]]:
    """``NAME=PATH[,PATH...]`` or ``PATH`` -> (name or None, paths)."""
    parsed = []
    for source in sources:
        name, _, paths = source.rpartition("=") if "=" in source else ("", "", source)
        parsed.append((name or None, [p for p in paths.split(",") if p]))
    return parsed


def default_name(path: Path) -> str:
    """A detector's name from where its predictions are: the run folder of RUN/eval-*/predictions.csv, else the
    folder (or the file's stem when it is not called predictions.csv)."""
    folder = path.parent if path.name == PREDICTIONS else path
    if path.suffix == ".csv" and path.name != PREDICTIONS:
        return path.stem
    return folder.parent.name if folder.name.startswith(("eval-", "recomputed")) else folder.name


def find_predictions(source: str, evaluate) -> Path:
    """The predictions.csv of ``source``: the file, the one inside an evaluation folder, or (a run folder or a
    checkpoint) the one ``evaluate(checkpoint)`` writes."""
    path = Path(source)
    if path.is_file() and path.suffix == ".csv":
        return path
    if path.is_dir() and (path / PREDICTIONS).is_file():
        return path / PREDICTIONS
    checkpoint = path / "best.pt" if path.is_dir() else path
    if checkpoint.is_file() and checkpoint.suffix in (".pt", ".pth"):
        return Path(evaluate(checkpoint)) / PREDICTIONS
    raise CompareError(
        f"--compare {source}: not a predictions.csv, an evaluation folder holding one, or a run folder with best.pt."
    )


def read_result(path: Path) -> Result:
    table = load_table(path, root=path.parent)
    scores = read_prediction_scores(table, path)["clean"]
    keys = row_keys(table, np.arange(len(table))).tolist()
    index = {key: row for row, key in enumerate(keys)}  # rows are matched by dictionary: no string sort
    if len(index) != len(keys):
        twice = next(key for row, key in enumerate(keys) if index[key] != row)
        raise CompareError(f"{path} holds the row {twice!r} more than once: one line per row.")
    status = read_prediction_status(table)
    if status is None:  # a file written before statuses: a row with a finite score was scored
        status = np.where(np.isfinite(scores), SCORED, "non-finite").astype(object)
    receipts = None
    metrics = path.parent / "metrics.json"
    if metrics.is_file():
        try:
            receipts = json.loads(metrics.read_text()).get("receipts")
        except (OSError, ValueError, AttributeError):
            log.warning(f"{metrics} cannot be read: {path} is compared without its receipts")
    return Result(path, table, keys, index, scores, status, receipts)


@dataclass
class Matched:
    """The rows every result holds (in the reference's order): ``positions[d][s]`` are their rows in detector d's
    seed s, ``reference_rows`` theirs in the reference."""

    reference_rows: np.ndarray
    positions: list[list[np.ndarray]]
    only_in: dict[str, int]


def match_rows(detectors: list[Detector], test_rows: np.ndarray, intersect: bool) -> Matched:
    """The reference's ``test_rows`` that every result holds, matched by key (one dictionary lookup per row and
    result); refused when the rows differ (unless ``intersect``), when nothing is common, or when a common row's
    label differs."""
    reference = detectors[0].results[0]
    wanted = [reference.keys[row] for row in test_rows.tolist()]
    found = []
    present = np.ones(len(wanted), dtype=bool)
    for detector in detectors:
        for result in detector.results:
            rows = np.fromiter((result.index.get(key, -1) for key in wanted), dtype=np.int64, count=len(wanted))
            found.append(rows)
            present &= rows >= 0
    common = int(present.sum())
    if common == 0:
        raise CompareError("the compared results have no test row in common: compare results of the same rows.")
    only_in, differ = {}, []
    for detector in detectors:
        for result in detector.results:
            extra = len(result.keys) - common
            label = f"{detector.name} ({result.path})"
            only_in[label] = int(extra)
            if extra:
                differ.append(f"{label}: {extra:,} of its {len(result.keys):,} rows")
    if differ and not intersect:
        raise CompareError(
            f"the results hold different rows ({common:,} in common; not in every file: {'; '.join(differ[:3])}): "
            "compare results of the same rows, or pass --intersect to compare the common rows only."
        )
    flat = iter(rows[present] for rows in found)
    positions = [[next(flat) for _ in detector.results] for detector in detectors]
    reference_rows = test_rows[present]
    reference_labels = reference.table.labels[reference_rows]
    for detector, places in zip(detectors, positions):
        for result, rows in zip(detector.results, places):
            disagree = np.flatnonzero(result.table.labels[rows] != reference_labels)
            if len(disagree):
                more = f" and {len(disagree) - 1:,} more rows" if len(disagree) > 1 else ""
                raise CompareError(
                    f"{result.path} and {reference.path} disagree on the label of "
                    f"{reference.keys[reference_rows[disagree[0]]]!r}{more}: compare results of the same labelled rows."
                )
    return Matched(reference_rows, positions, only_in)


def _test(labels, a, b, clusters, *, method, samples, seed, max_rows) -> dict[str, Any]:
    """The paired test of one group, or why it cannot be made (one class only)."""
    if not ((labels == 0).any() and (labels == 1).any()):
        missing = "real" if not (labels == 0).any() else "fake"
        return {"na_reason": f"no {missing} rows in this group", "p": None}
    return paired_test(
        labels, a, b, method=method, clusters=clusters, samples=samples, seed=seed, max_bootstrap_rows=max_rows
    )


def compare(
    detectors: list[Detector],
    *,
    protocol: str,
    fold: str | None = None,
    intersect: bool = False,
    level: str = "frame",
    method: str = "auto",
    samples: int = 1000,
    seed: int = 0,
    max_bootstrap_rows: int = BOOTSTRAP_MAX_ROWS,
    video_aggregation: str = "mean",
) -> dict[str, Any]:
    """Every paired test of the table (each detector against ``detectors[0]``, each seed, each group) with Holm's
    correction over all of them."""
    from .evaluate import resolve_test_rows

    if len(detectors) < 2:
        raise UsageError("--compare needs two detectors or more (the first, or --reference, is the reference).")
    reference = detectors[0].results[0]
    resolved, _ = resolve_test_rows(reference.table, protocol, fold)
    matched = match_rows(detectors, resolved.test, intersect)
    scored = np.ones(len(matched.reference_rows), dtype=bool)
    unscored: dict[str, dict[str, int]] = {}
    for detector, places in zip(detectors, matched.positions):
        for result, rows in zip(detector.results, places):
            mine = result.status[rows] == SCORED
            scored &= mine
            names, counts = np.unique(result.status[rows][~mine].astype(str), return_counts=True)
            if len(names):
                unscored[f"{detector.name} ({result.path})"] = dict(zip(names.tolist(), counts.tolist()))
    rows = matched.positions[0][0][scored]  # the reference's rows compared
    compared_fingerprint = rows_fingerprint(reference.table, rows)
    groups = report_groups(reference.table, rows, resolved.report)
    matched_index = np.full(len(reference.table), -1, dtype=np.int64)  # reference row -> its index among the matched
    matched_index[matched.positions[0][0]] = np.arange(len(matched.reference_rows))
    settings = {"method": method, "samples": samples, "seed": seed, "max_rows": max_bootstrap_rows}
    tests: list[tuple[str, str, int, dict]] = []
    for group, group_rows in groups.items():
        index = matched_index[group_rows]
        labels = reference.table.labels[group_rows].astype(np.int64)
        clusters, unit = reference.table.cluster_codes(group_rows)
        videos = reference.table.video_codes(group_rows)
        if level == "video" and videos is None:
            raise UsageError("--level video needs a video_id column in the predictions.")
        for d, detector in enumerate(detectors[1:], start=1):
            for s, result in enumerate(detector.results):
                r = s if len(detectors[0].results) == len(detector.results) else 0  # the reference's seed of this rank
                a = result.scores[matched.positions[d][s][index]]
                b = detectors[0].results[r].scores[matched.positions[0][r][index]]
                if level == "video":
                    video_labels, video_a = aggregate_by_video(labels, a, videos, video_aggregation)
                    _, video_b = aggregate_by_video(labels, b, videos, video_aggregation)
                    entry = {**_test(video_labels, video_a, video_b, None, **settings), "unit": "videos"}
                else:
                    entry = {**_test(labels, a, b, clusters, **settings), "unit": unit}
                entry["n"] = int(len(group_rows))
                tests.append((group, detector.name, s, entry))
    adjusted = holm([entry.get("p") for *_, entry in tests])
    for (*_, entry), p in zip(tests, adjusted):
        entry["p_holm"] = p
        entry["significant"] = p is not None and p < SIGNIFICANCE
    per_group: dict[str, dict[str, Any]] = {}
    for group, name, _, entry in tests:
        per_group.setdefault(group, {}).setdefault(name, {"seeds": []})["seeds"].append(entry)
    for entries in per_group.values():
        for summary in entries.values():
            differences = [e["difference"] for e in summary["seeds"] if "difference" in e]
            summary["mean_difference"] = float(np.mean(differences)) if differences else None
            summary["sd_difference"] = float(np.std(differences, ddof=1)) if len(differences) > 1 else None
    return {
        "protocol": resolved.protocol,
        "fold": fold,
        "level": level,
        "reference": detectors[0].name,
        "detectors": {
            d.name: [{"predictions": str(r.path), "receipts": r.receipts} for r in d.results] for d in detectors
        },
        "rows": {
            "common": int(len(matched.reference_rows)),
            "compared": int(scored.sum()),
            "only_in_one_file": matched.only_in,
            "unscored_by_status": unscored,
            "fingerprint_compared": compared_fingerprint,
        },
        "tests": len(tests),
        "holm_family": f"all {len(tests)} tests of this table (groups x detectors x seeds)",
        "significance": SIGNIFICANCE,
        "groups": per_group,
    }


def _signed(value: float | None, percent: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:+.2f}" if percent else f"{value:+.4f}"


def format_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def comparison_rows(result: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): per group, the reference's AUC, then per detector its AUC, the difference (points) with its
    95% interval, p and Holm's p; ``*`` where Holm's p < 0.05. Several seeds: the mean difference +- its SD and
    the number of seeds significant."""
    names = [name for name in result["detectors"] if name != result["reference"]]
    header = ["Group", "n", f"AUC {result['reference']}"]
    for name in names:
        header += [f"AUC {name}", f"Δ {name} [95% CI]", f"p {name}", f"p Holm {name}"]
    rows = []
    for group, entries in result["groups"].items():
        first = next(iter(entries.values()))["seeds"][0]
        row = [tables.group_label(group), str(first["n"]), tables.format_or_na(first.get("auc_b"), percent=True)]
        for name in names:
            summary = entries[name]
            seeds = summary["seeds"]
            if len(seeds) == 1:
                entry = seeds[0]
                ci = entry.get("ci95")
                interval = f" [{_signed(ci[0])}, {_signed(ci[1])}]" if ci else ""
                mark = " *" if entry.get("significant") else ""
                row += [
                    tables.format_or_na(entry.get("auc_a"), percent=True),
                    _signed(entry.get("difference")) + interval + mark,
                    format_p(entry.get("p")),
                    format_p(entry.get("p_holm")),
                ]
            else:
                aucs = [e.get("auc_a") for e in seeds if e.get("auc_a") is not None]
                significant = sum(bool(e.get("significant")) for e in seeds)
                spread = summary["sd_difference"]
                difference = _signed(summary["mean_difference"]) + (f" ± {100 * spread:.2f}" if spread else "")
                row += [
                    tables.format_or_na(float(np.mean(aucs)) if aucs else None, percent=True),
                    difference + f" ({significant}/{len(seeds)} seeds *)",
                    "max " + format_p(max((e["p"] for e in seeds if e.get("p") is not None), default=None)),
                    "max " + format_p(max((e["p_holm"] for e in seeds if e.get("p_holm") is not None), default=None)),
                ]
        rows.append(row)
    return header, rows


def comparison_card(result: Mapping[str, Any], method_name: str) -> list[str]:
    rows = result["rows"]
    card = [
        f"paired comparison on the same rows: each detector's AUC minus {result['reference']}'s, in points; "
        f"{method_name}; two-sided p-values; * where Holm's adjusted p < {result['significance']:g} "
        f"(Holm over {result['holm_family']})",
        f"level: {result['level']}; unit of the test: "
        + (
            "videos (frame scores aggregated per video)"
            if result["level"] == "video"
            else "rows clustered by video (else identity, else none), as each group's unit says in compare.json"
        ),
        f"rows: {rows['common']:,} test rows in every file, {rows['compared']:,} scored by every detector and compared "
        f"(fingerprint {rows['fingerprint_compared']['sha256'][:12]})",
    ]
    outside = {name: n for name, n in rows["only_in_one_file"].items() if n}
    if outside:
        listed = "; ".join(f"{n} {k}" for k, n in outside.items())
        card.append(f"rows not in every file (left out, --intersect): {listed}")
    for name, statuses in rows["unscored_by_status"].items():
        card.append(f"unscored by {name} (left out): " + ", ".join(f"{n} {s}" for s, n in statuses.items()))
    if any(len(results) > 1 for results in result["detectors"].values()):
        card.append(
            "seeds: each seed's scores are tested against the reference's seed of the same rank (or its only run); "
            "the table gives the mean difference ± its sample SD over seeds and how many seeds differ significantly"
        )
    card.append(
        "what it does not say: a difference on these rows, not on other datasets; a non-significant difference is "
        "not evidence of equal AUCs (read its interval)"
    )
    return card


def write_comparison(out_dir: Path, result: dict[str, Any], *, title: str) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = sorted(
        {e["method"] for g in result["groups"].values() for s in g.values() for e in s["seeds"] if "method" in e}
    )
    card = comparison_card(result, "test: " + (", ".join(methods) if methods else "none could be made"))
    result["card"] = card
    header, rows = comparison_rows(result)
    tables.write_json(out_dir / "compare.json", result)
    (out_dir / "compare.md").write_text(tables.to_markdown(header, rows, title=title, card=card))
    tables.write_csv_table(out_dir / "compare.csv", header, rows, card=card)
    (out_dir / "compare.tex").write_text(
        tables.to_latex(header, rows, caption=title, label=f"tab:{result['protocol']}-compare", card=card)
    )
    return tables.to_console(header, rows, card=card)


def run_compare(
    sources: Sequence[str],
    *,
    protocol: str | None,
    reference: str | None = None,
    out_dir: Path | None = None,
    evaluate=None,
    **options,
) -> dict[str, Any]:
    """``test.py --compare``: read (or evaluate) every source, put the reference first, test, write."""
    detectors, seen = [], set()
    for name, paths in parse_sources(sources):
        if not paths:
            raise UsageError(f"--compare {name}=: give the predictions after the name.")
        found = [find_predictions(p, evaluate) for p in paths]
        name = name or default_name(found[0])
        if name in seen:
            raise UsageError(f"--compare: two detectors are named {name!r}: name them, NAME=PATH.")
        seen.add(name)
        detectors.append(Detector(name, [read_result(path) for path in found]))
    if reference is not None:
        chosen = [d for d in detectors if d.name == reference]
        if not chosen:
            raise UsageError(
                f"--reference {reference!r} is none of the compared detectors ({', '.join(d.name for d in detectors)})."
            )
        detectors = chosen + [d for d in detectors if d.name != reference]
    protocol = protocol or _recorded_protocol(detectors)
    result = compare(detectors, protocol=protocol, **options)
    others = "-".join(d.name for d in detectors[1:])[:80]
    out_dir = out_dir or detectors[0].results[0].path.parent / f"compare-{others}"
    title = f"{result['protocol']}: AUC of each detector against {detectors[0].name} on the same rows"
    result["console"] = write_comparison(out_dir, result, title=title)
    result["out_dir"] = str(out_dir)
    return result


def _recorded_protocol(detectors: list[Detector]) -> str:
    """The protocol recorded beside the reference's predictions (metrics.json), when no --protocol is given."""
    metrics = detectors[0].results[0].path.parent / "metrics.json"
    try:
        recorded = json.loads(metrics.read_text()).get("protocol") if metrics.is_file() else None
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not recorded:
        raise SchemaError(
            f"no protocol is recorded beside {detectors[0].results[0].path}: pass --protocol (e.g. --protocol intra)."
        )
    return recorded
