"""Extraction across machines: ``--shard I/N`` gives each machine a deterministic share of the videos (a hash of
each source's relative path, so a video keeps its shard when others are added), and ``merge`` joins the shards'
outputs (one folder or several) into one index, refusing shards made with other settings, missing or unfinished.

A shard writes its crops where an unsharded run would (``OUT/REL/NAME/``) and its own index, log and record in
``OUT/shards/I-of-N/``; ``python -m data.extract_faces merge OUT [MORE_OUT ...]`` writes ``faces.csv``,
``videos.csv`` and ``extraction_log.txt`` into the first folder (or ``--out``), from the same per-video records
an unsharded run reads, so the merged index equals one unsharded run's, row for row.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from common.atomic import write_text_atomic

from .index import read_record, read_videos_index, write_index
from .settings import SETTINGS_NAME, SHARD_RECORD, SHARDS_DIR, VIDEOS_NAME, ExtractionError, ExtractionSettings
from .sources import copy_metadata


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1 to ``count``) of ``count``."""

    index: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, source_path: str) -> bool:
        return shard_of(source_path, self.count) == self.index


def parse_shard(text: str) -> Shard:
    """``I/N`` with 1 <= I <= N; ``0/N`` is read as ``N/N``, so that 0-based array indices 0..N-1 also cover every
    shard once."""
    try:
        index, count = (int(part) for part in text.strip().split("/"))
    except ValueError:
        raise ExtractionError(f"--shard {text!r} is not I/N (e.g. 2/8: the second of eight shares).") from None
    if count < 1 or not 0 <= index <= count:
        raise ExtractionError(f"--shard {text!r}: N must be at least 1 and I between 1 and N (or 0 for N).")
    return Shard(index or count, count)


def shard_of(source_path: str, count: int) -> int:
    """The shard (1 to ``count``) of a source by its path relative to the source folder: stable whatever else the
    folder holds (the first 8 bytes of its SHA-1, modulo ``count``)."""
    digest = hashlib.sha1(source_path.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def shard_folder(out: Path, shard: Shard) -> Path:
    return out / SHARDS_DIR / shard.name


def write_shard_record(out: Path, shard: Shard, settings: ExtractionSettings, source: Path, summary: dict) -> None:
    """The shard's record, written last: its presence says the shard finished (merge refuses a shard without it)."""
    record = {
        "shard": str(shard),
        "index": shard.index,
        "count": shard.count,
        "settings": settings.to_dict(),
        "source": str(source.resolve()),
        "videos": summary["videos"],
        "statuses": summary["statuses"],
    }
    write_text_atomic(shard_folder(out, shard) / SHARD_RECORD, json.dumps(record, indent=2) + "\n")


def _differences(there: dict, here: dict) -> str:
    return ", ".join(
        f"{name} {json.dumps(there.get(name))} there, {json.dumps(here.get(name))} here"
        for name in sorted(set(there) | set(here))
        if there.get(name) != here.get(name)
    )


def _shards_in(folder: Path) -> list[tuple[Path, dict]]:
    """(shard folder, record) of every shard under the --out folder ``folder``; an unfinished one (no record) is an
    error."""
    if not folder.is_dir():
        raise ExtractionError(f"{folder} is not a folder: pass the --out folders of the runs made with --shard I/N.")
    found = []
    for candidate in sorted((folder / SHARDS_DIR).glob("*-of-*")):
        record_file = candidate / SHARD_RECORD
        if not record_file.is_file():
            raise ExtractionError(
                f"shard {candidate.name.replace('-of-', '/')} in {folder} has not finished (no {record_file.name}): "
                "run its command again (it resumes where it stopped), then merge."
            )
        found.append((candidate, json.loads(record_file.read_text())))
    if not found:
        raise ExtractionError(
            f"{folder} holds no shard ({SHARDS_DIR}/I-of-N/{SHARD_RECORD}): pass the --out folders of the runs made "
            "with --shard I/N."
        )
    return found


def _check_shards(shards: list[tuple[Path, Path, dict]], out: Path) -> ExtractionSettings:
    """The shards' common settings; one error naming the shard when they differ, repeat, or some are missing."""
    first_folder, _, first = shards[0]
    reference = ExtractionSettings.from_dict(first["settings"]).to_dict()
    for folder, _, record in shards[1:]:
        settings = ExtractionSettings.from_dict(record["settings"]).to_dict()
        if settings != reference:
            raise ExtractionError(
                f"shard {record['shard']} in {folder} was made with other settings than shard {first['shard']} in "
                f"{first_folder} ({_differences(settings, reference)}): extract it again with the same settings "
                "into another folder, or merge only shards made alike."
            )
    settings_file = out / SETTINGS_NAME
    if settings_file.is_file():
        there = ExtractionSettings.from_dict(json.loads(settings_file.read_text())["settings"]).to_dict()
        if there != reference:
            raise ExtractionError(
                f"{out} was extracted with other settings than the shards ({_differences(there, reference)}; "
                f"see {settings_file}): merge into a new --out folder."
            )
    counts = sorted({record["count"] for _, _, record in shards})
    if len(counts) > 1:
        raise ExtractionError(
            f"the shards split the videos in different numbers of shares ({', '.join(map(str, counts))}): merge the "
            "shards of one split (I/N with one N)."
        )
    seen: dict[int, Path] = {}
    for folder, _, record in shards:
        if record["index"] in seen:
            raise ExtractionError(
                f"shard {record['shard']} is both in {seen[record['index']]} and in {folder}: pass each shard once."
            )
        seen[record["index"]] = folder
    missing = [f"{index}/{counts[0]}" for index in range(1, counts[0] + 1) if index not in seen]
    if missing:
        raise ExtractionError(
            f"shard(s) {', '.join(missing)} missing: run python -m data.extract_faces with --shard "
            f"{missing[0]} (the same settings), or pass the folder that holds it."
        )
    return ExtractionSettings.from_dict(first["settings"])


def _move_video(source: Path, target: Path) -> None:
    """A shard's video folder into the merged folder (a rename on one file system); an identical complete video
    already there is kept, a different one is an error."""
    if target.exists():
        if read_record(target) == read_record(source):
            return
        raise ExtractionError(
            f"{target} already holds another extraction of that video than {source}: remove one of them, then merge."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))


