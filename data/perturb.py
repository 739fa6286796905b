"""Deterministic test-time perturbations for robustness tables: ``--perturb jpeg:70,blur:1.0,resize:0.5,noise:5``.

Each acts on one decoded uint8 (3, H, W) image at its native resolution, before the resize (or crop) to the model's
size, in the loader's workers (as UnivFD and SIDBench perturb):
``jpeg:Q`` re-encodes at quality Q; ``blur:SIGMA`` Gaussian blur; ``resize:F`` down-scales by F and back (lost
detail); ``noise:SIGMA`` adds Gaussian noise (seeded by the image's row, so every run sees the same noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms.v2 import functional as TF

from common.errors import UsageError

KINDS = ("jpeg", "blur", "resize", "noise")


class PerturbationError(UsageError, ValueError):
    """A --perturb entry that cannot be parsed; the message shows the expected form."""


@dataclass(frozen=True)
class Perturbation:
    kind: str
    amount: float

    @property
    def name(self) -> str:
        amount = int(self.amount) if float(self.amount).is_integer() else self.amount
        return f"{self.kind}{amount}"

    def __call__(self, image: torch.Tensor, row: int = 0) -> torch.Tensor:
        if self.kind == "jpeg":
            return decode_jpeg(encode_jpeg(image, quality=int(self.amount)))
        if self.kind == "blur":
            kernel = 2 * int(round(3 * self.amount)) + 1
            return TF.gaussian_blur(image, kernel_size=[kernel, kernel], sigma=[self.amount, self.amount])
        if self.kind == "resize":
            height, width = image.shape[-2:]
            small = [max(1, int(round(height * self.amount))), max(1, int(round(width * self.amount)))]
            down = TF.resize(image, small, antialias=True)
            return TF.resize(down, [height, width], antialias=True)
        generator = torch.Generator().manual_seed(int(row))
        noise = torch.randn(image.shape, generator=generator) * self.amount
        return (image.float() + noise).round().clamp(0, 255).to(torch.uint8)


def parse_perturbations(spec: str | None) -> list[Perturbation]:
    """``"jpeg:70,blur:1.0"`` -> perturbations; one clear error for a malformed entry."""
    if not spec:
        return []
    found = []
    for entry in str(spec).split(","):
        kind, _, amount = entry.strip().partition(":")
        try:
            value = float(amount)
        except ValueError:
            value = None
        if kind not in KINDS or value is None:
            raise PerturbationError(
                f"--perturb entry {entry!r} must be KIND:AMOUNT with KIND one of {', '.join(KINDS)} (e.g. "
                "jpeg:70,blur:1.0,resize:0.5)."
            )
        if kind == "jpeg" and not 1 <= value <= 100 or kind == "resize" and not 0 < value <= 1 or value < 0:
            raise PerturbationError(
                f"--perturb entry {entry!r}: jpeg takes a quality 1..100, resize a factor in (0, 1], blur/noise a "
                "sigma >= 0."
            )
        found.append(Perturbation(kind, value))
    return found
