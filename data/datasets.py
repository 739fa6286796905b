"""Dataset builders: a tree of face crops in a dataset's own layout + its official split lists -> a split CSV.

    python -m data.datasets ffpp ROOT [--compression c23] [--out CSV]
    python -m data.datasets celebdf ROOT [--list List_of_testing_videos.txt]
    python -m data.datasets dfdc ROOT | dfdcp ROOT | deeperforensics ROOT | deepfakebench ROOT --json FILE

ROOT is the output of ``python -m data.extract_faces`` run on the dataset as downloaded (same relative layout),
or any tree with one folder of crop images per video, named after the video without its extension. The metadata
files (split lists, labels) are read from ``--metadata-root`` (default: ROOT, where extraction copies them).
Rows get ``split``, ``label``, ``forgery_type``, ``generator``, ``source_dataset``, ``video_id``, ``identity``
(``;``-separated) and, where the index knows them, ``frame`` and ``face_index``; paths are relative to ROOT.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from pathlib import Path

from common.atomic import atomic_output, write_bytes_atomic
from common.cli import run
from common.errors import UsageError, UserError
from common.registry import Registry

from .build_index import assign_splits
from .media import is_image
from .schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, SPLITS

SPLITS_DIR = Path(__file__).resolve().parent / "splits"
CROP_NAME = re.compile(r"^f(\d+)_(\d+)\.[A-Za-z]+$")  # data.extract_faces's crop names: f{frame:06d}_{face}.png
CSV_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)  # every column the builders write: the schema's
FFPP_METHODS = {  # method -> forgery type: FS = identity swap, FR = expression reenactment (the project's codes)
    "Deepfakes": "FS",
    "Face2Face": "FR",
    "FaceSwap": "FS",
    "NeuralTextures": "FR",
    "FaceShifter": "FS",
}
FFPP_PAIRS_PER_SPLIT = {"train": 360, "val": 70, "test": 70}
CELEBDF_TEST = {"real": 178, "fake": 340}  # List_of_testing_videos.txt: 518 videos
DFDC_TEST_VIDEOS = 5000


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


# ----------------------------------------------------------------------------------------------- shared helpers
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
    """One row per crop image of a video folder; frame / face index from the extraction index or the file names."""
    folder = root / video.folder
    positions: dict[str, tuple[str, str]] = {}
    index = folder / "faces.csv"
    if index.is_file():
        with open(index, newline="") as handle:
            for record in csv.DictReader(handle):
                positions[Path(record["path"]).name] = (record.get("frame", ""), record.get("face_index", ""))
    rows = []
    for name in sorted(os.listdir(folder)):
        if not is_image(name):
            continue
        match = CROP_NAME.match(name)
        frame, face = positions.get(name) or ((str(int(match[1])), match[2]) if match else ("", ""))
        rows.append(
            {
                "path": f"{video.folder}/{name}",
                "label": video.label,
                "split": video.split,
                "forgery_type": video.forgery_type,
                "generator": video.generator,
                "source_dataset": source_dataset,
                "video_id": video.folder,
                "identity": video.identity,
                "frame": frame,
                "face_index": face,
            }
        )
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


# ----------------------------------------------------------------------------------------------- FaceForensics++
def ffpp_pairs() -> dict[str, list[tuple[str, str]]]:
    """The official FF++ pair lists shipped in data/splits/ffpp (from ondyari/FaceForensics dataset/splits)."""
    return {
        split: [tuple(pair) for pair in json.loads((SPLITS_DIR / "ffpp" / f"{split}.json").read_text())]
        for split in SPLITS
    }


def ffpp_videos(root: Path, compression: str) -> tuple[list[Video], dict[str, int]]:
    """Every FF++ video with its official split: both ids of a pair, and both directions of its fakes, together."""
    reals = crops_folder(root, f"original_sequences/youtube/{compression}")
    require_folder(
        root / reals,
        f"FaceForensics++'s original_sequences/youtube/{compression}/videos, one crop folder per video "
        "(or DeepfakeBench's .../frames; use --compression c23|c40|raw)",
    )
    split_of: dict[str, str] = {}
    pairs_of: dict[str, list[tuple[str, str]]] = ffpp_pairs()
    for split, pairs in pairs_of.items():
        for first, second in pairs:
            split_of[first] = split_of[second] = split
    videos = [Video(f"{reals}/{i}", 0, split_of[i], "real", "real", i) for i in sorted(split_of)]
    expected = {"real": 2 * sum(len(p) for p in pairs_of.values())}
    for method, forgery_type in FFPP_METHODS.items():
        folder = crops_folder(root, f"manipulated_sequences/{method}/{compression}")
        if not (root / folder).is_dir():
            continue
        expected[method] = expected["real"]
        for split, pairs in pairs_of.items():
            for first, second in pairs:
                for target, source in ((first, second), (second, first)):
                    videos.append(
                        Video(f"{folder}/{target}_{source}", 1, split, method, forgery_type, f"{target};{source}")
                    )
    videos += dfd_videos(root, compression)
    return videos, expected


def dfd_videos(root: Path, compression: str) -> list[Video]:
    """DeepFakeDetection (Google/Jigsaw, shipped with FF++): no official split, so all of it is test (our choice)."""
    videos = []
    for kind, label, generator in (
        ("original_sequences/actors", 0, "real-actors"),
        ("manipulated_sequences/DeepFakeDetection", 1, "DeepFakeDetection"),
    ):
        relative = crops_folder(root, f"{kind}/{compression}")
        folder = root / relative
        if not folder.is_dir():
            continue
        for entry in sorted(os.listdir(folder)):
            if not (folder / entry).is_dir():
                continue
            # 01__walking_outside.mp4 (actor 01) and 01_02__walking_outside__YVGY8LOK.mp4 (actors 01 and 02)
            actors = entry.split("__")[0].split("_")
            videos.append(
                Video(
                    f"{kind}/{compression}/videos/{entry}",
                    label,
                    "test",
                    generator,
                    "real" if label == 0 else "FS",
                    ";".join(f"actor{a}" for a in actors),
                )
            )
    return videos


# ----------------------------------------------------------------------------------------------- Celeb-DF-v2
def celebdf_identity(folder_name: str) -> str:
    """id0_0000 -> id0; id0_id16_0000 -> id0;id16 (target, source); YouTube-real 00000 -> '' (unknown person)."""
    return ";".join(part for part in folder_name.split("_") if part.startswith("id"))


def celebdf_videos(
    root: Path, test_list: Path, val_fraction: float, seed: int, keep_test_identities: bool
) -> tuple[list[Video], dict, int]:
    if not test_list.is_file():
        raise DatasetError(
            f"{test_list} does not exist: it is Celeb-DF-v2's List_of_testing_videos.txt; "
            "pass --list or --metadata-root."
        )
    test: dict[str, int] = {}
    for number, line in enumerate(test_list.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise DatasetError(
                f"{test_list} line {number} is {line!r}, "
                "expected 'LABEL FOLDER/NAME.mp4' with LABEL 1 (real) or 0 (fake)."
            )
        # Celeb-DF's list says 1 for REAL and 0 for fake: the opposite of our labels.
        test[str(Path(parts[1]).with_suffix("")).replace(os.sep, "/")] = 0 if parts[0] == "1" else 1
    videos, test_identities, found = [], set(), set()
    for folder_name, label, generator in (
        ("Celeb-real", 0, "real"),
        ("YouTube-real", 0, "real"),
        ("Celeb-synthesis", 1, "Celeb-DF-v2"),
    ):
        folder = require_folder(root / folder_name, f"Celeb-DF-v2's {folder_name} (one crop folder per video)")
        inner = folder_name
        if (folder / "frames").is_dir():  # DeepfakeBench's layout: Celeb-real/frames/id0_0000
            folder, inner = folder / "frames", f"{folder_name}/frames"
        for entry in sorted(os.listdir(folder)):
            if not (folder / entry).is_dir():
                continue
            key = f"{folder_name}/{entry}"
            listed = test.get(key)
            if listed is not None and listed != label:
                raise DatasetError(
                    f"{test_list} labels {key} {'real' if listed == 0 else 'fake'} "
                    f"but it lies in {folder_name}: check the list."
                )
            video = Video(
                f"{inner}/{entry}",
                label,
                "test" if listed is not None else "",
                generator,
                "real" if label == 0 else "FS",
                celebdf_identity(entry),
            )
            videos.append(video)
            if listed is not None:
                test_identities.update(i for i in video.identity.split(";") if i)
                found.add(key)
    absent = sorted(set(test) - found)
    if absent:
        raise DatasetError(
            f"{len(absent)} video(s) of {test_list} have no crop folder under {root}, "
            f"e.g. {root / absent[0]}: extract them first."
        )
    rest = [v for v in videos if v.split != "test"]
    dropped = 0
    if not keep_test_identities:
        # The official test list shares people with the other videos; keeping them would leak identities.
        kept = [v for v in rest if not (set(v.identity.split(";")) & test_identities)]
        dropped = len(rest) - len(kept)
        videos = [v for v in videos if v.split == "test"] + kept
        rest = kept
    split_by_groups(rest, val_fraction, seed)
    return videos, {"test": CELEBDF_TEST}, dropped


# ----------------------------------------------------------------------------------------------- DFDC, DFDCP
def folders_by_name(root: Path) -> dict[str, str]:
    """Every folder under ROOT holding images, by its name (a video name without extension) -> relative path."""
    found: dict[str, str] = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        if any(is_image(f) for f in files) or "video.json" in files:
            found.setdefault(Path(folder).name, Path(folder).relative_to(root).as_posix())
    return found


def dfdc_label(value, where: str) -> int:
    text = str(value).strip().upper()
    if text in ("FAKE", "1"):
        return 1
    if text in ("REAL", "0"):
        return 0
    raise DatasetError(f"{where} has the label {value!r}: expected FAKE/REAL or 1/0.")


def dfdc_videos(root: Path, metadata_root: Path, val_fraction: float, seed: int) -> tuple[list[Video], dict]:
    """DFDC: training parts (``dfdc_train_part_*/metadata.json``) -> train/val by source video; labels.csv -> test."""
    folders = folders_by_name(root)
    videos = []
    parts = sorted(metadata_root.glob("**/metadata.json"))
    for metadata in parts:
        entries = read_json(metadata, "DFDC training part metadata")
        for name, entry in sorted(entries.items()):
            stem = Path(name).stem
            if stem not in folders:
                continue  # reported below as missing only when the test list lacks folders; parts are optional
            label = dfdc_label(entry.get("label"), f"{metadata} entry {name}")
            original = Path(entry.get("original") or name).stem
            videos.append(
                Video(
                    folders[stem], label, "", "real" if label == 0 else "DFDC", "real" if label == 0 else "FS", original
                )
            )
    split_by_groups(videos, val_fraction, seed)
    labels = next(iter(sorted(metadata_root.glob("**/labels.csv"))), None)
    if labels is None and not parts:
        raise DatasetError(
            f"no DFDC metadata under {metadata_root}: "
            "expected the test set's labels.csv or dfdc_train_part_*/metadata.json."
        )
    if labels is not None:
        with open(labels, newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"filename", "label"} <= set(reader.fieldnames):
                raise DatasetError(
                    f"{labels} has the columns {reader.fieldnames}: expected filename,label (DFDC test set)."
                )
            missing = []
            for number, record in enumerate(reader, 2):
                stem = Path(record["filename"]).stem
                if stem not in folders:
                    missing.append(stem)
                    continue
                label = dfdc_label(record["label"], f"{labels} line {number}")
                videos.append(
                    Video(
                        folders[stem],
                        label,
                        "test",
                        "real" if label == 0 else "DFDC",
                        "real" if label == 0 else "FS",
                        stem,
                    )
                )
        if missing:
            raise DatasetError(
                f"{len(missing)} video(s) of {labels} have no crop folder under {root}, "
                f"e.g. {missing[0]}: extract the test set first."
            )
    return videos, {"test": {"videos": DFDC_TEST_VIDEOS}}


def dfdcp_videos(root: Path, metadata_root: Path, val_fraction: float, seed: int) -> tuple[list[Video], dict]:
    """DFDC preview: ``dataset.json`` maps each video path to its label and set (train/test)."""
    entries = read_json(metadata_root / "dataset.json", "DFDC preview dataset.json")
    by_name = None  # other tools' layouts (DeepfakeBench: method_A/frames/NAME): found by the video's name
    videos = []
    for name, entry in sorted(entries.items()):
        if not isinstance(entry, dict) or "label" not in entry or "set" not in entry:
            raise DatasetError(f"{metadata_root / 'dataset.json'} entry {name!r} lacks 'label' or 'set'.")
        label = dfdc_label(entry["label"], f"{metadata_root / 'dataset.json'} entry {name}")
        method = Path(name).parts[0] if label else "real"
        identity = ";".join(str(entry[k]) for k in ("target_id", "source_id") if entry.get(k) is not None)
        split = "test" if entry["set"] == "test" else ""
        folder = Path(name).with_suffix("").as_posix()
        if not (root / folder).is_dir():
            by_name = folders_by_name(root) if by_name is None else by_name
            folder = by_name.get(Path(name).stem, folder)
        videos.append(Video(folder, label, split, method, "real" if label == 0 else "FS", identity))
    split_by_groups([v for v in videos if v.split != "test"], val_fraction, seed)
    return videos, {}


# ----------------------------------------------------------------------------------------------- DeeperForensics
def deeperforensics_videos(root: Path, metadata_root: Path, variant: str) -> tuple[list[Video], dict]:
    """DeeperForensics-1.0 fakes (``manipulated_videos/<variant>``) with ``lists/splits/{train,val,test}.txt``."""
    folder = f"manipulated_videos/{variant}"
    if (root / folder / "frames").is_dir():  # DeepfakeBench's layout
        folder += "/frames"
    require_folder(
        root / folder, f"DeeperForensics-1.0's {folder} (one crop folder per video; --variant picks the perturbation)"
    )
    videos = []
    for split in SPLITS:
        listing = metadata_root / "lists" / "splits" / f"{split}.txt"
        if not listing.is_file():
            raise DatasetError(
                f"{listing} does not exist: it is DeeperForensics-1.0's {split} list; "
                "pass --metadata-root DOWNLOAD_FOLDER."
            )
        for line in listing.read_text().split():
            stem = Path(line).stem  # 000_M101: FF++ target video 000, actor M101
            target, _, actor = stem.partition("_")
            videos.append(
                Video(f"{folder}/{stem}", 1, split, "DeeperForensics", "FS", ";".join(x for x in (target, actor) if x))
            )
    return videos, {}


# ----------------------------------------------------------------------------------------------- DeepfakeBench JSON
def deepfakebench_label(name: str) -> int:
    """DeepfakeBench label names: FF-real, CelebDFv2_real, DFDC_Real, ... are real; the rest (FF-DF, ...) fake."""
    return 0 if re.search(r"(^|[-_ ])real$", name, re.IGNORECASE) or name.lower() == "real" else 1


def deepfakebench_rows(
    root: Path, json_path: Path, val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[dict], list[str]]:
    """Rows of a DeepfakeBench dataset JSON: {dataset: {label name: {split: [{compression:] {video: {frames}}}}}}."""
    data = read_json(json_path, "DeepfakeBench dataset JSON")
    if not isinstance(data, dict) or len(data) != 1:
        raise DatasetError(
            f"{json_path} should hold one dataset name at its top level, "
            f"not {list(data)[:5] if isinstance(data, dict) else type(data).__name__}."
        )
    ((dataset, by_label),) = data.items()
    rows = []

    def walk(node, label_name, split, trail):
        if isinstance(node, dict) and "frames" in node:
            video_id = trail[-1]
            label = deepfakebench_label(label_name)
            for frame in node["frames"]:
                rows.append(
                    {
                        "path": frame,
                        "label": label,
                        "split": split,
                        "forgery_type": "real" if label == 0 else "",
                        "generator": "real" if label == 0 else label_name,
                        "source_dataset": dataset,
                        "video_id": f"{label_name}/{video_id}",
                        "identity": "",
                        "frame": "",
                        "face_index": "",
                    }
                )
            return
        if not isinstance(node, dict):
            raise DatasetError(
                f"{json_path} at {'/'.join(trail)} holds {type(node).__name__}: expected a video entry with 'frames'."
            )
        for key, child in node.items():
            walk(child, label_name, split, trail + [key])

    for label_name, by_split in by_label.items():
        for split, node in by_split.items():
            ours = {"train": "train", "val": "val", "test": "test"}.get(split)
            if ours is None:
                raise DatasetError(f"{json_path}: split {split!r} of {label_name} is not train, val or test.")
            walk(node, label_name, ours, [label_name, split])
    if not rows:
        raise DatasetError(f"{json_path} lists no frames.")
    for row in rows:
        path = Path(row["path"].replace("\\", "/"))  # JSONs written on Windows use backslashes
        if path.is_absolute():
            try:
                path = path.relative_to(root)
            except ValueError:
                pass  # an absolute path outside ROOT stays absolute (the schema allows it)
        row["path"] = path.as_posix()
    return deduplicate_splits(rows, json_path, val_fraction, seed)


def deduplicate_splits(
    rows: list[dict], json_path: Path, val_fraction: float, seed: int
) -> tuple[list[dict], list[str]]:
    """One row per frame. DeepfakeBench's JSONs repeat their test videos as val (Celeb-DF, DFDCP) and their train
    videos as val (DFDC), which picks checkpoints on test data; a frame listed twice keeps test, else train, and
    an emptied val split is drawn again from train (``--val-fraction``, seeded, whole videos).
    """
    priority = {"test": 0, "train": 1, "val": 2}
    kept: dict[str, dict] = {}
    for row in rows:
        if row["path"] not in kept or priority[row["split"]] < priority[kept[row["path"]]["split"]]:
            kept[row["path"]] = row
    moved = Counter((r["split"]) for r in rows if kept[r["path"]] is not r)
    notes = []
    if moved:
        notes.append(
            f"{json_path} lists {sum(moved.values())} frame(s) in two splits ({dict(moved)} dropped): "
            "each frame kept once, in test before train before val"
        )
    result = list(kept.values())
    if val_fraction > 0 and not any(r["split"] == "val" for r in result):
        train = [r for r in result if r["split"] == "train"]
        by_video: dict[str, list[dict]] = defaultdict(list)
        for row in train:
            by_video[row["video_id"]].append(row)
        groups = [
            {"video": key, "generator": rows_[0]["generator"], "label": rows_[0]["label"]}
            for key, rows_ in by_video.items()
        ]
        assign_splits(groups, (1.0 - val_fraction, val_fraction, 0.0), "video", seed)
        for group in groups:
            for row in by_video[group["video"]]:
                row["split"] = group["split"]
        notes.append(f"no separate val split was left: {val_fraction:.0%} of the train videos became val (seed {seed})")
    return result, notes


# ----------------------------------------------------------------------------------------------- the tool
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
    with atomic_output(out) as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def summary_lines(rows: list[dict]) -> list[str]:
    """Counts per split and class: videos and crops."""
    videos: dict[tuple, set] = defaultdict(set)
    crops: Counter = Counter()
    for row in rows:
        key = (row["split"], "real" if row["label"] == 0 else "fake", row["generator"])
        videos[key].add(row["video_id"])
        crops[key] += 1
    lines = [f"{'split':6} {'class':5} {'generator':20} {'videos':>7} {'crops':>8}"]
    for key in sorted(crops, key=lambda k: (SPLITS.index(k[0]) if k[0] in SPLITS else 9, k[1] != "real", k[2])):
        lines.append(f"{key[0]:6} {key[1]:5} {key[2]:20} {len(videos[key]):7d} {crops[key]:8d}")
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
    present = [v for v in videos if v.folder not in set(missing)]
    mismatches = check_counts(present, expected)
    notes += [f"count differs from the published one: {m}" for m in mismatches]
    if expected and not mismatches:
        notes.append("video counts match the published counts")
    empty = [v.folder for v in present if not any(True for _ in _images(root / v.folder))]
    if empty:
        notes.append(f"{len(empty)} video folder(s) hold no crop (no face found), e.g. {empty[0]}: they have no rows")
    return rows, notes


# ----------------------------------------------------------------------------------------------- the datasets
@register_builder("ffpp")
def build_ffpp(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos, expected = ffpp_videos(root, options.compression)
    return rows_of_videos(root, videos, expected, "FF++", options)


@register_builder("celebdf")
def build_celebdf(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    test_list = options.test_list or options.metadata_root / "List_of_testing_videos.txt"
    videos, expected, dropped = celebdf_videos(
        root, test_list, options.val_fraction, options.seed, options.keep_test_identities
    )
    rows, notes = rows_of_videos(root, videos, expected, "Celeb-DF-v2", options)
    if dropped:
        notes.insert(
            0,
            f"left out {dropped} non-test video(s) whose person is in the official test list "
            "(--keep-test-identities keeps them)",
        )
    return rows, notes


@register_builder("dfdc")
def build_dfdc(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos, expected = dfdc_videos(root, options.metadata_root, options.val_fraction, options.seed)
    return rows_of_videos(root, videos, expected, "DFDC", options)


@register_builder("dfdcp")
def build_dfdcp(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos, expected = dfdcp_videos(root, options.metadata_root, options.val_fraction, options.seed)
    return rows_of_videos(root, videos, expected, "DFDCP", options)


@register_builder("deeperforensics")
def build_deeperforensics(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos, expected = deeperforensics_videos(root, options.metadata_root, options.variant)
    return rows_of_videos(root, videos, expected, "DeeperForensics-1.0", options)


@register_builder("deepfakebench")
def build_deepfakebench(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    if options.json_path is None:
        raise UsageError("deepfakebench needs --json FILE (a DeepfakeBench dataset JSON, e.g. FaceForensics++.json).")
    return deepfakebench_rows(root, options.json_path, options.val_fraction, options.seed)


def _images(folder: Path):
    return (n for n in os.listdir(folder) if is_image(n))


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Build a split CSV from a dataset's face crops and its official lists.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("name", choices=BUILDERS.names(), help=f"the dataset: {', '.join(BUILDERS.names())}")
    parser.add_argument(
        "root", help="face-crop tree in the dataset's layout (the output of python -m data.extract_faces)"
    )
    parser.add_argument("--out", help="CSV to write (default: ROOT/NAME.csv; paths are relative to ROOT)")
    parser.add_argument("--metadata-root", help="folder with the dataset's lists/labels (default: ROOT)")
    parser.add_argument(
        "--compression", default="c23", choices=["raw", "c23", "c40"], help="FF++ quality (default c23)"
    )
    parser.add_argument(
        "--list", dest="test_list", help="Celeb-DF-v2 List_of_testing_videos.txt (default: METADATA_ROOT/...)"
    )
    parser.add_argument("--json", dest="json_path", help="DeepfakeBench dataset JSON (deepfakebench)")
    parser.add_argument(
        "--variant", default="end_to_end", help="DeeperForensics manipulated_videos subfolder (default end_to_end)"
    )
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="validation share where no official val split exists (0.1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of that train/val split (default 0)")
    parser.add_argument(
        "--allow-missing", action="store_true", help="skip listed videos without crops (listed) instead of failing"
    )
    parser.add_argument(
        "--keep-test-identities", action="store_true", help="Celeb-DF: keep train/val videos of test-list people"
    )
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if not 0.0 <= args.val_fraction < 1.0:
        raise UsageError(f"--val-fraction must lie in [0, 1), not {args.val_fraction}.")
    options = {f.name: getattr(args, f.name) for f in fields(BuildOptions)}
    rows, notes = build(args.name, args.root, **options)
    if not rows:
        raise DatasetError(
            f"no crop image found for any {args.name} video under {args.root}: run python -m data.extract_faces first."
        )
    out = Path(args.out) if args.out else Path(args.root) / f"{args.name}.csv"
    write_csv(out, rows)
    settings = Path(args.root) / "extraction.json"
    if settings.is_file():
        write_bytes_atomic(out.with_name(f"{out.stem}.extraction.json"), settings.read_bytes())
    for line in summary_lines(rows):
        print(line)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {len(rows)} rows to {out}")
    if out.resolve().parent != Path(args.root).resolve():
        print(
            f"note: the CSV's paths are relative to {Path(args.root).resolve()}: "
            f"pass --data-root {args.root} when training"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
