"""The one config loader: YAML files (with ``base:`` inheritance), defaults, and ``key=value`` overrides.

A run config has a ``model`` section (the detector's keys, verbatim from the released CAEL.yaml plus our
switches) and the engine's sections. Paths inside a file are read relative to that file, never to the cwd.
"""
from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_CONFIG_DIR = REPO_ROOT / "model" / "configs"

# Defaults of the engine's sections; a config file only states what differs. Filled in by engine modules.
DEFAULTS: dict[str, dict[str, Any]] = {}


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file or key."""


def register_defaults(section: str, defaults: Mapping[str, Any]) -> None:
    DEFAULTS[section] = dict(defaults)


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``update``, recursing into nested dicts (a new dict; inputs untouched)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_config_path(path: str | Path) -> Path:
    """A config path as given, or a bare name of ``model/configs`` (``cael`` -> model/configs/cael.yaml)."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate.resolve()
    for name in (str(path), f"{path}.yaml"):
        if (MODEL_CONFIG_DIR / name).is_file():
            return (MODEL_CONFIG_DIR / name).resolve()
    available = ", ".join(sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config file {path} not found (the bundled configs are: {available}).")


def read_config_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One YAML config with its ``base:`` chain merged (bases first)."""
    path = resolve_config_path(path)
    if path in _seen:
        raise ConfigError(f"config file {path} includes itself through 'base:'.")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not a {type(content).__name__}.")
    bases = content.pop("base", None) or []
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        base_path = Path(base) if Path(base).is_absolute() else path.parent / base
        merged = deep_merge(merged, read_config_file(base_path, _seen + (path,)))
    return deep_merge(merged, content)


def _model_defaults(model_config: Mapping[str, Any]) -> dict[str, Any]:
    from model.registry import model_defaults

    return model_defaults(model_config.get("name", "cael"))


def _set_key(config: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = config
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(parts[:depth]) or "the config"
            options = list(node) if isinstance(node, dict) else []
            close = difflib.get_close_matches(part, options, n=1)
            hint = f" (did you mean {'.'.join(parts[:depth] + close)}?)" if close else ""
            raise ConfigError(f"unknown config key '{dotted}': {where} has no key '{part}'{hint}.")
        if depth == len(parts) - 1:
            node[part] = value
        else:
            node = node[part]


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` -> ("train.epochs", 3); the value is read as YAML (numbers, true/false, null, lists)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.epochs=3).")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({error}).") from error
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The fully resolved run config: engine defaults < model defaults < file (with bases) < overrides."""
    content = read_config_file(path) if path is not None else {}
    config = deep_merge(DEFAULTS, content)
    model = content.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError(f"the 'model' section of {path} must be a mapping.")
    config["model"] = deep_merge(_model_defaults(model), model)
    for override in overrides:
        _set_key(config, *parse_override(override))
    return config


def save_config(config: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dict(config), sort_keys=False))
