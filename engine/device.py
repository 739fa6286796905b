"""Where and in which precision a model runs: ``train.precision`` resolved for a device, the autocast context of a
precision, and uint8 batches moved onto the device (the model does the rest)."""

from __future__ import annotations

import contextlib

import torch

from common.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision fp16 needs a CUDA device (use bf16 or fp32 on CPU).")
    return precision


def autocast(device: torch.device, precision: str):
    """The autocast context of a resolved precision (a null context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def channels_last_on(setting: bool | str | None, device: torch.device) -> bool:
    """``train.channels-last``: true, false, or "cpu" (on the CPU only: a small model at 64 px, the demo, runs faster
    in channels-last on 2 CPU cores and slower on an H200, whose first step it also costs 8 s)."""
    if setting == "cpu":
        return device.type == "cpu"
    if setting in (True, False, None):
        return bool(setting)
    raise ConfigError(f"train.channels-last must be true, false or cpu (on the CPU only); got {setting!r}.")


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 batch -> device (non-blocking from pinned memory), channels-last if asked; the model does the rest."""
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def compile_model(model: torch.nn.Module, mode: str | bool | None = None) -> torch.nn.Module:
    """``torch.compile`` with the project's settings: ``mode`` is a torch.compile mode name, or True / "default" /
    None for the default. A part that fails to compile runs eager (dynamo's ``suppress_errors``) rather than stopping
    a run; ``tools/benchmark.py`` reports the graph breaks so that a compiled number is not silently eager."""
    import torch._dynamo as dynamo

    dynamo.config.suppress_errors = True
    return torch.compile(model, mode=None if mode in (None, True, "default") else mode)
