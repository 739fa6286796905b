"""What the foundation-model detectors share (``clip_ln``, ``dinov2_ln``, ``clip_lora``, ``effort``): a pretrained
vision transformer from ``transformers`` (CLIP's or DINO's image encoder), frozen but for the part each detector
adapts, its pooled feature, and a new linear head.

The encoder comes from its hub id (``backbone``) through ``transformers`` when ``pretrained: true``, from a local copy
of the model folder with ``pretrained-file``, or random with ``pretrained: false`` (tests and the demo build tiny ones
with the architecture keys). Offline without a cached copy, building fails with one sentence that gives the route.

Frozen parts stay out of training twice over: their parameters have ``requires_grad`` off (so
``engine.training.optim`` leaves them out of the optimiser) and every sub-module none of whose parameters trains is
kept in ``eval()`` whatever mode the detector is put in. In training mode the detector returns
``{"logits", "embeddings"}`` (the L2-normalised pooled feature, for the feature-space losses of ``loss_folder``); in
evaluation mode the logits alone.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..preprocess import IMAGENET_MEAN, IMAGENET_STD
from ..pretrained import MissingWeightsFileError, PretrainedWeightsError, require_hub
from .base import COMMON_DEFAULTS, Detector, ModelConfigError

# CLIP's pixel statistics (openai/CLIP clip.py, _transform; transformers' CLIPImageProcessor).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The architecture keys of every foundation detector (checked against downloaded weights).
ARCHITECTURE_KEYS = ("vision-width", "vision-layers", "vision-heads", "vision-mlp-dim", "patch-size")


def _clip_classes():
    from transformers import CLIPVisionConfig, CLIPVisionModel

    return CLIPVisionConfig, CLIPVisionModel


def _dinov2_classes():
    from transformers import Dinov2Config, Dinov2Model

    return Dinov2Config, Dinov2Model


def _dinov2_registers_classes():
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    return Dinov2WithRegistersConfig, Dinov2WithRegistersModel


def _dinov3_classes():
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    return DINOv3ViTConfig, DINOv3ViTModel


# family -> (transformers classes, pixel statistics). DINOv2 states its MLP as a ratio of the width.
FAMILIES = {
    "clip": (_clip_classes, CLIP_MEAN, CLIP_STD),
    "dinov2": (_dinov2_classes, IMAGENET_MEAN, IMAGENET_STD),
    "dinov2-registers": (_dinov2_registers_classes, IMAGENET_MEAN, IMAGENET_STD),
    "dinov3": (_dinov3_classes, IMAGENET_MEAN, IMAGENET_STD),
}


def architecture_fields(family: str, config: dict[str, Any]) -> dict[str, Any]:
    """Our architecture keys as the fields of the family's ``transformers`` config."""
    fields = {
        "hidden_size": config["vision-width"],
        "num_hidden_layers": config["vision-layers"],
        "num_attention_heads": config["vision-heads"],
        "patch_size": config["patch-size"],
        "image_size": config["backbone-image-size"],
    }
    if family.startswith("dinov2"):
        ratio, rest = divmod(config["vision-mlp-dim"], config["vision-width"])
        if rest:
            raise ModelConfigError(
                f"model config key 'vision-mlp-dim' of {config['name']} must be a multiple of 'vision-width' for "
                f"{family} (its MLP is a whole multiple of the width); got {config['vision-mlp-dim']}."
            )
        fields["mlp_ratio"] = ratio
    else:
        fields["intermediate_size"] = config["vision-mlp-dim"]
    return fields


def _found_architecture(family: str, encoder_config) -> dict[str, Any]:
    mlp = (
        round(encoder_config.mlp_ratio * encoder_config.hidden_size)
        if family.startswith("dinov2")
        else encoder_config.intermediate_size
    )
    return {
        "vision-width": encoder_config.hidden_size,
        "vision-layers": encoder_config.num_hidden_layers,
        "vision-heads": encoder_config.num_attention_heads,
        "vision-mlp-dim": mlp,
        "patch-size": encoder_config.patch_size,
    }


def hub_encoder(model_class, config: dict[str, Any], *, hub_key: str, what: str) -> nn.Module:
    """``model_class.from_pretrained`` of the model folder or hub id the config names, with the project's rules: a
    ``pretrained-file`` must be a folder; offline and uncached, one sentence with the route instead of retries."""
    source = config["pretrained-file"] or config[hub_key]
    if config["pretrained-file"] and not os.path.isdir(source):
        raise MissingWeightsFileError(
            f"model config key 'pretrained-file' names {source!r}, which is not a folder: give a local copy of "
            f"{config[hub_key]} (the folder with config.json and model.safetensors)."
        )
    if not config["pretrained-file"]:
        require_hub(
            source,
            source,
            route=(
                f"connect once to cache them, or on a connected machine run `hf download {source} --local-dir DIR` "
                "and set model.pretrained-file to that DIR, or set model.pretrained: false to start from random weights"
            ),
        )
    try:
        return model_class.from_pretrained(source)
    except (OSError, ValueError) as error:  # transformers raises OSError offline or for a missing repository
        raise PretrainedWeightsError(
            f"Could not load the {what} weights {source} through transformers (offline, HF_HUB_OFFLINE=1, or a gated "
            "repository you have not accepted?): connect once to cache them, or set 'model.pretrained-file' to a "
            "local copy of the model folder, or set 'model.pretrained: false' to start from random weights."
        ) from error


