"""Face extraction: sampled video frames (or folders of frame images) -> detected, square face crops + an index.

    python -m data.extract_faces SRC --out DIR [--frames 32 | --stride K] [--margin 1.3] [--size 256]
                                 [--max-faces N] [--align] [--detector yunet] [--detect-size N] [--full-search-every K]
                                 [--workers N] [--redo STATUS ...] [--shard I/N] [--summary-json FILE]
    python -m data.extract_faces SRC --out DIR --detector mtcnn --device cuda --batch-size 32   # on a GPU
    python -m data.extract_faces merge DIR [MORE_DIRS ...] [--out DIR]     # join the outputs of --shard I/N runs

For each video ``REL/NAME.EXT`` under SRC the crops go to ``DIR/REL/NAME/`` as ``f{frame:06d}_{face}.png``
(face 0 = the largest face of the frame). Each video is written to a temporary folder that is renamed when it is
complete, so a killed run resumes where it stopped. ``DIR/faces.csv`` indexes every crop, ``DIR/videos.csv`` every
source video with its status (ok, no-face, decode-error, too-short, unreadable) and the reason,
``DIR/extraction.json`` holds the settings and library versions, ``DIR/extraction_log.txt`` lists the problems. A
video whose status is not ok is recorded too and skipped by a rerun; ``--redo STATUS`` extracts such videos again.
``--shard I/N`` extracts the I-th of N shares of the videos (by a hash of each one's relative path): run N of them,
on as many machines, into one folder or several, then ``merge``. Decoding seeks to the sampled frames; a video is
never decoded whole into memory. ``--detect-size N`` runs the detector on frames downscaled to at most N pixels on
their longer side and crops from the full-resolution frame; ``--full-search-every K`` searches the whole frame every
K-th sampled frame and, in between, only around the faces of the frame before (data/faces/search.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.atomic import write_text_atomic
from common.errors import UsageError

from .detectors import list_detectors
from .extract import extract
from .settings import (
    DEFAULT_DETECTOR,
    DEFAULT_FULL_SEARCH_EVERY,
    DETECT_BATCH,
    INDEX_NAME,
    LOG_NAME,
    STATUSES,
    VIDEOS_NAME,
    WINDOW_SEARCH_DETECTORS,
    ExtractionError,
    ExtractionSettings,
)
from .shards import merge, parse_shard, shard_folder


class _ExtractParser(argparse.ArgumentParser):
    """The tool's parser: ``merge ...`` is parsed by the merge command's parser (``command`` "merge"), anything else
    as an extraction (``command`` "extract")."""

    def parse_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if args[:1] == ["merge"]:
            parsed = get_merge_parser().parse_args(args[1:], namespace)
            parsed.command = "merge"
            return parsed
        parsed = super().parse_args(args, namespace)
        parsed.command = "extract"
        return parsed


def get_args_parser() -> argparse.ArgumentParser:
    parser = _ExtractParser(
        description="Sample frames of videos, detect faces and write square face crops with an index CSV.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    defaults = ExtractionSettings()
    parser.add_argument("source", help="a video file, or a folder searched for videos and folders of frame images")
    parser.add_argument("--out", required=True, help="output folder (mirrors the source's layout)")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--frames", type=int, help=f"evenly spaced frames per video (default {defaults.frames})")
    sampling.add_argument("--stride", type=int, help="every k-th frame instead of --frames")
    parser.add_argument(
        "--margin", type=float, default=defaults.margin, help=f"square crop side / box side (default {defaults.margin})"
    )
    parser.add_argument(
        "--size", type=int, default=defaults.size, help=f"crop size in pixels (default {defaults.size})"
    )
    parser.add_argument("--max-faces", type=int, help="faces kept per frame, largest first (default: all)")
    parser.add_argument(
        "--align", action="store_true", help="rotate so the eyes are level (detectors with landmarks only)"
    )
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"one of {', '.join(list_detectors())} (default {DEFAULT_DETECTOR})",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=defaults.min_score,
        help=f"detector score threshold (default {defaults.min_score})",
    )
    parser.add_argument(
        "--detect-size",
        type=_detect_size,
        metavar="N",
        help="detect on frames downscaled to at most N pixels on the longer side, crop from the full frame; "
        f"0 or full: detect on the full frame (default: {_detect_size_name(defaults.detect_size)})",
    )
    parser.add_argument(
        "--full-search-every",
        type=int,
        metavar="K",
        help="search the whole frame every K-th sampled frame (and wherever a known face is lost), in between only "
        "around the faces of the frame before; a face that appears meanwhile is found at the next whole search "
        f"(default {DEFAULT_FULL_SEARCH_EVERY} with {', '.join(WINDOW_SEARCH_DETECTORS)}, 1 with the other "
        "detectors: every frame whole, as before)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (detectors that support it: mtcnn)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DETECT_BATCH,
        help=f"sampled frames per detector call (default {DETECT_BATCH}; larger on a GPU)",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes, one video each (default 1)")
    parser.add_argument(
        "--redo",
        nargs="+",
        metavar="STATUS",
        choices=STATUSES,
        default=[],
        help=f"extract again the complete videos of these statuses ({', '.join(STATUSES)}); others are skipped",
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="only the I-th of N shares of the videos (a hash of each video's relative path; I from 1 to N, 0 = N); "
        "its index goes to OUT/shards/I-of-N/, joined by python -m data.extract_faces merge",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--summary-json", metavar="FILE", help="also write the printed summary to FILE as JSON (for benchmarks)"
    )
    return parser


def _detect_size(text: str) -> int:
    """--detect-size: pixels, or 0 / full for the full frame (the way to turn a downscaling default off)."""
    if text.strip().lower() == "full":
        return 0
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of pixels (or 0 / full: the full frame)") from None


def _detect_size_name(detect_size: int | None) -> str:
    return "the full frame" if detect_size is None else str(detect_size)


def settings_from_args(args) -> ExtractionSettings:
    frames = args.frames if args.frames is not None or args.stride is not None else ExtractionSettings.frames
    # None: not given, the default; 0: the full frame, stored as null like the records of full-frame runs
    detect_size = {} if args.detect_size is None else {"detect_size": args.detect_size or None}
    return ExtractionSettings(
        detector=args.detector,
        frames=frames,
        stride=args.stride,
        margin=args.margin,
        size=args.size,
        max_faces=args.max_faces,
        align=args.align,
        min_score=args.min_score,
        full_search_every=args.full_search_every,
        **detect_size,
    )


def get_merge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data.extract_faces merge",
        description="Join the outputs of extraction runs made with --shard I/N (in one folder or several) into one "
        "index: faces.csv, videos.csv and extraction_log.txt. Shards made with other settings, repeated, missing or "
        "unfinished are refused; video folders of other folders are moved into the output folder.",
    )
    parser.add_argument("folders", nargs="+", help="the --out folders of the shards (one when they share it)")
    parser.add_argument("--out", help="the merged folder (default: the first folder)")
    return parser


def main_merge(args) -> int:
    summary = merge([Path(folder) for folder in args.folders], Path(args.out) if args.out else None)
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(_where(Path(args.out or args.folders[0])))
    return 0


def _where(folder: Path) -> str:
    return f"index: {folder / INDEX_NAME}; each video's status: {folder / VIDEOS_NAME}; problems: {folder / LOG_NAME}"


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.command == "merge":
        return main_merge(args)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}.")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}.")
    try:
        settings = settings_from_args(args)
        shard = parse_shard(args.shard) if args.shard else None
    except ExtractionError as error:
        raise UsageError(str(error)) from None
    summary = extract(
        args.source,
        args.out,
        settings,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        shard=shard,
        redo=tuple(args.redo),
    )
    for key, value in summary.items():
        print(f"{key}: {value}")
    if args.summary_json:
        write_text_atomic(Path(args.summary_json), json.dumps(summary, indent=2) + "\n")
    folder = Path(args.out) if shard is None else shard_folder(Path(args.out), shard)
    print(_where(folder))
    if shard is not None:
        print(f"when every shard is done: python -m data.extract_faces merge {args.out}")
    return 0
