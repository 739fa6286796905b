"""``xception``: the FaceForensics++ baseline (Rossler et al., ICCV 2019): the original Xception at 299 px.

timm's ``legacy_xception`` is Chollet's Xception (CVPR 2017) with the Keras ImageNet weights, the network and
weights FaceForensics++ fine-tuned; its inputs are scaled to [-1, 1] (mean = std = 0.5). FaceForensics++'s
``model_selection('xception')`` builds its ``TransferModel`` with dropout 0.0 (no dropout layer before the new
two-way classifier; classification/network/models.py), and so does this default. ``xception_deepfakebench.yaml``
is DeepfakeBench's Xception: the same network at 256 px, no dropout.
"""

from __future__ import annotations

from ..registry import register_model
from .base import COMMON_DEFAULTS, NORMALIZATION_DEFAULTS, TimmDetector


@register_model("xception")
class Xception(TimmDetector):
    config_defaults = {
        "name": "xception",
        **COMMON_DEFAULTS,
        **NORMALIZATION_DEFAULTS,
        "image-size": 299,
        "backbone": "legacy_xception.tf_in1k",
        "drop-rate": 0.0,
    }
