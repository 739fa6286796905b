"""Celeb-DF++ (Li et al., 2025, arXiv 2507.18015): Celeb-DF's real videos and 22 forgery methods in three scenarios,
a test set here: the videos of its List_of_testing_videos.txt, each with its method and scenario.

As published (OUC-VAS/Celeb-DF-PP README): ``Celeb-real/``, ``YouTube-real/``, ``Celeb-synthesis/<scenario>/<method>/``
with scenarios ``FaceSwap`` (FS: Celeb-DF's own fakes as ``Celeb-DF``, BlendFace, GHOST, HifiFace, InSwapper,
MobileFaceSwap, SimSwap, UniFace), ``FaceReenact`` (FR: DaGAN, FSRT, HyperReenact, LIA, LivePortrait, MCNET, TPSMM)
and ``TalkingFace`` (TF: AniTalker, EchoMimic, EDTalk, FLOAT, IP_LAP, Real3DPortrait, SadTalker), and
``List_of_testing_videos.txt``: Celeb-DF's real test videos (178) and 200 fakes per face-swap and face-reenactment
method, 300 per talking-face method. Its lines are read as Celeb-DF's (``LABEL PATH``, 1 = real, 0 = fake); a label
that disagrees with the folder of its video is an error, so a list of the other convention cannot pass silently.
ROOT is the output of ``python -m data.extract_faces`` on the download (one crop folder per video, same layout).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .base import BuildOptions, DatasetError, Video, register_builder, rows_of_videos
from .celebdf import celebdf_identity

CELEBDFPP_SCENARIOS = {"FaceSwap": "FS", "FaceReenact": "FR", "TalkingFace": "TF"}
CELEBDFPP_REAL_FOLDERS = ("Celeb-real", "YouTube-real")
# Test videos per method and scenario, and real test videos (the README's "Training and Testing Split").
CELEBDFPP_TEST_PER_METHOD = {"FS": 200, "FR": 200, "TF": 300}
CELEBDFPP_TEST_REAL = 178


def _listed_video(line: str, number: int, test_list: Path) -> Video:
    parts = line.split()
    if len(parts) != 2 or parts[0] not in ("0", "1"):
        raise DatasetError(
            f"{test_list} line {number} is {line!r}, expected 'LABEL FOLDER/.../NAME.mp4' with LABEL 1 (real) or 0 "
            "(fake)."
        )
    listed_real = parts[0] == "1"  # Celeb-DF's convention: 1 is real
    path = Path(parts[1].replace("\\", "/")).with_suffix("")
    top = path.parts[0]
    if top in CELEBDFPP_REAL_FOLDERS and len(path.parts) == 2:
        label, generator, forgery_type = 0, "real", "real"
    elif top == "Celeb-synthesis" and len(path.parts) == 4 and path.parts[1] in CELEBDFPP_SCENARIOS:
        label, generator, forgery_type = 1, path.parts[2], CELEBDFPP_SCENARIOS[path.parts[1]]
    else:
        raise DatasetError(
            f"{test_list} line {number} names {parts[1]}, which is neither Celeb-real/NAME, YouTube-real/NAME nor "
            f"Celeb-synthesis/<{'|'.join(CELEBDFPP_SCENARIOS)}>/<method>/NAME: check the list."
        )
    if listed_real != (label == 0):
        raise DatasetError(
            f"{test_list} line {number} labels {path.as_posix()} {'real' if listed_real else 'fake'} but it lies in "
            f"{top}: check the list (1 means real, as in Celeb-DF)."
        )
    return Video(path.as_posix(), label, "test", generator, forgery_type, celebdf_identity(path.name))


def celebdfpp_videos(test_list: Path) -> list[Video]:
    if not test_list.is_file():
        raise DatasetError(
            f"{test_list} does not exist: it is Celeb-DF++'s List_of_testing_videos.txt; pass --list or "
            "--metadata-root."
        )
    videos = [
        _listed_video(line, number, test_list)
        for number, line in enumerate(test_list.read_text().splitlines(), 1)
        if line.strip()
    ]
    repeated = [folder for folder, count in Counter(v.folder for v in videos).items() if count > 1]
    if repeated:
        raise DatasetError(f"{test_list} lists {repeated[0]} more than once: check the list.")
    return videos


def _count_notes(videos: list[Video]) -> list[str]:
    notes = []
    reals = sum(v.label == 0 for v in videos)
    if reals != CELEBDFPP_TEST_REAL:
        notes.append(
            f"count differs from the published one: test real: {reals} videos, published {CELEBDFPP_TEST_REAL}"
        )
    per_method = Counter((v.forgery_type, v.generator) for v in videos if v.label == 1)
    for (scenario, method), count in sorted(per_method.items()):
        if count != CELEBDFPP_TEST_PER_METHOD[scenario]:
            notes.append(
                f"count differs from the published one: test {method} ({scenario}): {count} videos, published "
                f"{CELEBDFPP_TEST_PER_METHOD[scenario]}"
            )
    return notes


def _unlisted(root: Path, videos: list[Video]) -> int:
    """How many video folders of ROOT the test list leaves out (Celeb-DF++'s training part: not used here)."""
    listed = {v.folder for v in videos}
    folders = [
        f"{top}/{name}" for top in CELEBDFPP_REAL_FOLDERS if (root / top).is_dir() for name in os.listdir(root / top)
    ]
    for scenario in CELEBDFPP_SCENARIOS:
        base = root / "Celeb-synthesis" / scenario
        for method in sorted(os.listdir(base)) if base.is_dir() else []:
            if (base / method).is_dir():
                folders += [f"Celeb-synthesis/{scenario}/{method}/{name}" for name in os.listdir(base / method)]
    return sum(folder not in listed and (root / folder).is_dir() for folder in folders)


@register_builder("celebdfpp")
def build_celebdfpp(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    test_list = options.test_list or options.metadata_root / "List_of_testing_videos.txt"
    videos = celebdfpp_videos(test_list)
    rows, notes = rows_of_videos(root, videos, {}, "Celeb-DF++", options)
    counts = _count_notes([v for v in videos if (root / v.folder).is_dir()])
    notes += counts or ["video counts match the published counts"]
    unlisted = _unlisted(root, videos)
    if unlisted:
        notes.append(f"Celeb-DF++ is a test set here: {unlisted} video folder(s) outside the test list have no rows")
    return rows, notes
