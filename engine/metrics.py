"""The one metrics implementation, shared by training-time validation and ``test.py``.

Scores are probabilities of "fake" (label 1). A group with one class only gets ``None`` for every ranking
metric, with the reason in ``na_reason``, never a crash or a made-up number; the ranking helpers themselves raise
``MetricInputError`` on such input. Labels must be exactly 0 or 1 and scores finite: anything else is an error
naming the offending positions, never a silent conversion.

Our rules where the field's code differs (``engine/conventions.py`` computes theirs): ``score >= threshold`` is fake
(DeepfakeBench, UnivFD and CNNDetection: ``>``); the EER is interpolated where FPR = FNR (DeepfakeBench: the FPR of the
nearest ROC vertex); ``acc_oracle`` is the best ``>=`` accuracy over every distinct score, not UnivFD's best threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from common.errors import UserError

RANKING_METRICS = ("auc", "ap", "eer", "tpr_at_fpr_1e-2", "tpr_at_fpr_1e-3")
THRESHOLD_METRICS = ("acc", "balanced_acc", "real_acc", "fake_acc", "acc_calibrated", "acc_oracle")
TPR_TARGETS = {"tpr_at_fpr_1e-2": 1e-2, "tpr_at_fpr_1e-3": 1e-3}
VIDEO_AGGREGATIONS = ("mean", "median", "max")
CALIBRATION_METHOD = "max-balanced-accuracy"
# Metrics where higher is better (used to select checkpoints); EER is the exception.
LOWER_IS_BETTER = {"eer", "loss"}


class MetricInputError(UserError, ValueError):
    """Labels or scores a metric cannot be computed on (not 0/1, not finite, one class, mismatched lengths)."""


def _positions(mask: np.ndarray, limit: int = 5) -> str:
    found = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in found[:limit])
    return shown + (f" and {len(found) - limit} more" if len(found) > limit else "")


def check_labels(labels) -> np.ndarray:
    """Labels as an int64 array of 0 (real) / 1 (fake); any other value (0.5, 2, -1, NaN) is an error."""
    raw = np.asarray(labels)
    if raw.ndim != 1:
        raise MetricInputError(f"labels must be a 1-D array; got shape {raw.shape}.")
    if raw.dtype == bool:
        return raw.astype(np.int64)
    try:
        values = raw.astype(np.float64)
    except (TypeError, ValueError):
        raise MetricInputError("labels must be numbers 0 (real) or 1 (fake); got non-numeric values.") from None
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        first = raw[np.flatnonzero(bad)[0]]
        raise MetricInputError(f"labels must be 0 (real) or 1 (fake); got {first!r} at position(s) {_positions(bad)}.")
    return values.astype(np.int64)


def check_scores(scores, n: int | None = None) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or (n is not None and len(scores) != n):
        raise MetricInputError(
            f"labels and scores must be 1-D arrays of one length; got {n} labels and shape {scores.shape}."
        )
    bad = ~np.isfinite(scores)
    if bad.any():
        raise MetricInputError(
            f"scores contain NaN or infinity at position(s) {_positions(bad)}: the model produced non-finite outputs "
            "(fp16 overflow?); evaluate in bf16/fp32."
        )
    return scores


def _checked(labels, scores, what: str) -> tuple[np.ndarray, np.ndarray]:
    labels = check_labels(labels)
    scores = check_scores(scores, len(labels))
    if not ((labels == 0).any() and (labels == 1).any()):
        missing = "real" if not (labels == 0).any() else "fake"
        raise MetricInputError(f"{what} needs both real and fake images; these {len(labels)} have no {missing} one.")
    return labels, scores


def roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, threshold) at every distinct score (``score >= threshold`` is fake), collinear points kept."""
    return roc_curve(labels, scores, drop_intermediate=False)


def equal_error_rate(labels, scores) -> float:
    """EER interpolated on the ROC: where FPR = FNR on the straight segment between two ROC vertices."""
    labels, scores = _checked(labels, scores, "the EER")
    fpr, tpr, _ = roc_points(labels, scores)
    difference = fpr - (1.0 - tpr)  # rises from -1 at (0, 0) to +1 at (1, 1)
    j = int(np.argmax(difference >= 0.0))
    if j == 0:
        return float(fpr[0])
    i = j - 1
    t = -difference[i] / (difference[j] - difference[i])
    return float(fpr[i] + t * (fpr[j] - fpr[i]))


def tpr_at_fpr(labels, scores, target_fpr: float) -> float:
    """Highest TPR of any threshold whose FPR is <= target (every distinct score tried; no interpolation).

    With fewer than 1 / target reals this is the TPR at zero false positives: ``compute_metrics`` reports n/a then.
    """
    labels, scores = _checked(labels, scores, "TPR at a fixed FPR")
    fpr, tpr, _ = roc_points(labels, scores)
    allowed = fpr <= target_fpr + 1e-12
    return float(tpr[allowed].max())


