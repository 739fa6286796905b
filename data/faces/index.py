"""An extraction's indexes, gathered from its per-video records: ``faces.csv`` (one row per crop), ``videos.csv``
(one row per source video: its status, frames, faces and the reason) and ``extraction_log.txt`` (the problems, one a
line). The extraction tool and ``merge`` write them the same way, so a merged set of shards equals one run."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from common.atomic import atomic_output, write_text_atomic

from .settings import (
    INDEX_COLUMNS,
    INDEX_NAME,
    LOG_NAME,
    STATUSES,
    TEMP_PREFIX,
    VIDEO_COLUMNS,
    VIDEO_DONE_NAME,
    VIDEOS_NAME,
    ExtractionError,
)


def read_record(folder: Path) -> dict | None:
    """The completion record of the video extracted into ``folder`` (None while it is not complete), with its
    ``status`` and ``reason`` (records written before statuses existed: ok when it has faces, else no-face)."""
    try:
        record = json.loads((folder / VIDEO_DONE_NAME).read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # cut short by a crash of the file system: the video is done again
    if "status" not in record:
        record["status"] = "ok" if record.get("faces") else "no-face"
        record["reason"] = "" if record.get("faces") else no_face_reason(len(record.get("frames", [])))
    return record


def no_face_reason(frames: int) -> str:
    return f"no face in the {frames} sampled frame(s)"


def ok_reason(frames: int, without_face: int, not_decoded: int) -> str:
    """The reason column of an ok video: what it lacks, if anything (empty when every sampled frame had a face)."""
    parts = []
    if without_face:
        parts.append(f"{without_face} of {frames} sampled frame(s) without a face")
    if not_decoded:
        parts.append(f"{not_decoded} sampled frame(s) past the end of the stream")
    return "; ".join(parts)


def done_video_ids(out: Path) -> list[str]:
    """Every complete video under ``out`` (its record, not in a temporary folder), in name order."""
    found = []
    for done in out.rglob(VIDEO_DONE_NAME):
        relative = done.parent.relative_to(out)
        if not any(part.startswith(TEMP_PREFIX) for part in relative.parts):
            found.append(relative.as_posix())
    return sorted(found)


def write_index(out: Path, video_ids: list[str] | None = None, folder: Path | None = None) -> dict:
    """Gather the records of ``video_ids`` (default: every complete video under ``out``) into ``faces.csv``,
    ``videos.csv`` and ``extraction_log.txt`` in ``folder`` (default ``out``), each written atomically; a video
    without a record is an error. Returns {"index rows": crops, "statuses": Counter, "frames without a face": N,
    "sampled frames not decoded": N}."""
    out = Path(out)
    folder = Path(folder) if folder is not None else out
    video_ids = done_video_ids(out) if video_ids is None else sorted(video_ids)
    rows, statuses, without, not_decoded, log = 0, Counter(), 0, 0, []
    with atomic_output(folder / INDEX_NAME) as faces, atomic_output(folder / VIDEOS_NAME) as videos:
        faces_writer, videos_writer = csv.writer(faces), csv.writer(videos)
        faces_writer.writerow(INDEX_COLUMNS)
        videos_writer.writerow(VIDEO_COLUMNS)
        for video_id in video_ids:
            record = read_record(out / video_id)
            if record is None:
                raise ExtractionError(
                    f"{out / video_id / VIDEO_DONE_NAME} is missing or unreadable: the video is not complete; run the "
                    "extraction command again (it extracts what is missing), then merge or index again."
                )
            status = record["status"]
            statuses[status] += 1
            video_index = out / video_id / INDEX_NAME
            crops = 0
            if video_index.is_file():
                with open(video_index, newline="") as handle:
                    reader = csv.reader(handle)
                    next(reader, None)
                    for row in reader:
                        faces_writer.writerow(row)
                        crops += 1
            rows += crops
            frames = record.get("frames", [])
            source = record.get("source_path") or video_id
            videos_writer.writerow([video_id, source, status, len(frames), crops, record.get("reason", "")])
            if status not in ("ok", "no-face"):
                log.append(f"{status}\t{video_id}\t{record.get('reason', '')}")
            without += len(record.get("frames_without_face", []))
            not_decoded += len(record.get("frames_not_decoded", []))
            log += [f"no face\t{video_id}\tframe {frame}" for frame in record.get("frames_without_face", [])]
            log += [
                f"not decoded\t{video_id}\tframe {frame} (past the end of the stream)"
                for frame in record.get("frames_not_decoded", [])
            ]
    write_text_atomic(folder / LOG_NAME, "".join(line + "\n" for line in log))
    return {
        "index rows": rows,
        "statuses": Counter({status: statuses[status] for status in STATUSES if statuses[status]}),
        "frames without a face": without,
        "sampled frames not decoded": not_decoded,
    }


def read_videos_index(path: Path) -> dict[str, dict]:
    """``videos.csv`` as {video_id: row}; {} when there is none."""
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {row["video_id"]: row for row in csv.DictReader(handle)}
