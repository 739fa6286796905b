"""Training objectives of a binary real/fake detector with optional fine-grained (attribution) heads.

Every loss is called as ``loss(outputs, batch)``: ``outputs`` is the model's logits (B, 2) or its dict with
``logits``/``level2_logits``/``level3_logits``; ``batch`` holds ``label`` and, for the multi-task loss, the
``level2``/``level3`` targets (-1 where a row has no fine label, e.g. real images).

Any of them also adds the model's own training terms when its dict has them: ``regularizer`` (a weight-space term the
model computes and weights, e.g. Effort's) as it is, and, with ``uniformity-weight`` / ``alignment-weight`` above 0,
the uniformity and label-aware alignment of its L2-normalised ``embeddings`` (Wang & Isola, ICML 2020; GenD's
feature-space losses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError, UnknownKeyError

LOSS_DEFAULTS: dict[str, Any] = {
    "name": "ce",  # ce | weighted-ce | focal | multitask
    "label-smoothing": 0.0,  # ce, weighted-ce, multitask (binary term)
    "focal-gamma": 2.0,  # focal
    "focal-alpha": None,  # focal: weight of the fake class (real: 1 - alpha); null = unweighted
    "level2-weight": 0.5,  # multitask: forgery-type term
    "level3-weight": 0.5,  # multitask: generator term
    "uniformity-weight": 0.0,  # x log mean exp(-2 ||z_i - z_j||^2) over the batch's pairs of L2-normalised embeddings
    "alignment-weight": 0.0,  # x mean ||z_i - z_j||^2 over the batch's same-label pairs (GenD: 0.5 and 0.1)
}


def logits_of(outputs) -> torch.Tensor:
    return outputs["logits"] if isinstance(outputs, Mapping) else outputs


class CrossEntropy(nn.Module):
    """Softmax cross-entropy on the (summed) logits: the released model's evident objective."""

    def __init__(self, *, label_smoothing: float = 0.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, outputs, batch) -> torch.Tensor:
        return F.cross_entropy(
            logits_of(outputs).float(), batch["label"], weight=self.weight, label_smoothing=self.label_smoothing
        )


def class_weights(class_counts: np.ndarray) -> torch.Tensor:
    """Inverse-frequency weights N / (C * n_c), from the training rows' counts (real/fake imbalance)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    if (counts <= 0).any():
        raise ConfigError(f"weighted-ce needs both classes in the training rows; counts are {counts.tolist()}.")
    return torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)


class FocalLoss(nn.Module):
    """Softmax focal loss, mean over the batch: -alpha_t (1 - p_t)^gamma log p_t (Lin et al., 2017)."""

    def __init__(self, *, gamma: float = 2.0, alpha: float | None = None):
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, outputs, batch) -> torch.Tensor:
        log_p = F.log_softmax(logits_of(outputs).float(), dim=-1)
        log_pt = log_p.gather(1, batch["label"].unsqueeze(1)).squeeze(1)
        loss = -((1.0 - log_pt.exp()) ** self.gamma) * log_pt
        if self.alpha is not None:
            alpha_t = torch.where(batch["label"] == 1, self.alpha, 1.0 - self.alpha)
            loss = alpha_t * loss
        return loss.mean()


def _masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the rows with a label (target >= 0); 0 (with a gradient path) when there are none."""
    losses = F.cross_entropy(logits.float(), target.clamp(min=0), reduction="none")
    mask = (target >= 0).float()
    return (losses * mask).sum() / mask.sum().clamp(min=1.0)


class MultiTaskLoss(nn.Module):
    """Binary cross-entropy + weighted forgery-type and generator cross-entropies (rows without fine labels ignored)."""

    def __init__(self, *, label_smoothing: float = 0.0, level2_weight: float = 0.5, level3_weight: float = 0.5):
        super().__init__()
        self.binary = CrossEntropy(label_smoothing=label_smoothing)
        self.level2_weight, self.level3_weight = level2_weight, level3_weight

    def forward(self, outputs, batch) -> torch.Tensor:
        if not isinstance(outputs, Mapping) or "level2_logits" not in outputs:
            raise ConfigError("loss 'multitask' needs the fine-grained heads: set model.fine-grained-heads: true.")
        loss = self.binary(outputs, batch)
        for level, weight in (("level2", self.level2_weight), ("level3", self.level3_weight)):
            if weight:
                if level not in batch:
                    raise ConfigError(
                        f"loss 'multitask' needs the {level} targets: the data section must provide fine labels."
                    )
                loss = loss + weight * _masked_cross_entropy(outputs[f"{level}_logits"], batch[level])
        return loss


