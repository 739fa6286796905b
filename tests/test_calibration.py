"""Calibration (engine/evaluation/calibration.py): ECE, Brier, NLL and AURC against brute-force restatements, the
fitted maps on data with known miscalibration (held-out NLL and ECE go down), and the uncertain band's error."""

import math

import numpy as np
import pytest
from scipy.special import expit

from engine.evaluation import calibration as cal


def _brute_ece(labels, p, bins=15):
    """Naeini et al.'s ECE written out: equal-mass bins by quantile edges (a value equal to an edge goes above it),
    then the row-weighted mean over non-empty bins of |fraction of fakes - mean probability|."""
    edges = np.quantile(p, [k / bins for k in range(1, bins)])
    total = 0.0
    for b in range(bins):
        lower = -np.inf if b == 0 else edges[b - 1]
        upper = np.inf if b == bins - 1 else edges[b]
        members = [i for i in range(len(p)) if lower <= p[i] < upper]
        if members:
            total += len(members) / len(p) * abs(np.mean(labels[members]) - np.mean(p[members]))
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_brier_and_nll_equal_their_restatements(seed):
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(400), 2)  # ties across bin edges
    labels = (rng.random(400) < p**1.5).astype(int)
    assert cal.expected_calibration_error(labels, p) == pytest.approx(_brute_ece(labels, p), abs=1e-12)
    assert cal.brier_score(labels, p) == pytest.approx(sum((p[i] - labels[i]) ** 2 for i in range(400)) / 400)
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    nll = -sum(math.log(clipped[i]) if labels[i] else math.log(1 - clipped[i]) for i in range(400)) / 400
    assert cal.negative_log_likelihood(labels, p) == pytest.approx(nll)
    table = cal.reliability(labels, p)
    assert table["count"].sum() == 400 and len(table["count"]) <= 15


def test_a_perfectly_calibrated_source_has_an_ece_near_zero_and_a_miscalibrated_one_does_not():
    rng = np.random.default_rng(3)
    p = rng.random(200_000)
    labels = (rng.random(200_000) < p).astype(int)
    assert cal.expected_calibration_error(labels, p) < 0.005
    assert cal.expected_calibration_error(labels, p**3) > 0.1  # overconfident in "real"


def test_risk_coverage_and_aurc_equal_a_row_by_row_restatement():
    rng = np.random.default_rng(4)
    p = np.round(rng.random(300), 1)  # ties in confidence
    labels = rng.integers(0, 2, 300)
    coverage, risk = cal.risk_coverage(labels, p)
    confidence = np.maximum(p, 1 - p)
    wrong = (p >= 0.5) != (labels == 1)
    for k in (1, 17, 150, 300):
        threshold = np.sort(confidence)[::-1][k - 1]
        answered = confidence >= threshold  # a tie is answered whole
        assert risk[k - 1] == pytest.approx(wrong[answered].mean())
        assert coverage[k - 1] == pytest.approx(k / 300)
    assert cal.aurc(labels, p) == pytest.approx(risk.mean())
    assert cal.aurc(labels, labels.astype(float)) == 0.0  # never wrong


def _miscalibrated(rng, n, temperature=3.0, spread=1.5):
    """Labels from true logits z; the model reports sigmoid(temperature * z): overconfident by a known factor."""
    z = rng.normal(0, spread, n)
    labels = (rng.random(n) < expit(z)).astype(int)
    return labels, expit(temperature * z), temperature * z


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_a_map_fitted_on_validation_rows_lowers_nll_and_ece_on_held_out_rows(method):
    rng = np.random.default_rng(5)
    val_labels, val_p, val_z = _miscalibrated(rng, 5000)
    test_labels, test_p, _ = _miscalibrated(rng, 20000)
    fitted = cal.fit_calibration(method, val_labels, val_p, logits=val_z if method != "isotonic" else None, split="val")
    calibrated = fitted.apply(test_p)
    nll_before = cal.negative_log_likelihood(test_labels, test_p)
    assert cal.negative_log_likelihood(test_labels, calibrated) < nll_before - 0.05
    assert cal.expected_calibration_error(test_labels, calibrated) < 0.5 * cal.expected_calibration_error(
        test_labels, test_p
    )
    assert fitted.fitted_on["nll_after"] < fitted.fitted_on["nll_before"] and fitted.fitted_on["rows"] == 5000
    again = cal.Calibration.from_dict(fitted.to_dict())  # what a checkpoint stores
    assert np.allclose(again.apply(test_p), calibrated)
    if method == "temperature":  # the true factor is found, the ranking and the 0.5 decision kept
        assert fitted.parameters["temperature"] == pytest.approx(3.0, rel=0.1)
        assert np.array_equal(np.argsort(calibrated, kind="stable"), np.argsort(test_p, kind="stable"))
        assert np.array_equal(calibrated >= 0.5, test_p >= 0.5)


def test_fitting_needs_both_classes_and_a_known_method():
    with pytest.raises(cal.CalibrationError, match="both classes"):
        cal.fit_calibration("temperature", [1, 1, 1], [0.2, 0.7, 0.9])
    with pytest.raises(cal.CalibrationError, match="temperature, platt, isotonic"):
        cal.fit_calibration("beta", [0, 1], [0.2, 0.7])
    with pytest.raises(cal.CalibrationError, match="must name one of"):
        cal.Calibration.from_dict({"method": "histogram"})
    assert cal.Calibration.from_dict(None) is None  # a checkpoint without calibration


def test_the_uncertain_band_keeps_the_validation_error_under_the_risk_and_holds_out_of_sample():
    rng = np.random.default_rng(6)
    val_labels, val_p, _ = _miscalibrated(rng, 20000, temperature=1.0, spread=5.0)
    band = cal.uncertain_band(val_labels, val_p, risk=0.05)
    assert band["low"] < 0.5 < band["high"] and band["error"] <= 0.05 and 0.2 < band["coverage"] < 0.9
    test_labels, test_p, _ = _miscalibrated(rng, 20000, temperature=1.0, spread=5.0)
    verdicts = np.array([cal.verdict(p, band) for p in test_p])
    answered = verdicts != "uncertain"
    wrong = (verdicts == "fake") != (test_labels == 1)
    assert wrong[answered].mean() == pytest.approx(0.05, abs=0.01)  # the stated risk, on rows it was not chosen on
    assert answered.mean() == pytest.approx(band["coverage"], abs=0.02)
    easy_labels = np.r_[np.zeros(50), np.ones(50)].astype(int)
    easy = cal.uncertain_band(easy_labels, np.r_[np.full(50, 0.1), np.full(50, 0.9)])
    assert easy["coverage"] == 1.0 and easy["error"] == 0.0  # separable: nothing is uncertain
    with pytest.raises(cal.CalibrationError, match="risk"):
        cal.uncertain_band(val_labels, val_p, risk=0.7)