def reals_needed(target_fpr: float) -> int:
    """Reals needed before one false positive fits under ``target_fpr`` (100 for 1%, 1,000 for 0.1%)."""
    return int(math.ceil(1.0 / target_fpr - 1e-9))


def best_threshold(labels, scores, *, balanced: bool = False) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy (or balanced accuracy) over every threshold (``score >= t``)."""
    labels, scores = _checked(labels, scores, "the best threshold")
    fpr, tpr, thresholds = roc_points(labels, scores)
    n_real, n_fake = int((labels == 0).sum()), int((labels == 1).sum())
    accuracy = (tpr + 1.0 - fpr) / 2 if balanced else (tpr * n_fake + (1.0 - fpr) * n_real) / (n_real + n_fake)
    best = int(np.argmax(accuracy))
    threshold = float(thresholds[best])
    if not np.isfinite(threshold):  # "call nothing fake": just above the highest score
        threshold = float(np.nextafter(scores.max(), np.inf))
    return threshold, float(accuracy[best])


def calibrate_threshold(labels, scores) -> dict:
    """The threshold chosen on validation rows (saved in ``best.pt`` as ``calibration``): best balanced accuracy."""
    threshold, _ = best_threshold(labels, scores, balanced=True)
    return {"threshold": threshold, "method": CALIBRATION_METHOD}


def _weighted_auc(real_counts: np.ndarray, fake_counts: np.ndarray) -> float:
    """Exact AUC (ties count one half) from per-score-level counts of reals and fakes."""
    reals_below = np.cumsum(real_counts) - real_counts
    return float(fake_counts @ (reals_below + 0.5 * real_counts)) / (real_counts.sum() * fake_counts.sum())


def bootstrap_auc_ci(
    labels, scores, *, samples: int = 1000, seed: int = 0, level: float = 0.95, clusters: Sequence | None = None
):
    """Percentile bootstrap interval of the AUC, resampling reals and fakes separately (stratified, seeded).

    With ``clusters`` (a video or identity per row) whole clusters are resampled, not correlated frames: the
    interval then reflects how many independent videos there are. Each resample's AUC is exact, in O(n).
    """
    if samples <= 0:
        return None
    labels, scores = _checked(labels, scores, "the bootstrap interval of the AUC")
    rng = np.random.default_rng(seed)
    levels, inverse = np.unique(scores, return_inverse=True)
    n_levels = len(levels)
    if clusters is None:
        cluster_ids = np.arange(len(labels))
    else:
        if len(clusters) != len(labels):
            raise MetricInputError(f"clusters must give one value per row; got {len(clusters)} for {len(labels)} rows.")
        _, cluster_ids = np.unique(np.asarray([str(c) for c in clusters], dtype=object), return_inverse=True)
    per_class = []
    for label in (0, 1):
        members = labels == label
        names, local = np.unique(cluster_ids[members], return_inverse=True)
        # rows of cluster c at each score level: a (clusters, levels) count table, resampled by cluster weights
        table = np.zeros((len(names), n_levels))
        np.add.at(table, (local, inverse[members]), 1.0)
        per_class.append(table)
    aucs = np.empty(samples)
    for b in range(samples):
        counts = []
        for table in per_class:
            weights = np.bincount(rng.integers(0, len(table), len(table)), minlength=len(table))
            counts.append(weights @ table)
        aucs[b] = _weighted_auc(counts[0], counts[1])
    alpha = (1.0 - level) / 2
    return [float(np.quantile(aucs, alpha)), float(np.quantile(aucs, 1.0 - alpha))]


def aggregate_by_video(labels, scores, videos: Sequence[str], how: str = "mean", frames: Sequence[str] | None = None):
    """Per-video (label, score). ``frames`` (a frame key per row): the most-fake face of each frame is taken first,
    then the frame scores are aggregated by ``how``. A video's label is that of its frames (mixed: an error)."""
    if how not in VIDEO_AGGREGATIONS:
        raise MetricInputError(f"video aggregation must be one of {', '.join(VIDEO_AGGREGATIONS)}; got {how!r}.")
    labels = check_labels(labels)
    scores = check_scores(scores, len(labels))
    videos = np.asarray([str(v) for v in videos], dtype=object)
    if len(videos) != len(labels):
        raise MetricInputError(f"videos must give one value per row; got {len(videos)} for {len(labels)} rows.")
    if frames is not None:
        frame_keys = np.asarray([f"{v}\x1f{f}" for v, f in zip(videos, frames)], dtype=object)
        names, inverse = np.unique(frame_keys, return_inverse=True)
        frame_scores = np.full(len(names), -np.inf)
        np.maximum.at(frame_scores, inverse, scores)
        first = np.zeros(len(names), dtype=np.int64)
        first[inverse[::-1]] = np.arange(len(labels))[::-1]
        frame_labels = np.zeros(len(names), dtype=np.int64)
        np.maximum.at(frame_labels, inverse, labels)
        mixed = np.zeros(len(names), dtype=np.int64)
        np.minimum.at(mixed, inverse, labels - 1)  # -1 where some face of the frame is real
        if ((frame_labels == 1) & (mixed == -1)).any():
            bad = names[np.flatnonzero((frame_labels == 1) & (mixed == -1))[0]].replace("\x1f", " frame ")
            raise MetricInputError(f"video {bad} has both real and fake faces: check its label and video_id values.")
        return aggregate_by_video(frame_labels, frame_scores, videos[first], how)
    names, inverse = np.unique(videos, return_inverse=True)
    video_labels = np.zeros(len(names), dtype=np.int64)
    video_scores = np.zeros(len(names))
    reduce = {"mean": np.mean, "median": np.median, "max": np.max}[how]
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
    for v in range(len(names)):
        members = order[bounds[v] : bounds[v + 1]]
        frame_labels = labels[members]
        if frame_labels.min() != frame_labels.max():
            raise MetricInputError(
                f"video {names[v]!r} has both real and fake frames: check its label and video_id values."
            )
        video_labels[v] = frame_labels[0]
        video_scores[v] = reduce(scores[members])
    return video_labels, video_scores


