"""WildDeepfake (Zi et al., ACM MM 2020): face sequences of deepfake videos collected from the internet.

As published (OpenTAI/wild-deepfake; the Hugging Face copy ``xingjunm/WildDeepfake``, folder
``deepfake_in_the_wild/``): four folders ``real_train``, ``real_test``, ``fake_train``, ``fake_test``, each of numbered
archives ``N.tar.gz`` that hold ``N/{real,fake}/<sequence>/<frame>.png``, face crops already. The folder is the
official split and label; unpack each archive into its folder (ROOT/fake_test/N/fake/3/12.png) and point the builder
at ROOT. A face sequence is a video of ours (its frames are aggregated); the validation videos are drawn from the
training ones, whole archives together (``--val-fraction``, seeded), since WildDeepfake has no validation split.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..build_index import assign_splits
from .base import BuildOptions, DatasetError, Video, register_builder, require_folder, rows_of_videos

# folder -> (label, official split)
WILDDEEPFAKE_FOLDERS = {
    "real_train": (0, "train"),
    "real_test": (0, "test"),
    "fake_train": (1, "train"),
    "fake_test": (1, "test"),
}
# Face sequences in the whole dataset, as the WildDeepfake paper counts them (also Celeb-DF++'s Table I).
WILDDEEPFAKE_SEQUENCES = {"real": 3805, "fake": 3509}
CLASS_FOLDERS = {"real": 0, "fake": 1}


def _folders(path: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(path) if entry.is_dir())


def wilddeepfake_videos(root: Path, val_fraction: float, seed: int) -> list[Video]:
    videos = []
    for folder, (label, split) in WILDDEEPFAKE_FOLDERS.items():
        base = require_folder(root / folder, f"WildDeepfake's {folder} (its archives unpacked into it)")
        archives = _folders(base)
        if not archives:
            packed = [name for name in os.listdir(base) if name.endswith((".tar.gz", ".tgz", ".tar"))]
            hint = (
                f"unpack its {len(packed)} archives into it first: "
                f'for a in {base}/*.tar.gz; do tar -xzf "$a" -C {base}; done'
                if packed
                else "it should hold the unpacked archives N/{real,fake}/<sequence>/<frame>.png"
            )
            raise DatasetError(f"{base} holds no unpacked archive: {hint}.")
        for archive in archives:
            for class_name in _folders(base / archive):
                if CLASS_FOLDERS.get(class_name) != label:
                    raise DatasetError(
                        f"{base / archive / class_name} is not where WildDeepfake keeps its {folder} sequences: "
                        f"{folder} archives hold {'real' if label == 0 else 'fake'}/<sequence> folders only."
                    )
                for sequence in _folders(base / archive / class_name):
                    videos.append(
                        Video(
                            f"{folder}/{archive}/{class_name}/{sequence}",
                            label,
                            split,
                            "real" if label == 0 else "WildDeepfake",
                            "real" if label == 0 else "unknown",  # internet deepfakes: the method is not labelled
                        )
                    )
    train = [
        {"video": v, "archive": v.folder.rsplit("/", 2)[0], "label": v.label} for v in videos if v.split == "train"
    ]
    if val_fraction > 0:
        assign_splits(train, (1.0 - val_fraction, val_fraction, 0.0), "archive", seed)
        for entry in train:
            entry["video"].split = entry["split"]
    return videos


@register_builder("wilddeepfake")
def build_wilddeepfake(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos = wilddeepfake_videos(root, options.val_fraction, options.seed)
    rows, notes = rows_of_videos(root, videos, {}, "WildDeepfake", options)
    found = Counter("real" if v.label == 0 else "fake" for v in videos)
    mismatched = [
        f"{name} {found[name]} sequences, published {count}" for name, count in WILDDEEPFAKE_SEQUENCES.items()
    ]
    if all(found[name] == count for name, count in WILDDEEPFAKE_SEQUENCES.items()):
        notes.append("sequence counts match the published ones (3,805 real, 3,509 fake)")
    else:
        notes.append(f"count differs from the published one: {'; '.join(mismatched)}")
    if options.val_fraction > 0:
        notes.append(
            f"WildDeepfake has no validation split: {options.val_fraction:.0%} of the training archives became val "
            f"(seed {options.seed})"
        )
    return rows, notes
