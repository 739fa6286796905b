"""Check a split CSV before training: counts per split x forgery type x generator x source dataset, every problem
with its line, and the file formats per class (the format shortcut that inflates AUC).

    python -m data.validate SPLITS.csv [--data-root DIR] [--check-images [--workers N]] [--format-sample 1000]

Exit status 1 when training could not proceed (errors), 0 otherwise (warnings are printed, not fatal).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import stat
import sys
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from PIL import Image

from common.batching import batched
from common.errors import UsageError, UserError
from common.keys import Keys

# Not data.images: the decoding processes import this module, and torch would cost each of them seconds.
from .decoding import ImageDecodeError, container_reference, decode_rgb, image_format
from .schema import (
    EXTRACTION_STATUSES,
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


# A folder named by at least this many rows is listed once (one directory read) instead of a stat per file.
LIST_FOLDER_FROM = 16
NAME_MAX = 255  # bytes of one path component on Linux, macOS and Windows file systems


def _list_folder(folder: str) -> dict[str, str] | str:
    """{name: "file" | "folder" | "other"} of a folder's entries, or why it cannot be read (an OSError's text)."""
    try:
        with os.scandir(folder or os.sep) as entries:
            return {e.name: _entry_kind(e) for e in entries}
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as error:
        return error.strerror or str(error)


def _entry_kind(entry: os.DirEntry) -> str:
    if entry.is_dir():
        return "folder"
    if entry.is_file():
        return "empty" if entry.stat().st_size == 0 else "file"
    return "other"


def _stat_kind(path: str) -> str:
    try:
        found = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as error:
        return error.strerror or str(error)
    if stat.S_ISDIR(found.st_mode):
        return "folder"
    if stat.S_ISREG(found.st_mode):
        return "empty" if found.st_size == 0 else "file"
    return "other"


def entry_kinds(targets: list[str]) -> list[str]:
    """ "file" | "folder" | "other" | "missing" | why it cannot be read, per path (normalised, absolute).

    Folders named by many rows are listed once, the rest are stat-ed: a million files in thousands of folders cost
    thousands of directory reads, not a million system calls.
    """
    split = [target.rpartition(os.sep) for target in targets]
    per_folder = Counter(folder for folder, _, _ in split)
    listings = {folder: _list_folder(folder) for folder, count in per_folder.items() if count >= LIST_FOLDER_FROM}
    kinds = []
    for target, (folder, _, name) in zip(targets, split):
        if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
            kinds.append(f"file name too long ({len(name):,} characters; at most {NAME_MAX} bytes)")
            continue
        listing = listings.get(folder)
        if listing is None:
            kinds.append(_stat_kind(target))
        elif isinstance(listing, str):
            kinds.append(listing)
        else:
            kind = listing.get(name, "missing")
            kinds.append(_stat_kind(target) if kind == "other" else kind)  # a link: follow it
    return kinds


def _resolved_paths(table: SplitTable, root: Path) -> tuple[list[str], np.ndarray]:
    """(normalised absolute path per row, whether each stays under the root); plain string work, no pathlib."""
    base = str(root)
    resolved = [os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p)) for p in table.column("path")]
    inside = base.rstrip(os.sep) + os.sep
    escapes = np.fromiter(
        (bool(p) and not os.path.isabs(p) and not r.startswith(inside) for p, r in zip(table.column("path"), resolved)),
        dtype=bool,
        count=len(resolved),
    )
    return resolved, escapes


# Paths per task of a decoding process: enough that sending them costs little next to decoding them, few enough that
# Ctrl-C (each process finishes the task it holds) stops within seconds.
DECODE_CHUNK = 512
MAX_DECODE_WORKERS = 8  # past a few processes, reading the files rather than decoding them is what usually limits


class DecodingProcessError(UserError):
    """A decoding process ended without a result: a crash in the image library, or killed for lack of memory."""


def default_decode_workers() -> int:
    """Processes that --check-images decodes in: the cores this process may use, at most ``MAX_DECODE_WORKERS``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DECODE_WORKERS, cores))


