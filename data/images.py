"""Image decoding: any PNG/JPEG/WebP (grey, RGBA, palette, 16-bit, CMYK) -> 8-bit RGB, resized on uint8.

``load_image`` is the single decode path of training, evaluation and the cache tool, so cached and on-the-fly
pixels are the same.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from common.errors import UserError

# Raised by decoders on unreadable files; the dataset turns them into one error naming the file.
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageDecodeError(UserError, RuntimeError):
    """An image file that is missing, truncated or not an image."""


# Images cached by tools/cache.py live in one uint8 array file (N, S, S, 3); a row's path is "FILE.u8#INDEX".
CONTAINER_SUFFIX = ".u8"
_containers: dict[str, np.memmap] = {}


def container_reference(path: str | Path) -> tuple[str, int] | None:
    """(container file, index) of a cached image path, or None for an ordinary file."""
    text = str(path)
    file, sep, index = text.rpartition("#")
    if not sep or not file.endswith(CONTAINER_SUFFIX) or not index.isdigit():
        return None
    return file, int(index)


def open_container(file: str) -> np.memmap:
    """The (N, S, S, 3) uint8 array of a cache container (opened once per process, read-only, memory-mapped)."""
    if file not in _containers:
        meta_path = Path(file + ".json")
        if not meta_path.is_file():
            raise ImageDecodeError(f"image cache {file} has no {meta_path.name}: rebuild it with tools/cache.py")
        try:
            meta = json.loads(meta_path.read_text())
            shape = (int(meta["count"]), int(meta["size"]), int(meta["size"]), 3)
        except (ValueError, KeyError, TypeError) as error:
            raise ImageDecodeError(
                f"image cache {file}: {meta_path.name} is damaged ({type(error).__name__}): rebuild it with "
                "tools/cache.py"
            ) from None
        expected = shape[0] * shape[1] * shape[2] * 3
        actual = Path(file).stat().st_size if Path(file).is_file() else None
        if actual is None:
            raise ImageDecodeError(
                f"image cache {file} does not exist: rebuild it with tools/cache.py, or fix the CSV's paths"
            )
        if actual != expected:
            raise ImageDecodeError(
                f"image cache {file} is truncated or damaged ({actual} bytes, {expected} expected for {shape[0]} "
                f"images of {shape[1]}px): rebuild it with tools/cache.py"
            )
        _containers[file] = np.memmap(file, dtype=np.uint8, mode="r", shape=shape)
    return _containers[file]


def _load_cached(file: str, index: int, size: int | None) -> torch.Tensor:
    try:
        images = open_container(file)
    except FileNotFoundError as error:
        raise ImageDecodeError(f"image cache {file} does not exist") from error
    if index >= len(images):
        raise ImageDecodeError(f"image cache {file} holds {len(images)} images; index {index} is out of range")
    if size is not None and images.shape[1] != size:
        raise ImageDecodeError(
            f"image cache {file} holds {images.shape[1]}px images but {size}px are needed: rebuild it with "
            f"tools/cache.py --size {size}"
        )
    return torch.from_numpy(np.array(images[index])).permute(2, 0, 1).contiguous()


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: scale to 8 bit instead of clipping at 255 (PIL's own conversion clips).
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.round(array * 255.0 / peak), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(
            np.clip(np.round(array * (255.0 if array.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
        )
    if image.mode == "P":
        image = image.convert("RGBA")  # palette transparency becomes alpha, then dropped below
    return image if image.mode == "RGB" else image.convert("RGB")


RESIZE_FILTER = Image.Resampling.BICUBIC
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

    Resizing is bicubic with antialiasing (PIL, on 8-bit data). Large JPEGs are decoded at reduced scale first
    (``draft``), which is much faster and leaves the result of a large downscale practically unchanged.
    Paths ``FILE.u8#INDEX`` read an image cached by tools/cache.py (already resized: the same pixels).
    """
    reference = container_reference(path)
    if reference is not None:
        return _load_cached(*reference, size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if size is not None and image.format == "JPEG" and min(image.size) >= 2 * size:
                    image.draft("RGB", (size, size))
                image = ImageOps.exif_transpose(image)
                image = _to_rgb(image)
                if size is not None and image.size != (size, size):
                    image = image.resize((size, size), RESIZE_FILTER)
                array = np.array(image, dtype=np.uint8)
    except FileNotFoundError as error:
        raise ImageDecodeError(f"image file {path} does not exist") from error
    except DECODE_ERRORS as error:
        if _is_empty(path):
            raise ImageDecodeError(f"image file {path} is empty (0 bytes): copy or extract it again") from error
        raise ImageDecodeError(f"image file {path} could not be decoded ({type(error).__name__}: {error})") from error
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _is_empty(path: str | Path) -> bool:
    try:
        return os.stat(path).st_size == 0
    except OSError:  # gone, or not a path at all: the decode error says what happened
        return False


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


def image_format(path: str | Path) -> tuple[str, int | None]:
    """(format, estimated JPEG quality or None) from the file header, without decoding the pixels."""
    if container_reference(path) is not None:
        return "cache", None
    with Image.open(path) as image:
        quality = estimate_jpeg_quality(image) if image.format == "JPEG" else None
        return image.format or "unknown", quality


# The IJG (libjpeg) standard luminance quantisation table at quality 50, in natural (row-major) order.
_IJG_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    dtype=np.float64,
)


def estimate_jpeg_quality(image: Image.Image) -> int | None:
    """IJG quality (1..100) whose scaled standard luminance table best matches the file's first table."""
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    table = np.asarray(tables[min(tables)], dtype=np.float64)
    if table.size != 64:
        return None
    best, best_error = None, np.inf
    for quality in range(1, 101):
        scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
        expected = np.clip(np.floor((_IJG_LUMA * scale + 50.0) / 100.0), 1, 255)
        # PIL reports the table in zig-zag or natural order depending on version; compare sorted values too.
        error = min(np.abs(np.sort(expected) - np.sort(table)).sum(), np.abs(expected - table).sum())
        if error < best_error:
            best, best_error = quality, error
    return best
