"""``dinov2_ln``: GenD's recipe (Yermakov et al., WACV 2026) on a DINO image encoder: only its LayerNorms and a
linear head on the L2-normalised CLS feature train.

GenD's code (yermandy/GenD ``src/encoders/dino_encoder.py``, ``src/exp/wacv_rebuttal.py``: ``wacv-DINOv3L-LN+L2+UnAl``)
loads the encoder with ``AutoModel.from_pretrained``, takes ``last_hidden_state[:, 0]`` (the CLS token after the
final norm: the same tensor as ``pooler_output``), unfreezes ``norm1``, ``norm2`` and ``norm`` (every
``nn.LayerNorm``: the layer scales stay frozen) and trains ``nn.Linear(1024, 2)`` on the L2-normalised feature with
cross-entropy + 0.5 x uniformity + 0.1 x alignment. Its DINO runs use DINOv3 ViT-L/16
(``facebook/dinov3-vitl16-pretrain-lvd1689m``, a gated repository: ``family: dinov3``, ``patch-size: 16``); this
detector defaults to DINOv2 ViT-L/14 (``facebook/dinov2-large``, ungated; ``family: dinov2``), whose processor
resizes to 256 and centre-crops 224 with ImageNet's mean and std. ``family: dinov2-registers`` takes
``facebook/dinov2-with-registers-large`` (the default of GenD's Hugging Face wrapper, at base size).
"""

from __future__ import annotations

from typing import Any

from ..registry import register_model
from .foundation import FOUNDATION_DEFAULTS, FoundationDetector, enable_layer_norms


@register_model("dinov2_ln")
class DinoLayerNorm(FoundationDetector):
    family = "dinov2"
    config_defaults: dict[str, Any] = {
        "name": "dinov2_ln",
        **FOUNDATION_DEFAULTS,
        "family": "dinov2",  # dinov2 | dinov2-registers | dinov3 (transformers' Dinov2Model, ..., DINOv3ViTModel)
        "backbone": "facebook/dinov2-large",
        "backbone-image-size": 518,  # DINOv2's position grid (37 x 37 patches); 224 px inputs interpolate it
        "l2-normalize": True,
    }

    def adapt(self) -> None:
        self.tuned_layer_norms = enable_layer_norms(self.encoder)
