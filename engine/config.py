"""The one config loader: YAML files (with ``base:`` inheritance), defaults, and ``key=value`` overrides.

A run config has a ``model`` section (the detector's keys, verbatim from the released CAEL.yaml plus our
switches) and the engine's sections. Paths inside a file are read relative to that file, never to the cwd.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from common.config import (
    coerce_value,
    deep_merge,
    did_you_mean,
    parse_override,
    read_config_file,
    set_value,
    types_of_default,
)
from common.errors import ConfigError, UnknownKeyError
from loss_folder import LOSS_DEFAULTS

# Defaults of the engine's sections: a config file states only what differs. Where the paper does not give a
# value (its training recipe is unpublished), the default is this project's choice (docs/training.md, "Defaults").
DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "csv": None,  # split CSV (schema: data/schema.py); relative paths: to the config file
        "root": None,  # folder the CSV's paths are relative to; default: the CSV's folder
        "protocol": "intra",  # data/protocols/<name>.yaml, or a YAML path
        "fold": None,  # the fold of a protocol with folds (e.g. the training generator)
        "augment": [  # training augmentations (data/transforms.py); evaluation uses none
            {"name": "hflip", "p": 0.5},
            {"name": "random-resized-crop", "scale": [0.85, 1.0], "ratio": [0.9, 1.1]},
            {"name": "jpeg", "p": 0.2, "quality": [70, 100]},
            {"name": "blur", "p": 0.1, "sigma": [0.1, 1.5]},
        ],
        "on-error": "error",  # a missing/corrupt image: error (stop, naming it) or skip (and count)
        "workers": "auto",  # loader processes per GPU; auto: the cores, shared among ranks
        "balanced": False,  # class-balanced sampling (with replacement)
        "max-skipped": 0.01,  # on-error skip: stop when more than this fraction of a pass is unreadable
        "face-extraction": None,  # data.extract_faces settings of the crops; train.py fills it from the CSV's side
        "crop": "resize",  # image -> model size: resize | pad (isotropic, black borders) | center-crop
        "reals": "matched",  # fold protocols: training reals of the fold's own source dataset(s), or all
    },
    "train": {
        "epochs": 20,
        "batch-size": 64,  # per GPU
        "seed": 0,
        "device": "auto",  # auto: CUDA when present, else CPU
        "precision": "auto",  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
        "channels-last": True,  # true | false | cpu: on the CPU only
        "compile": False,  # false | true | a torch.compile mode (e.g. max-autotune)
        "grad-clip": 1.0,  # max gradient norm; 0 or null: off
        "accumulate": 1,  # micro-batches per optimizer step
        "ema": False,  # keep an exponential moving average of the weights (validated, saved)
        "ema-decay": 0.999,
        "precise-bn": 0,  # before each validation, recompute batch-norm statistics on this many training images; 0: off
        "select-metric": "auc",  # validation metric that picks best.pt (any of engine/metrics.py, or loss)
        "patience": 0,  # early stopping after this many epochs without improvement; 0: off
        "checkpoint-every-steps": 0,  # also write last.pt every N optimizer steps inside an epoch; 0: off
        "log-every": 20,  # steps between progress updates (the only host syncs of the hot loop)
        "deterministic": False,  # torch.use_deterministic_algorithms (exact resume on GPU)
        # CUDA start-up (docs/performance.md, "The first step"): cuDNN's autotuning (trying every convolution
        # algorithm for each new input shape) and cuDNN attention (a plan built per shape) are off: measured on an
        # H200, the released configuration's first step took 40 s with autotuning and 10.5 s without, 8.0 s without
        # cuDNN attention either, and the later steps were no slower (1,270 images/s against 717-978 with autotuning)
        "cudnn-benchmark": False,
        "cudnn-attention": False,
        "sync-bn": False,  # SyncBatchNorm under DDP
        "max-steps-per-epoch": None,  # cap the optimizer steps of an epoch (quick checks)
        # at selection: a map of probabilities fitted on the validation rows, stored in best.pt (temperature | platt |
        # isotonic | none), and the uncertain band whose error on the answered validation rows is at most this risk
        "calibrate": "temperature",
        "uncertain-risk": 0.05,
    },
    "optim": {
        "name": "adamw",  # adamw | sgd
        "lr": 1.0e-4,  # per batch of train.batch-size x GPUs x accumulate
        "weight-decay": 0.05,
        "betas": [0.9, 0.999],  # adamw
        "momentum": 0.9,  # sgd
        "nesterov": False,  # sgd
        "no-decay": ["norm", "bias", "token"],  # exempt from weight decay: norm weights, biases, CLS/position tokens
        "layer-decay": 1.0,  # ViT backbones: block i of L learns at lr * layer-decay^(L - i) (BEiT / MAE); 1.0: off
        "fused": "auto",  # fused kernels on CUDA
    },
    "schedule": {
        "name": "cosine",  # cosine | step | constant (all after the warm-up), stepped every optimizer step
        "warmup-epochs": 1.0,
        "min-lr": 1.0e-6,  # cosine floor
        "step-epochs": 10,  # step: decay every this many epochs
        "gamma": 0.1,  # step: decay factor
    },
    "loss": dict(LOSS_DEFAULTS),
    "eval": {
        "batch-size": 128,
        "bootstrap": 1000,  # resamples of the AUC's 95% interval (test.py); 0: off
        "interval": "auto",  # the AUC's 95% interval: bootstrap | delong (Obuchowski's with videos) | auto (by size)
        "bootstrap-max-rows": 100_000,  # auto: the bootstrap up to this many rows in a group, DeLong above
        "threshold": 0.5,  # for accuracies
        "video-aggregation": "mean",  # frame scores -> video score (most-fake face per frame first), with video_id
        "allow-nonfinite": False,  # report non-finite / missing scores in the table instead of stopping
        "roc-log-fpr": False,  # roc.png with a log-scale FPR axis (the low-FPR region)
        "perturb": None,  # test.py robustness: e.g. "jpeg:70,blur:1.0,resize:0.5"
        "conventions": None,  # test.py: also each group as references compute it, e.g. "deepfakebench,univfd"
        "missing": "exclude",  # unscored test rows: exclude | as-fake (score 1) | as-real (score 0)
    },
}

# Keys whose default does not tell every type they accept.
ALLOWED_TYPES: dict[tuple[str, str], tuple[type, ...]] = {
    ("data", "csv"): (str, type(None)),
    ("data", "root"): (str, type(None)),
    ("data", "fold"): (str, type(None)),
    ("data", "protocol"): (str,),
    ("data", "workers"): (str, int),
    ("data", "face-extraction"): (dict, type(None)),
    ("train", "compile"): (bool, str),
    ("train", "channels-last"): (bool, str),  # true | false | cpu (engine/device.py: channels_last_on)
    ("train", "calibrate"): (str, type(None)),
    ("train", "grad-clip"): (float, type(None)),
    ("train", "max-steps-per-epoch"): (int, type(None)),
    ("eval", "perturb"): (str, type(None)),
    ("eval", "conventions"): (str, type(None)),
    ("loss", "class-weights"): (list, type(None)),
    ("loss", "focal-alpha"): (float, type(None)),
}


def _model_defaults(model_config: Mapping[str, Any]) -> dict[str, Any]:
    from model.registry import model_defaults

    return model_defaults(model_config.get("name", "cael"))


def check_config(config: dict[str, Any], where: str = "the config") -> dict[str, Any]:
    """Check every known key's type against its default (numbers: int -> float where a float is due); in place."""
    for section, defaults in DEFAULTS.items():
        values = config.get(section)
        if not isinstance(values, dict):
            raise ConfigError(f"section '{section}' of {where} must be a mapping.")
        for key, default in defaults.items():
            if key not in values:
                continue
            allowed = ALLOWED_TYPES.get((section, key)) or types_of_default(default)
            if allowed is not None:
                values[key] = coerce_value(f"{section}.{key}", values[key], allowed)
    channels_last = (config.get("train") or {}).get("channels-last")
    if isinstance(channels_last, str) and channels_last != "cpu":  # refused before any data is read
        from engine.device import channels_last_on

        channels_last_on(channels_last, None)
    model = config.get("model")
    if isinstance(model, dict):
        from model.registry import check_model_config

        check_model_config(model)
    return config