def compute_metrics(
    labels,
    scores,
    *,
    threshold: float = 0.5,
    calibrated_threshold: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    clusters: Sequence[str] | None = None,
    videos: Sequence[str] | None = None,
    frames: Sequence[str] | None = None,
    video_aggregation: str = "mean",
) -> dict:
    """All metrics of one group of images. ``labels``: 0 real / 1 fake; ``scores``: probability of fake.

    ``na_reason`` says why the ranking metrics are n/a (one class); ``na_reasons`` says, per metric, why a single
    metric is n/a (e.g. TPR@0.1% with fewer than 1,000 reals, which would be the TPR at zero false positives).
    """
    labels = check_labels(labels)
    scores = check_scores(scores, len(labels))
    n_real, n_fake = int((labels == 0).sum()), int((labels == 1).sum())
    result: dict = {"n": int(len(labels)), "n_real": n_real, "n_fake": n_fake, "na_reason": None, "na_reasons": {}}
    predicted = scores >= threshold
    result["threshold"] = float(threshold)
    result["acc"] = float((predicted == labels).mean()) if len(labels) else None
    result["real_acc"] = float((~predicted[labels == 0]).mean()) if n_real else None
    result["fake_acc"] = float(predicted[labels == 1].mean()) if n_fake else None
    result["calibrated_threshold"] = calibrated_threshold
    if calibrated_threshold is not None and len(labels):
        result["acc_calibrated"] = float(((scores >= calibrated_threshold) == labels).mean())
    else:
        result["acc_calibrated"] = None
        result["na_reasons"]["acc_calibrated"] = "no calibrated threshold (none saved with the checkpoint)"
    if n_real and n_fake:
        result["balanced_acc"] = (result["real_acc"] + result["fake_acc"]) / 2
        result["auc"] = float(roc_auc_score(labels, scores))
        result["ap"] = float(average_precision_score(labels, scores))
        result["eer"] = equal_error_rate(labels, scores)
        for key, target in TPR_TARGETS.items():
            if n_real >= reals_needed(target):
                result[key] = tpr_at_fpr(labels, scores, target)
            else:
                result[key] = None
                result["na_reasons"][key] = (
                    f"{n_real} reals < {reals_needed(target):,} needed to allow one false positive "
                    f"at FPR {100 * target:g}%"
                )
        result["oracle_threshold"], result["acc_oracle"] = best_threshold(labels, scores)
        result["auc_ci95"] = bootstrap_auc_ci(labels, scores, samples=bootstrap, seed=seed, clusters=clusters)
    else:
        missing = "real" if not n_real else "fake"
        result["na_reason"] = f"no {missing} images in this group" if len(labels) else "empty group"
        result["balanced_acc"] = None
        result["auc_ci95"] = None
        result["acc_oracle"] = result["oracle_threshold"] = None
        for name in RANKING_METRICS:
            result[name] = None
    if videos is not None:
        video_labels, video_scores = aggregate_by_video(labels, scores, videos, video_aggregation, frames)
        both = (video_labels == 0).any() and (video_labels == 1).any()
        result["n_videos"] = int(len(video_labels))
        result["video_auc"] = float(roc_auc_score(video_labels, video_scores)) if both else None
        if not both:
            result["na_reasons"]["video_auc"] = f"the {len(video_labels)} videos of this group are of one class"
    return result


def is_better(metric: str, new: float | None, best: float | None) -> bool:
    if new is None or (isinstance(new, float) and math.isnan(new)):
        return False
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best
