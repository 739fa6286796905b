"""Each loss of loss_folder against values computed by hand (math on plain floats, not torch's own losses)."""

import math

import pytest
import torch

from loss_folder import LOSS_DEFAULTS, build_loss, logits_of
from loss_folder.losses import class_weights

LOGITS = [[2.0, 0.5], [0.0, 1.0], [-1.0, 2.0], [0.3, -0.4]]  # margins that do not cancel under label smoothing
LABELS = [0, 1, 0, 1]


def log_softmax(row):
    top = max(row)
    norm = top + math.log(sum(math.exp(v - top) for v in row))
    return [v - norm for v in row]


def nll(row, target):
    return -log_softmax(row)[target]


def mean(values):
    values = list(values)
    return sum(values) / len(values)


def batch(labels=LABELS, **targets):
    return {"label": torch.tensor(labels), **{k: torch.tensor(v) for k, v in targets.items()}}


def logits(rows=LOGITS, grad=False):
    return torch.tensor(rows, dtype=torch.float32, requires_grad=grad)


def test_hand_reference_sanity():
    assert nll([0.0, 0.0], 1) == pytest.approx(math.log(2))
    assert nll([2.0, 0.5], 0) == pytest.approx(math.log(1 + math.exp(-1.5)))


def test_cross_entropy_value_and_gradient():
    x = logits(grad=True)
    loss = build_loss({"name": "ce"})(x, batch())
    assert loss.item() == pytest.approx(mean(nll(r, t) for r, t in zip(LOGITS, LABELS)), rel=1e-6)
    assert loss.item() == pytest.approx(1.166612, abs=1e-5)  # the same number, written down once
    loss.backward()
    for row, target, grad in zip(LOGITS, LABELS, x.grad.tolist()):  # (softmax - one-hot) / B
        p = [math.exp(v) for v in log_softmax(row)]
        assert grad == pytest.approx([(p[c] - (c == target)) / len(LOGITS) for c in range(2)], abs=1e-6)


def test_cross_entropy_accepts_the_model_dict():
    loss = build_loss()
    assert loss({"logits": logits(), "level2_logits": None}, batch()).item() == pytest.approx(
        loss(logits(), batch()).item()
    )
    assert logits_of({"logits": 5}) == 5 and logits_of(7) == 7


def test_label_smoothing():
    eps = 0.1
    expected = mean(
        -((1 - eps) * log_softmax(r)[t] + eps / 2 * sum(log_softmax(r))) for r, t in zip(LOGITS, LABELS)
    )  # target distribution (1 - eps) one-hot + eps / C
    loss = build_loss({"name": "ce", "label-smoothing": eps})(logits(), batch())
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(1.151612, abs=1e-5)
    assert loss.item() < build_loss({"name": "ce"})(logits(), batch()).item() - 0.01


def test_weighted_cross_entropy():
    assert class_weights([30, 10]).tolist() == pytest.approx([40 / 60, 40 / 20])  # N / (C * n_c)
    weights = [2 / 3, 2.0]
    labels = [0, 1, 0, 0]  # three reals, one fake: the mean divides by the batch's summed weights
    expected = sum(weights[t] * nll(r, t) for r, t in zip(LOGITS, labels)) / sum(weights[t] for t in labels)
    loss = build_loss({"name": "weighted-ce"}, class_counts=[30, 10])(logits(), batch(labels))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    unweighted = mean(nll(r, t) for r, t in zip(LOGITS, labels))
    assert abs(expected - unweighted) > 0.05  # the weights matter on this batch
    with pytest.raises(ValueError, match="needs the training rows' class counts"):
        build_loss({"name": "weighted-ce"})
    with pytest.raises(ValueError, match=r"needs both classes.*\[30\.0, 0\.0\]"):
        build_loss({"name": "weighted-ce"}, class_counts=[30, 0])


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_focal_loss(alpha):
    def term(row, target):
        log_pt = log_softmax(row)[target]
        weight = 1.0 if alpha is None else (alpha if target == 1 else 1 - alpha)
        return -weight * (1 - math.exp(log_pt)) ** 2 * log_pt

    expected = mean(term(r, t) for r, t in zip(LOGITS, LABELS))
    loss = build_loss({"name": "focal", "focal-gamma": 2.0, "focal-alpha": alpha})(logits(), batch())
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() < build_loss({"name": "ce"})(logits(), batch()).item()  # focal down-weights every term


