"""data.fingerprint: the same rows and labels give one fingerprint whatever the order, the CSV's place or the data
root; a row more or less, another path or a flipped label gives another."""

import hashlib
from pathlib import Path

import numpy as np
from csv_rows import read_rows, write_rows

from data.fingerprint import fingerprint_differences, rows_fingerprint, splits_fingerprint
from data.schema import load_table

ROWS = [
    {"path": f"{kind}/{i:03d}.png", "label": str(int(kind == "fake")), "split": split}
    for kind in ("real", "fake")
    for i, split in enumerate(["train"] * 4 + ["val"] * 2 + ["test"] * 2)
]


def _table(folder: Path, rows: list[dict], name: str = "splits.csv", root=None):
    folder.mkdir(parents=True, exist_ok=True)
    return load_table(write_rows(folder / name, rows), root)


def _all(table):
    return rows_fingerprint(table, np.arange(len(table)))


def test_the_hash_is_the_documented_one(tmp_path):
    table = _table(tmp_path, ROWS[:3])
    expected = hashlib.sha256("".join(sorted(f"{r['path']}\t{r['label']}\n" for r in ROWS[:3])).encode()).hexdigest()
    assert _all(table) == {"rows": 3, "fakes": 0, "sha256": expected}


def test_the_same_rows_in_another_order_place_or_root_give_the_same_fingerprint(tmp_path):
    first = _all(_table(tmp_path / "a", ROWS))
    assert _all(_table(tmp_path / "b", ROWS[::-1], name="moved.csv")) == first
    (tmp_path / "images").mkdir()
    absolute = [{**row, "path": str(tmp_path / "images" / row["path"])} for row in ROWS]
    assert _all(_table(tmp_path / "c", absolute, root=tmp_path / "images")) == first
    windows = [{**row, "path": "./" + row["path"].replace("/", "\\")} for row in ROWS]
    assert _all(_table(tmp_path / "d", windows)) == first
    extra_column = [{**row, "generator": "x"} for row in ROWS]
    assert _all(_table(tmp_path / "e", extra_column)) == first
    table = _table(tmp_path / "f", ROWS)
    rows = np.arange(len(ROWS))
    assert rows_fingerprint(table, rows[::-1]) == rows_fingerprint(table, rows)


def test_a_flipped_label_a_dropped_row_or_another_path_changes_it(tmp_path):
    first = _all(_table(tmp_path / "a", ROWS))
    flipped = [dict(row) for row in ROWS]
    flipped[0]["label"] = "1"
    changed = _all(_table(tmp_path / "b", flipped))
    assert changed["rows"] == first["rows"] and changed["sha256"] != first["sha256"]
    assert changed["fakes"] == first["fakes"] + 1
    dropped = _all(_table(tmp_path / "c", ROWS[1:]))
    assert dropped["rows"] == first["rows"] - 1 and dropped["sha256"] != first["sha256"]
    renamed = [dict(row) for row in ROWS]
    renamed[0]["path"] = "real/other.png"
    assert _all(_table(tmp_path / "d", renamed))["sha256"] != first["sha256"]


def test_differences_name_the_split_and_what_differs(tmp_path):
    table = _table(tmp_path / "a", ROWS)
    splits = {name: np.flatnonzero(np.asarray(table.column("split")) == name) for name in ("train", "val", "test")}
    recorded = splits_fingerprint(table, splits)
    assert fingerprint_differences(recorded, splits_fingerprint(table, splits)) == []
    edited = read_rows(tmp_path / "a" / "splits.csv")
    edited[4]["label"] = "1"  # a val row (real/004.png) flipped
    del edited[0]  # a train row dropped
    other = _table(tmp_path / "b", edited)
    other_splits = {name: np.flatnonzero(np.asarray(other.column("split")) == name) for name in splits}
    assert fingerprint_differences(recorded, splits_fingerprint(other, other_splits)) == [
        "train: 8 rows (4 fake) recorded, 7 rows (4 fake) here",
        "val: 4 rows (2 fake) recorded, 4 rows (3 fake) here",
    ]
    swapped = [dict(row) for row in ROWS]
    swapped[0]["label"], swapped[8]["label"] = "1", "0"  # real/000 -> fake, fake/000 -> real: the same counts
    third = _table(tmp_path / "c", swapped)
    third_splits = {name: np.flatnonzero(np.asarray(third.column("split")) == name) for name in splits}
    assert fingerprint_differences(recorded, splits_fingerprint(third, third_splits)) == [
        "train: the same counts (8 rows, 4 fake) but other paths or labels"
    ]
