"""Detector registry: ``build_model(config)`` builds any registered detector from its model config by name."""

from __future__ import annotations

import os
from typing import Any, Callable

from torch import nn

from common.errors import UnknownKeyError

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
        raise UnknownKeyError(
            f"unknown model name {name!r} in the model config: choose one of {', '.join(list_models())}."
        )
    return _MODELS[name](check_model_config(dict(model_config)))


def without_downloads(model_config: dict[str, Any]) -> dict[str, Any]:
    """The model config for weights that come from elsewhere (a checkpoint, an export): no pretrained download and
    no weights file, so that building the network to load them into needs no internet and no file."""
    return {**model_config, "pretrained": False, "pretrained-file": None}


def model_defaults(name: str) -> dict[str, Any]:
    """Every config key of a registered model with its default (``None`` where the key is required)."""
    if name not in _MODELS:
        raise UnknownKeyError(
            f"unknown model name {name!r} in the model config: choose one of {', '.join(list_models())}."
        )
    return dict(getattr(_MODELS[name], "config_defaults", {"name": name}))


def model_config_types(name: str) -> dict[str, tuple[type, ...]]:
    """Types of the model's config keys whose default is None (required keys), where the model declares them."""
    if name not in _MODELS:
        raise UnknownKeyError(
            f"unknown model name {name!r} in the model config: choose one of {', '.join(list_models())}."
        )
    return dict(getattr(_MODELS[name], "config_types", {}))


def model_config_from_file(path) -> dict[str, Any]:
    """The model section of a config file (or bundled name), on the model's defaults: what ``build_model`` needs."""
    from common.config import deep_merge, read_config_file

    model = read_config_file(path).get("model") or {}
    return deep_merge(model_defaults(model.get("name", "cael")), model)


def check_model_config(model_config: dict[str, Any]) -> dict[str, Any]:
    """Check (and, int -> float, coerce) the types of a model config's keys against the model's defaults; in place."""
    from common.config import coerce_value, types_of_default

    name = model_config.get("name", "cael")
    declared = model_config_types(name)
    for key, default in model_defaults(name).items():
        allowed = declared.get(key) or types_of_default(default)
        if key in model_config and model_config[key] is not None and allowed is not None and key != "name":
            model_config[key] = coerce_value(f"model.{key}", model_config[key], allowed)
    return model_config