def test_focal_with_gamma_zero_is_cross_entropy():
    focal = build_loss({"name": "focal", "focal-gamma": 0.0})(logits(), batch())
    assert focal.item() == pytest.approx(mean(nll(r, t) for r, t in zip(LOGITS, LABELS)), rel=1e-6)


LEVEL2 = [[0.2, 1.0, -0.5], [1.5, 0.0, 0.3], [0.0, 0.0, 0.0], [-1.0, 2.0, 0.5]]
LEVEL3 = [[0.1, 0.2, 0.3, 0.4], [2.0, -1.0, 0.0, 0.5], [0.0, 1.0, 0.0, -1.0], [0.7, 0.7, -0.2, 1.1]]


def multitask_outputs(grad=False):
    return {"logits": logits(grad=grad), "level2_logits": logits(LEVEL2, grad), "level3_logits": logits(LEVEL3, grad)}


def test_multitask_loss_ignores_rows_without_fine_labels():
    level2, level3 = [-1, 2, -1, 0], [-1, 3, -1, 1]  # reals (rows 0 and 2) have no fine label
    binary = mean(nll(r, t) for r, t in zip(LOGITS, LABELS))
    fine2 = mean(nll(r, t) for r, t in zip(LEVEL2, level2) if t >= 0)
    fine3 = mean(nll(r, t) for r, t in zip(LEVEL3, level3) if t >= 0)
    loss = build_loss({"name": "multitask"})(multitask_outputs(), batch(level2=level2, level3=level3))
    assert loss.item() == pytest.approx(binary + 0.5 * fine2 + 0.5 * fine3, rel=1e-6)
    weighted = build_loss({"name": "multitask", "level2-weight": 1.0, "level3-weight": 0.0})
    assert weighted(multitask_outputs(), batch(level2=level2)).item() == pytest.approx(binary + fine2, rel=1e-6)


def test_multitask_loss_with_no_fine_labels_is_the_binary_term():
    outputs = multitask_outputs(grad=True)
    loss = build_loss({"name": "multitask"})(outputs, batch(level2=[-1] * 4, level3=[-1] * 4))
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(mean(nll(r, t) for r, t in zip(LOGITS, LABELS)), rel=1e-6)
    loss.backward()
    assert (
        torch.count_nonzero(outputs["level2_logits"].grad) == 0
        and torch.count_nonzero(outputs["level3_logits"].grad) == 0
    )
    assert torch.isfinite(outputs["logits"].grad).all()


def test_multitask_needs_the_heads_and_targets():
    loss = build_loss({"name": "multitask"})
    with pytest.raises(ValueError, match="fine-grained-heads"):
        loss(logits(), batch(level2=[-1] * 4, level3=[-1] * 4))
    with pytest.raises(ValueError, match="fine-grained-heads"):
        loss({"logits": logits()}, batch())
    with pytest.raises(ValueError, match="needs the level2 targets"):
        loss(multitask_outputs(), batch())


def test_loss_config_errors():
    assert LOSS_DEFAULTS["name"] == "ce"
    with pytest.raises(KeyError, match="unknown loss 'hinge': choose one of ce, weighted-ce, focal, multitask"):
        build_loss({"name": "hinge"})
    with pytest.raises(KeyError, match="unknown loss config key\\(s\\): gamma"):
        build_loss({"name": "focal", "gamma": 2})
