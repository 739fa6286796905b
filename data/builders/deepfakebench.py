"""DeepfakeBench's dataset JSONs: its own train/val/test keys, each frame kept once (see deduplicate_splits)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

from common.errors import UsageError

from ..build_index import assign_splits
from .base import BuildOptions, DatasetError, read_json, register_builder


def deepfakebench_label(name: str) -> int:
    """DeepfakeBench label names: FF-real, CelebDFv2_real, DFDC_Real, ... are real; the rest (FF-DF, ...) fake."""
    return 0 if re.search(r"(^|[-_ ])real$", name, re.IGNORECASE) or name.lower() == "real" else 1


COMPRESSIONS = ("raw", "c23", "c40")


def deepfakebench_rows(
    root: Path, json_path: Path, val_fraction: float = 0.1, seed: int = 0, compression: str | None = None
) -> tuple[list[dict], list[str]]:
    """Rows of a DeepfakeBench dataset JSON: {dataset: {label name: {split: [{compression:] {video: {frames}}}}}}.
    ``compression``: where a split holds compression levels (FF++'s raw / c23 / c40), only that one's videos."""
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
        if compression and node and set(node) <= set(COMPRESSIONS):
            node = {compression: node[compression]} if compression in node else {}
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


@register_builder("deepfakebench")
def build_deepfakebench(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    if options.json_path is None:
        raise UsageError("deepfakebench needs --json FILE (a DeepfakeBench dataset JSON, e.g. FaceForensics++.json).")
    return deepfakebench_rows(root, options.json_path, options.val_fraction, options.seed)
