"""Pretrained weights: from the hub when online, from a local file (``model.pretrained-file``) when not.

Offline (``HF_HUB_OFFLINE=1``, or the hub unreachable) and the weights not cached, a model that asks for
pretrained weights fails at once with one sentence that gives the offline route, instead of minutes of retries:

    python -m model.pretrained tf_efficientnet_b0.aa_in1k backbone.safetensors   # once, on a connected machine
    python train.py ... --set model.pretrained-file=/path/to/backbone.safetensors # then anywhere
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from common.errors import MissingFileError, UserError

HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


class PretrainedWeightsError(UserError, RuntimeError):
    """Pretrained weights were asked for but cannot be had here; the message gives the offline route."""


class MissingWeightsFileError(MissingFileError):
    """A ``pretrained-file`` that does not exist."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host answers within ``timeout`` seconds (one TCP connection, no request)."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_files_cached(repo_id: str, filenames=HUB_WEIGHT_FILES) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames)


def offline_route(name: str) -> str:
    return (
        f"connect once to cache them, or on a connected machine run `python -m model.pretrained {name} FILE` and "
        "set model.pretrained-file to that FILE, or set model.pretrained: false to start from random weights"
    )


def require_hub(repo_id: str, name: str, route: str | None = None) -> None:
    """Raise at once when ``repo_id``'s weights are not cached and the hub cannot be reached."""
    if hub_files_cached(repo_id):
        return
    route = route or offline_route(name)
    if hub_offline():
        raise PretrainedWeightsError(f"the pretrained weights of {name} are not cached and HF_HUB_OFFLINE=1: {route}.")
    if not hub_reachable():
        raise PretrainedWeightsError(
            f"the pretrained weights of {name} are not cached and the hub is unreachable: {route}."
        )


def create_timm_model(name: str, *, pretrained: bool, pretrained_file: str | None = None, **kwargs):
    """``timm.create_model`` with the project's pretrained rules (local file, offline fail-fast, one sentence)."""
    import timm

    if pretrained_file:
        if not os.path.isfile(pretrained_file):
            raise MissingWeightsFileError(
                f"model config key 'pretrained-file' names {pretrained_file!r}, which does not exist: give the path "
                "of a "
                f"{name} state dict (.safetensors, .pth), e.g. written by `python -m model.pretrained {name} FILE`."
            )
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=pretrained_file), **kwargs)
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    config = timm.models.get_pretrained_cfg(name)
    repo_id = getattr(config, "hf_hub_id", None) if config is not None else None
    if repo_id:
        require_hub(repo_id, name)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as error:  # huggingface_hub raises OSError subclasses offline
        raise PretrainedWeightsError(
            f"could not load the pretrained weights of {name} through timm ({type(error).__name__}): "
            f"{offline_route(name)}."
        ) from error


def save_timm_weights(name: str, out: str | Path) -> Path:
    """Download ``name``'s pretrained weights (needs the hub) and save them as one safetensors file."""
    from safetensors.torch import save_file

    model = create_timm_model(name, pretrained=True, num_classes=0)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out))
    return out


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Save a timm model's pretrained weights to a file, for machines without the hub."
    )
    parser.add_argument("name", help="timm model name, e.g. tf_efficientnet_b0.aa_in1k (CAEL's backbone)")
    parser.add_argument("out", help="where to write the weights (.safetensors)")
    return parser


def main(argv=None) -> Path:
    args = get_args_parser().parse_args(argv)
    out = save_timm_weights(args.name, args.out)
    print(
        f"wrote the pretrained weights of {args.name} to {out}: use them with --set "
        f"model.pretrained-file={out.resolve()}"
    )
    return out


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
