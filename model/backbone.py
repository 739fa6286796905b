"""EfficientNet-B0 feature extractors of the two appearance streams, built with timm.

timm's ``tf_efficientnet_b0`` (TensorFlow "same" padding, BN eps 1e-3) is numerically the network the released
code used (EfficientNet-PyTorch's ``efficientnet-b0``); ``model.convert_released`` maps its weights by name.
"""
from __future__ import annotations

import copy
import os

import timm
import torch
from torch import nn

from common.errors import UserError

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


class PretrainedWeightsError(UserError, RuntimeError):
    """ImageNet (or CLIP) weights that cannot be downloaded (offline)."""


class MissingWeightsFileError(UserError, FileNotFoundError):
    """A 'pretrained-file' that does not exist."""


def create_timm_model(name: str, *, pretrained: bool, pretrained_file: str | None = None, **kwargs) -> nn.Module:
    """A timm network, with ImageNet weights through timm's hub (``pretrained``) or from a local file.

    Offline, or with a missing file, one sentence says what to do (cache once, a local file, or random weights).
    """
    if pretrained_file:
        if not os.path.isfile(pretrained_file):
            raise MissingWeightsFileError(
                f"model config key 'pretrained-file' names {pretrained_file!r}, which does not exist: "
                f"give the path of a timm {name.split('.')[0]} state dict (.pth or .safetensors)."
            )
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=pretrained_file), **kwargs)
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as error:
        # huggingface_hub raises OSError subclasses offline; timm wraps some as RuntimeError.
        raise PretrainedWeightsError(
            f"Could not load the ImageNet weights of {name} through timm (offline, or HF_HUB_OFFLINE=1?): "
            "connect once to cache them, or set 'model.pretrained-file' to a local weights file, "
            "or set 'model.pretrained: false' to start from random weights."
        ) from error


def _create(name: str, *, pretrained: bool, pretrained_file: str | None, drop_path_rate: float, bn_momentum: float):
    kwargs = dict(num_classes=0, drop_path_rate=drop_path_rate, bn_momentum=bn_momentum)
    return create_timm_model(name, pretrained=pretrained, pretrained_file=pretrained_file, **kwargs)


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
        name, pretrained=pretrained, pretrained_file=pretrained_file, drop_path_rate=drop_path_rate, bn_momentum=bn_momentum
    )
    coarse = CoarseFeatures(copy.deepcopy(network))
    return FineFeatures(network), coarse
