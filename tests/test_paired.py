"""The paired comparison of two detectors' AUCs (engine/evaluation/paired.py): DeLong's test and its clustered form
against brute-force restatements of the published formulas, the paired bootstrap, Holm's correction, and their error
rates by simulation where the truth is known."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from engine.evaluation.metrics import MetricInputError
from engine.evaluation.paired import holm, paired_bootstrap, paired_delong, paired_test


def _psi(labels, scores):
    """(reals x fakes) kernel: 1 where the fake scores above the real, 1/2 on a tie (the Mann-Whitney kernel)."""
    real, fake = scores[labels == 0], scores[labels == 1]
    return (fake[None, :] > real[:, None]) + 0.5 * (fake[None, :] == real[:, None])


def _brute_delong(labels, a, b):
    """DeLong, DeLong & Clarke-Pearson (1988) as written: V10 / V01 components, the 2 x 2 covariances S10 and S01,
    var(A - B) = c' (S10 / m + S01 / n) c with c = (1, -1); m fakes, n reals."""
    psi_a, psi_b = _psi(labels, a), _psi(labels, b)
    v10 = np.stack([psi_a.mean(axis=0), psi_b.mean(axis=0)])  # per fake
    v01 = np.stack([psi_a.mean(axis=1), psi_b.mean(axis=1)])  # per real
    s10, s01 = np.cov(v10), np.cov(v01)
    c = np.array([1.0, -1.0])
    variance = c @ (s10 / v10.shape[1] + s01 / v01.shape[1]) @ c
    return psi_a.mean() - psi_b.mean(), math.sqrt(variance)


def _brute_obuchowski(labels, a, b, clusters):
    """Obuchowski (1997) as written, for the difference of two AUCs: per cluster i, V_X(i) = sum over its fakes of the
    mean kernel over all reals, V_Y(i) = sum over its reals of the mean kernel over all fakes (of A minus B);
    S_X = I_X / ((I_X - 1) M) sum (V_X(i) - m_i d)^2, S_Y likewise over the I_Y clusters holding reals,
    S_XY = I / (I - 1) sum (V_X(i) - m_i d)(V_Y(i) - n_i d); var = S_X / M + S_Y / N + 2 S_XY / (M N)."""
    psi = _psi(labels, a) - _psi(labels, b)
    d = psi.mean()
    real_clusters, fake_clusters = clusters[labels == 0], clusters[labels == 1]
    n_real, n_fake = psi.shape
    names = np.unique(clusters)
    vx = np.array([psi[:, fake_clusters == c].mean(axis=0).sum() for c in names])
    vy = np.array([psi[real_clusters == c, :].mean(axis=1).sum() for c in names])
    m = np.array([(fake_clusters == c).sum() for c in names])
    n = np.array([(real_clusters == c).sum() for c in names])
    ix, iy, i = (m > 0).sum(), (n > 0).sum(), len(names)
    sx = ix / ((ix - 1) * n_fake) * ((vx - m * d) ** 2).sum()
    sy = iy / ((iy - 1) * n_real) * ((vy - n * d) ** 2).sum()
    sxy = i / (i - 1) * ((vx - m * d) * (vy - n * d)).sum()
    return d, math.sqrt(sx / n_fake + sy / n_real + 2 * sxy / (n_fake * n_real))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_delong_equals_the_published_formula_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 60)
    a = np.round(rng.normal(labels, 1.0), 1)  # rounded: many ties, within and across classes
    b = np.round(0.6 * a + rng.normal(labels * 0.5, 0.8), 1)  # correlated with a
    difference, se = _brute_delong(labels, a, b)
    result = paired_delong(labels, a, b)
    assert result["difference"] == pytest.approx(difference, abs=1e-12)
    assert result["se"] == pytest.approx(se, rel=1e-10)
    assert result["p"] == pytest.approx(2 * norm.sf(abs(difference) / se), rel=1e-9)
    assert result["ci95"] == pytest.approx([difference - 1.959964 * se, difference + 1.959964 * se], rel=1e-5)
    assert result["method"] == "DeLong"


