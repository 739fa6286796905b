"""The shared metrics against independent implementations, on adversarial score sets."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from engine.evaluation.metrics import (
    aggregate_by_video,
    bootstrap_auc_ci,
    compute_metrics,
    equal_error_rate,
    is_better,
    tpr_at_fpr,
)


def _sweep_eer(labels, scores):
    """Exhaustive threshold sweep: (FPR + FNR) / 2 where |FPR - FNR| is smallest."""
    best = None
    for threshold in np.concatenate([np.unique(scores), [np.inf]]):
        predicted = scores >= threshold
        fpr = predicted[labels == 0].mean()
        fnr = (~predicted[labels == 1]).mean()
        if best is None or abs(fpr - fnr) < best[0]:
            best = (abs(fpr - fnr), (fpr + fnr) / 2)
    return best[1]


@pytest.mark.parametrize("seed", range(4))
def test_auc_and_ap_agree_with_scikit_learn_on_random_and_tied_scores(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 400)
    scores = rng.normal(labels * 0.8, 1.0)
    for candidate in (scores, np.round(scores, 1), np.round(scores)):  # continuous, some ties, heavy ties
        m = compute_metrics(labels, candidate)
        assert m["auc"] == pytest.approx(roc_auc_score(labels, candidate), abs=1e-12)
        assert m["ap"] == pytest.approx(average_precision_score(labels, candidate), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_eer_agrees_with_an_exhaustive_threshold_sweep(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 4000)
    scores = rng.normal(labels * 1.2, 1.0)
    assert equal_error_rate(labels, scores) == pytest.approx(_sweep_eer(labels, scores), abs=1e-3)


def test_eer_of_perfect_inverted_and_constant_scores():
    labels = np.array([0, 0, 1, 1])
    assert equal_error_rate(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert equal_error_rate(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert equal_error_rate(labels, np.full(4, 0.5)) == pytest.approx(0.5)


def test_constant_scores_give_chance_values():
    labels = np.array([0, 1] * 50)
    m = compute_metrics(labels, np.full(100, 0.3))
    assert m["auc"] == 0.5 and m["eer"] == pytest.approx(0.5)
    assert m["acc"] == 0.5 and m["real_acc"] == 1.0 and m["fake_acc"] == 0.0 and m["balanced_acc"] == 0.5


@pytest.mark.parametrize("labels, missing", [([1, 1, 1], "real"), ([0, 0], "fake")])
def test_one_class_group_reports_na_with_the_reason(labels, missing):
    m = compute_metrics(labels, np.linspace(0.1, 0.9, len(labels)), bootstrap=50)
    assert m["na_reason"] == f"no {missing} images in this group"
    for key in ("auc", "ap", "eer", "balanced_acc", "tpr_at_fpr_1e-2", "auc_ci95"):
        assert m[key] is None
    assert m["acc"] is not None  # accuracy is still defined


def test_empty_group_and_bad_scores():
    assert compute_metrics([], [])["na_reason"] == "empty group"
    with pytest.raises(ValueError, match="non-finite"):
        compute_metrics([0, 1], [0.1, np.nan])


def test_accuracies_at_the_threshold():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.6, 0.4, 0.7, 0.2])
    m = compute_metrics(labels, scores, threshold=0.5)
    assert m["real_acc"] == pytest.approx(2 / 3) and m["fake_acc"] == 0.5
    assert m["acc"] == pytest.approx(3 / 5) and m["balanced_acc"] == pytest.approx((2 / 3 + 0.5) / 2)


def test_tpr_at_fpr_matches_brute_force():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 3000)
    scores = rng.normal(labels * 2.0, 1.0)
    for target in (1e-2, 1e-3):
        best = 0.0
        for threshold in np.unique(scores):
            predicted = scores >= threshold
            if predicted[labels == 0].mean() <= target:
                best = max(best, predicted[labels == 1].mean())
        assert tpr_at_fpr(labels, scores, target) == pytest.approx(best)


def test_bootstrap_interval_is_seeded_and_brackets_the_auc():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    scores = np.round(rng.normal(labels, 1.0), 1)
    first = bootstrap_auc_ci(labels, scores, samples=300, seed=7)
    assert first == bootstrap_auc_ci(labels, scores, samples=300, seed=7)
    assert first != bootstrap_auc_ci(labels, scores, samples=300, seed=8)
    assert first[0] < roc_auc_score(labels, scores) < first[1]
    assert 0.05 < first[1] - first[0] < 0.2
    # each resample is an exact AUC: resampling nothing but the identity gives the point estimate back
    assert bootstrap_auc_ci(np.array([0, 1]), np.array([0.2, 0.2]), samples=5) == [0.5, 0.5]


def test_video_level_auc_aggregates_frames():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.9, 0.1, 0.4, 0.4, 0.2, 0.6])
    videos = ["a", "a", "b", "b", "c", "d"]
    video_labels, video_scores = aggregate_by_video(labels, scores, videos, "mean")
    assert video_labels.tolist() == [0, 1, 0, 1]
    assert video_scores.tolist() == pytest.approx([0.5, 0.4, 0.2, 0.6])
    assert compute_metrics(labels, scores, videos=videos)["video_auc"] == pytest.approx(
        roc_auc_score([0, 1, 0, 1], [0.5, 0.4, 0.2, 0.6])
    )
    assert aggregate_by_video(labels, scores, videos, "max")[1].tolist() == pytest.approx([0.9, 0.4, 0.2, 0.6])
    with pytest.raises(ValueError, match="both real and fake"):
        aggregate_by_video(np.array([0, 1]), np.array([0.1, 0.2]), ["v", "v"])


def test_selection_direction():
    assert is_better("auc", 0.9, 0.8) and not is_better("auc", 0.7, 0.8)
    assert is_better("eer", 0.1, 0.2) and is_better("loss", 0.3, 0.5)
    assert is_better("auc", 0.5, None) and not is_better("auc", None, 0.5)


# ---------------------------------------------------------------- issue 10: numbers a reviewer accepts
from engine.evaluation.metrics import MetricInputError, best_threshold, calibrate_threshold  # noqa: E402


def _brute_tpr(labels, scores, target):
    best = 0.0
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        if predicted[labels == 0].mean() <= target + 1e-12:
            best = max(best, predicted[labels == 1].mean())
    return best


def test_tpr_at_fpr_keeps_operating_points_where_real_and_fake_scores_tie():
    labels = np.array([0, 1, 0, 1, 0, 1] + [0] * 197)
    scores = np.array([0.9, 0.9, 0.8, 0.8, 0.7, 0.7] + [0.1] * 197)
    # at threshold 0.8 exactly 2 of 200 reals (1%) and 2 of 3 fakes pass
    assert tpr_at_fpr(labels, scores, 1e-2) == pytest.approx(2 / 3)
    assert compute_metrics(labels, scores)["tpr_at_fpr_1e-2"] == pytest.approx(2 / 3)
    rng = np.random.default_rng(5)
    for _ in range(20):
        labels = rng.integers(0, 2, 500)
        scores = np.round(rng.normal(labels, 1.0), 1)  # heavy ties
        for target in (1e-2, 5e-2):
            assert tpr_at_fpr(labels, scores, target) == pytest.approx(_brute_tpr(labels, scores, target))


@pytest.mark.parametrize(
    "helper",
    [
        equal_error_rate,
        lambda labels, scores: tpr_at_fpr(labels, scores, 0.01),
        lambda labels, scores: bootstrap_auc_ci(labels, scores, samples=5),
        best_threshold,
    ],
)
@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1]])
def test_ranking_helpers_refuse_one_class_input_instead_of_a_made_up_number(helper, labels):
    with pytest.raises(MetricInputError, match="needs both real and fake"):
        helper(np.array(labels), np.linspace(0.1, 0.9, len(labels)))


@pytest.mark.parametrize("bad", [[0, 0.5, 1], [0, 2, 1], [0, -1, 1], [0, np.nan, 1]])
def test_labels_other_than_0_and_1_are_an_error_not_a_silent_cast(bad):
    with pytest.raises(MetricInputError, match=r"labels must be 0 \(real\) or 1 \(fake\).*position\(s\) 1"):
        compute_metrics(bad, [0.1, 0.5, 0.9])
    assert compute_metrics([0.0, 1.0], [0.2, 0.8])["auc"] == 1.0  # 0.0 / 1.0 floats are fine
    assert compute_metrics([False, True], [0.2, 0.8])["auc"] == 1.0


def test_nonfinite_scores_name_their_positions():
    with pytest.raises(MetricInputError, match=r"position\(s\) 2, 4"):
        compute_metrics([0, 1, 0, 1, 0], [0.1, 0.2, np.inf, 0.3, np.nan])


def test_low_fpr_tpr_is_na_with_the_reason_when_the_reals_cannot_resolve_it():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 240 + [1] * 100)
    scores = rng.random(340)
    m = compute_metrics(labels, scores)
    assert m["tpr_at_fpr_1e-2"] is not None  # 240 reals: one false positive fits under 1%
    assert m["tpr_at_fpr_1e-3"] is None and "240 reals < 1,000" in m["na_reasons"]["tpr_at_fpr_1e-3"]
    m = compute_metrics(labels[140:], scores[140:])  # 100 reals: exactly enough for 1%
    assert m["tpr_at_fpr_1e-2"] == pytest.approx(_brute_tpr(labels[140:], scores[140:], 1e-2))
    m = compute_metrics(labels[141:], scores[141:])
    assert m["tpr_at_fpr_1e-2"] is None


def test_accuracies_at_half_calibrated_and_oracle_thresholds():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.9])
    m = compute_metrics(labels, scores, calibrated_threshold=0.33)
    assert m["acc"] == pytest.approx(4 / 6) and m["acc_calibrated"] == 1.0 and m["acc_oracle"] == 1.0
    assert m["oracle_threshold"] == pytest.approx(0.35)
    assert compute_metrics(labels, scores)["acc_calibrated"] is None
    # calibration maximises balanced accuracy: with 1 fake among 5 reals it does not just call everything real
    calibration = calibrate_threshold(np.array([0, 0, 0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.5]))
    assert calibration["threshold"] == pytest.approx(0.5) and calibration["method"] == "max-balanced-accuracy"
    # "nothing is fake" as the best threshold stays a finite number above every score
    threshold, accuracy = best_threshold(np.array([0, 0, 0, 1]), np.array([0.9, 0.8, 0.7, 0.1]))
    assert threshold > 0.9 and np.isfinite(threshold) and accuracy == 0.75


def test_cluster_bootstrap_resamples_videos_not_correlated_frames():
    rng = np.random.default_rng(1)
    labels = np.repeat(rng.integers(0, 2, 40), 25)  # 40 videos of 25 identical-score frames
    scores = np.repeat(rng.normal(0, 1, 40), 25) + labels.astype(float) * 0.8
    videos = np.repeat(np.arange(40), 25).astype(str)
    frame_ci = bootstrap_auc_ci(labels, scores, samples=300, seed=0)
    video_ci = bootstrap_auc_ci(labels, scores, samples=300, seed=0, clusters=videos)
    assert (video_ci[1] - video_ci[0]) > 3 * (frame_ci[1] - frame_ci[0])
    # one frame per video: the cluster bootstrap is a row bootstrap (the same interval up to resampling noise)
    single = np.arange(len(labels)).astype(str)
    rows_only = bootstrap_auc_ci(labels, scores, samples=300, seed=3)
    assert bootstrap_auc_ci(labels, scores, samples=300, seed=3, clusters=single) == pytest.approx(rows_only, abs=0.01)


def test_video_score_takes_the_most_fake_face_of_each_frame_then_the_mean():
    labels = np.array([1, 1, 1, 0, 0])
    scores = np.array([0.2, 0.9, 0.4, 0.3, 0.5])
    videos = ["v", "v", "v", "r", "r"]
    frames = ["0", "0", "1", "0", "1"]  # frame 0 of v has two faces
    _, video_scores = aggregate_by_video(labels, scores, videos, "mean", frames)
    assert video_scores.tolist() == pytest.approx([0.4, (0.9 + 0.4) / 2])  # sorted names: r, v
    with pytest.raises(MetricInputError, match="both real and fake faces"):
        aggregate_by_video(np.array([0, 1]), np.array([0.1, 0.2]), ["v", "v"], "mean", ["0", "0"])


def _dense_table_bootstrap(labels, scores, samples, seed, clusters=None):
    """The former exact method: a dense (clusters x score levels) count table per class, resampled by weights.
    Quadratic in memory, so only for small inputs: the reference the O(n)-per-resample bootstrap must agree with."""
    rng = np.random.default_rng(seed)
    levels, inverse = np.unique(scores, return_inverse=True)
    ids = np.arange(len(labels)) if clusters is None else np.unique(np.asarray(clusters), return_inverse=True)[1]
    tables = []
    for label in (0, 1):
        members = labels == label
        names, local = np.unique(ids[members], return_inverse=True)
        table = np.zeros((len(names), len(levels)))
        np.add.at(table, (local, inverse[members]), 1.0)
        tables.append(table)
    aucs = []
    for _ in range(samples):
        reals, fakes = (np.bincount(rng.integers(0, len(t), len(t)), minlength=len(t)) @ t for t in tables)
        below = np.cumsum(reals) - reals
        aucs.append(fakes @ (below + 0.5 * reals) / (reals.sum() * fakes.sum()))
    return np.quantile(aucs, [0.025, 0.975])


@pytest.mark.parametrize("clustered", [False, True])
def test_the_linear_bootstrap_agrees_with_the_former_dense_method_within_monte_carlo_error(clustered):
    rng = np.random.default_rng(5)
    videos = np.repeat(np.arange(150), rng.integers(1, 12, 150))  # 150 videos of 1-11 frames
    labels = (rng.random(150) < 0.6).astype(int)[videos]
    scores = np.round(rng.normal(labels * 0.7, 1.0) + rng.normal(0, 0.8, 150)[videos], 2)  # ties, video effects
    clusters = videos.astype(str) if clustered else None
    ours = bootstrap_auc_ci(labels, scores, samples=2000, seed=1, clusters=clusters)
    dense = _dense_table_bootstrap(labels, scores, 2000, seed=2, clusters=clusters)
    width = dense[1] - dense[0]
    # two independent 2,000-resample percentile intervals: endpoints differ by Monte-Carlo error only (~3% of width)
    assert ours == pytest.approx(dense, abs=0.08 * width)


def test_bootstrap_with_one_fake_follows_the_binomial_law_exactly():
    """One fake: every resample keeps it, and the AUC is the share of resampled reals below it, Binomial(n, p) / n."""
    from scipy.stats import binom

    reals = 400
    labels = np.r_[np.zeros(reals, dtype=int), 1]
    scores = np.r_[np.linspace(0, 1, reals), 0.3]  # p = share of reals below the fake
    p = float((scores[:reals] < 0.3).mean())
    low, high = bootstrap_auc_ci(labels, scores, samples=20000, seed=0)
    assert low == pytest.approx(binom.ppf(0.025, reals, p) / reals, abs=1.5 / reals)
    assert high == pytest.approx(binom.ppf(0.975, reals, p) / reals, abs=1.5 / reals)


def test_bootstrap_memory_and_result_do_not_depend_on_the_chunking(monkeypatch):
    import engine.evaluation.metrics as metrics

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 3000)
    scores = rng.normal(labels, 1.0)
    whole = bootstrap_auc_ci(labels, scores, samples=200, seed=4)
    monkeypatch.setattr(metrics, "BOOTSTRAP_CHUNK_ELEMENTS", 1)  # one resample at a time
    one_by_one = bootstrap_auc_ci(labels, scores, samples=200, seed=4)
    assert one_by_one == pytest.approx(whole, abs=0.01)  # the draws differ in order only


@pytest.mark.parametrize("clustered", [False, True])
def test_delong_and_obuchowski_agree_with_the_bootstrap_where_both_run(clustered):
    from engine.evaluation.metrics import delong_auc_ci

    rng = np.random.default_rng(11)
    videos = np.repeat(np.arange(400), 8)
    labels = (rng.random(400) < 0.5).astype(int)[videos]
    scores = rng.normal(labels * 0.9, 1.0) + (rng.normal(0, 1.0, 400)[videos] if clustered else 0)
    clusters = videos if clustered else None
    normal = delong_auc_ci(labels, scores, clusters=clusters)
    boot = bootstrap_auc_ci(labels, scores, samples=2000, seed=0, clusters=clusters)
    width = boot[1] - boot[0]
    assert normal == pytest.approx(boot, abs=0.1 * width)
    if clustered:  # correlated frames: the clustered interval is much wider than one that ignores the videos
        assert normal[1] - normal[0] > 1.8 * np.subtract(*delong_auc_ci(labels, scores)[::-1])


def test_delong_variance_matches_its_textbook_formula_on_a_small_case():
    from engine.evaluation.metrics import delong_auc_ci

    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.4, 0.35, 0.4, 0.8, 0.9])
    real, fake = scores[labels == 0], scores[labels == 1]
    psi = (fake[None, :] > real[:, None]) + 0.5 * (fake[None, :] == real[:, None])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = np.sqrt(v10.var(ddof=1) / len(real) + v01.var(ddof=1) / len(fake))
    assert delong_auc_ci(labels, scores) == pytest.approx([auc - 1.959964 * se, min(1.0, auc + 1.959964 * se)])


def test_interval_method_auto_switches_by_size_and_says_which():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(labels, 1.0)
    small = compute_metrics(labels, scores, bootstrap=100)
    assert small["auc_ci_method"] == "bootstrap (100 resamples)"
    large = compute_metrics(labels, scores, bootstrap=100, max_bootstrap_rows=499)
    assert large["auc_ci_method"] == "DeLong" and large["auc_ci95"][0] < large["auc"] < large["auc_ci95"][1]
    assert (
        compute_metrics(labels, scores, bootstrap=100, interval="delong", clusters=np.arange(500) // 5)["auc_ci_method"]
        == "Obuchowski"
    )
    assert compute_metrics(labels, scores, bootstrap=0)["auc_ci_method"] is None
    with pytest.raises(MetricInputError, match="eval.interval"):
        compute_metrics(labels, scores, bootstrap=10, interval="wald")


def test_a_million_rows_with_and_without_videos_in_bounded_memory():
    """The former method needed a 3.6 TiB table here; this must finish in seconds with well under a GB."""
    import tracemalloc

    from engine.evaluation.metrics import delong_auc_ci

    rng = np.random.default_rng(0)
    n = 1_000_000
    videos = np.arange(n) // 10
    labels = (rng.random(n // 10) < 0.8).astype(int)[videos]
    scores = np.round(np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1), 6)
    tracemalloc.start()
    rows = bootstrap_auc_ci(labels, scores, samples=3, seed=0)
    clustered = bootstrap_auc_ci(labels, scores, samples=3, seed=0, clusters=videos)
    normal = delong_auc_ci(labels, scores, clusters=videos)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 600 * 2**20
    auc = roc_auc_score(labels, scores)
    for interval in (rows, clustered, normal):
        assert interval[0] - 0.01 < auc < interval[1] + 0.01


@pytest.mark.parametrize("how", ["mean", "median", "max"])
def test_vectorised_video_aggregation_matches_a_loop_over_videos(how):
    from common.keys import Keys

    rng = np.random.default_rng(4)
    videos = rng.integers(0, 60, 900).astype(str)
    labels = (np.char.count(videos, "1") > 0).astype(int)  # one label per video
    frames = rng.integers(0, 5, 900).astype(str)
    scores = np.round(rng.random(900), 2)
    reduce = {"mean": np.mean, "median": np.median, "max": np.max}[how]
    expected = []
    for video in sorted(set(videos)):
        in_video = videos == video
        per_frame = [scores[in_video & (frames == f)].max() for f in sorted(set(frames[in_video]))]
        expected.append(reduce(per_frame))
    for keys in (videos, Keys.of(videos)):
        got_labels, got = aggregate_by_video(labels, scores, keys, how, frames)
        assert got.tolist() == pytest.approx(expected)
        assert got_labels.tolist() == [int("1" in v) for v in sorted(set(videos))]