def _ce(config, class_counts):
    return CrossEntropy(label_smoothing=config["label-smoothing"])


def _weighted_ce(config, class_counts):
    if class_counts is None:
        raise ConfigError("loss 'weighted-ce' needs the training rows' class counts.")
    return CrossEntropy(label_smoothing=config["label-smoothing"], weight=class_weights(class_counts))


def _focal(config, class_counts):
    return FocalLoss(gamma=config["focal-gamma"], alpha=config["focal-alpha"])


def _multitask(config, class_counts):
    return MultiTaskLoss(
        label_smoothing=config["label-smoothing"],
        level2_weight=config["level2-weight"],
        level3_weight=config["level3-weight"],
    )


def uniformity(embeddings: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log of the mean of exp(-t ||z_i - z_j||^2) over the pairs i < j (Wang & Isola's uniformity; GenD clamps the mean
    at 1e-6 before the log, as here)."""
    distances = torch.pdist(embeddings.float(), p=2)
    return distances.square().mul(-t).exp().mean().clamp(min=1e-6).log()


def alignment(embeddings: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Mean of ||z_i - z_j||^alpha over the pairs i < j of the same label; 0 without such a pair."""
    same = (labels[:, None] == labels[None, :]).triu(diagonal=1)
    first, second = same.nonzero(as_tuple=True)
    if first.numel() == 0:
        return embeddings.sum() * 0.0
    embeddings = embeddings.float()
    return (embeddings[first] - embeddings[second]).norm(dim=1).pow(alpha).mean()


class WithModelTerms(nn.Module):
    """A loss plus the model's training terms: its ``regularizer`` and the weighted feature-space losses."""

    def __init__(self, loss: nn.Module, *, uniformity_weight: float = 0.0, alignment_weight: float = 0.0):
        super().__init__()
        self.loss = loss
        self.uniformity_weight, self.alignment_weight = uniformity_weight, alignment_weight

    def forward(self, outputs, batch) -> torch.Tensor:
        total = self.loss(outputs, batch)
        if isinstance(outputs, Mapping) and "regularizer" in outputs:
            total = total + outputs["regularizer"]
        if self.uniformity_weight or self.alignment_weight:
            if not isinstance(outputs, Mapping) or "embeddings" not in outputs:
                raise ConfigError(
                    "loss.uniformity-weight and loss.alignment-weight need a detector that returns embeddings in "
                    "training (clip_ln, dinov2_ln, clip_lora, effort): set both to 0 for this one."
                )
            embeddings = outputs["embeddings"]
            if self.uniformity_weight:
                total = total + self.uniformity_weight * uniformity(embeddings)
            if self.alignment_weight:
                total = total + self.alignment_weight * alignment(embeddings, batch["label"])
        return total


LOSSES = {"ce": _ce, "weighted-ce": _weighted_ce, "focal": _focal, "multitask": _multitask}


def build_loss(config: Mapping[str, Any] | None = None, *, class_counts=None) -> nn.Module:
    """The loss named by ``config['name']`` with the section's options (defaults in ``LOSS_DEFAULTS``)."""
    config = {**LOSS_DEFAULTS, **(config or {})}
    unknown = set(config) - set(LOSS_DEFAULTS)
    if unknown:
        raise UnknownKeyError(
            f"unknown loss config key(s): {', '.join(sorted(unknown))}; known: {', '.join(LOSS_DEFAULTS)}."
        )
    if config["name"] not in LOSSES:
        raise UnknownKeyError(f"unknown loss {config['name']!r}: choose one of {', '.join(LOSSES)}.")
    for key in ("uniformity-weight", "alignment-weight"):
        if config[key] < 0:
            raise ConfigError(f"loss.{key} must be 0 or more; got {config[key]}.")
    return WithModelTerms(
        LOSSES[config["name"]](config, class_counts),
        uniformity_weight=config["uniformity-weight"],
        alignment_weight=config["alignment-weight"],
    )
