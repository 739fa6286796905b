"""The shared metrics against independent implementations, on adversarial score sets."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from engine.metrics import aggregate_by_video, bootstrap_auc_ci, compute_metrics, equal_error_rate, is_better, tpr_at_fpr


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
    assert compute_metrics(labels, scores, videos=videos)["video_auc"] == pytest.approx(roc_auc_score([0, 1, 0, 1], [0.5, 0.4, 0.2, 0.6]))
    assert aggregate_by_video(labels, scores, videos, "max")[1].tolist() == pytest.approx([0.9, 0.4, 0.2, 0.6])
    with pytest.raises(ValueError, match="both real and fake"):
        aggregate_by_video(np.array([0, 1]), np.array([0.1, 0.2]), ["v", "v"])


def test_selection_direction():
    assert is_better("auc", 0.9, 0.8) and not is_better("auc", 0.7, 0.8)
    assert is_better("eer", 0.1, 0.2) and is_better("loss", 0.3, 0.5)
    assert is_better("auc", 0.5, None) and not is_better("auc", None, 0.5)
