"""Load checkpoints saved by the released CAEL code into our released-mode CAEL, or convert them to our format.

    python -m model.convert_released RELEASED.pth OUT.pt [--config model/configs/cael_released.yaml]

Every released weight that the released forward uses is mapped by name onto ours, shape-checked; the weights the
released forward never uses (the coarse stream's EfficientNet beyond its third block, both classifiers) are
dropped and listed; anything else is an error.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from common.checkpoint import read_checkpoint, save_checkpoint
from common.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
RELEASED_CONFIG = CONFIG_DIR / "cael_released.yaml"

# EfficientNet-B0 blocks per stage; EfficientNet-PyTorch numbers its 16 blocks flat, timm by (stage, index).
B0_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
B0_BLOCK_POSITIONS = [(stage, index) for stage, repeats in enumerate(B0_STAGE_REPEATS) for index in range(repeats)]
# Blocks the coarse stream runs (stem + blocks 0..2, the 24-channel stride-4 output).
COARSE_BLOCKS = 3

_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_DEPTHWISE_SEPARABLE = {  # the first block has no expansion conv
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}

_STREAMS = {
    "fg_image_embedder": "appearance_fine",
    "cg_image_embedder": "appearance_coarse",
    "edge_embedder": "edge_stream",
}
_HEADS = {"fg_mlp_head": "head_fine", "cg_mlp_head": "head_coarse", "edge_mlp_head": "head_edge"}
_ENCODERS = {"0": "fine_encoder", "1": "coarse_encoder", "2": "edge_encoder"}
_ATTENTION = {
    "to_q.weight": "to_q.weight",
    "to_kv.weight": "to_kv.weight",
    "to_out.0.weight": "to_out.weight",
    "to_out.0.bias": "to_out.bias",
}
_PARAM = r"(weight|bias|running_mean|running_var|num_batches_tracked)"

DROPPED = None  # marker: a released weight its forward never uses


class ReleasedCheckpointError(UserError, ValueError):
    """A state dict that does not have the released CAEL's keys and shapes."""


def _map_efficientnet(stream: str, rest: str) -> str | None:
    prefix = "appearance_fine.backbone.network" if stream == "fg_image_embedder" else "appearance_coarse.backbone"
    if rest.startswith("_fc."):
        return DROPPED
    if m := re.fullmatch(rf"(_conv_stem|_bn0|_conv_head|_bn1)\.{_PARAM}", rest):
        if stream == "cg_image_embedder" and m[1] in ("_conv_head", "_bn1"):
            return DROPPED
        return f"{prefix}.{_EFFNET_TOP[m[1]]}.{m[2]}"
    if m := re.fullmatch(rf"_blocks\.(\d+)\.(\w+)\.{_PARAM}", rest):
        block = int(m[1])
        if block >= len(B0_BLOCK_POSITIONS):
            return None
        if stream == "cg_image_embedder" and block >= COARSE_BLOCKS:
            return DROPPED
        stage, index = B0_BLOCK_POSITIONS[block]
        names = _DEPTHWISE_SEPARABLE if block == 0 else _INVERTED_RESIDUAL
        if m[2] not in names:
            return None
        return f"{prefix}.blocks.{stage}.{index}.{names[m[2]]}.{m[3]}"
    return None


def _map_cross(rest: str) -> str | None:
    """Inner keys of a ProjectInOut(PreNorm(Attention)) layer -> ours (ClsCrossAttention)."""
    if m := re.fullmatch(r"(project_in|project_out)\.(weight|bias)", rest):
        return rest
    if m := re.fullmatch(r"fn\.norm\.(weight|bias)", rest):
        return f"norm.{m[1]}"
    if (m := re.fullmatch(r"fn\.fn\.(.+)", rest)) and m[1] in _ATTENTION:
        return f"attn.{_ATTENTION[m[1]]}"
    return None


