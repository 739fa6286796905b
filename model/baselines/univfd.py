"""``univfd``: UnivFD (Ojha et al., CVPR 2023, "Towards universal fake image detectors that generalize across
generative models"): a frozen CLIP ViT-L/14 image encoder and a trained linear probe.

The encoder is ``transformers``' ``CLIPVisionModelWithProjection`` (``openai/clip-vit-large-patch14``); its
projected image embedding (768 values) feeds one linear layer, the only part that trains. Inputs are normalised
with CLIP's own mean and std at 224 px. The architecture keys below are ViT-L/14's; tests and the demo shrink them
(with ``pretrained: false``) to build a tiny random CLIP offline.

``probe-norm: batchnorm`` puts a batch norm without affine parameters between the embedding and the probe: MAE's
linear-probing recipe (He et al., CVPR 2022, appendix A.2), which standardises features of unequal scales so that a
short probe training converges. At evaluation it is a fixed per-feature affine map, so the detector is still a linear
probe on the frozen embedding. UnivFD's paper has none (the default, ``none``); the demo recipe uses it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..registry import register_model
from .base import COMMON_DEFAULTS, Detector, ModelConfigError, init_new_head
from .foundation import CLIP_MEAN, CLIP_STD, hub_encoder

# What may stand between the frozen embedding and the probe (model config key probe-norm).
PROBE_NORMS = ("none", "batchnorm")
# Our config keys -> transformers.CLIPVisionConfig fields.
ARCHITECTURE_KEYS = {
    "vision-width": "hidden_size",
    "vision-layers": "num_hidden_layers",
    "vision-heads": "num_attention_heads",
    "vision-mlp-dim": "intermediate_size",
    "patch-size": "patch_size",
    "projection-dim": "projection_dim",
}


def _clip_encoder(config: dict[str, Any]) -> nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if not config["pretrained"]:
        fields = {field: config[key] for key, field in ARCHITECTURE_KEYS.items()}
        return CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=config["clip-image-size"], **fields))
    encoder = hub_encoder(CLIPVisionModelWithProjection, config, hub_key="clip-model", what="CLIP")
    differing = [key for key, field in ARCHITECTURE_KEYS.items() if getattr(encoder.config, field) != config[key]]
    if differing:
        found = ", ".join(f"{key}={getattr(encoder.config, ARCHITECTURE_KEYS[key])}" for key in differing)
        source = config["pretrained-file"] or config["clip-model"]
        raise ModelConfigError(f"the CLIP weights of {source} have {found}: set these model config keys to match.")
    return encoder


@register_model("univfd")
class UnivFD(Detector):
    config_defaults = {
        "name": "univfd",
        **COMMON_DEFAULTS,
        "image-size": 224,
        "clip-model": "openai/clip-vit-large-patch14",
        "clip-image-size": 224,
        "vision-width": 1024,
        "vision-layers": 24,
        "vision-heads": 16,
        "vision-mlp-dim": 4096,
        "patch-size": 14,
        "projection-dim": 768,
        "probe-norm": "none",
    }

    def __init__(self, config: dict[str, Any]):
        super().__init__(config, mean=CLIP_MEAN, std=CLIP_STD)
        if self.image_size % self.config["patch-size"]:
            raise ModelConfigError(
                f"model config key 'image-size' ({self.image_size}) of univfd must be a multiple of its "
                f"'patch-size' ({self.config['patch-size']})."
            )
        self.encoder = _clip_encoder(self.config)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        norm = self.config["probe-norm"]
        if norm not in PROBE_NORMS:
            raise ModelConfigError(
                f"model config key 'probe-norm' of univfd is {norm!r}: choose none (UnivFD's paper) or batchnorm "
                "(MAE's linear-probe recipe)."
            )
        dim = self.config["projection-dim"]
        self.probe_norm = nn.BatchNorm1d(dim, affine=False) if norm == "batchnorm" else nn.Identity()
        self.probe = nn.Linear(dim, self.num_classes)
        init_new_head(self.probe)  # UnivFD's probe initialisation

    # The ViT, for layer-wise learning-rate decay (engine.training.optim): where its parameters are named, how many
    # blocks.
    vit_prefix = "encoder."

    @property
    def vit_depth(self) -> int:
        return self.config["vision-layers"]

    def train(self, mode: bool = True) -> "UnivFD":
        super().train(mode)
        self.encoder.eval()  # frozen: the encoder never leaves eval mode
        return self

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        resized = pixels.shape[-1] != self.config["clip-image-size"]
        with torch.no_grad():
            return self.encoder(pixel_values=pixels, interpolate_pos_encoding=resized).image_embeds

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.probe(self.probe_norm(features.to(self.probe.weight.dtype)))
