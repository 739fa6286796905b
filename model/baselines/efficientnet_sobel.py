"""``efficientnet_sobel``: EfficientNet-B0 on the edge map alone, the direct control for CAEL's edge stream.

The same backbone as CAEL's appearance streams (timm's ``tf_efficientnet_b0.aa_in1k``, its stem summed to one input
channel) sees only what CAEL's edge stream sees: the Sobel magnitude of the BT.601 luma image, divided by 255
(``model.edge-operator`` switches the operator as it does for CAEL). If it matches CAEL, the edge stream alone
carries the signal; if it falls well short, the appearance streams matter.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..preprocess import EDGE_OPERATORS, InputAdapter, _check_choice, _memory_format, edge_magnitude, luma
from ..registry import register_model
from .base import COMMON_DEFAULTS, TimmDetector


class EdgeMapInput(nn.Module):
    """(B, 3, H, W) RGB images in 0..255 -> (B, 1, H, W) edge magnitude / 255 in float32, on the input's device."""

    def __init__(self, operator: str = "sobel"):
        super().__init__()
        self.operator = _check_choice("edge-operator", operator, EDGE_OPERATORS)

    def extra_repr(self) -> str:
        return f"operator={self.operator}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        InputAdapter.check_images(images)
        edges = edge_magnitude(luma(images), self.operator) / 255.0
        return edges.contiguous(memory_format=_memory_format(images))


@register_model("efficientnet_sobel")
class EfficientNetSobel(TimmDetector):
    config_defaults = {
        "name": "efficientnet_sobel",
        **COMMON_DEFAULTS,
        "image-size": 224,
        "backbone": "tf_efficientnet_b0.aa_in1k",
        "drop-rate": 0.2,
        "drop-path-rate": 0.2,
        "edge-operator": "sobel",
    }
    timm_options = {"drop-rate": "drop_rate", "drop-path-rate": "drop_path_rate"}

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.preprocess = EdgeMapInput(self.config["edge-operator"])

    def extra_timm_options(self, config: dict[str, Any]) -> dict[str, Any]:
        return {"in_chans": 1}
