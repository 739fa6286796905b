"""``efficientnet_b4``: the DFDC-winning family (Seferbekov's DFDC solution; Tan & Le, ICML 2019) at 380 px.

timm's ``tf_efficientnet_b4.ns_jft_in1k`` (the Noisy Student weights the DFDC winners started from) at its native
380 px, ImageNet normalisation; dropout 0.4 and drop-path 0.2 are the EfficientNet paper's B4 rates. A 224 px
variant is a config switch (``model.image-size: 224``); the README gives the cost of both.
"""

from __future__ import annotations

from ..registry import register_model
from .base import COMMON_DEFAULTS, TimmDetector


@register_model("efficientnet_b4")
class EfficientNetB4(TimmDetector):
    config_defaults = {
        "name": "efficientnet_b4",
        **COMMON_DEFAULTS,
        "image-size": 380,
        "backbone": "tf_efficientnet_b4.ns_jft_in1k",
        "drop-rate": 0.4,
        "drop-path-rate": 0.2,
    }
    timm_options = {"drop-rate": "drop_rate", "drop-path-rate": "drop_path_rate"}