def merge(folders: list[Path], out: Path | None = None) -> dict:
    """Join the shards found in ``folders`` into ``out`` (default: the first folder): video folders of other folders
    are moved in, then ``faces.csv``, ``videos.csv`` and ``extraction_log.txt`` are written from every shard's
    videos. Returns the summary printed by ``python -m data.extract_faces merge``."""

    # a shard's own folder (OUT/shards/I-of-N) stands for its --out folder, named once
    folders = [Path(f).parent.parent if Path(f).parent.name == SHARDS_DIR else Path(f) for f in folders]
    folders = list(dict.fromkeys(folders))
    out = Path(out) if out is not None else folders[0]
    shards = [(folder, shard, record) for folder in folders for shard, record in _shards_in(folder)]
    settings = _check_shards(shards, out)
    out.mkdir(parents=True, exist_ok=True)
    video_ids: dict[str, str] = {}
    for folder, shard, record in shards:
        for video_id in read_videos_index(shard / VIDEOS_NAME):
            if video_id in video_ids:
                raise ExtractionError(
                    f"video {video_id} is in shard {video_ids[video_id]} and in shard {record['shard']}: the shards "
                    "were made from different source folders; merge the shards of one source."
                )
            video_ids[video_id] = record["shard"]
            if folder.resolve() != out.resolve():
                _move_video(folder / video_id, out / video_id)
    for folder, _, record in shards:
        if folder.resolve() != out.resolve():
            copy_metadata(folder, out)  # the dataset's list files, and the shard's records under shards/
    settings_file = out / SETTINGS_NAME
    if not settings_file.is_file():
        first = folders[0] / SETTINGS_NAME
        record = json.loads(first.read_text()) if first.is_file() else {}
        record.update(settings=settings.to_dict(), merged_from=[str(folder.resolve()) for folder in folders])
        write_text_atomic(settings_file, json.dumps(record, indent=2))
    written = write_index(out, list(video_ids))
    return {
        "shards": len(shards),
        "videos": len(video_ids),
        **{f"status {status}": count for status, count in written["statuses"].items()},
        "index rows": written["index rows"],
    }
