"""Reading config files: YAML with YAML 1.2 numbers, ``base:`` inheritance, dotted overrides, typed values.

Plain PyYAML follows YAML 1.1, where ``1e-4`` (no dot) is a string; here every number form YAML 1.2 accepts is
a number, in config files and in ``--set`` overrides alike. Used by the engine's run configs and by ``model/``
(which must not depend on the engine).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, UnknownKeyError

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_CONFIG_DIR = REPO_ROOT / "model" / "configs"
# Keys holding file paths: relative values in a config file are read relative to that file.
PATH_KEYS = (("data", "csv"), ("data", "root"), ("model", "pretrained-file"))


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader whose floats follow YAML 1.2: ``1e-4``, ``1E3``, ``.5`` and ``-2.`` are floats."""


ConfigLoader.yaml_implicit_resolvers = {
    key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``update``, recursing into nested dicts (a new dict; inputs untouched)."""
    merged = copy.deepcopy(dict(base))
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
    raise ConfigError(f"config file {path} not found: give a YAML path or a bundled config ({available}).")


def read_config_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One YAML config with its ``base:`` chain merged (bases first); relative paths made absolute."""
    path = resolve_config_path(path)
    if path in _seen:
        raise ConfigError(f"config file {path} includes itself through 'base:'.")
    try:
        content = yaml_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text: save it as UTF-8.") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}.") from error
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not a {type(content).__name__}.")
    for section, key in PATH_KEYS:
        node = content.get(section)
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and not Path(value).is_absolute():
            node[key] = str((path.parent / value).resolve())
    bases = content.pop("base", None) or []
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        base_path = Path(base) if Path(base).is_absolute() else path.parent / base
        if not base_path.is_file():
            raise ConfigError(f"config file {path} names base {base!r}, which does not exist at {base_path}.")
        merged = deep_merge(merged, read_config_file(base_path, _seen + (path,)))
    return deep_merge(merged, content)


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` -> ("train.epochs", 3); the value is read as YAML (numbers, true/false, null, lists)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.epochs=3).")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(
            f"override {text!r}: the value is not valid YAML ({getattr(error, 'problem', None) or error})."
        ) from error
    return key.strip(), value


def did_you_mean(key: str, options, prefix: str = "") -> str:
    """`` (did you mean PREFIX+CLOSEST?)`` for the known name closest to ``key``, or "" when none is close."""
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def with_suggestions(keys, options) -> str:
    """Unknown ``keys`` joined for an error message, each with the closest of ``options``."""
    return ", ".join(f"{key}{did_you_mean(key, options)}" for key in keys)


def set_value(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set an existing dotted key (``train.epochs``); an unknown key is an error that suggests the closest one."""
    parts = dotted.split(".")
    node: Any = config
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(parts[:depth]) or "the config"
            options = list(node) if isinstance(node, dict) else []
            hint = _elsewhere(config, parts[depth:]) or did_you_mean(
                part, options, prefix="".join(f"{p}." for p in parts[:depth])
            )
            raise UnknownKeyError(f"unknown config key '{dotted}': {where} has no key '{part}'{hint}.")
        if depth == len(parts) - 1:
            node[part] = value
        else:
            node = node[part]


def _dotted_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    keys = []
    for key, value in node.items():
        keys.append(prefix + str(key))
        keys += _dotted_keys(value, f"{prefix}{key}.")
    return keys


def _elsewhere(config: dict[str, Any], tail: list[str]) -> str:
    """`` (did you mean optim.lr?)`` for a key given without its section (``lr``): the keys of any section that end
    with ``tail``; "" when none does."""
    suffix = ".".join(tail)
    found = [key for key in _dotted_keys(config) if key.endswith("." + suffix)]
    return f" (did you mean {' or '.join(found[:3])}?)" if found else ""


def _type_name(types: tuple[type, ...]) -> str:
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    return " or ".join(names.get(t, t.__name__) for t in types)


def coerce_value(where: str, value: Any, allowed: tuple[type, ...]) -> Any:
    """``value`` as one of ``allowed`` types (an int where a float is allowed becomes a float), or a ConfigError."""
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif isinstance(value, int) and int in allowed:
        return value
    elif isinstance(value, (int, float)) and float in allowed:
        return float(value)
    elif isinstance(value, int) and str in allowed and not any(t in allowed for t in (int, float)):
        return str(value)  # e.g. a fold named 2019
    elif isinstance(value, (str, list, dict)) and isinstance(value, allowed):
        return value
    raise ConfigError(f"config key {where} must be {_type_name(allowed)}; got {value!r}.")


def types_of_default(default: Any) -> tuple[type, ...] | None:
    """The types a key accepts, judged from its default (None: no default to judge by)."""
    if default is None:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float):
        return (float,)
    for kind in (str, list, dict):
        if isinstance(default, kind):
            return (kind,)
    return None