def released_key_to_ours(key: str) -> str | None:
    """Our state-dict key for a released key; ``DROPPED`` for unused released weights (and unknown keys)."""
    head, _, rest = key.partition(".")
    if head in _STREAMS:
        stream = _STREAMS[head]
        if rest.startswith("efficient_net."):
            return _map_efficientnet(head, rest[len("efficient_net.") :])
        if rest in ("cls_token", "pos_embedding"):
            return f"{stream}.embedder.{rest}"
        if m := re.fullmatch(r"to_patch_embedding\.1\.(weight|bias)", rest):
            return f"{stream}.embedder.patch_to_token.{m[1]}"
        if head == "edge_embedder" and (m := re.fullmatch(rf"features\.(\d+)\.{_PARAM}", rest)):
            return f"edge_stream.cnn.{m[1]}.{m[2]}"
        return None
    if head in _HEADS:
        if m := re.fullmatch(r"([01])\.(weight|bias)", rest):
            return f"{_HEADS[head]}.{'norm' if m[1] == '0' else 'fc'}.{m[2]}"
        return None
    if head != "multi_grained_appea_edge_transformer":
        return None
    if not (m := re.fullmatch(r"layers\.(\d+)\.([0-4])\.(.+)", rest)):
        return None
    block, part, inner = m[1], m[2], m[3]
    if part in _ENCODERS:
        encoder = f"blocks.{block}.{_ENCODERS[part]}"
        if n := re.fullmatch(r"norm\.(weight|bias)", inner):
            return f"{encoder}.norm.{n[1]}"
        if n := re.fullmatch(r"layers\.(\d+)\.0\.norm\.(weight|bias)", inner):
            return f"{encoder}.layers.{n[1]}.attn_norm.{n[2]}"
        if (n := re.fullmatch(r"layers\.(\d+)\.0\.fn\.(.+)", inner)) and n[2] in _ATTENTION:
            return f"{encoder}.layers.{n[1]}.attn.{_ATTENTION[n[2]]}"
        if n := re.fullmatch(r"layers\.(\d+)\.1\.norm\.(weight|bias)", inner):
            return f"{encoder}.layers.{n[1]}.ff_norm.{n[2]}"
        if n := re.fullmatch(r"layers\.(\d+)\.1\.fn\.net\.([03])\.(weight|bias)", inner):
            return f"{encoder}.layers.{n[1]}.ff.{'fc1' if n[2] == '0' else 'fc2'}.{n[3]}"
        return None
    module, branches = (
        ("cross_attention", ("fine_to_coarse", "coarse_to_fine"))
        if part == "3"
        else ("aeca", ("edge_to_fine", "edge_to_coarse"))
    )
    if not (n := re.fullmatch(r"layers\.(\d+)\.([01])\.(.+)", inner)):
        return None
    mapped = _map_cross(n[3])
    return None if mapped is None else f"blocks.{block}.{module}.rounds.{n[1]}.{branches[int(n[2])]}.{mapped}"


def _is_known_unused(key: str) -> bool:
    """Released keys that map to nothing on purpose (as opposed to keys that are not released keys at all)."""
    head, _, rest = key.partition(".")
    if head not in ("fg_image_embedder", "cg_image_embedder") or not rest.startswith("efficient_net."):
        return False
    rest = rest[len("efficient_net.") :]
    if rest.startswith("_fc."):
        return True
    if head == "cg_image_embedder":
        if re.fullmatch(rf"(_conv_head|_bn1)\.{_PARAM}", rest):
            return True
        m = re.fullmatch(rf"_blocks\.(\d+)\.\w+\.{_PARAM}", rest)
        return bool(m) and COARSE_BLOCKS <= int(m[1]) < len(B0_BLOCK_POSITIONS)
    return False


