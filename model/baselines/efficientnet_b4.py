"""``efficientnet_b4``: EfficientNet-B4 (Tan & Le, ICML 2019) with the DFDC winner's recipe (Seferbekov, 2020).

The DFDC winner's ``DeepFakeClassifier`` (selimsef/dfdc_deepfake_challenge, training/zoo/classifiers.py; the
ensemble of configs/b7.json) is a timm Noisy Student EfficientNet, average pooling, dropout 0.0 and a linear layer,
fed 380 px faces with ImageNet statistics, drop-path 0.2. Its ensemble used B7; this detector is the same recipe
with B4 (``tf_efficientnet_b4.ns_jft_in1k``, 17.55 M parameters), which the winner's code also lists. A 224 px
variant is a config switch (``model.image-size: 224``). ``efficientnet_b4_deepfakebench.yaml`` is DeepfakeBench's
EfficientNet-B4 instead: ImageNet (AutoAugment) weights, 256 px, mean = std = 0.5, no dropout.
"""

from __future__ import annotations

from ..registry import register_model
from .base import COMMON_DEFAULTS, NORMALIZATION_DEFAULTS, TimmDetector


@register_model("efficientnet_b4")
class EfficientNetB4(TimmDetector):
    config_defaults = {
        "name": "efficientnet_b4",
        **COMMON_DEFAULTS,
        **NORMALIZATION_DEFAULTS,
        "image-size": 380,
        "backbone": "tf_efficientnet_b4.ns_jft_in1k",
        "drop-rate": 0.0,
        "drop-path-rate": 0.2,
    }
    timm_options = {"drop-rate": "drop_rate", "drop-path-rate": "drop_path_rate"}
