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
from scipy.stats import norm

from common.errors import UserError
from common.keys import Keys

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


def check_both_classes(labels, scores, what: str) -> tuple[np.ndarray, np.ndarray]:
    labels = check_labels(labels)
    scores = check_scores(scores, len(labels))
    if not ((labels == 0).any() and (labels == 1).any()):
        missing = "real" if not (labels == 0).any() else "fake"
        raise MetricInputError(f"{what} needs both real and fake images; these {len(labels)} have no {missing} one.")
    return labels, scores


class RankedScores:
    """One group's scores sorted once: distinct score levels (ascending) with the reals and fakes at each.

    Every ranking metric (AUC, AP, EER, TPR at FPR, best threshold) and the bootstrap read this, so a group costs
    one sort, O(n log n), however many metrics are asked for.
    """

    def __init__(self, labels: np.ndarray, scores: np.ndarray):
        self.levels, self.inverse = np.unique(scores, return_inverse=True)
        self.inverse = self.inverse.reshape(-1)
        self.fakes = np.bincount(self.inverse, weights=labels, minlength=len(self.levels))
        self.reals = np.bincount(self.inverse, minlength=len(self.levels)) - self.fakes
        self.n_real, self.n_fake = float(self.reals.sum()), float(self.fakes.sum())

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(FPR, TPR, threshold) at every distinct score, highest first, after a first point (0, 0) at +inf:
        ``score >= threshold`` is fake; the same points as scikit-learn's ``roc_curve(drop_intermediate=False)``."""
        fpr = np.concatenate([[0.0], np.cumsum(self.reals[::-1]) / self.n_real])
        tpr = np.concatenate([[0.0], np.cumsum(self.fakes[::-1]) / self.n_fake])
        return fpr, tpr, np.concatenate([[np.inf], self.levels[::-1]])

    def auc(self) -> float:
        return _weighted_auc(self.reals, self.fakes)

    def average_precision(self) -> float:
        """Sum over thresholds (highest first) of the recall gained times the precision there (scikit-learn's AP)."""
        true_positives = np.cumsum(self.fakes[::-1])
        flagged = true_positives + np.cumsum(self.reals[::-1])
        return float(np.sum(self.fakes[::-1] / self.n_fake * (true_positives / flagged)))


def _ranked(labels, scores, what: str) -> RankedScores:
    labels, scores = check_both_classes(labels, scores, what)
    return RankedScores(labels, scores)


def roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, threshold) at every distinct score (``score >= threshold`` is fake), collinear points kept."""
    return _ranked(labels, scores, "the ROC curve").roc()


def _eer(ranked: RankedScores) -> float:
    fpr, tpr, _ = ranked.roc()
    difference = fpr - (1.0 - tpr)  # rises from -1 at (0, 0) to +1 at (1, 1)
    j = int(np.argmax(difference >= 0.0))
    if j == 0:
        return float(fpr[0])
    i = j - 1
    t = -difference[i] / (difference[j] - difference[i])
    return float(fpr[i] + t * (fpr[j] - fpr[i]))


def equal_error_rate(labels, scores) -> float:
    """EER interpolated on the ROC: where FPR = FNR on the straight segment between two ROC vertices."""
    return _eer(_ranked(labels, scores, "the EER"))


def _tpr_at_fpr(ranked: RankedScores, target_fpr: float) -> float:
    fpr, tpr, _ = ranked.roc()
    return float(tpr[fpr <= target_fpr + 1e-12].max())


def tpr_at_fpr(labels, scores, target_fpr: float) -> float:
    """Highest TPR of any threshold whose FPR is <= target (every distinct score tried; no interpolation).

    With fewer than 1 / target reals this is the TPR at zero false positives: ``compute_metrics`` reports n/a then.
    """
    return _tpr_at_fpr(_ranked(labels, scores, "TPR at a fixed FPR"), target_fpr)


def reals_needed(target_fpr: float) -> int:
    """Reals needed before one false positive fits under ``target_fpr`` (100 for 1%, 1,000 for 0.1%)."""
    return int(math.ceil(1.0 / target_fpr - 1e-9))


def _best_threshold(ranked: RankedScores, balanced: bool) -> tuple[float, float]:
    fpr, tpr, thresholds = ranked.roc()
    n_real, n_fake = ranked.n_real, ranked.n_fake
    accuracy = (tpr + 1.0 - fpr) / 2 if balanced else (tpr * n_fake + (1.0 - fpr) * n_real) / (n_real + n_fake)
    best = int(np.argmax(accuracy))
    threshold = float(thresholds[best])
    if not np.isfinite(threshold):  # "call nothing fake": just above the highest score
        threshold = float(np.nextafter(ranked.levels[-1], np.inf))
    return threshold, float(accuracy[best])


def best_threshold(labels, scores, *, balanced: bool = False) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy (or balanced accuracy) over every threshold (``score >= t``)."""
    return _best_threshold(_ranked(labels, scores, "the best threshold"), balanced)


