"""The small base every baseline detector shares: its config (defaults, one-sentence checks) and its input contract.

A baseline takes what CAEL takes, (B, 3, H, W) RGB images in 0..255 (uint8 or float) on any device, owns its cast,
scale and normalisation inside ``forward`` (``PixelNormalizer``), and returns (B, num-classes) logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from common.config import with_suggestions
from common.errors import UserError

from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, PixelNormalizer

# The keys every baseline has (engine and tools read image-size and num-classes of any detector).
COMMON_DEFAULTS: dict[str, Any] = {"image-size": None, "num-classes": 2, "pretrained": False, "pretrained-file": None}
# The input statistics of a timm baseline: null takes those its pretrained weights were trained with (timm's
# pretrained_cfg); three numbers each replace them (DeepfakeBench normalises every detector with mean = std = 0.5).
NORMALIZATION_DEFAULTS: dict[str, Any] = {"mean": None, "std": None}
# Keys whose null is a value, not a missing key.
NULLABLE_KEYS = frozenset({"pretrained-file", *NORMALIZATION_DEFAULTS})


class ModelConfigError(UserError, ValueError):
    """A baseline model config with an unknown, missing or impossible key."""


def resolve_model_config(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``config`` over ``defaults``; an unknown key (with the closest known one) or a missing one is an error."""
    name = defaults["name"]
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ModelConfigError(
            f"unknown {name} model config key(s): {with_suggestions(unknown, defaults)}; remove or rename them."
        )
    resolved = {**defaults, **config}
    missing = [key for key, value in resolved.items() if value is None and key not in NULLABLE_KEYS]
    if missing:
        raise ModelConfigError(f"the {name} model config lacks required key(s): {', '.join(missing)}.")
    if resolved["num-classes"] < 2:
        raise ModelConfigError(f"model config key 'num-classes' of {name} must be at least 2 (real, fake).")
    return resolved


class Detector(nn.Module):
    """Base class: config handling, the pixel normaliser, the image-size check, and ``forward = head(features)``.

    Subclasses set ``config_defaults`` (``COMMON_DEFAULTS`` plus their own keys), build their network after
    ``super().__init__(config, mean=..., std=...)``, and implement ``forward_features`` (normalised pixels ->
    pooled features) and ``forward_head``.
    """

    config_defaults: dict[str, Any] = {"name": "detector", **COMMON_DEFAULTS}

    def __init__(self, config: dict[str, Any], *, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.config = resolve_model_config(dict(config), self.config_defaults)
        self.preprocess = PixelNormalizer(tuple(mean), tuple(std))

    @property
    def image_size(self) -> int:
        return self.config["image-size"]

    @property
    def num_classes(self) -> int:
        return self.config["num-classes"]

    def check_size(self, images: torch.Tensor) -> None:
        size = self.image_size
        if images.shape[-2:] != (size, size):
            raise ValueError(
                f"this {self.config['name']} was built for {size}x{size} images (model config 'image-size'); "
                f"got {images.shape[-2]}x{images.shape[-1]}: resize the input or rebuild the model."
            )

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = self.preprocess(images)  # also checks the (B, 3, H, W) layout and dtype
        self.check_size(images)
        return self.forward_head(self.forward_features(pixels))


HEAD_INIT_STD = 0.02


def init_new_head(head: nn.Module) -> None:
    """Initialise a new (B, num-classes) linear classifier: weights ~ N(0, 0.02), zero bias (CNNDetection's and
    UnivFD's choice). The head never comes with the pretrained weights (it has num-classes outputs, not ImageNet's
    1,000), and timm's own initialisation is scaled for 1,000 classes: the TF EfficientNets draw a two-way head from
    U(-0.71, 0.71), whose logits start at a standard deviation of 6-9 and a loss of 3-5."""
    nn.init.normal_(head.weight, std=HEAD_INIT_STD)
    nn.init.zeros_(head.bias)


def _statistics(config: dict[str, Any], key: str) -> tuple[float, float, float] | None:
    """The model config's per-channel ``mean`` or ``std`` (three numbers, a std above zero), or None when null."""
    value = config.get(key)
    if value is None:
        return None
    valid = isinstance(value, (list, tuple)) and len(value) == 3
    valid = valid and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not valid or (key == "std" and min(value) <= 0):
        above_zero = ", each above 0" if key == "std" else ""
        raise ModelConfigError(
            f"model config key '{key}' of {config['name']} must be three numbers (R, G, B{above_zero}) or null "
            f"(the pretrained weights' own); got {value!r}."
        )
    return tuple(float(v) for v in value)


class TimmDetector(Detector):
    """A timm classification network with a new (B, num-classes) head (``init_new_head``); its normalisation is
    timm's record of the network's own training (``pretrained_cfg`` mean and std), so pretrained weights see what
    they were trained on, unless the model config's ``mean`` / ``std`` name others (a reference's own choice)."""

    # timm options passed through from the model config (config key -> timm keyword), set by subclasses.
    timm_options: dict[str, str] = {"drop-rate": "drop_rate"}

    def __init__(self, config: dict[str, Any]):
        from ..backbone import create_timm_model

        resolved = resolve_model_config(dict(config), self.config_defaults)
        options = {keyword: resolved[key] for key, keyword in self.timm_options.items()}
        network = create_timm_model(
            resolved["backbone"],
            pretrained=resolved["pretrained"],
            pretrained_file=resolved["pretrained-file"],
            num_classes=resolved["num-classes"],
            **options,
            **self.extra_timm_options(resolved),
        )
        cfg = network.pretrained_cfg
        mean = _statistics(resolved, "mean") or cfg.get("mean", IMAGENET_MEAN)
        std = _statistics(resolved, "std") or cfg.get("std", IMAGENET_STD)
        super().__init__(resolved, mean=mean, std=std)
        self.network = network
        init_new_head(network.get_classifier())

    def extra_timm_options(self, config: dict[str, Any]) -> dict[str, Any]:
        return {}

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network.forward_features(pixels)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.network.forward_head(features)
