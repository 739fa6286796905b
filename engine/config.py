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

from loss_folder import LOSS_DEFAULTS

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_CONFIG_DIR = REPO_ROOT / "model" / "configs"

# Defaults of the engine's sections: a config file states only what differs. Where the paper does not give a
# value (its training recipe is unpublished), the default is this project's choice (README: "Defaults").
DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "csv": None,                 # split CSV (schema: data/schema.py); relative paths: to the config file
        "root": None,                # folder the CSV's paths are relative to; default: the CSV's folder
        "protocol": "intra",         # data/protocols/<name>.yaml, or a YAML path
        "fold": None,                # the fold of a protocol with folds (e.g. the training generator)
        "augment": [                 # training augmentations (data/transforms.py); evaluation uses none
            {"name": "hflip", "p": 0.5},
            {"name": "random-resized-crop", "scale": [0.85, 1.0], "ratio": [0.9, 1.1]},
            {"name": "jpeg", "p": 0.2, "quality": [70, 100]},
            {"name": "blur", "p": 0.1, "sigma": [0.1, 1.5]},
        ],
        "on-error": "error",         # a missing/corrupt image: error (stop, naming it) or skip (and count)
        "workers": "auto",           # loader processes per GPU; auto: the cores, shared among ranks
        "balanced": False,           # class-balanced sampling (with replacement)
        "crop": "resize",            # image -> model size: resize | pad (isotropic, black borders) | center-crop
        "reals": "matched",          # fold protocols: training reals of the fold's own source dataset(s), or all
    },
    "train": {
        "epochs": 20,
        "batch-size": 64,            # per GPU
        "seed": 0,
        "device": "auto",            # auto: CUDA when present, else CPU
        "precision": "auto",         # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
        "channels-last": True,
        "compile": False,            # false | true | a torch.compile mode (e.g. max-autotune)
        "grad-clip": 1.0,            # max gradient norm; 0 or null: off
        "accumulate": 1,             # micro-batches per optimizer step
        "ema": False,                # keep an exponential moving average of the weights (validated, saved)
        "ema-decay": 0.999,
        "select-metric": "auc",      # validation metric that picks best.pt (any of engine/metrics.py, or loss)
        "patience": 0,               # early stopping after this many epochs without improvement; 0: off
        "checkpoint-every-steps": 0, # also write last.pt every N optimizer steps inside an epoch; 0: off
        "log-every": 20,             # steps between progress updates (the only host syncs of the hot loop)
        "deterministic": False,      # torch.use_deterministic_algorithms (exact resume on GPU)
        "sync-bn": False,            # SyncBatchNorm under DDP
        "max-steps-per-epoch": None, # cap the optimizer steps of an epoch (quick checks)
    },
    "optim": {
        "name": "adamw",             # adamw | sgd
        "lr": 1.0e-4,                # per batch of train.batch-size x GPUs x accumulate
        "weight-decay": 0.05,
        "betas": [0.9, 0.999],       # adamw
        "momentum": 0.9,             # sgd
        "nesterov": False,           # sgd
        "no-decay": ["norm", "bias", "token"],  # exempt from weight decay: norm weights, biases, CLS/position tokens
        "fused": "auto",             # fused kernels on CUDA
    },
    "schedule": {
        "name": "cosine",            # cosine | step | constant (all after the warm-up), stepped every optimizer step
        "warmup-epochs": 1.0,
        "min-lr": 1.0e-6,            # cosine floor
        "step-epochs": 10,           # step: decay every this many epochs
        "gamma": 0.1,                # step: decay factor
    },
    "loss": dict(LOSS_DEFAULTS),
    "eval": {
        "batch-size": 128,
        "bootstrap": 1000,           # resamples of the AUC's 95% interval (test.py); 0: off
        "threshold": 0.5,            # for accuracies
        "video-aggregation": "mean", # frame scores -> video score (most-fake face per frame first), with video_id
        "allow-nonfinite": False,    # report non-finite / missing scores in the table instead of stopping
        "roc-log-fpr": False,        # roc.png with a log-scale FPR axis (the low-FPR region)
        "perturb": None,             # test.py robustness: e.g. "jpeg:70,blur:1.0,resize:0.5"
    },
}  # fmt: skip

# Keys holding file paths: relative values in a config file are read relative to that file.
PATH_KEYS = (("data", "csv"), ("data", "root"), ("model", "pretrained-file"))


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file or key."""


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
    for section, key in PATH_KEYS:
        value = (content.get(section) or {}).get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            content[section][key] = str((path.parent / value).resolve())
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
    where = f"config file {path}" if path is not None else "the config"
    for section, values in content.items():
        if section == "model":
            continue
        if section not in DEFAULTS:
            raise ConfigError(f"{where} has an unknown section '{section}' (known: model, {', '.join(DEFAULTS)}).")
        if not isinstance(values, dict):
            raise ConfigError(f"section '{section}' of {where} must be a mapping.")
        for key in values:
            if key not in DEFAULTS[section]:
                close = difflib.get_close_matches(key, DEFAULTS[section], n=1)
                hint = f" (did you mean {section}.{close[0]}?)" if close else ""
                raise ConfigError(f"{where} has an unknown key '{section}.{key}'{hint}.")
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
