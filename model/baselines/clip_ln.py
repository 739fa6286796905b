"""``clip_ln``: GenD (Yermakov et al., WACV 2026, "Deepfake Detection that Generalizes Across Benchmarks") on CLIP
ViT-L/14: only the encoder's LayerNorms and a linear head train.

As its code builds it (yermandy/GenD ``src/model/GenD.py``, ``src/encoders/clip_encoder.py``, ``src/heads/head.py``,
experiment ``wacv-LN+L2+UnAl`` of ``src/exp/wacv_rebuttal.py``): ``CLIPModel.from_pretrained(
"openai/clip-vit-large-patch14").vision_model``, the feature is its ``pooler_output`` (the CLS token after
``post_layernorm``, 1,024 values: not the 768-value projection), the parameters that train are those of
``pre_layrnorm``, every ``layer_norm1`` / ``layer_norm2`` and ``post_layernorm`` (here: every ``nn.LayerNorm`` of the
encoder, the same set) and the head, ``nn.Linear(1024, 2)`` on the L2-normalised feature (``LinearNorm``,
``l2-normalize: true``); the loss adds 0.5 x uniformity and 0.1 x alignment of the L2-normalised features (Wang &
Isola, ICML 2020), set in the config's ``loss`` section. Inputs: 224 px, CLIP's mean and std (``CLIPProcessor``).
"""

from __future__ import annotations

from typing import Any

from ..registry import register_model
from .foundation import FOUNDATION_DEFAULTS, FoundationDetector, enable_layer_norms


@register_model("clip_ln")
class ClipLayerNorm(FoundationDetector):
    family = "clip"
    config_defaults: dict[str, Any] = {
        "name": "clip_ln",
        **FOUNDATION_DEFAULTS,
        "backbone": "openai/clip-vit-large-patch14",
        "l2-normalize": True,
    }

    def adapt(self) -> None:
        self.tuned_layer_norms = enable_layer_norms(self.encoder)
