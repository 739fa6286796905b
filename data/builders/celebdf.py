"""Celeb-DF-v2: List_of_testing_videos.txt is the test split; the rest is split train/val by identity."""

from __future__ import annotations

import os
from pathlib import Path

from .base import BuildOptions, DatasetError, Video, register_builder, require_folder, rows_of_videos, split_by_groups

CELEBDF_TEST = {"real": 178, "fake": 340}  # List_of_testing_videos.txt: 518 videos


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