def _decode_failures(chunk: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(line, message) of each (line, path) of ``chunk`` whose image does not decode."""
    failures = []
    for line, path in chunk:
        try:
            decode_rgb(path)
        except ImageDecodeError as error:
            failures.append((line, str(error)))
    return failures


def _ignore_interrupts() -> None:
    # Ctrl-C reaches every process of the terminal: the validator alone stops; its processes end after their task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LostChunksError(BrokenProcessPool):
    """A process of ``in_processes`` died; ``chunks`` is the range of chunk positions that were in flight."""

    def __init__(self, chunks: range):
        super().__init__(f"a process died while chunks {chunks.start} to {chunks.stop - 1} were in flight")
        self.chunks = chunks


def in_processes(function: Callable, chunks: Iterable, processes: int) -> Iterator:
    """``function`` of each chunk, in chunk order, computed in ``processes`` spawned processes.

    At most two chunks per process are in flight, so memory stays bounded whatever the number of chunks. An error in
    a process, or Ctrl-C here, cancels the chunks not started and is raised; a process that dies (a crash, the
    out-of-memory killer) raises ``LostChunksError`` instead of waiting forever.
    """
    context = multiprocessing.get_context("spawn")  # the caller may have imported torch, which fork makes unsafe
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_ignore_interrupts) as pool:
        in_flight: deque[Future] = deque()
        done = 0  # chunks whose result was given
        try:
            for chunk in chunks:
                in_flight.append(pool.submit(function, chunk))
                while len(in_flight) >= 2 * processes or (in_flight and in_flight[0].done()):
                    yield in_flight[0].result()
                    in_flight.popleft()
                    done += 1
            while in_flight:
                yield in_flight[0].result()
                in_flight.popleft()
                done += 1
        except BrokenProcessPool:
            raise LostChunksError(range(done, done + max(1, len(in_flight)))) from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def undecodable(items: list[tuple[int, str]], workers: int = 1, *, csv_path=None) -> list[tuple[int, str]]:
    """(line, message) of every (line, path) of ``items`` whose image does not decode, in the order of ``items``.

    ``workers`` > 1 decodes chunks of ``DECODE_CHUNK`` paths in that many processes (one chunk's worth or less is
    decoded here: starting processes would cost more). The result does not depend on ``workers``.
    """
    chunk_size = DECODE_CHUNK
    chunks = batched(items, chunk_size)
    processes = min(workers, -(-len(items) // chunk_size))
    found = map(_decode_failures, chunks) if processes <= 1 else in_processes(_decode_failures, chunks, processes)
    try:
        return [failure for failures in found for failure in failures]
    except LostChunksError as error:
        first = items[error.chunks.start * chunk_size][0]
        last = items[min(len(items), error.chunks.stop * chunk_size) - 1][0]
        raise DecodingProcessError(
            f"a process decoding the images of {csv_path or 'the CSV'} stopped without a result (a crash of the image "
            f"library, or too little memory) on a file of lines {first:,} to {last:,}: look at those files, or rerun "
            "with --workers 1 to see the crash itself."
        ) from None


def check_paths(table: SplitTable, check_images: bool, workers: int = 1) -> list[Problem]:
    """Rows whose path escapes the root, repeats, or names no usable file; with ``check_images``, images that do not
    decode (in ``workers`` processes)."""
    problems, to_decode = [], []
    paths = table.column("path")
    splits = table.column("split") if table.has("split") else None
    root = table.root.resolve()
    resolved, escapes = _resolved_paths(table, root)
    for row in np.flatnonzero(escapes):
        problems.append(
            Problem(
                "error",
                "path escapes root",
                f"path {paths[row]!r} points outside the data root {root}",
                table.line(row),
            )
        )
    too_long = [row for row, _ in overlong_paths(paths, table.root)]  # read_table reported them with their line
    usable = np.fromiter((bool(p) for p in paths), dtype=bool, count=len(paths)) & ~escapes
    usable &= ~table.placeholder_mask()  # a source video without crops: its path is the video, not an image here
    usable[too_long] = False
    rows = np.flatnonzero(usable)
    keys = np.asarray(resolved, dtype=object)[rows]
    order = np.argsort(keys, kind="stable")  # equal paths side by side, each in file order
    sorted_keys = keys[order]
    repeats = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]) + 1
    starts = np.maximum.accumulate(np.where(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]], np.arange(len(keys)), 0))
    for position in repeats:
        row, other = int(rows[order[position]]), int(rows[order[starts[position]]])
        leak = splits is not None and splits[other] != splits[row]
        detail = f" (in split {splits[other]} there, {splits[row]} here: a train/test leak)" if leak else ""
        problems.append(
            Problem(
                "error" if leak else "warning",
                "duplicate path",
                f"{paths[row]} repeats line {table.line(other)}{detail}",
                table.line(row),
            )
        )
    targets = []
    for row in rows:
        reference = container_reference(resolved[row])
        targets.append(reference[0] if reference else resolved[row])
    for row, kind in zip(rows, entry_kinds(targets)):
        line = table.line(row)
        if kind == "folder":
            problems.append(
                Problem("error", "not a file", f"{paths[row]} is a folder under {root}, not an image file", line)
            )
        elif kind == "missing":
            problems.append(Problem("error", "missing file", f"{paths[row]} does not exist under {root}", line))
        elif kind == "empty":
            problems.append(
                Problem("error", "empty file", f"{paths[row]} is empty (0 bytes): copy or extract it again", line)
            )
        elif kind not in ("file", "other"):
            problems.append(
                Problem("error", "unreadable path", f"{_shortened(paths[row])} cannot be read: {kind}", line)
            )
        elif check_images:
            to_decode.append((line, resolved[row]))
    for line, message in undecodable(to_decode, workers, csv_path=table.csv_path):
        problems.append(Problem("error", "unreadable image", message, line))
    problems.sort(key=lambda problem: problem.line or 0)
    return problems


def _shortened(text: str, keep: int = 60) -> str:
    """A path as a message can show it: a 131,072-character path becomes its start, its length and its end."""
    return text if len(text) <= 2 * keep else f"{text[:keep]}...{text[-keep:]} ({len(text):,} characters)"


def check_groups(table: SplitTable) -> list[Problem]:
    problems = []
    valid = (table.labels >= 0) & ~table.placeholder_mask()  # the images: what training and AUCs can use
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
    """(split, forgery_type, generator, source_dataset) -> (real, fake) counts of the image rows (placeholder rows
    apart: ``placeholder_lines``), for the columns present; O(n log n)."""
    keys = [c for c in ("split", *GROUP_COLUMNS) if table.has(c)]
    valid = np.flatnonzero((table.labels >= 0) & ~table.placeholder_mask())
    if not keys:
        labels = table.labels[valid]
        return keys, [((), int((labels == 0).sum()), int((labels == 1).sum()))] if len(valid) else []
    columns = [Keys.of(table.column(c)) for c in keys]
    stacked = np.stack([column.codes[valid] for column in columns] + [table.labels[valid].astype(np.int64)])
    combos, counts = np.unique(stacked, axis=1, return_counts=True)
    totals: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for combo, count in zip(combos.T.tolist(), counts.tolist()):
        totals[tuple(column.name(code) for column, code in zip(columns, combo[:-1]))][combo[-1]] += count
    return keys, sorted((key, real, fake) for key, (real, fake) in totals.items())


def placeholder_lines(table: SplitTable) -> list[str]:
    """The placeholder rows (source videos that gave no crop: ``extraction_status``), counted by status and split,
    real and fake: not images, so never missing files; training leaves them out, evaluation counts them unscored."""
    rows = np.flatnonzero(table.placeholder_mask())
    if not len(rows):
        return []
    statuses = table.column("extraction_status")
    splits = table.column("split") if table.has("split") else None
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows.tolist():
        label = int(table.labels[row])
        if label >= 0:
            counts[(statuses[row], splits[row] if splits else "")][label] += 1
    lines = [
        f"placeholder rows: {len(rows)} source video(s) without a crop (extraction_status), left out of training "
        "and validation, unscored in evaluation:"
    ]
    order = {status: i for i, status in enumerate(EXTRACTION_STATUSES)}
    for (status, split), (real, fake) in sorted(counts.items(), key=lambda item: (order.get(item[0][0], 9), item[0])):
        lines.append(f"  {status}{f' ({split})' if split else ''}: {real} real, {fake} fake")
    return lines


def format_statistics(table: SplitTable, sample: int, seed: int = 0) -> dict[int, dict]:
    """Per class: file format counts and JPEG qualities over (a seeded sample of) the existing files."""
    rng = np.random.default_rng(seed)
    stats = {}
    images = ~table.placeholder_mask()
    for label in (0, 1):
        rows = np.flatnonzero((table.labels == label) & images)
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


def validate(
    csv_path, root=None, *, check_images=False, workers=None, format_sample=1000, max_per_kind=20, out=sys.stdout
) -> int:
    """Print the report; return the exit status (1 when there are errors).

    ``workers``: processes that decode the images with ``check_images`` (None: ``default_decode_workers()``).
    """
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be 1 or more (1 decodes in this process); got {workers}.")

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
    images = ~table.placeholder_mask()
    total_real, total_fake = int(((table.labels == 0) & images).sum()), int(((table.labels == 1) & images).sum())
    say(f"total: {total_real} real, {total_fake} fake" + ("" if len(header) else ""))
    for line in placeholder_lines(table):
        say(line)
    problems += check_paths(table, check_images, default_decode_workers() if workers is None else workers)
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
        "--workers",
        type=int,
        help="processes that --check-images decodes in (default: the usable cores, at most "
        f"{MAX_DECODE_WORKERS}; 1: in this process)",
    )
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
        workers=args.workers,
        format_sample=args.format_sample,
        max_per_kind=args.max_per_kind,
    )


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
