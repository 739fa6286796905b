"""The one metrics implementation, shared by training-time validation and ``test.py``.

Scores are probabilities of "fake" (label 1). A group with one class only gets ``None`` for every ranking
metric, with the reason in ``na_reason``, never a crash or a made-up number.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

RANKING_METRICS = ("auc", "ap", "eer", "tpr_at_fpr_1e-2", "tpr_at_fpr_1e-3")
THRESHOLD_METRICS = ("acc", "balanced_acc", "real_acc", "fake_acc")
VIDEO_AGGREGATIONS = ("mean", "median", "max")
# Metrics where higher is better (used to select checkpoints); EER is the exception.
LOWER_IS_BETTER = {"eer", "loss"}


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """EER interpolated on the ROC: where FPR = FNR on the straight segment between two ROC vertices."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    difference = fpr - (1.0 - tpr)  # rises from -1 at (0, 0) to +1 at (1, 1)
    j = int(np.argmax(difference >= 0.0))
    if j == 0:
        return float(fpr[0])
    i = j - 1
    t = -difference[i] / (difference[j] - difference[i])
    return float(fpr[i] + t * (fpr[j] - fpr[i]))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, target_fpr: float) -> float:
    """Highest TPR reachable with FPR <= target (the ROC's step function, no interpolation)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    allowed = fpr <= target_fpr + 1e-12
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def bootstrap_auc_ci(labels: np.ndarray, scores: np.ndarray, *, samples: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of the AUC, resampling reals and fakes separately (stratified, seeded).

    Each resample's AUC is computed exactly (ties count one half) from per-score-level counts, in O(n).
    """
    if samples <= 0:
        return None
    rng = np.random.default_rng(seed)
    levels, inverse = np.unique(scores, return_inverse=True)
    real_levels, fake_levels = inverse[labels == 0], inverse[labels == 1]
    n_real, n_fake, n_levels = len(real_levels), len(fake_levels), len(levels)
    aucs = np.empty(samples)
    for b in range(samples):
        real_counts = np.bincount(real_levels[rng.integers(0, n_real, n_real)], minlength=n_levels)
        fake_counts = np.bincount(fake_levels[rng.integers(0, n_fake, n_fake)], minlength=n_levels)
        reals_below = np.cumsum(real_counts) - real_counts
        aucs[b] = float(fake_counts @ (reals_below + 0.5 * real_counts)) / (n_real * n_fake)
    alpha = (1.0 - level) / 2
    return [float(np.quantile(aucs, alpha)), float(np.quantile(aucs, 1.0 - alpha))]


def aggregate_by_video(labels: np.ndarray, scores: np.ndarray, videos: Sequence[str], how: str = "mean"):
    """Per-video (label, score): frame scores aggregated by ``how``; a video's label is that of its frames."""
    if how not in VIDEO_AGGREGATIONS:
        raise ValueError(f"video aggregation must be one of {', '.join(VIDEO_AGGREGATIONS)}; got {how!r}.")
    videos = np.asarray(videos, dtype=object)
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
            raise ValueError(f"video {names[v]!r} has both real and fake frames: check its video_id values.")
        video_labels[v] = frame_labels[0]
        video_scores[v] = reduce(scores[members])
    return video_labels, video_scores


def compute_metrics(
    labels,
    scores,
    *,
    threshold: float = 0.5,
    bootstrap: int = 0,
    seed: int = 0,
    videos: Sequence[str] | None = None,
    video_aggregation: str = "mean",
) -> dict:
    """All metrics of one group of images. ``labels``: 0 real / 1 fake; ``scores``: probability of fake."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D arrays of one length; got {labels.shape} and {scores.shape}.")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity: the model produced non-finite outputs.")
    n_real, n_fake = int((labels == 0).sum()), int((labels == 1).sum())
    result: dict = {"n": int(len(labels)), "n_real": n_real, "n_fake": n_fake, "na_reason": None}
    predicted = scores >= threshold
    result["acc"] = float((predicted == labels).mean()) if len(labels) else None
    result["real_acc"] = float((~predicted[labels == 0]).mean()) if n_real else None
    result["fake_acc"] = float(predicted[labels == 1].mean()) if n_fake else None
    if n_real and n_fake:
        result["balanced_acc"] = (result["real_acc"] + result["fake_acc"]) / 2
        result["auc"] = float(roc_auc_score(labels, scores))
        result["ap"] = float(average_precision_score(labels, scores))
        result["eer"] = equal_error_rate(labels, scores)
        result["tpr_at_fpr_1e-2"] = tpr_at_fpr(labels, scores, 1e-2)
        result["tpr_at_fpr_1e-3"] = tpr_at_fpr(labels, scores, 1e-3)
        result["auc_ci95"] = bootstrap_auc_ci(labels, scores, samples=bootstrap, seed=seed)
    else:
        missing = "real" if not n_real else "fake"
        result["na_reason"] = f"no {missing} images in this group" if len(labels) else "empty group"
        result["balanced_acc"] = None
        result["auc_ci95"] = None
        for name in RANKING_METRICS:
            result[name] = None
    if videos is not None:
        video_labels, video_scores = aggregate_by_video(labels, scores, videos, video_aggregation)
        both = (video_labels == 0).any() and (video_labels == 1).any()
        result["n_videos"] = int(len(video_labels))
        result["video_auc"] = float(roc_auc_score(video_labels, video_scores)) if both else None
    return result


def is_better(metric: str, new: float | None, best: float | None) -> bool:
    if new is None or (isinstance(new, float) and math.isnan(new)):
        return False
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best
