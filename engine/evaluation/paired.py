"""Is one detector's AUC different from another's on the same rows? The paired tests of ``test.py --compare`` and of
the comparison table of ``test.py --runs``, and Holm's correction over the tests of one table.

- ``paired_delong``: DeLong, DeLong & Clarke-Pearson's test for two correlated ROC curves (Biometrics 44:837, 1988;
  pROC's ``roc.test(paired=TRUE, method="delong")``), with Obuchowski's clustered variance (Biometrics 53:567, 1997)
  when frames share videos: the variance of the AUC difference from the differences of the two detectors'
  structural components, summed per cluster. z = difference / SE, two-sided p from the normal law.
- ``paired_bootstrap``: the same units (videos, identities or rows) drawn with replacement, within each class, for
  both detectors at once; the interval is the percentile interval of the resampled differences, the p-value pROC's
  (z = difference / SD of the resampled differences, normal law).
- ``holm``: Holm's step-down adjustment (Scand. J. Statist. 6:65, 1979): valid under any dependence between the tests
  (the groups of a table overlap: a generator is inside its forgery type and inside "overall").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from .metrics import (
    BOOTSTRAP_CHUNK_ELEMENTS,
    MetricInputError,
    RankedScores,
    Stratum,
    batch_auc,
    check_both_classes,
    check_scores,
    cluster_codes,
    cluster_index,
    clustered_variance,
    one_class_runs,
    placement_values,
)

PAIRED_METHODS = ("auto", "delong", "bootstrap")
SIGNIFICANCE = 0.05


def _paired_input(labels, scores_a, scores_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels, scores_a = check_both_classes(labels, scores_a, "the paired AUC test")
    scores_b = check_scores(scores_b, len(labels))
    return labels, scores_a, scores_b


def _two_sided(difference: float, se: float) -> float:
    if se > 0:
        return float(2 * norm.sf(abs(difference) / se))
    return 1.0 if difference == 0 else 0.0  # no variance at all: equal AUCs are not different, unequal ones are


def paired_delong(labels, scores_a, scores_b, *, clusters: Sequence | None = None, level: float = 0.95) -> dict:
    """DeLong's paired test of AUC(a) - AUC(b) on the same rows (Obuchowski's clustered form with ``clusters``).

    Returns the two AUCs, their difference, its standard error, its ``level`` interval and the two-sided p-value.
    O(n log n): one sort per detector, then per-row components and per-cluster sums.
    """
    labels, scores_a, scores_b = _paired_input(labels, scores_a, scores_b)
    ranked_a, ranked_b = RankedScores(labels, scores_a), RankedScores(labels, scores_b)
    auc_a, auc_b = ranked_a.auc(), ranked_b.auc()
    difference = auc_a - auc_b
    components = placement_values(labels, ranked_a) - placement_values(labels, ranked_b)
    variance = clustered_variance(labels, components, difference, cluster_index(clusters, len(labels)))
    se = math.sqrt(max(variance, 0.0))
    half = float(norm.ppf(0.5 + level / 2)) * se
    return {
        "auc_a": auc_a,
        "auc_b": auc_b,
        "difference": difference,
        "se": se,
        "ci95": [difference - half, difference + half],
        "p": _two_sided(difference, se),
        "method": "DeLong" if clusters is None else "Obuchowski",
    }


def paired_bootstrap(
    labels,
    scores_a,
    scores_b,
    *,
    clusters: Sequence | None = None,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """The paired (clustered) bootstrap of AUC(a) - AUC(b): each resample draws the units of each class with
    replacement (videos or identities with ``clusters``, else rows) and scores both detectors on the same draw.
    O(n) per resample after one sort per detector; memory bounded by resampling in chunks."""
    if samples < 2:
        raise MetricInputError(f"the paired bootstrap needs at least 2 resamples; got {samples}.")
    labels, scores_a, scores_b = _paired_input(labels, scores_a, scores_b)
    codes = np.arange(len(labels)) if clusters is None else cluster_codes(clusters, len(labels))
    strata = []
    for scores in (scores_a, scores_b):
        ranked = RankedScores(labels, scores)
        block_of_level = one_class_runs(ranked)
        blocks = block_of_level[ranked.inverse]
        n_blocks = int(block_of_level[-1]) + 1
        # every unit its own cluster (rows too): a row's two scores stay together in each resample
        strata.append([Stratum(blocks[labels == k], codes[labels == k], n_blocks) for k in (0, 1)])
    auc_a, auc_b = RankedScores(labels, scores_a).auc(), RankedScores(labels, scores_b).auc()
    widest = max(s.width for pair in strata for s in pair)
    chunk = max(1, min(samples, BOOTSTRAP_CHUNK_ELEMENTS // widest))
    rng = np.random.default_rng(seed)
    differences = []
    for size in np.diff(np.r_[0:samples:chunk, samples]):
        picked = [strata[0][k].draw(rng, int(size)) for k in (0, 1)]  # one draw of units per class, both detectors
        resampled = [batch_auc(*(pair[k].aggregate(picked[k]) for k in (0, 1))) for pair in strata]
        differences.append(resampled[0] - resampled[1])
    differences = np.concatenate(differences)
    difference = auc_a - auc_b
    se = float(np.std(differences, ddof=1))
    alpha = (1.0 - level) / 2
    return {
        "auc_a": auc_a,
        "auc_b": auc_b,
        "difference": difference,
        "se": se,
        "ci95": [float(np.quantile(differences, alpha)), float(np.quantile(differences, 1.0 - alpha))],
        "p": _two_sided(difference, se),
        "method": f"paired bootstrap ({samples} resamples)",
    }


def paired_test(
    labels,
    scores_a,
    scores_b,
    *,
    method: str = "auto",
    clusters: Sequence | None = None,
    samples: int = 1000,
    seed: int = 0,
    max_bootstrap_rows: int = 100_000,
) -> dict:
    """``method``: delong, bootstrap, or auto (the bootstrap up to ``max_bootstrap_rows`` rows, DeLong above, as the
    AUC's own interval chooses; the two agree closely at such sizes)."""
    if method not in PAIRED_METHODS:
        raise MetricInputError(
            f"the paired test (--interval) must be one of {', '.join(PAIRED_METHODS)}; got {method!r}."
        )
    if method == "bootstrap" or (method == "auto" and len(labels) <= max_bootstrap_rows and samples >= 2):
        return paired_bootstrap(labels, scores_a, scores_b, clusters=clusters, samples=samples, seed=seed)
    return paired_delong(labels, scores_a, scores_b, clusters=clusters)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values in the given order; ``None`` (a test that could not be made) stays ``None`` and is not
    counted in the family. Reject at level a where the adjusted p-value is <= a: the family-wise error is <= a."""
    known = [(p, i) for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[i] = running
    return adjusted
