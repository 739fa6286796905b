"""Image files and cached images to 8-bit RGB arrays, without torch: the decoder of ``data.images.load_image`` and
of the processes that ``python -m data.validate --check-images`` starts (each would otherwise import torch).

Any PNG/JPEG/WebP (grey, RGBA, palette, 16-bit, CMYK) becomes an (H, W, 3) uint8 array, resized on uint8.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.errors import UserError

# Raised by decoders on unreadable files; the dataset turns them into one error naming the file.
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageDecodeError(UserError, RuntimeError):
    """An image file that is missing, truncated or not an image."""


# Images cached by tools/cache.py live in one uint8 array file (N, S, S, 3); a row's path is "FILE.u8#INDEX".
CONTAINER_SUFFIX = ".u8"
_containers: dict[str, np.memmap] = {}
RESIZE_FILTER = Image.Resampling.BICUBIC


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


def _read_cached(file: str, index: int, size: int | None) -> np.ndarray:
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
    return np.array(images[index])


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


def decode_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode ``path`` to a uint8 (H, W, 3) RGB array, resized to (size, size) when ``size`` is given.

    Resizing is bicubic with antialiasing (PIL, on 8-bit data). Large JPEGs are decoded at reduced scale first
    (``draft``), which is much faster and leaves the result of a large downscale practically unchanged.
    Paths ``FILE.u8#INDEX`` read an image cached by tools/cache.py (already resized: the same pixels).
    Raises ``ImageDecodeError`` naming the file when it is missing, empty, truncated or not an image.
    """
    reference = container_reference(path)
    if reference is not None:
        return _read_cached(*reference, size)
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
                return np.array(image, dtype=np.uint8)
    except FileNotFoundError as error:
        raise ImageDecodeError(f"image file {path} does not exist") from error
    except DECODE_ERRORS as error:
        if _is_empty(path):
            raise ImageDecodeError(f"image file {path} is empty (0 bytes): copy or extract it again") from error
        raise ImageDecodeError(f"image file {path} could not be decoded ({type(error).__name__}: {error})") from error


def _is_empty(path: str | Path) -> bool:
    try:
        return os.stat(path).st_size == 0
    except OSError:  # gone, or not a path at all: the decode error says what happened
        return False


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
