"""Images as uint8 (3, H, W) tensors for training, evaluation and the cache tool: decoding, crop policies, resizing.

``load_image`` is the single decode path of training, evaluation and the cache tool (through
``data.decoding.decode_rgb``, which needs no torch), so cached and on-the-fly pixels are the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .decoding import (
    RESIZE_FILTER,
    decode_rgb,
)

CROP_POLICIES = ("resize", "pad", "center-crop")


def fit_to_size(image: torch.Tensor, size: int, policy: str = "resize") -> torch.Tensor:
    """A decoded uint8 (3, H, W) image brought to (3, size, size) by a crop policy.

    ``resize``: both sides to ``size`` (the aspect ratio may change); ``pad``: the longer side to ``size``, keeping
    the aspect ratio, centred on black; ``center-crop``: no resampling at all, the central ``size`` x ``size``
    window (black padding where the image is smaller), as CNNDetection / UnivFD test.
    """
    if policy not in CROP_POLICIES:
        raise ValueError(f"data.crop must be one of {', '.join(CROP_POLICIES)}; got {policy!r}.")
    height, width = image.shape[-2:]
    if policy == "center-crop":
        top, left = (height - size) // 2, (width - size) // 2
        canvas = torch.zeros((3, size, size), dtype=torch.uint8)
        source = image[:, max(0, top) : max(0, top) + size, max(0, left) : max(0, left) + size]
        y, x = max(0, -top), max(0, -left)
        canvas[:, y : y + source.shape[1], x : x + source.shape[2]] = source
        return canvas
    if policy == "resize":
        target = (size, size)
    else:
        scale = size / max(height, width)
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if (width, height) != target:
        picture = Image.fromarray(image.permute(1, 2, 0).numpy()).resize(target, RESIZE_FILTER)
        image = torch.from_numpy(np.array(picture, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    if policy == "pad":
        canvas = torch.zeros((3, size, size), dtype=torch.uint8)
        y, x = (size - image.shape[1]) // 2, (size - image.shape[2]) // 2
        canvas[:, y : y + image.shape[1], x : x + image.shape[2]] = image
        return canvas
    return image


def load_image(path: str | Path, size: int | None = None) -> torch.Tensor:
    """Decode ``path`` to a uint8 (3, H, W) RGB tensor, resized to (size, size) when ``size`` is given.

    ``decode_rgb`` does the work (bicubic antialiased resizing on 8-bit data, reduced-scale JPEG decoding, cached
    images ``FILE.u8#INDEX`` of tools/cache.py); this adds the channel-first tensor the loaders batch.
    """
    return torch.from_numpy(decode_rgb(path, size)).permute(2, 0, 1).contiguous()


def resize_array(image: np.ndarray, size: int) -> torch.Tensor:
    """An (H, W, 3) uint8 RGB array (e.g. a detected face crop) -> a (3, size, size) uint8 tensor.

    The same bicubic antialiased resize as ``load_image``, so a crop scored in memory (predict.py) gets the pixels it
    would get when written as PNG and read back by the training loader.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array; got shape {image.shape}.")
    picture = Image.fromarray(image)
    if picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(picture, dtype=np.uint8)).permute(2, 0, 1).contiguous()
