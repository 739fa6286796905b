"""Each group's numbers as the field's reference code computes them, beside ours (``test.py --conventions``).

Two numbers of the same name in two papers can be different quantities. This module restates, as vectorised numpy,
what DeepfakeBench's ``training/metrics/utils.py: get_test_metrics`` and UnivFD's ``validate.py``
(``calculate_acc``, ``find_best_threshold``) compute on one group's labels, scores and paths, so a table of ours can
sit beside theirs. CNNDetection's ``validate.py`` computes UnivFD's AP and accuracies at 0.5: it is not repeated.
Where the reference code would raise (one class, a path without a folder), the value is ``None`` with the reason in
``na_reasons``; it never raises here. Our own rules where they differ are in ``OUR_RULES``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import auc as trapezoid_area
from sklearn.metrics import average_precision_score, roc_curve

from common.config import did_you_mean
from common.errors import UsageError

DEEPFAKEBENCH_KEYS = ("auc", "ap", "eer", "acc", "video_auc")
UNIVFD_KEYS = ("ap", "acc", "real_acc", "fake_acc", "best_threshold", "best_acc")
# The rules of our own tables where a reference differs (metrics.json "definitions", the protocol card).
OUR_RULES = {
    "threshold": "score >= threshold is fake (DeepfakeBench, UnivFD and CNNDetection: score > threshold)",
    "eer": "the interpolated point where FPR = FNR on the ROC through every distinct score (DeepfakeBench: the FPR "
    "of the ROC vertex minimising |FNR - FPR| among scikit-learn's kept vertices)",
    "acc_oracle": "accuracy at the best threshold of the test group itself, every distinct score tried with >= "
    "(optimistic; not UnivFD's find_best_threshold, which --conventions univfd gives)",
    "video_auc": "videos are video_id values namespaced by source dataset, forgery type and generator (DeepfakeBench: "
    "the path's parent folder name)",
}
OUR_RULES_CARD = (
    "our rules: score >= threshold is fake (DeepfakeBench, UnivFD and CNNDetection: >); EER interpolated where FPR = "
    "FNR (DeepfakeBench: the FPR of the nearest ROC vertex); Acc oracle: the best >= accuracy over every distinct "
    "score of the group (not UnivFD's find_best_threshold: --conventions univfd gives that)"
)
CARD_LINES = {
    "deepfakebench": "DeepfakeBench (get_test_metrics, table-deepfakebench): AUC and AP as ours; EER = FPR of the ROC "
    "vertex minimising |FNR - FPR| after scikit-learn drops collinear vertices (ours: interpolated FPR = FNR); Acc "
    "with score > 0.5 as fake (ours: >=); video AUC = mean score per parent folder of the path, so FF++'s methods' "
    "000_003 folders are one video and a folder with a real frame is labelled real (ours: namespaced video_id)",
    "univfd": "UnivFD (validate.py, table-univfd; CNNDetection's validate.py gives the same AP and Acc, real and fake "
    "acc at 0.5): score > t as fake (ours: >=); best threshold chosen on the group's own rows ordered reals first, "
    "each class in file order, by its position-based separability shortcut, else the last score whose >= accuracy is "
    "highest, then measured with > (ours: Acc oracle, the best >= accuracy over every distinct score)",
}
CONVENTIONS = tuple(CARD_LINES)
# (key, column title, is a percentage-like score) of each convention's table
TABLE_COLUMNS = {
    "deepfakebench": [
        ("auc", "AUC", True),
        ("ap", "AP", True),
        ("eer", "EER (vertex)", True),
        ("acc", "Acc (> 0.5)", True),
        ("video_auc", "Video AUC (parent folder)", True),
    ],
    "univfd": [
        ("ap", "AP", True),
        ("acc", "Acc (> 0.5)", True),
        ("real_acc", "Real acc", True),
        ("fake_acc", "Fake acc", True),
        ("best_threshold", "Best thr", False),
        ("best_acc", "Acc (> best thr)", True),
    ],
}


class UnknownConventionError(UsageError, ValueError):
    """A ``--conventions`` name that is not one of ``CONVENTIONS``."""


def parse_conventions(text: str | Sequence[str] | None) -> list[str]:
    """``"deepfakebench,univfd"`` -> the names, each checked (an unknown one: one sentence with a did-you-mean)."""
    if not text:
        return []
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    for name in names:
        if name not in CONVENTIONS:
            hint = did_you_mean(name, CONVENTIONS) or ""
            raise UnknownConventionError(
                f"--conventions: unknown convention '{name}'{hint}; choose from {', '.join(CONVENTIONS)}."
            )
    return list(dict.fromkeys(names))


def _classes(labels: np.ndarray) -> tuple[int, int]:
    return int((labels == 0).sum()), int((labels == 1).sum())


def _one_class_reason(n_real: int, n_fake: int) -> str:
    return f"no {'real' if not n_real else 'fake'} images in this group" if n_real + n_fake else "empty group"


def _vertex_eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """DeepfakeBench's EER: the FPR of the first ROC vertex whose |FNR - FPR| is smallest (no interpolation)."""
    return float(fpr[np.nanargmin(np.abs((1.0 - tpr) - fpr))])


