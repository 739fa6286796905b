"""Every test row accounted for: a status per row of the protocol's test rows, the coverage of a table and of each
group, how unscored rows count (``--missing``) and the run-failing minimum (``--min-coverage``).

Statuses: ``scored``; ``missing-file`` and ``unreadable`` (the image was not there, or could not be decoded, with
``data.on-error: skip``); ``non-finite`` (the model gave NaN or infinity, with ``--allow-nonfinite``); and a
source video's own status from face extraction, carried by the CSV's ``extraction_status`` column (``no-face``,
``decode-error``, ``too-short``, ``unreadable``): such a row stands for a video that yielded no crop, and is never
given to the model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from common.errors import UserError

SCORED = "scored"
EXTRACTION_COLUMN = "extraction_status"
EXTRACTED = ("", "ok")  # extraction_status of a row that is a face crop
MISSING_POLICIES = ("exclude", "as-fake", "as-real")
WARN_SHARE = 0.05  # a group losing more than this share of its rows to a status says so in its row


class CoverageError(UserError):
    """Fewer scored rows than ``--min-coverage`` asks for."""


def extraction_statuses(table, rows: np.ndarray) -> np.ndarray:
    """Per row of ``rows``: the source video's extraction status where it yielded no crop, else "" (to be scored)."""
    statuses = np.full(len(rows), "", dtype=object)
    if table.has(EXTRACTION_COLUMN):
        column = table.column(EXTRACTION_COLUMN)
        values = np.array([column[i].strip().lower() for i in np.asarray(rows).tolist()], dtype=object)
        placeholder = ~np.isin(values, EXTRACTED)
        statuses[placeholder] = values[placeholder]
    return statuses


def scoring_statuses(table, rows: np.ndarray, scored_rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per row of ``rows`` (all given to the model): scored, non-finite, or missing-file / unreadable for a row the
    loader skipped (told apart by whether its file exists: one stat per skipped row only)."""
    rows = np.asarray(rows)
    reached = np.isin(rows, scored_rows)
    finite = np.isfinite(scores[rows])
    statuses = np.where(reached & finite, SCORED, np.where(reached, "non-finite", "")).astype(object)
    for position in np.flatnonzero(~reached):
        statuses[position] = "unreadable" if os.path.exists(table.resolve(int(rows[position]))) else "missing-file"
    return statuses


def apply_missing(scores: np.ndarray, status: np.ndarray, policy: str) -> np.ndarray:
    """Scores by row with the unscored test rows counted as ``policy`` says: left out (NaN), or as a certain fake
    (1.0) or a certain real (0.0)."""
    if policy not in MISSING_POLICIES:
        raise UserError(f"--missing must be one of {', '.join(MISSING_POLICIES)}; got {policy!r}.")
    if policy == "exclude":
        return scores
    counted = scores.copy()
    unscored = (status != "") & (status != SCORED)
    counted[unscored] = 1.0 if policy == "as-fake" else 0.0
    return counted


def count(status: np.ndarray, rows: np.ndarray) -> dict[str, int]:
    """Rows of each status among ``rows`` (``status`` is by table row)."""
    names, counts = np.unique(status[rows].astype(str), return_counts=True)
    return {str(name): int(n) for name, n in zip(names, counts)}


def coverage_summary(table, rows: np.ndarray, status: np.ndarray) -> dict[str, Any]:
    """Rows and videos of the protocol's test rows scored, and the count of each status."""
    statuses = count(status, rows)
    scored = statuses.get(SCORED, 0)
    summary: dict[str, Any] = {
        "rows": int(len(rows)),
        "scored": scored,
        "share": scored / len(rows) if len(rows) else None,
        "statuses": statuses,
    }
    videos = table.video_codes(rows)
    if videos is not None:
        scored_videos = np.unique(videos.codes[status[rows] == SCORED])
        summary["videos"] = int(len(np.unique(videos.codes)))
        summary["scored_videos"] = int(len(scored_videos))
    return summary


def coverage_line(summary: Mapping[str, Any], policy: str) -> str:
    """The card's line: "coverage: N of M test rows (V of W videos) scored; unscored: ..., counted as ..."."""
    text = f"coverage: {summary['scored']:,} of {summary['rows']:,} test rows"
    if "videos" in summary:
        text += f" ({summary['scored_videos']:,} of {summary['videos']:,} videos)"
    text += " scored"
    others = {name: n for name, n in summary["statuses"].items() if name != SCORED}
    if not others:
        return text + "; every test row of the protocol was scored"
    listed = ", ".join(f"{n:,} {name}" for name, n in sorted(others.items()))
    how = {
        "exclude": "left out of every metric",
        "as-fake": "counted as fakes with score 1",
        "as-real": "counted as reals with score 0",
    }[policy]
    return text + f"; unscored: {listed}, {how} (--missing {policy})"


def group_shares(status: np.ndarray, groups: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Share of each group's rows that were scored."""
    return {name: float((status[rows] == SCORED).mean()) if len(rows) else 1.0 for name, rows in groups.items()}


def check_min_coverage(summary: Mapping[str, Any], minimum: float | None, where: str) -> None:
    """A ``CoverageError`` (exit status 1) when fewer than ``minimum`` of the test rows were scored."""
    if minimum is None or summary["share"] is None:
        return
    if summary["share"] < minimum:
        others = ", ".join(f"{n:,} {name}" for name, n in sorted(summary["statuses"].items()) if name != SCORED)
        raise CoverageError(
            f"only {summary['scored']:,} of {summary['rows']:,} test rows were scored ({100 * summary['share']:.1f}% < "
            f"--min-coverage {minimum:g}; unscored: {others}): the report is in {where}."
        )


def statuses_of_rows(status: np.ndarray, rows: Sequence[int]) -> list[str]:
    return [str(value) for value in status[np.asarray(rows, dtype=np.int64)]]
