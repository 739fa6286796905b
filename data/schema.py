"""The CSV schema of a split file (one row per image) and its reading, with errors that name file, line and fix.

Required columns: ``path`` (relative to the data root, by default the CSV's folder, or absolute) and ``label``
(0 = real, 1 = fake). Optional: ``split``, ``forgery_type``, ``generator``, ``source_dataset``, ``video_id``,
``identity``, ``frame`` / ``face_index`` (where a face crop came from, written by face extraction) and
``extraction_status`` (``ok``, or the status of a source video that gave no crop: a placeholder row, no image).
Video ids are namespaced by source dataset, forgery type and generator (FF++ methods share ids such as ``000_003``);
a row without a ``video_id`` is a video of its own. Other columns are kept and copied into predictions. Rows are
numbered by their line in the file (header = 1).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.keys import Keys

REQUIRED_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = (
    "split",
    "forgery_type",
    "generator",
    "source_dataset",
    "video_id",
    "identity",
    "frame",
    "face_index",
    "extraction_status",
)
# extraction_status: "ok" (or empty) on an image row; on a placeholder row, the status of a source video that gave no
# crop (python -m data.extract_faces: no-face, decode-error, too-short, unreadable), whose path is the video itself.
# Training and validation leave placeholder rows out; evaluation counts them among the unscored.
EXTRACTION_STATUSES = ("ok", "no-face", "decode-error", "too-short", "unreadable")
# Columns that, with video_id, name one video: the same id under two generators is two videos.
VIDEO_NAMESPACE_COLUMNS = ("source_dataset", "forgery_type", "generator")
IDENTITY_SEPARATOR = ";"
GROUP_COLUMNS = ("forgery_type", "generator", "source_dataset")
SPLITS = ("train", "val", "test")
LABEL_VALUES = {"0": 0, "1": 1}
FIRST_DATA_LINE = 2


class SchemaError(UserError, ValueError):
    """A CSV that cannot be used as it is; the message names the file (and line) and says what to do."""


@dataclass
class Problem:
    """One finding of validation: ``error`` stops training, ``warning`` does not."""

    severity: str
    kind: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{self.severity}: {where}{self.message}"


@dataclass
class SplitTable:
    """A split CSV held column-wise (lists of strings; light enough for millions of rows)."""

    csv_path: Path
    root: Path
    columns: dict[str, list[str]]
    labels: np.ndarray = field(repr=False)  # int8 per row: 0, 1, or -1 where the label is not valid
    lines: np.ndarray | None = field(default=None, repr=False)  # each row's line in the file (header = 1)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def has(self, column: str) -> bool:
        return column in self.columns

    def column(self, name: str) -> list[str]:
        if name not in self.columns:
            raise SchemaError(f"{self.csv_path} has no column '{name}' (its columns: {', '.join(self.columns)}).")
        return self.columns[name]

    def placeholder_mask(self) -> np.ndarray:
        """True on the placeholder rows: a source video without crops (``extraction_status`` other than ok or
        empty), whose path is the video, not an image; all False without the column."""
        if not self.has("extraction_status"):
            return np.zeros(len(self), dtype=bool)
        return np.fromiter((v not in ("", "ok") for v in self.columns["extraction_status"]), bool, len(self))

    def placeholder_statuses(self, rows: Sequence[int]) -> dict[str, int]:
        """Placeholder rows among ``rows``, counted by status (in the order of EXTRACTION_STATUSES)."""
        if not self.has("extraction_status"):
            return {}
        statuses = self.columns["extraction_status"]
        counted: dict[str, int] = {}
        for row in rows:
            if statuses[row] not in ("", "ok"):
                counted[statuses[row]] = counted.get(statuses[row], 0) + 1
        order = {status: i for i, status in enumerate(EXTRACTION_STATUSES)}
        return dict(sorted(counted.items(), key=lambda item: order.get(item[0], len(order))))

    def line(self, row: int) -> int:
        return int(self.lines[row]) if self.lines is not None else row + FIRST_DATA_LINE

    def resolve(self, row: int) -> Path:
        path = Path(self.columns["path"][row])
        return path if path.is_absolute() else self.root / path

    def resolved_paths(self, rows: Iterable[int] | None = None) -> list[str]:
        """Each row's file as a string (string joins, not a Path per row: a million rows in about a second)."""
        rows = range(len(self)) if rows is None else rows
        paths, root = self.columns["path"], str(self.root)
        return [os.path.join(root, paths[i]) for i in rows]  # an absolute path replaces the root, as Path does

    def values(self, name: str, rows: Sequence[int]) -> list[str]:
        column = self.column(name)
        return [column[i] for i in rows]

    def video_keys(self, rows: Sequence[int]) -> list[str] | None:
        """One key per row naming its video (namespaced; a row without ``video_id`` is its own video), or None
        when the CSV has no ``video_id`` column."""
        if not self.has("video_id"):
            return None
        namespace = [self.columns[c] for c in VIDEO_NAMESPACE_COLUMNS if c in self.columns]
        ids = self.columns["video_id"]
        return [
            "/".join([*(column[i] for column in namespace), ids[i]]) if ids[i] else f"<row at line {self.line(i)}>"
            for i in rows
        ]

    def frame_keys(self, rows: Sequence[int]) -> list[str] | None:
        """One key per row naming its frame within its video (faces of one frame share it), or None without a
        ``frame`` column; a row with an empty ``frame`` is a frame of its own."""
        if not self.has("frame"):
            return None
        frames = self.columns["frame"]
        return [frames[i] if frames[i] else f"<row at line {self.line(i)}>" for i in rows]

    def _keys(self, name: str, build) -> Keys:
        """Integer codes of a per-row key over the whole table, built once (a million rows: about a second)."""
        cache = self.__dict__.setdefault("_key_cache", {})
        if name not in cache:
            cache[name] = Keys.of(build(range(len(self))))
        return cache[name]

    def video_codes(self, rows: np.ndarray) -> Keys | None:
        """``video_keys`` as integer codes (``common.keys.Keys``): what grouping and resampling a million rows use."""
        return self._keys("video", self.video_keys).subset(rows) if self.has("video_id") else None

    def frame_codes(self, rows: np.ndarray) -> Keys | None:
        """``frame_keys`` as integer codes, or None without a ``frame`` column."""
        return self._keys("frame", self.frame_keys).subset(rows) if self.has("frame") else None

    def cluster_codes(self, rows: np.ndarray) -> tuple[Keys | None, str]:
        """``cluster_keys`` as integer codes: (keys or None, unit)."""
        if self.has("video_id"):
            return self.video_codes(rows), "videos"
        if self.has("identity"):
            return self._keys("identity", lambda rows: self.cluster_keys(rows)[0]).subset(rows), "identities"
        return None, "images"

    def cluster_keys(self, rows: Sequence[int]) -> tuple[list[str] | None, str]:
        """(key per row, unit) of the bootstrap: videos when the CSV has them, else identities, else images."""
        videos = self.video_keys(rows)
        if videos is not None:
            return videos, "videos"
        if self.has("identity"):
            identities = self.columns["identity"]
            return [identities[i] if identities[i] else f"<row at line {self.line(i)}>" for i in rows], "identities"
        return None, "images"