def parent_folders(paths: Sequence[str]) -> tuple[np.ndarray, int | None]:
    """(name of each path's parent folder, position of the first path without one or None), as DeepfakeBench splits
    a path: on backslashes when it holds one, else on slashes, and takes the part before the last."""
    text = np.asarray(list(paths), dtype=np.dtypes.StringDType())
    separator = np.where(np.strings.find(text, "\\") >= 0, "\\", "/").astype(np.dtypes.StringDType())
    last = np.strings.rfind(text, separator)
    without = np.flatnonzero(last < 0)
    if len(without):
        return np.asarray([], dtype=object), int(without[0])
    before = np.strings.rfind(text, separator, 0, last)
    return np.strings.slice(text, before + 1, last), None


def deepfakebench_video_auc(labels: np.ndarray, scores: np.ndarray, paths: Sequence[str]) -> tuple[float | None, str]:
    """(video AUC, reason or note) as DeepfakeBench: frames grouped by the parent folder's name only, a video's
    score the mean of its frames' (summed in file order), its label ``int(mean label)`` (fake only if all are)."""
    folders, without = parent_folders(paths)
    if without is not None:
        return None, (
            f"path {paths[without]!r} has no parent folder (DeepfakeBench's get_test_metrics raises IndexError there)"
        )
    _, video = np.unique(folders, return_inverse=True)
    frames = np.bincount(video)
    video_scores = np.bincount(video, weights=scores) / frames  # bincount adds in row order, as its Python loop does
    fake_frames = np.bincount(video, weights=labels)
    video_labels = (fake_frames / frames).astype(np.int64)
    mixed = int(((fake_frames > 0) & (fake_frames < frames)).sum())
    note = f"{mixed} of {len(frames)} folders hold real and fake frames and count as real" if mixed else ""
    if len(np.unique(video_labels)) < 2:
        which = "fake" if video_labels.min() == 1 else "real"
        return None, (
            f"all {len(frames)} parent folders are labelled {which} (DeepfakeBench's get_test_metrics raises a "
            "ValueError on the all-NaN video EER here)" + (f"; {note}" if note else "")
        )
    fpr, tpr, _ = roc_curve(video_labels, video_scores)
    return float(trapezoid_area(fpr, tpr)), note


def deepfakebench_metrics(labels, scores, paths: Sequence[str]) -> dict[str, Any]:
    """``{auc, ap, eer, acc, video_auc, na_reasons, notes}`` of one group as DeepfakeBench's get_test_metrics."""
    labels, scores = np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    n_real, n_fake = _classes(labels)
    result: dict[str, Any] = dict.fromkeys(DEEPFAKEBENCH_KEYS)
    result.update(na_reasons={}, notes=[])
    if len(labels):
        result["acc"] = float(((scores > 0.5) == labels).mean())
    if not (n_real and n_fake):
        reason = _one_class_reason(n_real, n_fake) + " (DeepfakeBench's get_test_metrics raises on the NaN EER)"
        result["na_reasons"] = {key: reason for key in ("auc", "ap", "eer", "video_auc")}
        if not len(labels):
            result["na_reasons"]["acc"] = reason
        return result
    fpr, tpr, _ = roc_curve(labels, scores)  # collinear vertices dropped, as DeepfakeBench calls it
    result["auc"] = float(trapezoid_area(fpr, tpr))
    result["eer"] = _vertex_eer(fpr, tpr)
    result["ap"] = float(average_precision_score(labels, scores))
    result["video_auc"], note = deepfakebench_video_auc(labels, scores, paths)
    if result["video_auc"] is None:
        result["na_reasons"]["video_auc"] = note
    elif note:
        result["notes"].append(note)
    return result


