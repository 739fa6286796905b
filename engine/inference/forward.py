"""One forward pass of a detector over uint8 batches on the device, the only place a model is scored: labelled
loaders (validation during training, test.py's scoring) and predict.py's face crops."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.batching import batched
from data.targets import FINE_LEVELS
from engine.device import autocast, to_device
from engine.distributed import gather_arrays
from loss_folder import logits_of

from .inputs import FaceCrop


@dataclass
class FaceResult:
    crop: FaceCrop
    score: float
    fine: dict[str, np.ndarray] = field(default_factory=dict)  # level -> class probabilities


def _forward(
    model: torch.nn.Module,
    images: torch.Tensor,
    device: torch.device,
    *,
    precision: str,
    channels_last: bool,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(float32 real/fake logits, fine-grained logits by level) of a uint8 batch, on the device, under autocast."""
    images = to_device(images, device, channels_last)
    if transform is not None:
        images = transform(images)
    with autocast(device, precision):
        outputs = model(images)
    fine = {}
    if isinstance(outputs, dict):
        fine = {level: outputs[f"{level}_logits"] for level in FINE_LEVELS if f"{level}_logits" in outputs}
    return logits_of(outputs).float(), fine


@dataclass
class Predictions:
    """Per-row outputs of a labelled loader, sorted by the CSV row index."""

    indices: np.ndarray
    scores: np.ndarray  # probability of fake
    logits: np.ndarray | None = None  # the fake-vs-real logit difference (what a temperature divides)
    loss: float | None = None  # mean cross-entropy of the binary logits
    skipped: int = 0
    fine: dict[str, np.ndarray] = field(default_factory=dict)  # level2/level3 predicted class per row


@torch.no_grad()
def score_loader(
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
    """Score every row of a labelled loader (each rank its share; streamed on the device, one host sync at the end),
    gather all ranks' rows, sort them by row index."""
    model.eval()
    indices, scores, logit_gaps, fine = [], [], [], {}
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
        logits, fine_logits = _forward(
            model, batch["image"], device, precision=precision, channels_last=channels_last, transform=transform
        )
        labels = batch["label"].to(device, non_blocking=True)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        count += len(labels)
        scores.append(logits.softmax(dim=-1)[:, 1])
        logit_gaps.append(logits[:, 1] - logits[:, 0])
        indices.append(batch["index"])
        for level, level_logits in fine_logits.items():
            fine.setdefault(level, []).append(level_logits.argmax(dim=-1))
    bar.close()
    local_scores = torch.cat(scores).double().cpu().numpy() if scores else np.zeros(0)
    local_logits = torch.cat(logit_gaps).double().cpu().numpy() if logit_gaps else np.zeros(0)
    local_indices = torch.cat(indices).numpy() if indices else np.zeros(0, dtype=np.int64)
    local_fine = {k: torch.cat(v).cpu().numpy() for k, v in fine.items()}
    stats = np.array([loss_sum.item(), count, skipped], dtype=np.float64)
    names = sorted(local_fine)
    gathered = gather_arrays(local_indices, local_scores, local_logits, stats, *[local_fine[k] for k in names])
    all_indices, all_scores, all_logits = gathered[0], gathered[1], gathered[2]
    all_stats = gathered[3].reshape(-1, 3).sum(axis=0)
    order = np.argsort(all_indices, kind="stable")
    total = int(all_stats[1])
    return Predictions(
        indices=all_indices[order],
        scores=all_scores[order],
        logits=all_logits[order],
        loss=float(all_stats[0] / total) if total else None,
        skipped=int(all_stats[2]),
        fine={name: values[order] for name, values in zip(names, gathered[4:])},
    )


@torch.no_grad()
def score_crops(
    model: torch.nn.Module,
    crops: Iterable[FaceCrop],
    device: torch.device,
    *,
    precision: str = "fp32",
    batch_size: int = 64,
    channels_last: bool = False,
) -> Iterator[FaceResult]:
    """Fake probability (and fine-grained class probabilities) of every crop, batched on ``device``; yielded in the
    crops' order as each batch is scored (a crop's pixels are let go once it is scored)."""
    model.eval()
    for batch in batched(crops, batch_size):
        logits, fine_logits = _forward(
            model, torch.stack([c.pixels for c in batch]), device, precision=precision, channels_last=channels_last
        )
        scores = logits.softmax(dim=-1)[:, 1].cpu().numpy()
        fine = {level: values.float().softmax(dim=-1).cpu().numpy() for level, values in fine_logits.items()}
        for i, crop in enumerate(batch):
            crop.pixels = crop.pixels[:0]  # scored: let the pixels go, keep the bookkeeping
            yield FaceResult(crop, float(scores[i]), {level: probs[i] for level, probs in fine.items()})
