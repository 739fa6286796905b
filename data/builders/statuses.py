"""The extraction's per-video statuses in a split CSV: a listed video that gave no crop (no-face, decode-error,
too-short, unreadable: python -m data.extract_faces's record in its folder) becomes one placeholder row whose path is
the video and whose ``extraction_status`` says why; crop rows say ok. Training leaves placeholder rows out
(data.protocols), data.validate counts them, evaluation counts them unscored."""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath


def extraction_record(folder: Path) -> dict | None:
    """The record data.extract_faces leaves in a video's folder (its status, reason and source path); None when the
    folder was made by another tool."""
    from ..faces.index import read_record

    return read_record(folder)


def video_columns(video, source_dataset: str) -> dict:
    """The columns every row of a video carries, a crop's or its placeholder's: labels, groups, video and identity."""
    return {
        "label": video.label,
        "split": video.split,
        "forgery_type": video.forgery_type,
        "generator": video.generator,
        "source_dataset": source_dataset,
        "video_id": video.folder,
        "identity": video.identity,
    }


def placeholder_row(video, source_dataset: str, record: dict) -> dict:
    """The one row of a listed video that gave no crop: its own file as the path (beside where its crop folder is,
    relative as the crops' paths are), its labels and groups as its crops would have, and its extraction status."""
    folder = PurePosixPath(video.folder)
    source_name = PurePosixPath(record.get("source_path") or video.folder).name
    return {
        "path": str(folder.parent / source_name) if str(folder.parent) != "." else source_name,
        **video_columns(video, source_dataset),
        "frame": "",
        "face_index": "",
        "extraction_status": record["status"],
    }


def placeholder_notes(rows: list[dict]) -> list[str]:
    """The builder's note counting the placeholder rows by status (none when every video gave crops)."""
    placeholders = Counter(row["extraction_status"] for row in rows if row.get("extraction_status") not in ("", "ok"))
    if not placeholders:
        return []
    said = ", ".join(f"{status} {count}" for status, count in sorted(placeholders.items()))
    return [
        f"{sum(placeholders.values())} listed video(s) gave no crop ({said}): one row each with its extraction_status "
        "and the video as its path; training skips them, test.py counts them unscored"
    ]