def build_encoder(family: str, config: dict[str, Any]) -> nn.Module:
    """The family's vision encoder: random with the config's architecture, or pretrained (architecture checked)."""
    if family not in FAMILIES:
        raise ModelConfigError(
            f"model config key 'family' of {config['name']} is {family!r}: choose one of {', '.join(FAMILIES)}."
        )
    config_class, model_class = FAMILIES[family][0]()
    if not config["pretrained"]:
        return model_class(config_class(**architecture_fields(family, config)))
    encoder = hub_encoder(model_class, config, hub_key="backbone", what=f"{family} image encoder")
    found = _found_architecture(family, encoder.config)
    differing = [key for key in ARCHITECTURE_KEYS if found[key] != config[key]]
    if differing:
        values = ", ".join(f"{key}={found[key]}" for key in differing)
        raise ModelConfigError(
            f"the weights of {config['pretrained-file'] or config['backbone']} have {values}: set these model config "
            "keys to match."
        )
    return encoder


def keep_frozen_parts_in_eval(module: nn.Module) -> None:
    """Every sub-module that has parameters, none of them trainable, goes to eval mode (with its children); a module
    without parameters of its own (an activation, a dropout) follows its parent."""
    for child in module.children():
        parameters = list(child.parameters())
        if parameters and not any(p.requires_grad for p in parameters):
            child.eval()
        else:
            keep_frozen_parts_in_eval(child)


FOUNDATION_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "image-size": 224,
    "backbone": None,  # hub id of the image encoder (transformers)
    "backbone-image-size": 224,  # the encoder's position grid; another image-size is interpolated
    "vision-width": 1024,  # ViT-L (checked against downloaded weights)
    "vision-layers": 24,
    "vision-heads": 16,
    "vision-mlp-dim": 4096,
    "patch-size": 14,
    "l2-normalize": False,  # the head reads the L2-normalised feature (GenD's LinearNorm head)
    "feature-norm": "none",  # none (every reference) | batchnorm: a batch norm without affine on the pooled feature
}
# What may stand between the pooled feature and the head (model config key feature-norm): none, as every reference;
# batchnorm standardises the feature over the batch (MAE's linear-probe recipe, univfd's probe-norm), for the demo's
# short runs from random weights; at evaluation a fixed per-feature affine map.
FEATURE_NORMS = ("none", "batchnorm")


class FoundationDetector(Detector):
    """A pretrained ViT image encoder (``family``), frozen, adapted by the subclass (``adapt``), and a linear head on
    its pooled feature (CLIP: the post-layernorm CLS token, ``pooler_output``; DINO: the final-norm CLS token).

    The head is ``nn.Linear`` with PyTorch's default initialisation, as GenD's and Effort's code build it.
    """

    family = "clip"
    config_defaults: dict[str, Any] = {"name": "foundation", **FOUNDATION_DEFAULTS}

    def __init__(self, config: dict[str, Any]):
        family = config.get("family", self.family)
        statistics = FAMILIES.get(family, FAMILIES["clip"])
        super().__init__(config, mean=statistics[1], std=statistics[2])
        self.family = self.config.get("family", self.family)
        if self.image_size % self.config["patch-size"]:
            raise ModelConfigError(
                f"model config key 'image-size' ({self.image_size}) of {self.config['name']} must be a multiple of its "
                f"'patch-size' ({self.config['patch-size']})."
            )
        self.encoder = build_encoder(self.family, self.config)
        self.encoder.requires_grad_(False)
        self.adapt()
        norm = self.config["feature-norm"]
        if norm not in FEATURE_NORMS:
            raise ModelConfigError(
                f"model config key 'feature-norm' of {self.config['name']} is {norm!r}: choose none (the references) "
                "or batchnorm (a batch norm without affine on the pooled feature)."
            )
        width = self.config["vision-width"]
        self.feature_norm = nn.BatchNorm1d(width, affine=False) if norm == "batchnorm" else nn.Identity()
        self.head = nn.Linear(width, self.num_classes)
        self.train()

    # The ViT inside the detector, for layer-wise learning-rate decay (engine.training.optim): where its parameters are
    # named and how many blocks it has.
    vit_prefix = "encoder."

    @property
    def vit_depth(self) -> int:
        return self.config["vision-layers"]

    def adapt(self) -> None:
        """Make the adapted part of ``self.encoder`` trainable (or insert it); everything else stays frozen."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> "FoundationDetector":
        super().train(mode)
        if mode:
            keep_frozen_parts_in_eval(self)
        return self

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        options = {}
        if self.family == "clip" and pixels.shape[-1] != self.config["backbone-image-size"]:
            options["interpolate_pos_encoding"] = True  # DINO interpolates by itself (v2) or has RoPE (v3)
        return self.encoder(pixel_values=pixels, **options).pooler_output

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        features = features.to(self.head.weight.dtype)
        return self.head(F.normalize(features, dim=-1) if self.config["l2-normalize"] else features)

    def forward(self, images: torch.Tensor):
        pixels = self.preprocess(images)
        self.check_size(images)
        features = self.feature_norm(self.forward_features(pixels).float())
        logits = self.forward_head(features)
        if not self.training:
            return logits
        return {"logits": logits, "embeddings": F.normalize(features.float(), dim=-1), **self.training_terms()}

    def training_terms(self) -> dict[str, torch.Tensor]:
        """Extra training-mode outputs (``regularizer``: a weight-space term ``loss_folder`` adds to the loss)."""
        return {}


def enable_layer_norms(encoder: nn.Module) -> list[str]:
    """Make every LayerNorm's weight and bias trainable (GenD's LN-tuning); returns their module names."""
    names = []
    for name, module in encoder.named_modules():
        if isinstance(module, nn.LayerNorm):
            module.requires_grad_(True)
            names.append(name)
    return names
