"""What every dataset builder shares: the Video record, the options, the registry, crop rows, splits, the CSV.

A dataset module (``data/builders/ffpp.py`` and its siblings) reads its dataset's lists into ``Video`` records and
registers one function ``@register_builder("name")`` that returns ``rows_of_videos(...)``: (rows, notes).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from common.atomic import atomic_output
from common.errors import UsageError, UserError
from common.registry import Registry

from ..build_index import assign_splits
from ..media import is_image
from ..schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, SPLITS
from .statuses import extraction_record, placeholder_notes, placeholder_row, video_columns

CROP_NAME = re.compile(r"^f(\d+)_(\d+)\.[A-Za-z]+$")  # data.extract_faces's crop names: f{frame:06d}_{face}.png
CSV_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)  # every column the builders write: the schema's
FFPP_PAIRS_PER_SPLIT = {"train": 360, "val": 70, "test": 70}  # FF++'s published counts, read by check_counts


class DatasetError(UserError):
    """A dataset tree or metadata file that does not have the expected layout; the sentence names the path."""


@dataclass
class Video:
    """One video of a dataset: where its crops are (relative to ROOT) and what the official metadata says."""

    folder: str
    label: int
    split: str
    generator: str
    forgery_type: str
    identity: str = ""


def read_json(path: Path, what: str):
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist: it is the {what}; pass --metadata-root DOWNLOAD_FOLDER if it is elsewhere."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error}): re-download the {what}.") from None


def crops_folder(root: Path, base: str) -> str:
    """``base/videos`` (the extraction mirror of FF++-style downloads) or ``base/frames`` (DeepfakeBench's layout)."""
    for leaf in ("videos", "frames"):
        if (root / base / leaf).is_dir():
            return f"{base}/{leaf}"
    return f"{base}/videos"


def require_folder(path: Path, expected: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path} is not a folder: expected {expected}.")
    return path


def video_rows(root: Path, video: Video, source_dataset: str) -> list[dict]:
    """One row per crop image of a video folder; frame / face index from the extraction index or the file names.
    A video whose extraction record says it gave no crop (no-face, decode-error, too-short, unreadable) has one
    placeholder row instead (``placeholder_row``)."""
    folder = root / video.folder
    positions: dict[str, tuple[str, str]] = {}
    index = folder / "faces.csv"
    if index.is_file():
        with open(index, newline="") as handle:
            for record in csv.DictReader(handle):
                positions[Path(record["path"]).name] = (record.get("frame", ""), record.get("face_index", ""))
    rows = []
    columns = video_columns(video, source_dataset)
    for name in sorted(os.listdir(folder)):
        if not is_image(name):
            continue
        match = CROP_NAME.match(name)
        frame, face = positions.get(name) or ((str(int(match[1])), match[2]) if match else ("", ""))
        rows.append(
            {
                "path": f"{video.folder}/{name}",
                **columns,
                "frame": frame,
                "face_index": face,
                "extraction_status": "ok",
            }
        )
    if not rows:
        record = extraction_record(folder)
        if record is not None and record["status"] != "ok":
            rows.append(placeholder_row(video, source_dataset, record))
    return rows


def collect(root: Path, videos: list[Video], source_dataset: str, allow_missing: bool) -> tuple[list[dict], list[str]]:
    """Rows of every listed video; a video without a crop folder is an error unless ``allow_missing``."""
    missing = [v.folder for v in videos if not (root / v.folder).is_dir()]
    if missing and not allow_missing:
        raise DatasetError(
            f"{len(missing)} of {len(videos)} listed videos have no crop folder under {root}, "
            f"e.g. {root / missing[0]}: "
            "run python -m data.extract_faces on the download into ROOT, or pass --allow-missing to skip them (listed)."
        )
    rows = []
    for video in videos:
        if (root / video.folder).is_dir():
            rows += video_rows(root, video, source_dataset)
    return rows, missing


def split_by_groups(videos: list[Video], val_fraction: float, seed: int) -> None:
    """Seeded train/val split of videos, keeping every identity (and people joined through a swap) on one side."""
    rows = [{"identity": v.identity, "generator": v.generator, "label": v.label, "video": v} for v in videos]
    assign_splits(rows, (1.0 - val_fraction, val_fraction, 0.0), "identity", seed)
    for row in rows:
        row["video"].split = row["split"]


def check_counts(videos: list[Video], expected: dict) -> list[str]:
    """Differences between the videos found and the dataset's published counts (empty: they match)."""
    problems = []
    per = Counter((v.split, v.generator) for v in videos)
    if "real" in expected and "test" not in expected:  # FF++: 720 / 140 / 140 videos per class and method
        for generator in expected:
            for split, pairs in FFPP_PAIRS_PER_SPLIT.items():
                if per[(split, generator)] != 2 * pairs:
                    problems.append(f"{generator} {split}: {per[(split, generator)]} videos, published {2 * pairs}")
    elif "test" in expected:
        test = [v for v in videos if v.split == "test"]
        if "videos" in expected["test"] and len(test) != expected["test"]["videos"]:
            problems.append(f"test: {len(test)} videos, published {expected['test']['videos']}")
        for name, label in (("real", 0), ("fake", 1)):
            if name in expected["test"] and sum(v.label == label for v in test) != expected["test"][name]:
                problems.append(
                    f"test {name}: {sum(v.label == label for v in test)} videos, published {expected['test'][name]}"
                )
    return problems


def write_csv(out: Path, rows: list[dict]) -> None:
    """The schema's columns, then any other column a builder sets (e.g. DF40's ``df40_set``), in order of appearance."""
    extra = list(dict.fromkeys(key for row in rows for key in row if key not in CSV_COLUMNS))
    with atomic_output(out) as handle:
        writer = csv.DictWriter(handle, fieldnames=[*CSV_COLUMNS, *extra], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def summary_lines(rows: list[dict]) -> list[str]:
    """Counts per split and class: videos, crops, and videos without a crop (placeholder rows)."""
    videos: dict[tuple, set] = defaultdict(set)
    crops: Counter = Counter()
    without: Counter = Counter()
    for row in rows:
        key = (row["split"], "real" if row["label"] == 0 else "fake", row["generator"])
        videos[key].add(row["video_id"])
        if row.get("extraction_status", "ok") in ("", "ok"):
            crops[key] += 1
        else:
            without[key] += 1
    lines = [f"{'split':6} {'class':5} {'generator':20} {'videos':>7} {'crops':>8} {'no crop':>8}"]
    for key in sorted(videos, key=lambda k: (SPLITS.index(k[0]) if k[0] in SPLITS else 9, k[1] != "real", k[2])):
        lines.append(f"{key[0]:6} {key[1]:5} {key[2]:20} {len(videos[key]):7d} {crops[key]:8d} {without[key]:8d}")
    return lines


@dataclass(frozen=True)
class BuildOptions:
    """What the command line passes to every builder; a builder reads the options it needs."""

    metadata_root: Path
    compression: str = "c23"
    test_list: Path | None = None
    json_path: Path | None = None
    variant: str = "end_to_end"
    val_fraction: float = 0.1
    seed: int = 0
    allow_missing: bool = False
    keep_test_identities: bool = False


# name -> builder(root, options) -> (rows, notes): the datasets of ``python -m data.datasets NAME``
BUILDERS = Registry("dataset builder")
register_builder = BUILDERS.register


def build(name: str, root, *, metadata_root=None, **options) -> tuple[list[dict], list[str]]:
    """(rows, notes) of dataset ``name``; notes are count mismatches and skipped videos, to print. ``options`` are
    the fields of ``BuildOptions``."""
    root = Path(root)
    if name not in BUILDERS:
        raise UsageError(f"unknown dataset {name!r}: choose one of {', '.join(BUILDERS.names())}.")
    if not root.is_dir():
        raise DatasetError(
            f"dataset root {root} is not a folder: pass the output folder of python -m data.extract_faces."
        )
    paths = {key: Path(options[key]) if options.get(key) else None for key in ("test_list", "json_path")}
    settings = BuildOptions(Path(metadata_root) if metadata_root else root, **{**options, **paths})
    return BUILDERS[name](root, settings)


def rows_of_videos(
    root: Path, videos: list[Video], expected: dict, source: str, options: BuildOptions
) -> tuple[list[dict], list[str]]:
    """(rows, notes) of a dataset's listed videos: skipped videos, counts against the published ones, empty folders."""
    notes = []
    rows, missing = collect(root, videos, source, options.allow_missing)
    if missing:
        notes.append(
            f"skipped {len(missing)} listed video(s) without a crop folder (--allow-missing): {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
        )
    skipped = set(missing)
    present = [v for v in videos if v.folder not in skipped]
    mismatches = check_counts(present, expected)
    notes += [f"count differs from the published one: {m}" for m in mismatches]
    if expected and not mismatches:
        notes.append("video counts match the published counts")
    notes += placeholder_notes(rows)
    with_rows = {row["video_id"] for row in rows}
    empty = [v.folder for v in present if v.folder not in with_rows]
    if empty:
        notes.append(
            f"{len(empty)} video folder(s) hold no crop and no extraction record, e.g. {empty[0]}: they have no rows"
        )
    return rows, notes
