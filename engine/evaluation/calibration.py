"""Do the scores mean probabilities? Calibration metrics, maps fitted on validation rows, the uncertain band, and
selective prediction, each as its reference states it.

Conventions (said on every card that prints them):
- ECE (Naeini et al., AAAI 2015) of P(fake): the rows are sorted into ``ECE_BINS`` = 15 equal-mass bins (edges at the
  quantiles of the probabilities; tied probabilities share a bin, so bins can differ in size, as scikit-learn's
  ``calibration_curve(strategy="quantile")`` bins them), and ECE = sum over bins of (rows in bin / rows) x |fraction
  of fakes - mean P(fake)|. ``ece_top_label`` is the other common convention: confidence max(p, 1 - p) against the
  accuracy of the 0.5 decision, in the same kind of bins.
- Brier score: mean of (p - y)^2. NLL: mean of -[y log p + (1 - y) log(1 - p)], p clipped to [1e-7, 1 - 1e-7].
- Temperature scaling (Guo et al., ICML 2017): p = sigmoid(z / T), z = the fake-vs-real logit, T > 0 fitted by NLL on
  held-out rows; it does not change the ranking (AUC unchanged) nor the 0.5 decision. Platt scaling (Platt 1999):
  p = sigmoid(a z + b) by NLL. Isotonic regression (Zadrozny & Elkan, KDD 2002): a non-decreasing map of p fitted by
  least squares (scikit-learn's ``IsotonicRegression``), clipped to its fitted range.
- Risk-coverage (Geifman & El-Yaniv, NeurIPS 2017): rows answered in order of confidence max(p, 1 - p); risk = error
  rate of the 0.5 decision on the answered rows; AURC = mean of the risk over the n coverage levels k/n.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_expit

from common.errors import UserError

from .metrics import check_labels, check_scores

ECE_BINS = 15
CLIP = 1e-7  # of the NLL
LOGIT_CLIP = 1e-15  # of the logits of probabilities: keeps the ranking as far as float64 can tell it
METHODS = ("temperature", "platt", "isotonic")
# a side of the band no probability reaches (finite, so that JSON holds it)
NEVER_FAKE, NEVER_REAL = float(np.nextafter(1.0, 2.0)), float(np.nextafter(0.0, -1.0))
DEFAULT_RISK = 0.05  # the uncertain band keeps the error on the answered validation rows at or under this
CARD_LINE = (
    f"calibration: ECE of P(fake) over {ECE_BINS} equal-mass bins (ties share a bin), Brier score, NLL (p clipped to "
    f"[{CLIP:g}, 1 - {CLIP:g}]); AURC: risk of the 0.5 decision against coverage, rows answered by confidence "
    "max(p, 1 - p)"
)


class CalibrationError(UserError, ValueError):
    """Calibration that cannot be fitted or applied (one class, a map of an unknown kind)."""


def _inputs(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    labels = check_labels(labels)
    return labels, check_scores(probabilities, len(labels))


def logits_of(probabilities: np.ndarray) -> np.ndarray:
    """The fake-vs-real logit z = log(p / (1 - p)) of probabilities (clipped to [1e-15, 1 - 1e-15])."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def _bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-mass bin index per value: edges at the quantiles; equal values always share a bin."""
    edges = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def reliability(labels, probabilities, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per non-empty equal-mass bin: mean P(fake), fraction of fakes and row count (what the reliability diagram
    draws and ECE sums)."""
    labels, p = _inputs(labels, probabilities)
    index = _bins(p, bins)
    counts = np.bincount(index, minlength=bins)
    kept = counts > 0
    mean_p = np.bincount(index, weights=p, minlength=bins)[kept] / counts[kept]
    fraction = np.bincount(index, weights=labels, minlength=bins)[kept] / counts[kept]
    return {"confidence": mean_p, "fraction_fake": fraction, "count": counts[kept]}


def expected_calibration_error(labels, probabilities, bins: int = ECE_BINS) -> float:
    """ECE of P(fake) over ``bins`` equal-mass bins (see the module's conventions)."""
    table = reliability(labels, probabilities, bins)
    weights = table["count"] / table["count"].sum()
    return float(weights @ np.abs(table["fraction_fake"] - table["confidence"]))


def top_label_ece(labels, probabilities, bins: int = ECE_BINS) -> float:
    """ECE of the confidence max(p, 1 - p) against the accuracy of the 0.5 decision, equal-mass bins."""
    labels, p = _inputs(labels, probabilities)
    confidence = np.maximum(p, 1 - p)
    correct = ((p >= 0.5) == (labels == 1)).astype(np.float64)
    index = _bins(confidence, bins)
    counts = np.bincount(index, minlength=bins)
    kept = counts > 0
    accuracy = np.bincount(index, weights=correct, minlength=bins)[kept]
    gap = np.abs(accuracy - np.bincount(index, weights=confidence, minlength=bins)[kept])
    return float(gap.sum() / len(p))


def brier_score(labels, probabilities) -> float:
    labels, p = _inputs(labels, probabilities)
    return float(np.mean((p - labels) ** 2))


def negative_log_likelihood(labels, probabilities) -> float:
    labels, p = _inputs(labels, probabilities)
    p = np.clip(p, CLIP, 1 - CLIP)
    return float(-np.mean(np.where(labels == 1, np.log(p), np.log1p(-p))))


def risk_coverage(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/n, risk of the k most confident rows) for k = 1..n; confidence max(p, 1 - p), the 0.5 decision.
    Equal confidences are answered together (the curve takes the risk of the whole tie at each of its points)."""
    labels, p = _inputs(labels, probabilities)
    confidence = np.maximum(p, 1 - p)
    wrong = ((p >= 0.5) != (labels == 1)).astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(wrong[order])
    # ties: every point of a run of equal confidences takes the errors of the whole run
    sorted_confidence = confidence[order]
    last_of_tie = np.r_[np.flatnonzero(sorted_confidence[1:] != sorted_confidence[:-1]), len(order) - 1]
    run_end = np.repeat(last_of_tie, np.diff(np.r_[-1, last_of_tie]))
    counts = np.arange(1, len(order) + 1)
    return counts / len(order), errors[run_end] / (run_end + 1)


def aurc(labels, probabilities) -> float:
    """Area under the risk-coverage curve: the mean risk over the n coverage levels (lower is better)."""
    _, risk = risk_coverage(labels, probabilities)
    return float(risk.mean())


def calibration_metrics(labels, probabilities) -> dict[str, float | None]:
    """ECE (P(fake)), top-label ECE, Brier, NLL and AURC of one group; an empty group gives None for each."""
    if len(labels) == 0:
        return {key: None for key in ("ece", "ece_top_label", "brier", "nll", "aurc")}
    return {
        "ece": expected_calibration_error(labels, probabilities),
        "ece_top_label": top_label_ece(labels, probabilities),
        "brier": brier_score(labels, probabilities),
        "nll": negative_log_likelihood(labels, probabilities),
        "aurc": aurc(labels, probabilities),
    }


@dataclass
class Calibration:
    """A fitted map from the model's probability of fake to a calibrated one, with what it was fitted on."""

    method: str
    parameters: dict[str, Any]
    fitted_on: dict[str, Any] = field(default_factory=dict)  # rows, split, epoch, source, NLL / ECE before and after

    def apply(self, probabilities) -> np.ndarray:
        p = np.asarray(probabilities, dtype=np.float64)
        if self.method == "temperature":
            return expit(logits_of(p) / self.parameters["temperature"])
        if self.method == "platt":
            return expit(self.parameters["a"] * logits_of(p) + self.parameters["b"])
        if self.method == "isotonic":
            return np.interp(p, self.parameters["x"], self.parameters["y"])
        raise CalibrationError(f"unknown calibration method {self.method!r}: one of {', '.join(METHODS)}.")

    def describe(self) -> str:
        if self.method == "temperature":
            what = f"temperature T = {self.parameters['temperature']:.4g}"
        elif self.method == "platt":
            what = f"Platt scaling a = {self.parameters['a']:.4g}, b = {self.parameters['b']:.4g}"
        else:
            what = f"isotonic regression ({len(self.parameters['x'])} knots)"
        rows = self.fitted_on.get("rows")
        where = self.fitted_on.get("source") or f"{self.fitted_on.get('split', 'held-out')} rows"
        return what + f", fitted by NLL on {rows} {where}" if rows else what

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "parameters": self.parameters, "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any] | None) -> Calibration | None:
        if not stored:
            return None
        if stored.get("method") not in METHODS or not isinstance(stored.get("parameters"), Mapping):
            raise CalibrationError(
                f"a stored calibration must name one of {', '.join(METHODS)} and its parameters; got {dict(stored)!r}."
            )
        return cls(stored["method"], dict(stored["parameters"]), dict(stored.get("fitted_on") or {}))


def _both_classes(labels: np.ndarray, what: str) -> None:
    if not ((labels == 0).any() and (labels == 1).any()):
        raise CalibrationError(f"{what} needs held-out rows of both classes; these {len(labels)} rows have one.")


def fit_temperature(labels, logits) -> float:
    """T > 0 minimising the NLL of sigmoid(z / T) (a one-dimensional convex problem in 1 / T)."""
    labels = check_labels(labels)
    z = check_scores(logits, len(labels))
    _both_classes(labels, "fitting a temperature")
    sign = np.where(labels == 1, 1.0, -1.0)

    def nll(log_inverse_t: float) -> float:
        return float(-np.mean(log_expit(sign * z * math.exp(log_inverse_t))))

    found = minimize_scalar(nll, bounds=(math.log(1e-3), math.log(1e3)), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(-found.x))


def fit_platt(labels, logits) -> tuple[float, float]:
    """(a, b) minimising the NLL of sigmoid(a z + b)."""
    labels = check_labels(labels)
    z = check_scores(logits, len(labels))
    _both_classes(labels, "Platt scaling")
    sign = np.where(labels == 1, 1.0, -1.0)

    def nll(ab):
        t = sign * (ab[0] * z + ab[1])
        gradient_t = -expit(-t) * sign
        return float(-np.mean(log_expit(t))), np.array([np.mean(gradient_t * z), np.mean(gradient_t)])

    found = minimize(nll, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(found.x[0]), float(found.x[1])


def fit_isotonic(labels, probabilities) -> dict[str, list[float]]:
    from sklearn.isotonic import IsotonicRegression

    labels, p = _inputs(labels, probabilities)
    _both_classes(labels, "isotonic regression")
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, labels.astype(np.float64))
    return {"x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist()}


def fit_calibration(method: str, labels, probabilities, *, logits=None, **fitted_on) -> Calibration:
    """Fit ``method`` on held-out ``labels`` and probabilities (``logits``: the model's own fake-vs-real logits, more
    exact than the logits of rounded probabilities), and record the NLL and ECE before and after on those rows."""
    if method not in METHODS:
        raise CalibrationError(f"--calibrate must be one of {', '.join(METHODS)}; got {method!r}.")
    labels, p = _inputs(labels, probabilities)
    z = logits_of(p) if logits is None else check_scores(logits, len(labels))
    if method == "temperature":
        calibration = Calibration(method, {"temperature": fit_temperature(labels, z)})
    elif method == "platt":
        a, b = fit_platt(labels, z)
        calibration = Calibration(method, {"a": a, "b": b})
    else:
        calibration = Calibration(method, fit_isotonic(labels, p))
    after = calibration.apply(p) if logits is None or method == "isotonic" else _apply_to_logits(calibration, z)
    calibration.fitted_on = {
        "rows": int(len(labels)),
        **fitted_on,
        "nll_before": negative_log_likelihood(labels, p),
        "nll_after": negative_log_likelihood(labels, after),
        "ece_before": expected_calibration_error(labels, p),
        "ece_after": expected_calibration_error(labels, after),
    }
    return calibration


def _apply_to_logits(calibration: Calibration, z: np.ndarray) -> np.ndarray:
    if calibration.method == "temperature":
        return expit(z / calibration.parameters["temperature"])
    return expit(calibration.parameters["a"] * z + calibration.parameters["b"])


def uncertain_band(labels, probabilities, *, risk: float = DEFAULT_RISK) -> dict[str, Any]:
    """The widest-coverage answer rule "fake if p >= high, real if p <= low, else uncertain" whose error on these
    rows is at most ``risk`` on each side, hence overall: ``high`` is the lowest probability above which at most
    ``risk`` of the rows are real, ``low`` the highest below which at most ``risk`` are fake. Chosen on validation
    rows; on other rows the error is an estimate, not a guarantee. O(n log n)."""
    if not 0.0 < risk < 0.5:
        raise CalibrationError(f"the risk of the uncertain band must be in (0, 0.5); got {risk}.")
    labels, p = _inputs(labels, probabilities)
    _both_classes(labels, "choosing the uncertain band")
    order = np.argsort(-p, kind="stable")
    p_desc, fake_desc = p[order], labels[order].astype(np.float64)
    ends = np.r_[np.flatnonzero(p_desc[1:] != p_desc[:-1]), len(p) - 1]  # last row of each distinct probability
    # answering "fake" for p >= p_desc[end]: the rows 0..end; real share among them
    real_share = np.cumsum(1 - fake_desc)[ends] / (ends + 1)
    ok = np.flatnonzero(real_share <= risk)
    high = float(p_desc[ends[ok[-1]]]) if len(ok) else NEVER_FAKE
    p_asc, fake_asc = p_desc[::-1], fake_desc[::-1]
    ends_asc = np.r_[np.flatnonzero(p_asc[1:] != p_asc[:-1]), len(p) - 1]
    fake_share = np.cumsum(fake_asc)[ends_asc] / (ends_asc + 1)
    ok = np.flatnonzero(fake_share <= risk)
    low = float(p_asc[ends_asc[ok[-1]]]) if len(ok) else NEVER_REAL
    if low >= high:  # the two sides meet: no band, every row is answered (fake from ``high`` up)
        low = float(np.nextafter(high, -1.0))
    answered_fake, answered_real = p >= high, p <= low
    answered = answered_fake | answered_real
    errors = int(((labels == 0) & answered_fake).sum() + ((labels == 1) & answered_real).sum())
    return {
        "risk": risk,
        "low": low,
        "high": high,
        "rows": int(len(p)),
        "coverage": float(answered.mean()),
        "error": errors / int(answered.sum()) if answered.any() else None,
    }


def verdict(probability: float, band: Mapping[str, Any]) -> str:
    """real / fake / uncertain of a calibrated probability by the uncertain band."""
    if probability >= band["high"]:
        return "fake"
    if probability <= band["low"]:
        return "real"
    return "uncertain"