def _check_sections(content: Mapping[str, Any], where: str) -> None:
    for section, values in content.items():
        if section == "model":
            if not isinstance(values, dict):
                raise ConfigError(f"the 'model' section of {where} must be a mapping.")
            continue
        if section not in DEFAULTS:
            hint = did_you_mean(section, [*DEFAULTS, "model"]) or f" (known: model, {', '.join(DEFAULTS)})"
            raise UnknownKeyError(f"{where} has an unknown section '{section}'{hint}.")
        if not isinstance(values, dict):
            raise ConfigError(f"section '{section}' of {where} must be a mapping.")
        for key in values:
            if key not in DEFAULTS[section]:
                hint = did_you_mean(key, DEFAULTS[section], prefix=f"{section}.")
                raise UnknownKeyError(f"{where} has an unknown key '{section}.{key}'{hint}.")


def flatten_overrides(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"csv": x}}`` -> ``{"data.csv": x}`` (lists and scalars are values, mappings are walked)."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_overrides(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def apply_overrides(config: dict[str, Any], overrides: Iterable[str] | Mapping[str, Any] = ()) -> dict[str, Any]:
    """The one override path: ``key=value`` strings (``--set``) or a {dotted key: value} mapping, checked and typed."""
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(text) for text in overrides)
    for dotted, value in items:
        set_value(config, dotted, value)
    return check_config(config)


def load_config(path: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] = ()) -> dict[str, Any]:
    """The fully resolved run config: engine defaults < model defaults < file (with bases) < overrides."""
    content = read_config_file(path) if path is not None else {}
    where = f"config file {path}" if path is not None else "the config"
    _check_sections(content, where)
    config = deep_merge(DEFAULTS, {k: v for k, v in content.items() if k != "model"})
    model = content.get("model", {})
    config["model"] = deep_merge(_model_defaults(model), model)
    check_config(config, where)
    return apply_overrides(config, overrides)


def save_config(config: Mapping[str, Any], path: str | Path) -> None:
    from common.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(dict(config), sort_keys=False))