def univfd_best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """UnivFD's find_best_threshold on rows ordered reals first, each class in file order (it assumes that order).

    Its shortcut compares the first half of the rows with the second by position (not by class); otherwise every
    score is tried as ``score >= t`` and the last one (in that order) of the highest accuracy wins. A candidate
    above 1 calls every row real: its code sets the rows >= t to 1, then sets every value below t to 0.
    """
    order = np.argsort(labels, kind="stable")
    labels, scores = labels[order], scores[order]
    half = len(scores) // 2
    if scores[:half].max() <= scores[half:].min():
        return float((scores[:half].max() + scores[half:].min()) / 2)
    real_sorted, fake_sorted = np.sort(scores[labels == 0]), np.sort(scores[labels == 1])
    reals_below = np.searchsorted(real_sorted, scores, side="left")
    fakes_at_or_above = len(fake_sorted) - np.searchsorted(fake_sorted, scores, side="left")
    correct = np.where(scores > 1.0, len(real_sorted), reals_below + fakes_at_or_above)
    last_best = len(correct) - 1 - int(np.argmax(correct[::-1]))
    return float(scores[last_best])


def _accuracies_above(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple:
    """UnivFD's calculate_acc: (real acc, fake acc, acc) with ``score > threshold`` as fake; None for an empty class
    (where scikit-learn's accuracy_score, and so UnivFD's validate, raises)."""
    fake = scores > threshold
    real_acc = float((~fake[labels == 0]).mean()) if (labels == 0).any() else None
    fake_acc = float(fake[labels == 1].mean()) if (labels == 1).any() else None
    return real_acc, fake_acc, float((fake == labels).mean())


def univfd_metrics(labels, scores) -> dict[str, Any]:
    """``{ap, acc, real_acc, fake_acc, best_threshold, best_acc, na_reasons, notes}`` of one group as UnivFD's
    validate(find_thres=True); rows in file order (reals are put first here, as its threshold search assumes)."""
    labels, scores = np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    n_real, n_fake = _classes(labels)
    result: dict[str, Any] = dict.fromkeys(UNIVFD_KEYS)
    result.update(na_reasons={}, notes=[])
    if not (n_real and n_fake):
        reason = _one_class_reason(n_real, n_fake) + " (UnivFD's calculate_acc raises on the empty class)"
        result["na_reasons"] = {"ap": reason, "real_acc" if not n_real else "fake_acc": reason}
    else:
        result["ap"] = float(average_precision_score(labels, scores))
    if not len(labels):
        result["na_reasons"].update({key: "empty group" for key in UNIVFD_KEYS})
        return result
    result["real_acc"], result["fake_acc"], result["acc"] = _accuracies_above(labels, scores, 0.5)
    if len(labels) < 2:
        reason = "one row: find_best_threshold takes the max of an empty first half and raises"
        result["na_reasons"].update(best_threshold=reason, best_acc=reason)
        return result
    result["best_threshold"] = univfd_best_threshold(labels, scores)
    result["best_acc"] = _accuracies_above(labels, scores, result["best_threshold"])[2]
    return result


COMPUTE = {"deepfakebench": deepfakebench_metrics, "univfd": lambda labels, scores, _: univfd_metrics(labels, scores)}


SAMPLED_FRAMES = 32  # frames DeepfakeBench samples per video (preprocessing/config.yaml), when none is recorded


def folder_grouping_warning(table, rows: np.ndarray, frames_per_video: int | None = None) -> str | None:
    """Why DeepfakeBench's parent-folder "videos" are not videos here, or None when they match: folders that hold
    frames of several ``video_id`` values, or (without ``video_id``) far more frames than the sampling gives a video,
    or folders that each hold one whole class. O(n log n) over ``rows``."""
    rows = np.sort(rows)
    if len(rows) == 0:
        return None
    folders, without = parent_folders(table.values("path", rows))
    if without is not None:
        return None
    names, folder = np.unique(folders, return_inverse=True)
    frames = np.bincount(folder)
    labels = np.asarray(table.labels[rows], dtype=np.int64)
    fakes = np.bincount(folder, weights=labels)
    one_class = bool((((fakes == 0) | (fakes == frames)) & (frames > 1)).all())
    single_class = one_class and len(names) <= 2 * len(np.unique(labels))  # a folder per class, not per video
    videos = table.video_codes(rows)
    reasons = []
    if videos is not None:
        pairs = np.unique(folder.astype(np.int64) * (int(videos.codes.max()) + 1) + videos.codes)
        per_folder = np.bincount(pairs // (int(videos.codes.max()) + 1), minlength=len(names))
        shared = int((per_folder > 1).sum())
        if shared:
            worst = int(per_folder.argmax())
            reasons.append(
                f"{shared} of {len(names)} parent folders hold frames of several video_id values (e.g. "
                f"{str(names[worst])!r}: {per_folder[worst]} videos)"
            )
    else:
        limit = 2 * (frames_per_video or SAMPLED_FRAMES)
        big = int((frames > limit).sum())
        if big:
            worst = int(frames.argmax())
            reasons.append(
                f"{big} of {len(names)} parent folders hold more than {limit} frames, twice what the sampling gives a "
                f"video (e.g. {str(names[worst])!r}: {frames[worst]} frames)"
            )
    if single_class:
        reasons.append(f"the {len(names)} folders each hold one class only, so each is a whole class")
    if not reasons:
        return None
    return (
        "DeepfakeBench's video AUC groups frames by parent folder, and here the folders are not videos: "
        + "; ".join(reasons)
        + ". Its 'Video AUC (parent folder)' does not measure video-level detection on this layout (ours, by "
        "video_id, does)"
    )


def evaluate_groups(
    results: dict[str, dict[str, Any]],
    table,
    groups: Mapping[str, np.ndarray],
    scores: np.ndarray,
    names: Sequence,
    frames_per_video: int | None = None,
) -> list[str]:
    """Put ``results[G]["conventions"][NAME]`` for every group (clean scores, finite rows, file order); returns the
    protocol-card lines of ``names`` (and, for deepfakebench, a warning where its folders are not videos)."""
    if not names:
        return []
    paths = np.asarray(table.column("path"), dtype=object)
    for group, rows in groups.items():
        scored = np.sort(rows[np.isfinite(scores[rows])])
        labels = np.asarray(table.labels[scored], dtype=np.int64)
        results[group]["conventions"] = {name: COMPUTE[name](labels, scores[scored], paths[scored]) for name in names}
    lines = [CARD_LINES[name] for name in names]
    if "deepfakebench" in names:
        every = np.unique(np.concatenate([np.asarray(r, dtype=np.int64) for r in groups.values()] or [[]]))
        warning = folder_grouping_warning(table, every[np.isfinite(scores[every])], frames_per_video)
        if warning:  # on the card, and once in the table's notes (under its first group)
            lines.append(warning)
            next(iter(results.values()))["conventions"]["deepfakebench"]["notes"].append(warning)
    return lines


def table_rows(results: Mapping[str, Mapping[str, Any]], name: str):
    """(header, rows, notes) of one convention's table: the group's counts, then its numbers (n/a with reasons)."""
    from .tables import format_or_na, group_label

    columns = TABLE_COLUMNS[name]
    header = ["Group", "real", "fake"] + [title for _, title, _ in columns]
    rows, notes = [], []
    for group, entry in results.items():
        values = entry["conventions"][name]
        clean = entry["clean"]
        row = [group_label(group), str(clean["n_real"]), str(clean["n_fake"])]
        row += [format_or_na(values[key], ".4f", percent=pct) for key, _, pct in columns]
        rows.append(row)
        reasons: dict[str, list[str]] = {}
        for key, reason in values["na_reasons"].items():
            reasons.setdefault(reason, []).append(dict((k, t) for k, t, _ in columns)[key])
        notes += [f"n/a: {group_label(group)}: {', '.join(keys)}: {reason}" for reason, keys in reasons.items()]
        notes += [f"{group_label(group)}: {note}" for note in values["notes"]]
    return header, rows, notes


def write_tables(out_dir: Path, results, names: Sequence[str], *, title: str, card: Sequence[str], label: str) -> str:
    """``table-<name>.md/.csv/.tex`` for each convention; returns their console text."""
    from . import tables

    console = []
    for name in names:
        header, rows, notes = table_rows(results, name)
        caption = f"{title}, as {name} computes it"
        (out_dir / f"table-{name}.md").write_text(tables.to_markdown(header, rows, notes, title=caption, card=card))
        tables.write_csv_table(out_dir / f"table-{name}.csv", header, rows, notes, card)
        (out_dir / f"table-{name}.tex").write_text(
            tables.to_latex(
                header,
                rows,
                caption=caption + " (scores in %)",
                label=f"{label}-{name}",
                notes=notes,
                card=[CARD_LINES[name]],
            )
        )
        console.append(f"\n{caption}:\n" + tables.to_console(header, rows, notes))
    return "".join(console)
