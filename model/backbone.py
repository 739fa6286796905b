"""EfficientNet-B0 feature extractors of the two appearance streams, built with timm.

timm's ``tf_efficientnet_b0`` (TensorFlow "same" padding, BN eps 1e-3) is numerically the network the released
code used (EfficientNet-PyTorch's ``efficientnet-b0``); ``model.convert_released`` maps its weights by name.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .pretrained import create_timm_model

# The released backbone's batch-norm momentum (EfficientNet-PyTorch: 1 - 0.99) and drop-connect rate.
RELEASED_BN_MOMENTUM = 0.01
RELEASED_DROP_PATH_RATE = 0.2
# Stages of EfficientNet-B0 up to the 24-channel, stride-4 output used by the coarse stream.
COARSE_STAGES = 2


class CoarseFeatures(nn.Module):
    """Stem and first MBConv stages of an EfficientNet: the (B, 24, H/4, W/4) map of the coarse stream."""

    def __init__(self, network: nn.Module, num_stages: int = COARSE_STAGES):
        super().__init__()
        self.conv_stem = network.conv_stem
        self.bn1 = network.bn1
        self.blocks = nn.Sequential(*list(network.blocks.children())[:num_stages])
        info = network.feature_info[num_stages - 1]
        self.num_features, self.reduction = info["num_chs"], info["reduction"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.bn1(self.conv_stem(images)))


class FineFeatures(nn.Module):
    """A whole EfficientNet up to its 1x1 head conv + BN + swish: the (B, 1280, H/32, W/32) map of the fine stream."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.num_features, self.reduction = network.num_features, network.feature_info[-1]["reduction"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.forward_features(images)


def _create(name: str, *, pretrained: bool, pretrained_file: str | None, drop_path_rate: float, bn_momentum: float):
    return create_timm_model(
        name,
        pretrained=pretrained,
        pretrained_file=pretrained_file,
        num_classes=0,
        drop_path_rate=drop_path_rate,
        bn_momentum=bn_momentum,
    )


def build_backbones(
    name: str = "tf_efficientnet_b0.aa_in1k",
    *,
    pretrained: bool = False,
    pretrained_file: str | None = None,
    drop_path_rate: float = RELEASED_DROP_PATH_RATE,
    bn_momentum: float = RELEASED_BN_MOMENTUM,
) -> tuple[FineFeatures, CoarseFeatures]:
    """Two independent copies of the backbone, identically initialised: (fine, coarse)."""
    network = _create(
        name,
        pretrained=pretrained,
        pretrained_file=pretrained_file,
        drop_path_rate=drop_path_rate,
        bn_momentum=bn_momentum,
    )
    coarse = CoarseFeatures(copy.deepcopy(network))
    return FineFeatures(network), coarse
