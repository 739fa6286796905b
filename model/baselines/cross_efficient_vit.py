"""``cross_efficient_vit``: CAEL's parent, the Cross Efficient ViT (Coccomini et al., ICIAP 2022).

Its two EfficientNet-B0 appearance streams (fine: the 7x7x1280 map; coarse: the 56x56x24 map) with their transformer
encoders and CrossViT-style multi-grained cross-attention, the two heads summed; no edge stream, no AECA. CAEL grew
from exactly this network, so it is CAEL with ``streams: [fine, coarse]`` and ``aeca-fusion: none`` (the same code,
the same hyper-parameters as the Cross Efficient ViT's architecture.yaml), registered under its own name. Two
logits and a softmax cross-entropy replace its single logit and weighted BCE, as for every detector of this harness.

Input: by default RGB with ImageNet statistics, as every detector of the harness. ``original-input: true`` feeds the
streams what the original code feeds them: cv2's BGR pixels, 0..255, without any normalisation (it sets
``appearance-channel-order: bgr`` and ``appearance-normalization: none``; the model still takes RGB batches).
"""

from __future__ import annotations

from typing import Any

from ..cael import CAEL, CAEL_CONFIG_DEFAULTS
from ..registry import register_model
from .base import ModelConfigError

DEFINING_SWITCHES = {"streams": ["fine", "coarse"], "aeca-fusion": "none"}
# What original-input: true sets: the original code's BGR 0..255 pixels, unnormalised.
ORIGINAL_INPUT = {"appearance-channel-order": "bgr", "appearance-normalization": "none"}


@register_model("cross_efficient_vit")
class CrossEfficientViT(CAEL):
    config_defaults = {
        **CAEL_CONFIG_DEFAULTS,
        "name": "cross_efficient_vit",
        **DEFINING_SWITCHES,
        "original-input": False,
    }

    def __init__(self, config: dict[str, Any]):
        changed = [key for key, value in DEFINING_SWITCHES.items() if key in config and config[key] != value]
        if changed:
            raise ModelConfigError(
                f"model config key(s) {', '.join(changed)} define cross_efficient_vit and cannot change: "
                "use name: cael for CAEL and its ablations."
            )
        config = dict(config)
        original_input = bool(config.pop("original-input", False))  # build_model has checked it is a bool
        super().__init__({**config, **DEFINING_SWITCHES, **(ORIGINAL_INPUT if original_input else {})})
        self.config = {**self.config, "original-input": original_input}