@pytest.mark.parametrize("layout", ["one-class videos", "mixed clusters", "clusters of one"])
def test_clustered_paired_test_equals_obuchowskis_formula(layout):
    rng = np.random.default_rng(7)
    if layout == "one-class videos":  # frames of a video share its label
        clusters = np.repeat(np.arange(30), rng.integers(1, 6, 30))
        labels = (rng.random(30) < 0.5).astype(int)[clusters]
    elif layout == "mixed clusters":  # identities holding real and fake images
        clusters = rng.integers(0, 12, 90)
        labels = rng.integers(0, 2, 90)
    else:
        clusters = np.arange(70)
        labels = rng.integers(0, 2, 70)
    effect = rng.normal(0, 1, clusters.max() + 1)[clusters]
    a = np.round(labels + effect + rng.normal(0, 1, len(labels)), 1)
    b = np.round(0.8 * labels + effect + rng.normal(0, 1, len(labels)), 1)
    difference, se = _brute_obuchowski(labels, a, b, clusters)
    result = paired_delong(labels, a, b, clusters=clusters.astype(str))
    assert result["difference"] == pytest.approx(difference, abs=1e-12)
    assert result["se"] == pytest.approx(se, rel=1e-9)
    assert result["method"] == "Obuchowski"
    if layout == "clusters of one":  # every row its own cluster: DeLong's unclustered test exactly
        assert result["se"] == pytest.approx(paired_delong(labels, a, b)["se"], rel=1e-9)


def test_identical_detectors_are_not_different_and_bad_input_is_an_error():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.3, 0.2, 0.9, 0.4, 0.8])
    same = paired_delong(labels, scores, scores)
    assert same["difference"] == 0 and same["se"] == 0 and same["p"] == 1.0
    with pytest.raises(MetricInputError, match="both real and fake"):
        paired_delong(np.zeros(4), np.arange(4.0), np.arange(4.0))
    with pytest.raises(MetricInputError, match="NaN or infinity"):
        paired_delong(labels, scores, np.r_[scores[:-1], np.nan])
    with pytest.raises(MetricInputError, match="one of auto, delong, bootstrap"):
        paired_test(labels, scores, scores, method="wilcoxon")


def test_the_paired_bootstrap_agrees_with_delong_where_both_run():
    rng = np.random.default_rng(5)
    videos = np.repeat(np.arange(300), 6)
    labels = (rng.random(300) < 0.5).astype(int)[videos]
    effect = rng.normal(0, 0.8, 300)[videos]
    a = labels + effect + rng.normal(0, 1, len(labels))
    b = 0.9 * labels + effect + rng.normal(0, 1, len(labels))
    normal = paired_delong(labels, a, b, clusters=videos)
    boot = paired_bootstrap(labels, a, b, clusters=videos, samples=2000, seed=0)
    assert boot["difference"] == pytest.approx(normal["difference"])
    assert boot["se"] == pytest.approx(normal["se"], rel=0.12)
    assert boot["ci95"] == pytest.approx(normal["ci95"], abs=0.15 * (normal["ci95"][1] - normal["ci95"][0]))
    assert paired_bootstrap(labels, a, b, clusters=videos, samples=200, seed=3) == paired_bootstrap(
        labels, a, b, clusters=videos, samples=200, seed=3
    )  # seeded


def _benchmark(rng, videos: int, frames: int, gap: float):
    """A simulated benchmark: videos of one class with a per-video effect shared by both detectors (correlated
    scores), frames with their own noise; detector B separates the classes by ``gap`` less than A."""
    video_of_row = np.repeat(np.arange(videos), frames)
    labels = (rng.random(videos) < 0.5).astype(int)[video_of_row]
    shared = rng.normal(0, 1.0, videos)[video_of_row]
    a = 1.0 * labels + shared + rng.normal(0, 0.7, len(labels)) + rng.normal(0, 0.4, videos)[video_of_row]
    b = (1.0 - gap) * labels + shared + rng.normal(0, 0.7, len(labels)) + rng.normal(0, 0.4, videos)[video_of_row]
    if labels.min() == labels.max():
        return _benchmark(rng, videos, frames, gap)
    return labels, a, b, video_of_row


