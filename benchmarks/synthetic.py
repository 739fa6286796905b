"""The scale benchmark's synthetic GenFace-shaped dataset: N rows of tiny images in a
``<forgery_type>/<generator>/<identity>/<row>.png`` tree (a few distinct byte blobs written under N names), its split
CSV (identities on one side of train/val/test) and a predictions.csv of its test rows."""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

GENERATORS = {  # forgery type -> its generators (GenFace's three families, four generators each)
    "EFS": ["efs-gan1", "efs-gan2", "efs-diff1", "efs-diff2"],
    "AM": ["am-gan1", "am-gan2", "am-diff1", "am-diff2"],
    "FS": ["fs-gan1", "fs-gan2", "fs-diff1", "fs-diff2"],
}


REAL_FRACTION = 0.2
SPLIT_NAMES = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # of identities (a person on one side only)
ROWS_PER_IDENTITY = 100
MIN_IDENTITIES = 30  # small sets still split about 80/10/10
SOURCE_DATASET = "genface"
DEFAULT_GENERATORS = sum(len(names) for names in GENERATORS.values())
RUNS_TEST_FRACTION = 0.2  # --runs tests each fold on N/5 rows: 200,000 at a million
DISTINCT_BLOBS = 16  # distinct image files per class, written under N names
TREE_PATTERN = "{forgery_type}/{generator}/{identity}/*"
@dataclass
class Synthetic:
    """The synthetic dataset's files and its columns (numpy string arrays, one entry per row)."""

    root: Path
    csv: Path
    predictions: Path
    columns: dict[str, np.ndarray]
    seconds: float = 0.0
    bytes_on_disk: int = 0
    generators: dict[str, list[str]] = field(default_factory=lambda: GENERATORS)

    @property
    def rows(self) -> int:
        return len(self.columns["path"])

    def count(self, split: str) -> int:
        return int(np.count_nonzero(self.columns["split"] == split))


def generator_names(count: int = DEFAULT_GENERATORS) -> dict[str, list[str]]:
    """Forgery type -> its generators: GenFace's twelve by default, else ``count`` numbered ones dealt in turn to the
    three families (many groups in one table: DF40's 40 methods and beyond)."""
    if count == DEFAULT_GENERATORS:
        return GENERATORS
    if count < 2 * len(GENERATORS):
        raise SystemExit(f"--generators {count}: give at least {2 * len(GENERATORS)} (two per forgery type).")
    families = list(GENERATORS)
    return {f: [f"{f.lower()}-g{i:03d}" for i in range(j, count, len(families))] for j, f in enumerate(families)}