def unwrap_state_dict(obj: Any, source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside what the released code (``{'state_dict': ...}``), DDP or we saved."""
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ReleasedCheckpointError(f"{source} does not hold a state dict (a mapping of names to tensors).")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def convert_released_state_dict(
    released: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map a released state dict onto ``target`` (our released-mode model's state dict).

    Returns our state dict and the released keys dropped as unused. Raises ``ReleasedCheckpointError`` naming the
    keys that are unknown, missing or of the wrong shape.
    """
    converted: dict[str, torch.Tensor] = {}
    dropped, unknown, wrong_shape = [], [], []
    for key, value in released.items():
        ours = released_key_to_ours(key)
        if ours is None:
            (dropped if _is_known_unused(key) else unknown).append(key)
            continue
        if ours not in target:
            unknown.append(key)
            continue
        expected = target[ours].shape
        if (
            key.endswith("pos_embedding")
            and value.ndim == 3
            and value.shape[1] >= expected[1]
            and value.shape[2] == expected[2]
        ):
            # The released tables are sized (image-size / patch)^2 + 1; only the first rows are ever used.
            value = value[:, : expected[1]]
        if value.shape != expected:
            wrong_shape.append(f"{key} {tuple(value.shape)} (expected {tuple(expected)})")
            continue
        converted[ours] = value
    missing = sorted(set(target) - set(converted))
    problems = []
    if unknown:
        problems.append(
            f"{len(unknown)} key(s) that are not released CAEL keys for this config: {', '.join(unknown[:5])}"
        )
    if missing:
        problems.append(f"{len(missing)} weight(s) missing, e.g. ours {', '.join(missing[:5])}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} weight(s) of the wrong shape: {', '.join(wrong_shape[:5])}")
    if problems:
        raise ReleasedCheckpointError(
            "this state dict does not match the released CAEL (model/configs/cael_released.yaml): "
            + "; ".join(problems)
            + ". Pass the config the checkpoint was trained with (--config), or check that the file is a released "
            "CAEL checkpoint."
        )
    return converted, dropped


def _read(path_or_state_dict) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(path_or_state_dict, Mapping):
        return unwrap_state_dict(path_or_state_dict, "the given state dict"), "the given state dict"
    path = Path(path_or_state_dict)
    obj = read_checkpoint(path, what="released checkpoint")
    return unwrap_state_dict(obj, str(path)), str(path)


def load_released_checkpoint(path_or_state_dict, config):
    """(model holding the released weights, its config, dropped keys, source name).

    ``config``: a run config or its model section, a config YAML path or bundled name, or None (the released one).
    """
    from .registry import build_model, model_config_from_file, without_downloads

    if config is None or isinstance(config, (str, Path)):
        config = {"model": model_config_from_file(config or RELEASED_CONFIG)}
    config = dict(config) if "model" in config else {"model": dict(config)}
    # The checkpoint supplies every weight: build the backbone without downloading anything.
    config["model"] = without_downloads(config["model"])
    model = build_model(config["model"])
    state_dict, source = _read(path_or_state_dict)
    converted, dropped = convert_released_state_dict(state_dict, model.state_dict())
    model.load_state_dict(converted, strict=True)
    return model, config, dropped, source


def load_released(path_or_state_dict, config: dict[str, Any] | str | Path | None = None):
    """Our released-mode CAEL holding the weights of a checkpoint saved by the released code.

    ``config``: a run config, its model section, or a YAML path; default ``model/configs/cael_released.yaml``.
    """
    return load_released_checkpoint(path_or_state_dict, config)[0]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Convert a checkpoint of the released CAEL code into ours.")
    parser.add_argument("input", help="checkpoint saved by the released code (state dict, or {'state_dict': ...})")
    parser.add_argument("output", help="where to write our checkpoint (.pt)")
    parser.add_argument("--config", default=str(RELEASED_CONFIG), help="config the checkpoint was trained with")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    model, config, dropped, source = load_released_checkpoint(args.input, args.config)
    state_dict = model.state_dict()
    save_checkpoint(args.output, {"model": state_dict, "config": config, "converted_from": source})
    print(
        f"wrote {len(state_dict)} tensors from {source} to {args.output}; dropped {len(dropped)} unused released "
        "tensors"
    )
    return 0


if __name__ == "__main__":
    import sys

    from common.cli import run

    sys.exit(run(main))
