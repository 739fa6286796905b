"""Dataset builders: a tree of face crops in a dataset's own layout + its official split lists -> a split CSV.

    python -m data.datasets ffpp ROOT [--compression c23] [--out CSV]
    python -m data.datasets celebdf ROOT [--list List_of_testing_videos.txt]
    python -m data.datasets dfdc ROOT | dfdcp ROOT | deeperforensics ROOT | deepfakebench ROOT --json FILE
    python -m data.datasets df40 ROOT --metadata-root dataset_json/     # DF40's per-method JSONs
    python -m data.datasets wilddeepfake deepfake_in_the_wild/         # its archives unpacked in place
    python -m data.datasets celebdfpp ROOT [--list List_of_testing_videos.txt]   # a test set

ROOT is the output of ``python -m data.extract_faces`` run on the dataset as downloaded (same relative layout),
or any tree with one folder of crop images per video, named after the video without its extension. The metadata
files (split lists, labels) are read from ``--metadata-root`` (default: ROOT, where extraction copies them).
Rows get ``split``, ``label``, ``forgery_type``, ``generator``, ``source_dataset``, ``video_id``, ``identity``
(``;``-separated) and, where the index knows them, ``frame`` and ``face_index``; paths are relative to ROOT.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from common.atomic import write_bytes_atomic
from common.cli import run
from common.errors import UsageError

# The builders live in data/builders/ (one module per dataset); these names stay importable from here.
from .builders import BUILDERS, BuildOptions, DatasetError, Video, build, register_builder, rows_of_videos
from .builders.base import check_counts, collect, summary_lines, video_rows, write_csv

__all__ = [
    "BUILDERS",
    "BuildOptions",
    "DatasetError",
    "Video",
    "build",
    "check_counts",
    "collect",
    "get_args_parser",
    "main",
    "register_builder",
    "rows_of_videos",
    "summary_lines",
    "video_rows",
    "write_csv",
]


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
