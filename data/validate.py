"""Check a split CSV before training: counts per split x forgery type x generator x source dataset, every problem
with its line, and the file formats per class (the format shortcut that inflates AUC).

    python -m data.validate SPLITS.csv [--data-root DIR] [--check-images] [--format-sample 1000]

Exit status 1 when training could not proceed (errors), 0 otherwise (warnings are printed, not fatal).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from .images import ImageDecodeError, container_reference, image_format, load_image
from .schema import (
    GROUP_COLUMNS,
    IDENTITY_SEPARATOR,
    SPLITS,
    Problem,
    SchemaError,
    SplitTable,
    csv_in_folder,
    overlong_paths,
    read_table,
)

CLASS_NAMES = {0: "real", 1: "fake"}
# A person on both sides of these splits: test leaks are errors (about 10 AUC points on FF++), val leaks warnings.
IDENTITY_LEAKS = (("train", "test", "error"), ("val", "test", "error"), ("train", "val", "warning"))


def _escapes(root: Path, relative: str) -> bool:
    if Path(relative).is_absolute():
        return False
    return not os.path.normpath(os.path.join(str(root), relative)).startswith(os.path.normpath(str(root)) + os.sep)


def check_paths(table: SplitTable, check_images: bool) -> list[Problem]:
    problems = []
    paths = table.column("path")
    splits = table.column("split") if table.has("split") else None
    first_seen: dict[str, int] = {}
    root = table.root.resolve()
    too_long = {row for row, _ in overlong_paths(paths, table.root)}  # read_table reported them with their line
    for row, relative in enumerate(paths):
        line = table.line(row)
        if not relative or row in too_long:
            continue
        if _escapes(root, relative):
            problems.append(
                Problem("error", "path escapes root", f"path {relative!r} points outside the data root {root}", line)
            )
            continue
        resolved = os.path.normpath(str(table.resolve(row)))
        if resolved in first_seen:
            other = first_seen[resolved]
            leak = splits is not None and splits[other] != splits[row]
            detail = f" (in split {splits[other]} there, {splits[row]} here: a train/test leak)" if leak else ""
            problems.append(
                Problem(
                    "error" if leak else "warning",
                    "duplicate path",
                    f"{relative} repeats line {table.line(other)}{detail}",
                    line,
                )
            )
        else:
            first_seen[resolved] = row
        reference = container_reference(resolved)
        target = reference[0] if reference else resolved
        try:
            found = os.stat(target)
        except OSError:  # missing, or a folder on the way is not one
            found = None
        if found is None or not (stat.S_ISDIR(found.st_mode) or stat.S_ISREG(found.st_mode)):
            problems.append(Problem("error", "missing file", f"{relative} does not exist under {root}", line))
        elif stat.S_ISDIR(found.st_mode):
            problems.append(
                Problem("error", "not a file", f"{relative} is a folder under {root}, not an image file", line)
            )
        elif found.st_size == 0:
            problems.append(
                Problem("error", "empty file", f"{relative} is empty (0 bytes): copy or extract it again", line)
            )
        elif check_images:
            try:
                load_image(resolved)
            except ImageDecodeError as error:
                problems.append(Problem("error", "unreadable image", str(error), line))
    return problems


def check_groups(table: SplitTable) -> list[Problem]:
    problems = []
    valid = table.labels >= 0
    if table.has("split"):
        splits = np.asarray(table.column("split"), dtype=object)
        for split in SPLITS:
            rows = valid & (splits == split)
            if not rows.any():
                severity = "error" if split == "train" else "warning"
                problems.append(Problem(severity, "empty split", f"split '{split}' has no rows"))
            elif len(set(table.labels[rows].tolist())) == 1:
                only = CLASS_NAMES[int(table.labels[rows][0])]
                severity = "error" if split == "train" else "warning"
                problems.append(
                    Problem(
                        severity,
                        "one class only",
                        f"split '{split}' holds only {only} images: no AUC can be computed there",
                    )
                )
    else:
        problems.append(
            Problem(
                "warning",
                "no split column",
                "no 'split' column: protocols need one (python -m data.build_index --split-ratios assigns it)",
            )
        )
    if table.has("source_dataset"):
        sources = np.asarray(table.column("source_dataset"), dtype=object)
        splits = (
            np.asarray(table.column("split"), dtype=object)
            if table.has("split")
            else np.full(len(table), "all", dtype=object)
        )
        for key in sorted(set(zip(splits[valid], sources[valid]))):
            rows = valid & (splits == key[0]) & (sources == key[1])
            classes = set(table.labels[rows].tolist())
            if len(classes) == 1:
                only = CLASS_NAMES[classes.pop()]
                problems.append(
                    Problem(
                        "warning",
                        "one class only",
                        f"source dataset '{key[1]}' in split '{key[0]}' holds only {only} images: its fakes are "
                        "scored against no reals of their own",
                    )
                )
    if table.has("video_id"):  # a video (namespaced like evaluation does) with real and fake frames stops validation
        keys, labels_of = table.video_keys(range(len(table))), defaultdict(dict)
        for row, key in enumerate(keys):
            if table.labels[row] >= 0:
                labels_of[key].setdefault(int(table.labels[row]), row)
        for key, found in labels_of.items():
            if len(found) == 2:
                problems.append(
                    Problem(
                        "error",
                        "video with both labels",
                        f"video {key!r} has real frames (line {table.line(found[0])}) and fake frames: give fakes "
                        "their own "
                        "video_id, or fill forgery_type / generator so that the two videos are told apart",
                        table.line(found[1]),
                    )
                )
    if table.has("video_id") and table.has("split"):
        videos, splits = table.column("video_id"), table.column("split")
        seen: dict[str, tuple[str, int]] = {}
        reported = set()
        for row, video in enumerate(videos):
            if not video:
                continue
            if video in seen and seen[video][0] != splits[row] and video not in reported:
                reported.add(video)
                problems.append(
                    Problem(
                        "error",
                        "video in two splits",
                        f"video {video!r} is in split {seen[video][0]} (line {table.line(seen[video][1])}) and "
                        f"{splits[row]}: frames of one video leak across splits",
                        table.line(row),
                    )
                )
            seen.setdefault(video, (splits[row], row))
    return problems


def check_identities(table: SplitTable) -> list[Problem]:
    """A person on two sides of a split: train/test is an error (the published 10-point leak), train/val a warning."""
    if not (table.has("identity") and table.has("split")):
        return []
    sides: dict[str, dict[str, int]] = defaultdict(dict)  # identity -> split -> first row
    for row, (text, split) in enumerate(zip(table.column("identity"), table.column("split"))):
        for identity in text.split(IDENTITY_SEPARATOR):
            if identity.strip():
                sides[identity.strip()].setdefault(split, row)
    problems = []
    for identity, rows in sorted(sides.items()):
        for first, second, severity in IDENTITY_LEAKS:
            if first in rows and second in rows:
                message = (
                    f"identity {identity!r} is in split {first} (line {table.line(rows[first])}) and {second}: the "
                    "detector can learn the person instead of the forgery; keep each identity on one side "
                    "(python -m data.build_index --group-by identity)"
                )
                kind = f"identity in {first} and {second}"
                problems.append(Problem(severity, kind, message, table.line(rows[second])))
    return problems


def count_table(table: SplitTable) -> list[tuple[tuple[str, ...], int, int]]:
    """(split, forgery_type, generator, source_dataset) -> (real, fake) counts, for the columns present."""
    keys = [c for c in ("split", *GROUP_COLUMNS) if table.has(c)]
    columns = [table.column(c) for c in keys]
    counts: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for row, label in enumerate(table.labels):
        if label >= 0:
            counts[tuple(col[row] for col in columns)][int(label)] += 1
    return keys, sorted((key, real, fake) for key, (real, fake) in counts.items())


def format_statistics(table: SplitTable, sample: int, seed: int = 0) -> dict[int, dict]:
    """Per class: file format counts and JPEG qualities over (a seeded sample of) the existing files."""
    rng = np.random.default_rng(seed)
    stats = {}
    for label in (0, 1):
        rows = np.flatnonzero(table.labels == label)
        if sample and len(rows) > sample:
            rows = rng.choice(rows, sample, replace=False)
        formats, qualities, unreadable = Counter(), [], 0
        for row in rows:
            path = table.resolve(int(row))
            reference = container_reference(path)
            if not os.path.isfile(reference[0] if reference else path):  # False for a path too long to open
                continue
            try:
                fmt, quality = image_format(path)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # reported by --check-images
                unreadable += 1
                continue
            formats[fmt] += 1
            if quality is not None:
                qualities.append(quality)
        stats[label] = {"formats": formats, "qualities": qualities, "checked": len(rows), "unreadable": unreadable}
    return stats


def format_problems(stats: dict[int, dict]) -> list[Problem]:
    real, fake = stats[0], stats[1]
    if not real["formats"] or not fake["formats"]:
        return []
    problems = []
    real_share = {f: n / sum(real["formats"].values()) for f, n in real["formats"].items()}
    fake_share = {f: n / sum(fake["formats"].values()) for f, n in fake["formats"].items()}
    gap = 0.5 * sum(abs(real_share.get(f, 0) - fake_share.get(f, 0)) for f in set(real_share) | set(fake_share))
    if gap > 0.1:
        problems.append(
            Problem(
                "warning",
                "format shortcut",
                f"real and fake images differ in file format (real: {_describe(real['formats'])}; fake: "
                f"{_describe(fake['formats'])}): "
                "a detector can learn the format instead of the forgery, inflating AUC; re-encode both classes alike",
            )
        )
    if real["qualities"] and fake["qualities"]:
        real_q, fake_q = np.median(real["qualities"]), np.median(fake["qualities"])
        if abs(real_q - fake_q) >= 5:
            problems.append(
                Problem(
                    "warning",
                    "format shortcut",
                    f"real and fake JPEGs differ in quality (median {real_q:.0f} vs {fake_q:.0f}): compression level "
                    "separates the classes; re-encode both alike",
                )
            )
    return problems


def _describe(formats: Counter) -> str:
    total = sum(formats.values())
    return ", ".join(f"{fmt} {100 * n / total:.0f}%" for fmt, n in formats.most_common())


def validate(csv_path, root=None, *, check_images=False, format_sample=1000, max_per_kind=20, out=sys.stdout) -> int:
    """Print the report; return the exit status (1 when there are errors)."""

    def say(text=""):
        print(text, file=out)

    try:
        if Path(csv_path).is_dir():
            csv_path = csv_in_folder(csv_path)
            say(f"{Path(csv_path).parent} is a folder: validating {csv_path}, the one CSV inside it")
        table, problems = read_table(csv_path, root)
    except SchemaError as error:
        say(f"error: {error}")
        return 1
    say(f"{table.csv_path}: {len(table)} rows, data root {table.root}")
    say(f"columns: {', '.join(table.column_names)}")
    keys, counts = count_table(table)
    say("")
    header = [*keys, "real", "fake"]
    widths = [max(len(h), *(len(str(k[i])) for k, _, _ in counts)) if counts else len(h) for i, h in enumerate(keys)]
    say("  ".join(h.ljust(w) for h, w in zip(keys, widths)) + "  " + "real".rjust(7) + "  " + "fake".rjust(7))
    for key, real, fake in counts:
        say(
            "  ".join(str(v).ljust(w) for v, w in zip(key, widths))
            + "  "
            + str(real).rjust(7)
            + "  "
            + str(fake).rjust(7)
        )
    total_real, total_fake = int((table.labels == 0).sum()), int((table.labels == 1).sum())
    say(f"total: {total_real} real, {total_fake} fake" + ("" if len(header) else ""))
    problems += check_paths(table, check_images)
    problems += check_groups(table)
    problems += check_identities(table)
    stats = format_statistics(table, format_sample)
    problems += format_problems(stats)
    say("")
    for label in (0, 1):
        s = stats[label]
        quality = ""
        if s["qualities"]:
            q = np.asarray(s["qualities"])
            quality = f"; JPEG quality median {np.median(q):.0f} (min {q.min()}, max {q.max()})"
        say(
            f"{CLASS_NAMES[label]} files ({sum(s['formats'].values())} of {s['checked']} checked): "
            f"{_describe(s['formats']) or 'none readable'}{quality}"
        )
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    say("")
    by_kind: dict[str, list[Problem]] = defaultdict(list)
    for problem in sorted(problems, key=lambda p: (p.severity != "error", p.kind, p.line or 0)):
        by_kind[(problem.severity, problem.kind)].append(problem)
    for (severity, kind), items in by_kind.items():
        shown = items if not max_per_kind else items[:max_per_kind]
        for problem in shown:
            say(str(problem))
        if len(items) > len(shown):
            say(f"{severity}: ... and {len(items) - len(shown)} more '{kind}' (--max-per-kind 0 lists all)")
    verdict = "training cannot proceed" if errors else "ok for training"
    say(f"{len(errors)} error(s), {len(warnings)} warning(s): {verdict}")
    return 1 if errors else 0


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Validate a split CSV (schema, files, counts, format shortcut).")
    parser.add_argument("csv", help="split CSV (path,label and optional columns: see data/schema.py)")
    parser.add_argument(
        "--data-root",
        "--root",
        dest="root",
        help="folder the CSV's paths are relative to (default: the CSV's folder); the same option as train.py and "
        "test.py",
    )
    parser.add_argument("--check-images", action="store_true", help="decode every image (slow) to find corrupt files")
    parser.add_argument(
        "--format-sample", type=int, default=1000, help="files per class whose format/quality is read (0: all)"
    )
    parser.add_argument("--max-per-kind", type=int, default=20, help="problems listed per kind (0: all)")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    return validate(
        args.csv,
        args.root,
        check_images=args.check_images,
        format_sample=args.format_sample,
        max_per_kind=args.max_per_kind,
    )


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