def runs_folds(generators: dict[str, list[str]]) -> list[str]:
    """The 6-fold cross-generator matrix: the first and the middle generator of each forgery type (GenFace's: a GAN
    and a diffusion model each)."""
    return [fold for names in generators.values() for fold in (names[0], names[len(names) // 2])]


def synthetic_columns(
    rows: int, frames_per_video: int, seed: int, generators: dict[str, list[str]] = GENERATORS
) -> dict[str, np.ndarray]:
    """The split CSV's columns: units (videos of ``frames_per_video`` rows, or single images) drawn per unit."""
    rng = np.random.default_rng(seed)
    per_unit = max(1, frames_per_video)
    units = -(-rows // per_unit)
    forgery_of = ["real"] + [f for f, names in generators.items() for _ in names]
    generator_of = ["real"] + [g for names in generators.values() for g in names]
    fakes = len(generator_of) - 1
    kind = np.where(rng.random(units) < REAL_FRACTION, 0, rng.integers(1, fakes + 1, units))
    identities = max(MIN_IDENTITIES, rows // ROWS_PER_IDENTITY)
    identity_split = rng.choice(len(SPLIT_NAMES), identities, p=SPLIT_FRACTIONS)
    identity_split[:3] = [0, 1, 2]  # every split has someone, even at a few hundred rows
    identity = rng.integers(0, identities, units)
    take = lambda values: np.repeat(values, per_unit)[:rows]  # noqa: E731 (unit value -> its rows)
    kind, identity = take(kind), take(identity)
    identity_names = np.char.add("id", np.char.zfill(identity.astype(str), 6))
    columns = {
        "label": (kind > 0).astype(np.int8).astype(str),
        "split": np.asarray(SPLIT_NAMES)[identity_split[identity]],
        "forgery_type": np.asarray(forgery_of)[kind],
        "generator": np.asarray(generator_of)[kind],
        "source_dataset": np.full(rows, SOURCE_DATASET),
        "identity": identity_names,
    }
    if frames_per_video:
        columns["video_id"] = np.char.add("v", take(np.arange(units)).astype(str))
    folder = np.char.add(np.char.add(np.char.add(columns["forgery_type"], "/"), columns["generator"]), "/")
    folder = np.char.add(np.char.add(folder, identity_names), "/")
    columns = {"path": np.char.add(np.char.add(folder, np.arange(rows).astype(str)), ".png"), **columns}
    return columns


def image_blobs(image_size: int, image_format: str, seed: int) -> dict[str, list[bytes]]:
    """A few distinct encoded images per label ("0", "1"): noise, the fakes with a faint grid."""
    rng = np.random.default_rng(seed)
    blobs: dict[str, list[bytes]] = {"0": [], "1": []}
    for label in blobs:
        for _ in range(DISTINCT_BLOBS):
            pixels = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
            if label == "1":
                pixels[::4] //= 2
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format=image_format)
            blobs[label].append(buffer.getvalue())
    return blobs


def write_images(root: Path, paths: np.ndarray, labels: np.ndarray, blobs: dict[str, list[bytes]]) -> int:
    """Write one blob under each path (row i takes blob i mod DISTINCT_BLOBS of its label); return the bytes."""
    for folder in np.unique(np.char.rpartition(paths, "/")[:, 0]):
        (root / folder).mkdir(parents=True, exist_ok=True)
    written = 0
    for row, (path, label) in enumerate(zip(paths.tolist(), labels.tolist())):
        data = blobs[label][row % DISTINCT_BLOBS]
        descriptor = os.open(root / path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)
        written += len(data)
    return written


def write_csv(path: Path, columns: dict[str, np.ndarray], rows: np.ndarray | None = None) -> None:
    """Columns -> CSV, column-wise (a million rows in seconds)."""
    picked = {name: (values if rows is None else values[rows]).tolist() for name, values in columns.items()}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(picked))
        writer.writerows(zip(*picked.values()))


def prediction_columns(columns: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """A predictions.csv as test.py writes it for the test rows: fakes score higher on average, each generator by
    its own margin; frames of one video share an offset."""
    rng = np.random.default_rng(seed + 1)
    test = np.flatnonzero(columns["split"] == "test")
    generator = columns["generator"][test]
    names, generator_code = np.unique(generator, return_inverse=True)
    margin = rng.uniform(0.5, 2.5, len(names))[generator_code]
    logits = rng.normal(0.0, 1.0, len(test)) + np.where(columns["label"][test] == "1", margin, -1.0)
    if "video_id" in columns:
        _, video_code = np.unique(columns["video_id"][test], return_inverse=True)
        logits += rng.normal(0.0, 0.7, video_code.max() + 1)[video_code]
    scores = np.char.mod("%.6f", np.round(1.0 / (1.0 + np.exp(-logits)), 6))
    order = ["split", "forgery_type", "generator", "source_dataset", "video_id", "identity"]
    picked = {"path": columns["path"][test], "label": columns["label"][test], "score": scores}
    return picked | {name: columns[name][test] for name in order if name in columns}


def synthesise(
    workdir: Path,
    rows: int,
    *,
    image_size: int,
    image_format: str,
    frames_per_video: int,
    seed: int,
    generators: dict[str, list[str]] = GENERATORS,
):
    started = time.perf_counter()
    root = workdir / "genface"
    root.mkdir(parents=True, exist_ok=True)
    columns = synthetic_columns(rows, frames_per_video, seed, generators)
    suffix = ".png" if image_format == "PNG" else ".jpg"
    if suffix != ".png":
        columns["path"] = np.char.replace(columns["path"], ".png", suffix)
    written = write_images(root, columns["path"], columns["label"], image_blobs(image_size, image_format, seed))
    write_csv(root / "splits.csv", columns)
    write_csv(root / "predictions.csv", prediction_columns(columns, seed))
    # The files are on disk before any stage is timed: a million just-written files would otherwise be flushed to
    # disk while the first stages read them, and those stages would pay for the write-back.
    os.sync()
    return Synthetic(
        root, root / "splits.csv", root / "predictions.csv", columns, time.perf_counter() - started, written, generators
    )


def runs_columns(columns: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The dataset with its identities split again so that about RUNS_TEST_FRACTION of the rows are test rows."""
    _, identity_code = np.unique(columns["identity"], return_inverse=True)
    fractions = (1 - 0.1 - RUNS_TEST_FRACTION, 0.1, RUNS_TEST_FRACTION)
    side = np.random.default_rng(seed).choice(len(SPLIT_NAMES), identity_code.max() + 1, p=fractions)
    side[:3] = [0, 1, 2]
    return columns | {"split": np.asarray(SPLIT_NAMES)[side[identity_code]]}
