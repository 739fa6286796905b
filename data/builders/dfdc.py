"""DFDC (the public test set's labels.csv and the training parts' metadata.json) and the DFDC preview (DFDCP)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..media import is_image
from .base import BuildOptions, DatasetError, Video, read_json, register_builder, rows_of_videos, split_by_groups

DFDC_TEST_VIDEOS = 5000


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


@register_builder("dfdc")
def build_dfdc(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos, expected = dfdc_videos(root, options.metadata_root, options.val_fraction, options.seed)
    return rows_of_videos(root, videos, expected, "DFDC", options)


@register_builder("dfdcp")
def build_dfdcp(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos, expected = dfdcp_videos(root, options.metadata_root, options.val_fraction, options.seed)
    return rows_of_videos(root, videos, expected, "DFDCP", options)
