"""Scoring a loader with a model: streamed, on the device, one host sync at the end; gathered across ranks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.errors import ConfigError
from loss_folder import logits_of

from .distributed import gather_arrays

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


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 batch -> device (non-blocking from pinned memory), channels-last if asked; the model does the rest."""
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


@dataclass
class Predictions:
    """Per-row outputs, sorted by the CSV row index."""

    indices: np.ndarray
    scores: np.ndarray  # probability of fake
    loss: float | None = None  # mean cross-entropy of the binary logits
    skipped: int = 0
    fine: dict[str, np.ndarray] = field(default_factory=dict)  # level2/level3 predicted class per row


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    loader,
    device: torch.device,
    *,
    precision: str = "fp32",
    channels_last: bool = False,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
    description: str = "eval",
) -> Predictions:
    """Score every row of ``loader`` (each rank its share), gather all ranks' rows, sort them by row index."""
    model.eval()
    indices, scores, fine = [], [], {}
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    count, skipped = 0, 0
    bar = tqdm(
        total=len(loader.dataset),
        unit="img",
        desc=description,
        disable=None if progress else True,
        dynamic_ncols=True,
        leave=False,
    )
    for batch in loader:
        skipped += int(batch["skipped"])
        bar.update(len(batch["label"]) + int(batch["skipped"]))
        if len(batch["label"]) == 0:
            continue
        images = to_device(batch["image"], device, channels_last)
        if transform is not None:
            images = transform(images)
        with autocast(device, precision):
            outputs = model(images)
        logits = logits_of(outputs).float()
        labels = batch["label"].to(device, non_blocking=True)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        count += len(labels)
        scores.append(logits.softmax(dim=-1)[:, 1])
        indices.append(batch["index"])
        if isinstance(outputs, dict):
            for level in ("level2", "level3"):
                if f"{level}_logits" in outputs:
                    fine.setdefault(level, []).append(outputs[f"{level}_logits"].argmax(dim=-1))
    bar.close()
    local_scores = torch.cat(scores).double().cpu().numpy() if scores else np.zeros(0)
    local_indices = torch.cat(indices).numpy() if indices else np.zeros(0, dtype=np.int64)
    local_fine = {k: torch.cat(v).cpu().numpy() for k, v in fine.items()}
    stats = np.array([loss_sum.item(), count, skipped], dtype=np.float64)
    names = sorted(local_fine)
    gathered = gather_arrays(local_indices, local_scores, stats, *[local_fine[k] for k in names])
    all_indices, all_scores, all_stats = gathered[0], gathered[1], gathered[2].reshape(-1, 3).sum(axis=0)
    order = np.argsort(all_indices, kind="stable")
    total = int(all_stats[1])
    return Predictions(
        indices=all_indices[order],
        scores=all_scores[order],
        loss=float(all_stats[0] / total) if total else None,
        skipped=int(all_stats[2]),
        fine={name: values[order] for name, values in zip(names, gathered[3:])},
    )