def test_type_one_error_of_the_clustered_test_is_near_five_percent_by_simulation():
    """Equal AUCs, correlated scores, frames in videos: the clustered test rejects at 5% in 3-7% of 1,000 simulated
    benchmarks; the same test that ignores the videos rejects far too often."""
    rng = np.random.default_rng(2026)
    clustered, ignoring = 0, 0
    for _ in range(1000):
        labels, a, b, videos = _benchmark(rng, videos=60, frames=8, gap=0.0)
        clustered += paired_delong(labels, a, b, clusters=videos)["p"] < 0.05
        ignoring += paired_delong(labels, a, b)["p"] < 0.05
    assert 0.03 <= clustered / 1000 <= 0.07, clustered
    assert ignoring / 1000 > 0.12, ignoring  # frames taken as independent: the error rate the clusters prevent


def test_interval_of_the_difference_covers_the_true_difference_by_simulation():
    """A real difference (gap 0.4): the clustered interval covers the true AUC(A) - AUC(B) in 93-97% of 1,000 simulated
    benchmarks. Every real-fake pair crosses two videos (a video holds one class), so the empirical AUC is unbiased for
    P(fake > real) over independent draws: the score difference of such a pair is normal with mean the separation and
    variance 2 (1 + 0.7^2 + 0.4^2), which gives the truth in closed form."""
    spread = math.sqrt(2 * (1.0 + 0.7**2 + 0.4**2))
    truth = norm.cdf(1.0 / spread) - norm.cdf(0.6 / spread)
    rng = np.random.default_rng(31)
    covered, covered_ignoring = 0, 0
    for _ in range(1000):
        labels, a, b, videos = _benchmark(rng, videos=60, frames=8, gap=0.4)
        low, high = paired_delong(labels, a, b, clusters=videos)["ci95"]
        covered += low <= truth <= high
        low, high = paired_delong(labels, a, b)["ci95"]
        covered_ignoring += low <= truth <= high
    assert 0.93 <= covered / 1000 <= 0.97, covered
    assert covered_ignoring / 1000 < 0.90, covered_ignoring  # frames taken as independent: intervals too narrow


def test_power_grows_with_the_sample_by_simulation():
    """A real difference (B separates the classes less well): rejected more often as the videos grow."""
    rng = np.random.default_rng(11)
    rates = []
    for videos in (20, 80, 320):
        rejected = 0
        for _ in range(200):
            labels, a, b, video_of_row = _benchmark(rng, videos=videos, frames=4, gap=0.4)
            rejected += paired_delong(labels, a, b, clusters=video_of_row)["p"] < 0.05
        rates.append(rejected / 200)
    assert rates[0] < rates[1] < rates[2] and rates[2] > 0.8, rates


@pytest.mark.slow
def test_type_one_error_of_the_paired_bootstrap_by_simulation():
    rng = np.random.default_rng(7)
    rejected = 0
    for i in range(1000):
        labels, a, b, videos = _benchmark(rng, videos=40, frames=4, gap=0.0)
        rejected += paired_bootstrap(labels, a, b, clusters=videos, samples=300, seed=i)["p"] < 0.05
    assert 0.03 <= rejected / 1000 <= 0.07, rejected


def _brute_holm(p):
    """Holm (1979) as written: order the m p-values, reject H(1..k) while p(j) <= a / (m - j + 1); the adjusted
    p-value of the j-th smallest is max over i <= j of min(1, (m - i + 1) p(i))."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    for j in range(m):
        adjusted[order[j]] = max(min(1.0, (m - i) * p[order[i]]) for i in range(j + 1))
    return adjusted


def test_holm_equals_its_definition_and_skips_tests_that_could_not_be_made():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = np.round(rng.random(int(rng.integers(1, 20))) ** 2, 3)  # ties included
        assert holm(list(p)) == pytest.approx(list(_brute_holm(p)))
    assert holm([0.01, None, 0.04, float("nan")]) == [0.02, None, 0.04, None]
    assert holm([]) == []


def test_holm_keeps_the_family_wise_error_under_five_percent_by_simulation():
    """17 overlapping groups under the global null (a table's groups): some group rejected in at most 5% of tables."""
    rng = np.random.default_rng(1)
    any_rejected = 0
    for _ in range(2000):
        shared = rng.normal()
        z = 0.5 * shared + math.sqrt(0.75) * rng.normal(size=17)  # correlated tests, as nested groups are
        p = 2 * norm.sf(np.abs(z))
        any_rejected += min(holm(list(p))) < 0.05
    assert any_rejected / 2000 <= 0.055, any_rejected
