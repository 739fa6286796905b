"""Training augmentations on uint8 (3, S, S) tensors, built from a config list (torchvision.transforms.v2).

    augment:
      - {name: hflip, p: 0.5}
      - {name: random-resized-crop, scale: [0.8, 1.0], ratio: [0.9, 1.1]}
      - {name: jpeg, p: 0.3, quality: [60, 100]}
      - {name: blur, p: 0.1, sigma: [0.1, 2.0]}
      - {name: color-jitter, p: 0.3, brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.0}
      - {name: random-crop, resize: 256}       # CNNDetection: shorter side to 256, then a random model-size crop
      - {name: affine, p: 1.0, degrees: 10, translate: [0.1, 0.1], scale: [0.9, 1.1]}   # rotation, shift, zoom

``jpeg``, ``blur`` and ``random-crop`` run first, in their config order, on the image at its native resolution
(before the resize to the model's size: JPEG and blur as UnivFD and SIDBench apply them; ``random-crop`` takes the
model-size window itself, so that resize leaves it alone); the other entries run in order on the model-size image.
Evaluation uses none.
Randomness comes from torch's global generator, which the dataset seeds per sample, so augmentation is a pure
function of (seed, epoch, row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchvision.transforms import v2

from common.errors import ConfigError


def _pair(value, name: str, key: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, Sequence) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise ConfigError(f"augmentation '{name}': '{key}' must be a number or [low, high]; got {value!r}.")


def _hflip(size, p=0.5):
    return v2.RandomHorizontalFlip(p=p)


def _random_resized_crop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1)):
    return v2.RandomResizedCrop(
        size,
        scale=_pair(scale, "random-resized-crop", "scale"),
        ratio=_pair(ratio, "random-resized-crop", "ratio"),
        antialias=True,
    )


def _random_crop(size, p=1.0, resize=None):
    """A random ``size`` x ``size`` window, after scaling the shorter side to ``resize`` (bilinear, antialiased) when
    given: CNNDetection's training crop (``--loadSize 256 --cropSize 224``). Black padding where the image is smaller.
    """
    crop = v2.RandomCrop(size, pad_if_needed=True)
    if resize is None:
        steps = [crop]
    elif isinstance(resize, int) and not isinstance(resize, bool) and resize >= size:
        steps = [v2.Resize(resize, interpolation=v2.InterpolationMode.BILINEAR, antialias=True), crop]
    else:
        raise ValueError(f"'resize' must be a whole number of pixels of at least the model size {size}; got {resize!r}")
    return v2.RandomApply(steps, p=p)


def _jpeg(size, p=0.3, quality=(60, 100)):
    low, high = _pair(quality, "jpeg", "quality")
    return v2.RandomApply([v2.JPEG(quality=(int(low), int(high)))], p=p)


def _blur(size, p=0.1, sigma=(0.1, 2.0), kernel_size=None):
    low, high = _pair(sigma, "blur", "sigma")
    kernel = kernel_size or (2 * int(round(3 * high)) + 1)
    return v2.RandomApply([v2.GaussianBlur(kernel_size=kernel, sigma=(low, high))], p=p)


def _color_jitter(size, p=0.3, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0):
    jitter = v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
    return v2.RandomApply([jitter], p=p)


def _affine(size, p=1.0, degrees=0.0, translate=None, scale=None):
    """torchvision's RandomAffine (black fill): GenD's rotation / shift / zoom, DeepfakeBench's rotation."""
    affine = v2.RandomAffine(
        degrees=degrees,
        translate=None if translate is None else _pair(translate, "affine", "translate"),
        scale=None if scale is None else _pair(scale, "affine", "scale"),
    )
    return v2.RandomApply([affine], p=p)


def _grayscale(size, p=0.05):
    return v2.RandomGrayscale(p=p)


AUGMENTATIONS = {
    "hflip": _hflip,
    "random-resized-crop": _random_resized_crop,
    "random-crop": _random_crop,
    "jpeg": _jpeg,
    "blur": _blur,
    "color-jitter": _color_jitter,
    "affine": _affine,
    "grayscale": _grayscale,
}


def build_augment(spec: Sequence[Mapping[str, Any]] | None, size: int) -> v2.Compose | None:
    """The training augmentation pipeline of a config list, or None for an empty list."""
    if not spec:
        return None
    steps = []
    for position, entry in enumerate(spec):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ConfigError(
                f"data.augment[{position}] must be a mapping with a 'name' (one of {', '.join(AUGMENTATIONS)}); got "
                f"{entry!r}."
            )
        options = {k.replace("-", "_"): v for k, v in entry.items() if k != "name"}
        name = entry["name"]
        if name not in AUGMENTATIONS:
            raise ConfigError(
                f"data.augment[{position}]: unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}."
            )
        try:
            steps.append(AUGMENTATIONS[name](size, **options))
        except (TypeError, ValueError) as error:  # unknown option, or a bad value (torchvision's checks included)
            raise ConfigError(f"data.augment[{position}] ({name}): {str(error).rstrip('.')}.") from error
    return v2.Compose(steps)


NATIVE_RESOLUTION_AUGMENTATIONS = ("jpeg", "blur", "random-crop")


def split_native(spec: Sequence[Mapping[str, Any]] | None) -> tuple[list, list]:
    """(entries applied at native resolution, entries applied after the resize), each in config order."""
    spec = list(spec or [])
    native = [e for e in spec if isinstance(e, Mapping) and e.get("name") in NATIVE_RESOLUTION_AUGMENTATIONS]
    return native, [e for e in spec if e not in native]


def apply_augment(augment: v2.Compose | None, image: torch.Tensor) -> torch.Tensor:
    if augment is None:
        return image
    out = augment(image)
    return out if out.dtype == torch.uint8 else out.clamp(0, 255).to(torch.uint8)
