"""Where the extraction tool's inputs are: the videos and frame-image folders under a source, and the dataset's small
list and label files that are copied beside the crops for the builders (shared by the run and by ``merge``)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from common.atomic import write_bytes_atomic
from data.media import VIDEO_SUFFIXES, is_image, is_video

from .settings import INDEX_NAME, LOG_NAME, SETTINGS_NAME, VIDEOS_NAME, ExtractionError


def _walk(source: Path, skip: Path | None):
    """os.walk over ``source`` in name order, without hidden folders and without ``skip`` (an output inside it)."""
    skip = skip.resolve() if skip is not None else None
    for folder, subfolders, files in os.walk(source):
        subfolders[:] = sorted(
            d for d in subfolders if not d.startswith(".") and (skip is None or (Path(folder) / d).resolve() != skip)
        )
        yield Path(folder), files


def find_sources(source: Path, skip: Path | None = None) -> list[tuple[Path, str]]:
    """(path, video id) of every video file and frame-image folder under ``source``; the id is REL/NAME."""
    if source.is_file():
        if not is_video(source):
            raise ExtractionError(f"{source} is not a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder.")
        return [(source, source.stem)]
    if not source.is_dir():
        raise ExtractionError(f"source {source} does not exist: pass a video file or a folder of videos.")
    found = []
    for folder, files in _walk(source, skip):
        if folder != source and any(is_image(name) for name in files):
            found.append((folder, folder.relative_to(source).as_posix()))
        for name in sorted(files):
            if is_video(name):
                found.append((folder / name, (folder / name).relative_to(source).with_suffix("").as_posix()))
    clashes = sorted(video_id for video_id, count in Counter(v for _, v in found).items() if count > 1)
    if clashes:
        raise ExtractionError(
            f"{source} holds two sources with the same name {clashes[0]!r} "
            "(e.g. a.mp4 and a.avi, or a frame folder): rename one."
        )
    return sorted(found, key=lambda item: item[1])


METADATA_SUFFIXES = (".json", ".txt", ".csv")


RESERVED_NAMES = (INDEX_NAME, SETTINGS_NAME, LOG_NAME, VIDEOS_NAME)


def copy_metadata(source: Path, out: Path, limit_bytes: int = 64 << 20) -> None:
    """Copy the dataset's small list and label files (json, txt, csv) into the mirror so builders find them there."""
    if not source.is_dir():
        return
    for folder, files in _walk(source, out):
        for name in files:
            path = Path(folder) / name
            relative = path.relative_to(source)
            if path.suffix.lower() not in METADATA_SUFFIXES or path.stat().st_size > limit_bytes:
                continue
            if len(relative.parts) == 1 and name in RESERVED_NAMES:
                continue
            target = out / relative
            if not target.is_file() or target.stat().st_size != path.stat().st_size:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(target, path.read_bytes())  # whole or not at all: shards may copy it at once