def calibrate_threshold(labels, scores) -> dict:
    """The threshold chosen on validation rows (saved in ``best.pt`` as ``calibration``): best balanced accuracy."""
    threshold, _ = best_threshold(labels, scores, balanced=True)
    return {"threshold": threshold, "method": CALIBRATION_METHOD}


def _weighted_auc(real_counts: np.ndarray, fake_counts: np.ndarray) -> float:
    """Exact AUC (ties count one half) from per-score-level counts of reals and fakes."""
    reals_below = np.cumsum(real_counts) - real_counts
    return float(fake_counts @ (reals_below + 0.5 * real_counts) / (real_counts.sum() * fake_counts.sum()))


BOOTSTRAP_CHUNK_ELEMENTS = 1 << 21  # draws held at once: a few tens of MB at any size, vectorised when small
INTERVAL_METHODS = ("auto", "bootstrap", "delong")
# Above this many rows in a group, "auto" gives the normal-theory interval (DeLong / Obuchowski) rather than the
# bootstrap; the two agree closely at such sizes (tests/test_metrics.py), and the bootstrap's cost grows with rows.
BOOTSTRAP_MAX_ROWS = 100_000


def _runs(sorted_codes: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted array (one run per group)."""
    return np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])


def one_class_runs(ranked: RankedScores) -> np.ndarray:
    """Block id per score level: a run of consecutive levels that hold one class only is one block.

    Any resample's AUC is the same on blocks as on levels (a fake compares with every real of a one-class run in
    the same way), and a good detector's scores have far fewer blocks than levels.
    """
    kind = np.where(ranked.fakes == 0, 0, np.where(ranked.reals == 0, 1, 2))
    starts = np.ones(len(kind), dtype=bool)
    starts[1:] = (kind[1:] != kind[:-1]) | (kind[1:] == 2)
    return np.cumsum(starts) - 1


class Stratum:
    """One class's rows as the bootstrap resamples them: units (rows, or clusters of rows) holding blocks.

    A resample draws units with replacement, counts the draws per unit, and sums those counts per block over
    (unit, block) pairs laid out block by block: one scatter of the draws and one sequential pass, no random
    gather over the rows.
    """

    def __init__(self, blocks: np.ndarray, clusters: np.ndarray | None, n_blocks: int):
        self.n_blocks = n_blocks
        if clusters is None:  # every row its own unit; rows of one block are interchangeable
            self.units = len(blocks)
            pair_block, self.pair_unit, self.multiplicity = np.sort(blocks), None, None
        else:
            names, local = np.unique(clusters, return_inverse=True)
            pairs, self.multiplicity = np.unique(local.reshape(-1) * n_blocks + blocks, return_counts=True)
            order = np.argsort(pairs % n_blocks, kind="stable")
            self.units, self.pair_unit, pair_block = len(names), (pairs // n_blocks)[order], (pairs % n_blocks)[order]
            self.multiplicity = self.multiplicity[order]
        self.starts = _runs(pair_block)
        self.held_blocks = pair_block[self.starts]

    @property
    def width(self) -> int:
        return max(self.units, self.n_blocks)

    def draw(self, rng: np.random.Generator, chunk: int) -> np.ndarray:
        """(chunk, units) draws per unit of ``chunk`` resamples with replacement of this class's units."""
        dtype = np.int32 if self.units < 2**31 else np.int64
        draws = rng.integers(0, self.units, size=(chunk, self.units), dtype=dtype)
        draws += (np.arange(chunk, dtype=dtype) * self.units)[:, None]
        return np.bincount(draws.ravel(), minlength=chunk * self.units).reshape(chunk, self.units)

    def aggregate(self, picked: np.ndarray) -> np.ndarray:
        """(chunk, blocks) row counts of the resamples whose unit draws are ``picked`` (another stratum's draws
        over the same units: the paired bootstrap applies one set of draws to two detectors)."""
        if self.pair_unit is not None:
            picked = picked[:, self.pair_unit] * self.multiplicity
        counts = np.zeros((len(picked), self.n_blocks))
        counts[:, self.held_blocks] = np.add.reduceat(picked, self.starts, axis=1)
        return counts

    def counts(self, rng: np.random.Generator, chunk: int) -> np.ndarray:
        """(chunk, blocks) row counts of ``chunk`` resamples with replacement of this class's units."""
        return self.aggregate(self.draw(rng, chunk))


