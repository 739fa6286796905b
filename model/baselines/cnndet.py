"""``cnndet``: CNNDetection (Wang et al., CVPR 2020, "CNN-generated images are surprisingly easy to spot... for now").

A torchvision-ImageNet ResNet-50 (timm's ``resnet50.tv_in1k``, the weights the paper started from) at 224 px with a
new linear classifier. The paper's training transform (blur and JPEG, each with probability 0.5: Gaussian sigma in
[0, 3], JPEG quality in [30, 100]; then resize to 256 and a random 224 crop; a horizontal flip) is data, not model:
it is the ``data.augment`` list of ``model/configs/cnndet.yaml``. ``cnndet_deepfakebench.yaml`` is DeepfakeBench's
"CNN-Aug" instead (its reimplementation of this paper: a ResNet-34 at 256 px, mean = std = 0.5).
"""

from __future__ import annotations

from ..registry import register_model
from .base import COMMON_DEFAULTS, NORMALIZATION_DEFAULTS, TimmDetector


@register_model("cnndet")
class CNNDetection(TimmDetector):
    config_defaults = {
        "name": "cnndet",
        **COMMON_DEFAULTS,
        **NORMALIZATION_DEFAULTS,
        "image-size": 224,
        "backbone": "resnet50.tv_in1k",
        "drop-rate": 0.0,
    }
