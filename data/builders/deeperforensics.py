"""DeeperForensics-1.0: its fakes of one perturbation variant with lists/splits/{train,val,test}.txt."""

from __future__ import annotations

from pathlib import Path

from ..schema import SPLITS
from .base import BuildOptions, DatasetError, Video, register_builder, require_folder, rows_of_videos


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


@register_builder("deeperforensics")
def build_deeperforensics(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos, expected = deeperforensics_videos(root, options.metadata_root, options.variant)
    return rows_of_videos(root, videos, expected, "DeeperForensics-1.0", options)