def batch_auc(reals: np.ndarray, fakes: np.ndarray) -> np.ndarray:
    """Exact AUC (ties one half) of each row of (resamples, blocks) count tables."""
    below = np.cumsum(reals, axis=1) - reals
    return np.einsum("ij,ij->i", fakes, below + 0.5 * reals) / (reals.sum(axis=1) * fakes.sum(axis=1))


def cluster_codes(clusters, n: int) -> np.ndarray:
    if len(clusters) != n:
        raise MetricInputError(f"clusters must give one value per row; got {len(clusters)} for {n} rows.")
    return Keys.of(clusters).codes


def bootstrap_auc_ci(
    labels, scores, *, samples: int = 1000, seed: int = 0, level: float = 0.95, clusters: Sequence | None = None
):
    """Percentile bootstrap interval of the AUC, resampling reals and fakes separately (stratified, seeded).

    With ``clusters`` (a video or identity per row: strings or integer codes) whole clusters are resampled, not
    correlated frames: the interval then reflects how many independent videos there are. One sort, O(n log n),
    then O(n) per resample (a draw per unit and one weighted count per block); memory stays bounded by
    processing resamples in chunks.
    """
    if samples <= 0:
        return None
    labels, scores = check_both_classes(labels, scores, "the bootstrap interval of the AUC")
    ranked = RankedScores(labels, scores)
    block_of_level = one_class_runs(ranked)
    n_blocks = int(block_of_level[-1]) + 1
    blocks = block_of_level[ranked.inverse]
    codes = None if clusters is None else cluster_codes(clusters, len(labels))
    strata = [
        Stratum(blocks[labels == label], None if codes is None else codes[labels == label], n_blocks)
        for label in (0, 1)
    ]
    chunk = max(1, min(samples, BOOTSTRAP_CHUNK_ELEMENTS // max(s.width for s in strata)))
    rng = np.random.default_rng(seed)
    aucs = np.concatenate(
        [
            batch_auc(strata[0].counts(rng, size), strata[1].counts(rng, size))
            for size in np.diff(np.r_[0:samples:chunk, samples])
        ]
    )
    alpha = (1.0 - level) / 2
    return [float(np.quantile(aucs, alpha)), float(np.quantile(aucs, 1.0 - alpha))]


def placement_values(labels: np.ndarray, ranked: RankedScores) -> np.ndarray:
    """DeLong's structural components per row: a real's share of the fakes scoring above it, a fake's share of the
    reals scoring below it (ties one half). Their mean over either class is the AUC."""
    reals_below = np.cumsum(ranked.reals) - ranked.reals
    fakes_above = ranked.n_fake - np.cumsum(ranked.fakes)
    return np.where(
        labels == 0,
        ((fakes_above + 0.5 * ranked.fakes) / ranked.n_fake)[ranked.inverse],
        ((reals_below + 0.5 * ranked.reals) / ranked.n_real)[ranked.inverse],
    )


def cluster_index(clusters: Sequence | None, n: int) -> np.ndarray:
    """Dense cluster codes 0..C-1 per row; without clusters every row is its own cluster."""
    codes = np.arange(n) if clusters is None else cluster_codes(clusters, n)
    return np.unique(codes, return_inverse=True)[1].reshape(-1)


def clustered_variance(labels: np.ndarray, placement: np.ndarray, mean: float, codes: np.ndarray) -> float:
    """Variance of an AUC (or of a difference of two AUCs on the same rows) from its per-row structural components
    ``placement`` (or their difference) with overall value ``mean``: Obuchowski's (Biometrics 53:567, 1997) over the
    clusters ``codes`` (``cluster_index``; a cluster may hold both classes). With every row its own cluster it is
    exactly DeLong, DeLong & Clarke-Pearson's (Biometrics 44:837, 1988), as pROC's ``var`` and ``roc.test`` compute
    it. Linear in the components, so the paired test's variance is this formula applied to the differences."""
    is_real = labels == 0
    n_class = (float(is_real.sum()), float((~is_real).sum()))
    size = int(codes.max()) + 1 if len(codes) else 0
    variance = 0.0
    deviations = []
    for members, n in zip((is_real, ~is_real), n_class):
        sums = np.bincount(codes[members], weights=placement[members], minlength=size)
        sizes = np.bincount(codes[members], minlength=size)
        deviation = sums - sizes * mean
        holding = int((sizes > 0).sum())
        if holding > 1:
            variance += holding / ((holding - 1) * n) * float(deviation @ deviation) / n
        deviations.append(deviation)
    if size > 1:
        covariance = size / (size - 1) * float(deviations[0] @ deviations[1])
        variance += 2 * covariance / (n_class[0] * n_class[1])
    return variance


def delong_auc_ci(labels, scores, *, level: float = 0.95, clusters: Sequence | None = None):
    """Normal-theory interval of the AUC, AUC +- z * SE, clipped to [0, 1]; O(n log n) at any size.

    The variance is Obuchowski's for clustered data over ``clusters`` (videos or identities); without clusters every
    row is its own cluster and it is exactly DeLong's, the default of pROC's ``ci.auc`` (``clustered_variance``).
    """
    labels, scores = check_both_classes(labels, scores, "the DeLong interval of the AUC")
    ranked = RankedScores(labels, scores)
    auc = ranked.auc()
    variance = clustered_variance(labels, placement_values(labels, ranked), auc, cluster_index(clusters, len(labels)))
    half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(max(variance, 0.0))
    return [float(max(0.0, auc - half)), float(min(1.0, auc + half))]


def auc_interval(
    labels,
    scores,
    *,
    method: str = "auto",
    samples: int = 1000,
    seed: int = 0,
    clusters: Sequence | None = None,
    max_bootstrap_rows: int = BOOTSTRAP_MAX_ROWS,
) -> tuple[list[float] | None, str | None]:
    """(95% interval, the method's name) of the AUC: the bootstrap, or DeLong / Obuchowski, or "auto" (the bootstrap
    up to ``max_bootstrap_rows`` rows, the normal-theory interval above). ``samples`` <= 0: no interval."""
    if method not in INTERVAL_METHODS:
        raise MetricInputError(
            f"the AUC interval method (eval.interval, --interval) must be one of {', '.join(INTERVAL_METHODS)}; "
            f"got {method!r}."
        )
    if samples <= 0:
        return None, None
    if method == "bootstrap" or (method == "auto" and len(labels) <= max_bootstrap_rows):
        ci = bootstrap_auc_ci(labels, scores, samples=samples, seed=seed, clusters=clusters)
        return ci, f"bootstrap ({samples} resamples)"
    return delong_auc_ci(labels, scores, clusters=clusters), "DeLong" if clusters is None else "Obuchowski"


def _most_fake_face_per_frame(labels, scores, videos: Keys, frames: Keys):
    """(labels, scores, videos) per frame: a frame's score is its most-fake face's; faces of both classes: an error."""
    order = np.lexsort((frames.codes, videos.codes))
    pair = np.stack([videos.codes[order], frames.codes[order]])
    starts = np.flatnonzero(np.r_[True, (pair[:, 1:] != pair[:, :-1]).any(axis=0)])
    frame_labels = np.maximum.reduceat(labels[order], starts)
    mixed = frame_labels != np.minimum.reduceat(labels[order], starts)
    if mixed.any():
        first = order[starts[np.flatnonzero(mixed)[0]]]
        raise MetricInputError(
            f"video {videos.name(videos.codes[first])} frame {frames.name(frames.codes[first])} has both real and "
            "fake faces: check its label and video_id values."
        )
    frame_scores = np.maximum.reduceat(scores[order], starts)
    return frame_labels, frame_scores, Keys(videos.codes[order[starts]], videos.names)


def aggregate_by_video(labels, scores, videos, how: str = "mean", frames=None):
    """Per-video (label, score), videos in the sorted order of their names. ``frames`` (a frame key per row): the
    most-fake face of each frame is taken first, then the frame scores are aggregated by ``how``. A video's label is
    that of its frames (mixed: an error). ``videos`` / ``frames``: strings, or ``common.keys.Keys``. O(n log n)."""
    if how not in VIDEO_AGGREGATIONS:
        raise MetricInputError(f"video aggregation must be one of {', '.join(VIDEO_AGGREGATIONS)}; got {how!r}.")
    labels = check_labels(labels)
    scores = check_scores(scores, len(labels))
    videos = Keys.of(videos)
    if len(videos) != len(labels):
        raise MetricInputError(f"videos must give one value per row; got {len(videos)} for {len(labels)} rows.")
    if frames is not None:
        labels, scores, videos = _most_fake_face_per_frame(labels, scores, videos, Keys.of(frames))
    order = np.lexsort((scores, videos.codes))
    starts = _runs(videos.codes[order])
    sizes = np.diff(np.r_[starts, len(order)])
    sorted_labels, sorted_scores = labels[order], scores[order]
    video_labels = np.maximum.reduceat(sorted_labels, starts)
    mixed = np.flatnonzero(video_labels != np.minimum.reduceat(sorted_labels, starts))
    if len(mixed):
        name = videos.name(videos.codes[order[starts[mixed[0]]]])
        raise MetricInputError(f"video {name!r} has both real and fake frames: check its label and video_id values.")
    if how == "mean":
        video_scores = np.add.reduceat(sorted_scores, starts) / sizes
    elif how == "max":
        video_scores = sorted_scores[starts + sizes - 1]
    else:  # median: scores are sorted within each video
        video_scores = (sorted_scores[starts + (sizes - 1) // 2] + sorted_scores[starts + sizes // 2]) / 2
    return video_labels.astype(np.int64), video_scores


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
    interval: str = "auto",
    max_bootstrap_rows: int = BOOTSTRAP_MAX_ROWS,
) -> dict:
    """All metrics of one group of images. ``labels``: 0 real / 1 fake; ``scores``: probability of fake.

    ``na_reason`` says why the ranking metrics are n/a (one class); ``na_reasons`` says, per metric, why a single
    metric is n/a (e.g. TPR@0.1% with fewer than 1,000 reals, which would be the TPR at zero false positives).
    The AUC's interval (``bootstrap`` resamples; 0: none) is chosen by ``interval`` (see ``auc_interval``) and its
    method named in ``auc_ci_method``. Every ranking metric reads one sort of the scores.
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
        ranked = RankedScores(labels, scores)
        result["auc"] = ranked.auc()
        result["ap"] = ranked.average_precision()
        result["eer"] = _eer(ranked)
        for key, target in TPR_TARGETS.items():
            if n_real >= reals_needed(target):
                result[key] = _tpr_at_fpr(ranked, target)
            else:
                result[key] = None
                result["na_reasons"][key] = (
                    f"{n_real} reals < {reals_needed(target):,} needed to allow one false positive "
                    f"at FPR {100 * target:g}%"
                )
        result["oracle_threshold"], result["acc_oracle"] = _best_threshold(ranked, balanced=False)
        result["auc_ci95"], result["auc_ci_method"] = auc_interval(
            labels,
            scores,
            method=interval,
            samples=bootstrap,
            seed=seed,
            clusters=clusters,
            max_bootstrap_rows=max_bootstrap_rows,
        )
    else:
        missing = "real" if not n_real else "fake"
        result["na_reason"] = f"no {missing} images in this group" if len(labels) else "empty group"
        result["balanced_acc"] = None
        result["auc_ci95"] = result["auc_ci_method"] = None
        result["acc_oracle"] = result["oracle_threshold"] = None
        for name in RANKING_METRICS:
            result[name] = None
    if videos is not None:
        video_labels, video_scores = aggregate_by_video(labels, scores, videos, video_aggregation, frames)
        both = (video_labels == 0).any() and (video_labels == 1).any()
        result["n_videos"] = int(len(video_labels))
        result["video_auc"] = RankedScores(video_labels, video_scores).auc() if both else None
        if not both:
            result["na_reasons"]["video_auc"] = f"the {len(video_labels)} videos of this group are of one class"
    return result


def is_better(metric: str, new: float | None, best: float | None) -> bool:
    if new is None or (isinstance(new, float) and math.isnan(new)):
        return False
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best
