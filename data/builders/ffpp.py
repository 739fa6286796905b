"""FaceForensics++ (official pair lists in data/splits/ffpp) and DeepFakeDetection, shipped with it (all test)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..schema import SPLITS
from .base import BuildOptions, Video, crops_folder, register_builder, require_folder, rows_of_videos

SPLITS_DIR = Path(__file__).resolve().parents[1] / "splits"
FFPP_METHODS = {  # method -> forgery type: FS = identity swap, FR = expression reenactment (the project's codes)
    "Deepfakes": "FS",
    "Face2Face": "FR",
    "FaceSwap": "FS",
    "NeuralTextures": "FR",
    "FaceShifter": "FS",
}


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


@register_builder("ffpp")
def build_ffpp(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    videos, expected = ffpp_videos(root, options.compression)
    return rows_of_videos(root, videos, expected, "FF++", options)
