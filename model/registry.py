"""Detector registry: ``build_model(config)`` builds any registered detector from its model config by name."""
from __future__ import annotations

import os
from typing import Any, Callable

from torch import nn

_MODELS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {}


def register_model(name: str):
    """Class or function decorator: ``@register_model("cael")`` makes ``build_model({"name": "cael", ...})`` work."""

    def decorator(builder):
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is already registered.")
        _MODELS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    return sorted(_MODELS)


def build_model(config: dict[str, Any] | str | os.PathLike) -> nn.Module:
    """Build a detector from a model config (the ``model`` section of a run config, or a whole run config).

    Given a path or a hub id instead (a training checkpoint, a folder written by ``python -m model.export``, or
    ``owner/name`` on the Hugging Face hub), the trained detector is loaded with its weights, in eval mode.
    """
    if isinstance(config, (str, os.PathLike)):
        from .hub import load_pretrained

        return load_pretrained(config).model
    model_config = config.get("model", config)
    name = model_config.get("name", "cael")
    if name not in _MODELS:
        raise KeyError(f"unknown model name {name!r} in the model config: choose one of {', '.join(list_models())}.")
    return _MODELS[name](dict(model_config))


def model_defaults(name: str) -> dict[str, Any]:
    """Every config key of a registered model with its default (``None`` where the key is required)."""
    if name not in _MODELS:
        raise KeyError(f"unknown model name {name!r} in the model config: choose one of {', '.join(list_models())}.")
    return dict(getattr(_MODELS[name], "config_defaults", {"name": name}))
