"""Losses, chosen by name in the config's ``loss`` section: ``build_loss(config, class_counts=...)``."""

from .losses import LOSS_DEFAULTS, LOSSES, build_loss, logits_of

__all__ = ["LOSSES", "LOSS_DEFAULTS", "build_loss", "logits_of"]
