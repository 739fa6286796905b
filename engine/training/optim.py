"""Optimisers (AdamW, SGD) with weight-decay exclusions and layer-wise learning-rate decay, warm-up + cosine/step
schedules stepped per optimizer step, and an EMA of the weights."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from common.errors import ConfigError

NO_DECAY_KINDS = ("norm", "bias", "token")


def _kind(module: nn.Module, name: str) -> str:
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)):
        return "norm"
    if name.endswith("bias"):
        return "bias"
    if name.endswith(("cls_token", "pos_embedding")):
        return "token"
    return "weight"


def parameter_groups(model: nn.Module, weight_decay: float, no_decay: list[str]) -> list[dict[str, Any]]:
    """Two groups: parameters with weight decay, and those of the ``no_decay`` kinds (norm, bias, token) without."""
    unknown = set(no_decay) - set(NO_DECAY_KINDS)
    if unknown:
        raise ConfigError(f"optim.no-decay may hold {', '.join(NO_DECAY_KINDS)}; got {', '.join(sorted(unknown))}.")
    decay, exempt, seen = [], [], set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            (exempt if _kind(module, name) in no_decay else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    return groups


# Layer-wise learning-rate decay (BEiT, Bao et al., ICLR 2022; MAE's fine-tuning recipe): in a ViT of depth L, the
# parameters of block i (0-based) learn at lr * decay^(L - i), the embeddings at lr * decay^(L + 1), and whatever
# follows the blocks (final norm, head) at lr. Block parameters are named ``...layer(s).<i>.`` (transformers: CLIP,
# DINOv2, DINOv3) or ``...blocks.<i>.`` (timm); a detector opts in by naming its ViT: ``vit_prefix`` (where the ViT's
# parameters are, by name) and ``vit_depth`` (its number of blocks).
VIT_BLOCK = re.compile(r"(?:^|\.)(?:layers?|blocks)\.(\d+)\.")
VIT_STEM = re.compile(r"(?:^|\.)(?:embeddings|patch_embed|cls_token|pos_embed|reg_token|pre_layrnorm|norm_pre)(?:\.|$)")


def vit_layer_id(name: str, prefix: str, depth: int) -> int:
    """0 for the ViT's embeddings, i + 1 for its block i, depth + 1 for the rest (its final norm, the head)."""
    if not name.startswith(prefix):
        return depth + 1
    inner = name[len(prefix) :]
    block = VIT_BLOCK.search(inner)
    if block:
        return min(int(block.group(1)), depth - 1) + 1
    return 0 if VIT_STEM.search(inner) else depth + 1


def layer_decay_groups(
    model: nn.Module, groups: list[dict[str, Any]], decay: float, base_lr: float
) -> list[dict[str, Any]]:
    """``groups`` split by ViT layer, each with ``lr = base_lr * decay^(depth + 1 - layer)``; the head's group first
    (so that logs of ``param_groups[0]`` show the base rate). ``decay`` 1.0 returns ``groups`` unchanged."""
    if decay == 1.0:
        return groups
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"optim.layer-decay must lie in (0, 1] (1.0: off); got {decay}.")
    depth, prefix = getattr(model, "vit_depth", None), getattr(model, "vit_prefix", None)
    if not depth or prefix is None:
        raise ConfigError(
            f"optim.layer-decay needs a detector with a ViT backbone (clip_ln, dinov2_ln, clip_lora, effort, univfd); "
            f"{type(model).__name__} has none: set optim.layer-decay: 1.0."
        )
    layer_of = {id(p): vit_layer_id(name, prefix, depth) for name, p in model.named_parameters()}
    split: dict[tuple[int, float], list[nn.Parameter]] = {}
    for group in groups:
        for parameter in group["params"]:
            split.setdefault((layer_of[id(parameter)], group["weight_decay"]), []).append(parameter)
    return [
        {"params": params, "weight_decay": weight_decay, "lr": base_lr * decay ** (depth + 1 - layer), "layer": layer}
        for (layer, weight_decay), params in sorted(split.items(), key=lambda item: (-item[0][0], -item[0][1]))
    ]


def build_optimizer(model: nn.Module, config: Mapping[str, Any], device: torch.device) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config["weight-decay"], list(config["no-decay"]))
    groups = layer_decay_groups(model, groups, float(config.get("layer-decay", 1.0)), config["lr"])
    fused = device.type == "cuda" if config["fused"] == "auto" else bool(config["fused"])
    name = config["name"]
    if name == "adamw":
        return torch.optim.AdamW(
            groups, lr=config["lr"], betas=tuple(config["betas"]), fused=fused or None, foreach=None if fused else True
        )
    if name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config["lr"],
            momentum=config["momentum"],
            nesterov=config["nesterov"],
            fused=fused or None,
            foreach=None if fused else True,
        )
    raise ConfigError(f"unknown optim.name {name!r}: choose adamw or sgd.")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: Mapping[str, Any], *, steps_per_epoch: int, epochs: int, base_lr: float
) -> LambdaLR:
    """Linear warm-up, then cosine to ``min-lr``, step decay, or constant; a factor per optimizer step."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(config["warmup-epochs"] * steps_per_epoch))
    floor = config["min-lr"] / base_lr if base_lr > 0 else 0.0
    name = config["name"]
    if name not in ("cosine", "step", "constant"):
        raise ConfigError(f"unknown schedule.name {name!r}: choose cosine, step or constant.")
    step_size = max(1, int(config["step-epochs"] * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if name == "constant":
            return 1.0
        if name == "step":
            return config["gamma"] ** ((step - warmup) // step_size)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def build_ema(model: nn.Module, decay: float) -> AveragedModel:
    """EMA of parameters and buffers, updated after every optimizer step."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
