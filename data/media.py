"""The file suffixes the project reads as images and as videos: one list for indexing, extraction and predict."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})


def suffix_of(path: str | Path) -> str:
    """The lower-cased suffix of a path's last component (``Path.suffix`` without building a Path per name)."""
    name = os.path.basename(os.fspath(path))
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def is_image(path: str | Path) -> bool:
    return suffix_of(path) in IMAGE_SUFFIXES


def is_video(path: str | Path) -> bool:
    return suffix_of(path) in VIDEO_SUFFIXES