def _encoding_of(csv_path: Path) -> str:
    """UTF-8 (with or without a byte-order mark), or UTF-16 when the file starts with its byte-order mark."""
    with open(csv_path, "rb") as handle:
        start = handle.read(4)
    return "utf-16" if start[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def _read_rows(reader, csv_path: Path):
    """(header, columns, line numbers, problems) of a CSV reader; whole-file problems raise SchemaError."""
    csv.field_size_limit(max(csv.field_size_limit(), 16 * 1024 * 1024))  # long paths or notes are legitimate
    try:
        header = next(reader)
    except StopIteration:
        raise SchemaError(f"split CSV {csv_path} is empty: it needs a header with at least path,label.") from None
    header = [name.strip() for name in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise SchemaError(
            f"split CSV {csv_path} lacks the required column(s) {', '.join(missing)} "
            f"(its header: {','.join(header)}){_header_hint(header, missing)}; every row needs path and label (0 = "
            "real, 1 = fake)."
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise SchemaError(f"split CSV {csv_path} repeats the column(s) {', '.join(duplicates)} in its header.")
    columns: dict[str, list[str]] = {name: [] for name in header}
    problems = [
        Problem(
            "warning",
            "column name",
            f"column '{given}' is not in the schema: did you mean '{known}'? (rename it, or the "
            f"column is ignored and protocols that need '{known}' stop)",
            line=1,
        )
        for given, known in _misspelt_columns(header)
    ]
    names = list(columns)
    records: list[list[str]] = []
    lines: list[int] = []
    next_line = reader.line_num + 1
    for record in reader:  # as little as possible per row: a million rows are read here
        line_number, next_line = next_line, reader.line_num + 1  # a quoted field may span lines
        if len(record) != len(names):
            if not record or not "".join(record).strip():
                continue
            raise SchemaError(
                f"{csv_path} line {line_number} has {len(record)} fields but the header has {len(names)}: "
                "quote values that contain commas."
            )
        records.append(record)
        lines.append(line_number)
    blank = [i for i, record in enumerate(records) if not "".join(record).strip()]
    if blank:  # rare: a row of empty fields only (e.g. ",,,") is skipped like an empty line
        keep = set(range(len(records))) - set(blank)
        records = [records[i] for i in sorted(keep)]
        lines = [lines[i] for i in sorted(keep)]
    for name, values in zip(names, zip(*records) if records else [() for _ in names]):
        columns[name] = [value.strip() for value in values]
    return header, columns, lines, problems


KNOWN_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)


def _misspelt_columns(header: list[str]) -> list[tuple[str, str]]:
    """Header names that are near-misses of a schema column that is absent (``Split``, ``genrator``)."""
    import difflib

    found = []
    for name in header:
        if name in KNOWN_COLUMNS:
            continue
        lowered = name.lower().replace(" ", "_").replace("-", "_")
        close = [c for c in KNOWN_COLUMNS if c == lowered] or difflib.get_close_matches(
            lowered, KNOWN_COLUMNS, n=1, cutoff=0.8
        )
        if close and close[0] not in header:
            found.append((name, close[0]))
    return found


def report_column_notes(csv_name: str, header: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """One sentence per level a table would lose without a word: a report column ``wanted`` (by the protocol) that
    the header lacks, and a header name that looks like a schema column (``forgery-type``)."""
    misspelt = dict(_misspelt_columns(list(header)))
    notes = [
        f"{csv_name}: column '{given}' is not in the schema: did you mean '{known}'? It is ignored"
        + (f", so this table has no {known} rows (rename the column)" if known in wanted else " (rename it)")
        for given, known in misspelt.items()
    ]
    notes += [
        f"{csv_name} has no '{column}' column: the protocol reports per {column}, so this table has no {column} rows"
        for column in wanted
        if column not in header and column not in misspelt.values()
    ]
    return notes


def _header_hint(header: list[str], missing: list[str]) -> str:
    hints = [f"'{given}' -> '{known}'" for given, known in _misspelt_columns(header) if known in missing]
    return f" (rename {', '.join(hints)})" if hints else ""


# Linux's limits (bytes) on one file or folder name and on a whole path, where the file system does not say its own.
NAME_MAX, PATH_MAX = 255, 4096


def _file_system_limit(root: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(root, name))
    except (OSError, ValueError):  # no such limit here, or not a POSIX system
        return default


def overlong_paths(paths: Sequence[str], root: Path) -> list[tuple[int, str]]:
    """(row, reason) of every path the file system would refuse as too long (ENAMETOOLONG), in row order.

    Vectorised for millions of rows: only paths long enough to break a limit (or non-ASCII ones, whose names take up
    to 4 bytes a character) are encoded and split.
    """
    name_max = _file_system_limit(root, "PC_NAME_MAX", NAME_MAX)
    path_max = _file_system_limit(root, "PC_PATH_MAX", PATH_MAX)
    root_bytes = len(os.fsencode(str(root))) + 1
    lengths = np.fromiter(map(len, paths), dtype=np.int64, count=len(paths))
    ascii_only = np.fromiter(map(str.isascii, paths), dtype=bool, count=len(paths))
    longest_safe = min(name_max, path_max - root_bytes - 1)
    candidates = np.flatnonzero((lengths > longest_safe) | (~ascii_only & (lengths > name_max // 4)))
    found = []
    for row in candidates.tolist():
        encoded = paths[row].encode("utf-8", "surrogateescape")
        full = len(encoded) + (0 if os.path.isabs(paths[row]) else root_bytes)
        longest_name = max(len(part) for part in encoded.split(b"/"))
        if longest_name > name_max:
            found.append((row, f"a file or folder name of {longest_name:,} bytes (the limit is {name_max})"))
        elif full >= path_max:
            found.append((row, f"{full:,} bytes with the data root (the limit is {path_max - 1})"))
    return found


def _shorten(text: str, keep: int = 60) -> str:
    return text if len(text) <= keep else f"{text[: keep - 20]}...{text[-15:]}"


def _path_length_problems(paths: Sequence[str], lines: Sequence[int], root: Path) -> list[Problem]:
    return [
        Problem(
            "error",
            "path too long",
            f"the path {_shorten(paths[row])!r} ({len(paths[row]):,} characters) is too long to open: {reason}; "
            "shorten it, or close the quote that merged lines of the CSV into one field",
            line=lines[row],
        )
        for row, reason in overlong_paths(paths, root)
    ]


def csv_in_folder(folder: str | Path) -> Path:
    """The one ``*.csv`` file directly inside ``folder`` (a folder given where a split CSV was expected)."""
    folder = Path(folder)
    found = _csvs_in(folder)
    if len(found) == 1:
        return found[0]
    raise SchemaError(_folder_message(folder, found))


def _csvs_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.csv") if path.is_file())


def _folder_message(folder: Path, found: list[Path]) -> str:
    if not found:
        return (
            f"split CSV {folder} is a folder with no .csv file in it: pass the split CSV (python -m data.build_index "
            "writes one)."
        )
    shown = ", ".join(str(path) for path in found[:5]) + (f" (and {len(found) - 5} more)" if len(found) > 5 else "")
    return f"split CSV {folder} is a folder; pass the CSV inside it: {shown}."


def read_table(csv_path: str | Path, root: str | Path | None = None) -> tuple[SplitTable, list[Problem]]:
    """Read a split CSV. Returns the table and the row-level problems found while reading (bad labels, splits).

    Raises ``SchemaError`` for problems that make the whole file unusable (missing file or columns).
    """
    csv_path = Path(csv_path)
    if csv_path.is_dir():
        raise SchemaError(_folder_message(csv_path, _csvs_in(csv_path)))
    if not csv_path.is_file():
        raise SchemaError(
            f"split CSV {csv_path} does not exist: check the path (docs/data.md says how to make one; "
            "python -m data.build_index writes one)."
        )
    root = Path(root) if root is not None else csv_path.resolve().parent
    if not root.is_dir():
        raise SchemaError(f"data root {root} (for {csv_path}) is not a folder: pass --data-root DIR.")
    try:
        with open(csv_path, newline="", encoding=_encoding_of(csv_path)) as handle:
            header, columns, lines, problems = _read_rows(csv.reader(handle), csv_path)
    except UnicodeDecodeError as error:
        raise SchemaError(
            f"split CSV {csv_path} is not UTF-8 text (byte {error.start} cannot be decoded): save it as UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8)."
        ) from None
    except csv.Error as error:
        raise SchemaError(
            f"split CSV {csv_path} could not be parsed as CSV ({error}): check quoting and field sizes."
        ) from None
    labels = np.full(len(columns["path"]), -1, dtype=np.int8)
    for row, value in enumerate(columns["label"]):
        if value in LABEL_VALUES:
            labels[row] = LABEL_VALUES[value]
        else:
            problems.append(
                Problem("error", "bad label", f"label {value!r} is not 0 (real) or 1 (fake)", line=lines[row])
            )
    if "split" in columns:
        for row, value in enumerate(columns["split"]):
            if value not in SPLITS:
                hint = " (write val)" if value.lower() in ("valid", "validation", "dev") else ""
                problems.append(
                    Problem(
                        "error",
                        "unknown split",
                        f"split {value!r} is not one of {', '.join(SPLITS)}{hint}",
                        line=lines[row],
                    )
                )
    for name in ("frame", "face_index"):
        for row, value in enumerate(columns.get(name, [])):
            if value and not value.isdigit():
                problems.append(
                    Problem(
                        "error",
                        f"bad {name}",
                        f"{name} {value!r} is not a whole number >= 0 (or empty)",
                        line=lines[row],
                    )
                )
    for row, value in enumerate(columns.get("extraction_status", [])):
        if value and value not in EXTRACTION_STATUSES:
            problems.append(
                Problem(
                    "error",
                    "bad extraction_status",
                    f"extraction_status {value!r} is not one of {', '.join(EXTRACTION_STATUSES)} (or empty)",
                    line=lines[row],
                )
            )
    for row, value in enumerate(columns["path"]):
        if not value:
            problems.append(Problem("error", "empty path", "the path is empty", line=lines[row]))
    problems += _path_length_problems(columns["path"], lines, root)
    table = SplitTable(
        csv_path=csv_path, root=root, columns=columns, labels=labels, lines=np.asarray(lines, dtype=np.int64)
    )
    return table, problems


def load_table(csv_path: str | Path, root: str | Path | None = None) -> SplitTable:
    """Read a split CSV for a run: any row-level error is fatal, reported in one message with its lines."""
    table, problems = read_table(csv_path, root)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        shown = "; ".join(str(p) for p in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise SchemaError(
            f"{csv_path} has {len(errors)} bad row(s): {shown}{more}. Run python -m data.validate {csv_path} for the "
            "full report."
        )
    return table


ROOT_SAMPLE = 32  # images looked up before a run starts: enough to tell a wrong data root, cheap on any file system


def check_images_under_root(table: SplitTable, rows: Sequence[int] | np.ndarray, sample: int = ROOT_SAMPLE) -> None:
    """An error when none of ``sample`` images spread over ``rows`` exists: the data root (or the CSV's absolute
    paths) points where the images are not, which would otherwise surface as one missing image after loading began.
    Some missing images are left to ``data.on-error``."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return
    picked = rows[np.unique(np.linspace(0, len(rows) - 1, min(sample, len(rows))).round().astype(np.int64))]
    paths = table.resolved_paths(picked.tolist())
    if any(os.path.exists(path) for path in paths):
        return
    absolute = all(os.path.isabs(table.columns["path"][row]) for row in picked.tolist())
    checked = f"none of {len(paths)} spread over them exists, e.g. {paths[0]}"
    if absolute:
        raise SchemaError(
            f"the {len(rows):,} images of {table.csv_path} are not where its absolute paths say ({checked}): the "
            "images moved; write the CSV again with paths relative to a data root (python -m data.build_index) and "
            "pass --data-root."
        )
    raise SchemaError(
        f"none of the {len(rows):,} images of {table.csv_path} is under the data root {table.root} ({checked}): pass "
        "--data-root DIR, the folder the CSV's paths are relative to (default: the CSV's own folder)."
    )
