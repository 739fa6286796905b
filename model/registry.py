"""Detector registry: ``build_model(config)`` builds any registered (untrained) detector from its model config by name.

A trained detector (a checkpoint, a model folder, a hub id) is loaded by ``model.hub.load_detector``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from torch import nn

from common.errors import UnknownKeyError, UserError

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


class NotAConfigError(UserError, TypeError):
    """``build_model`` given a trained detector (a checkpoint, a model folder, a hub id) instead of a config."""


def build_model(config: dict[str, Any] | str | os.PathLike) -> nn.Module:
    """Build an untrained detector from a model config: the ``model`` section of a run config, a whole run config,
    or a config YAML file or bundled config name (``"cael"``, ``"xception"``)."""
    if isinstance(config, (str, os.PathLike)):
        config = {"model": _model_config_of_file(config)}
    model_config = config.get("model", config)
    name = model_config.get("name", "cael")
    _require_registered(name)
    return _MODELS[name](check_model_config(dict(model_config)))


def _model_config_of_file(path: str | os.PathLike) -> dict[str, Any]:
    from common.config import MODEL_CONFIG_DIR

    text = str(path)
    if text.endswith((".yaml", ".yml")) or (MODEL_CONFIG_DIR / f"{text}.yaml").is_file():
        return model_config_from_file(text)
    raise NotAConfigError(
        f"build_model builds from a config, and {text} is not a config file or bundled config name: load a trained "
        "detector (checkpoint, model folder or hub id) with model.hub.load_detector(source).model."
    )


def _require_registered(name: str) -> None:
    if name not in _MODELS:
        raise UnknownKeyError(
            f"unknown model name {name!r} in the model config: choose one of {', '.join(list_models())}."
        )


def without_downloads(model_config: dict[str, Any]) -> dict[str, Any]:
    """The model config for weights that come from elsewhere (a checkpoint, an export): no pretrained download and
    no weights file, so that building the network to load them into needs no internet and no file."""
    return {**model_config, "pretrained": False, "pretrained-file": None}


def model_defaults(name: str) -> dict[str, Any]:
    """Every config key of a registered model with its default (``None`` where the key is required)."""
    _require_registered(name)
    return dict(getattr(_MODELS[name], "config_defaults", {"name": name}))


def model_config_types(name: str) -> dict[str, tuple[type, ...]]:
    """Types of the model's config keys whose default is None (required keys), where the model declares them."""
    _require_registered(name)
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
