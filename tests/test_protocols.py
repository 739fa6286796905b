"""data/protocols.py: the intra, cross-generator, cross-forgery and cross-dataset protocols, folds, YAML protocols."""

from pathlib import Path

import numpy as np
import pytest
from data_files import COLUMNS, write_csv, write_text

from data.protocols import MISSING_VALUE, Protocol, ProtocolError, load_protocol, report_groups, require, resolve
from data.schema import SchemaError, SplitTable, load_table

# (path, label, split, forgery_type, generator, source_dataset); row i is line i + 2.
PROTOCOL_ROWS = [
    ("A/r0.png", 0, "train", "real", "real", "A"),  # 0
    ("A/r1.png", 0, "train", "real", "real", "A"),  # 1
    ("A/g1a.png", 1, "train", "EFS", "g1", "A"),  # 2
    ("A/g2a.png", 1, "train", "AM", "g2", "A"),  # 3
    ("A/r2.png", 0, "val", "real", "real", "A"),  # 4
    ("A/g1b.png", 1, "val", "EFS", "g1", "A"),  # 5
    ("A/g2b.png", 1, "val", "AM", "g2", "A"),  # 6
    ("A/r3.png", 0, "test", "real", "real", "A"),  # 7
    ("A/g1c.png", 1, "test", "EFS", "g1", "A"),  # 8
    ("A/g2c.png", 1, "test", "AM", "g2", "A"),  # 9
    ("B/r0.png", 0, "train", "real", "real", "B"),  # 10
    ("B/g3a.png", 1, "train", "FS", "g3", "B"),  # 11
    ("B/g4a.png", 1, "train", "FS", "g4", "B"),  # 12
    ("B/r1.png", 0, "val", "real", "real", "B"),  # 13
    ("B/g3b.png", 1, "val", "FS", "g3", "B"),  # 14
    ("B/g4b.png", 1, "val", "FS", "g4", "B"),  # 15
    ("B/r2.png", 0, "test", "real", "real", "B"),  # 16
    ("B/r3.png", 0, "test", "real", "real", "B"),  # 17
    ("B/g3c.png", 1, "test", "FS", "g3", "B"),  # 18
    ("B/g4c.png", 1, "test", "FS", "g4", "B"),  # 19
    ("B/g5c.png", 1, "test", "FS", "g5", "B"),  # 20: a generator seen only in test (no fold)
]


ALL_TEST = [7, 8, 9, 16, 17, 18, 19, 20]


@pytest.fixture
def protocol_table(tmp_path):
    return load_table(write_csv(tmp_path / "p.csv", PROTOCOL_ROWS, COLUMNS[:-1]))


def rows_of(array):
    return sorted(np.asarray(array).tolist())


def groups_of(resolved):
    return {name: rows_of(rows) for name, rows in resolved.groups.items()}


def test_intra_protocol(protocol_table):
    resolved = resolve("intra", protocol_table)
    assert resolved.fold is None
    assert rows_of(resolved.train) == [0, 1, 2, 3, 10, 11, 12]
    assert rows_of(resolved.val) == [4, 5, 6, 13, 14, 15]
    assert rows_of(resolved.test) == ALL_TEST
    assert groups_of(resolved) == {
        "overall": ALL_TEST,
        "forgery_type=AM": [7, 9],
        "forgery_type=EFS": [7, 8],
        "forgery_type=FS": [16, 17, 18, 19, 20],
        "generator=g1": [7, 8],  # its test fakes + source A's real test rows only
        "generator=g2": [7, 9],
        "generator=g3": [16, 17, 18],
        "generator=g4": [16, 17, 19],
        "generator=g5": [16, 17, 20],
        "source_dataset=A": [7, 8, 9],
        "source_dataset=B": [16, 17, 18, 19, 20],
    }
    with pytest.raises(ProtocolError, match="has no folds; drop --fold g1"):
        resolve("intra", protocol_table, fold="g1")


def test_cross_generator_protocol(protocol_table):
    resolved = resolve("cross-generator", protocol_table, fold="g1")
    assert resolved.fold == "g1"
    assert rows_of(resolved.train) == [0, 1, 2]  # g1's train fakes + the real train rows of its source dataset A
    assert rows_of(resolved.val) == [4, 5]
    every_real = resolve("cross-generator", protocol_table, fold="g1", reals="all")
    assert rows_of(every_real.train) == [0, 1, 2, 10] and rows_of(every_real.val) == [4, 5, 13]
    assert rows_of(resolved.test) == ALL_TEST
    assert groups_of(resolved) == {
        "overall": ALL_TEST,
        "generator=g1": [7, 8],
        "generator=g2": [7, 9],
        "generator=g3": [16, 17, 18],
        "generator=g4": [16, 17, 19],
        "generator=g5": [16, 17, 20],
    }


def test_cross_forgery_protocol(protocol_table):
    resolved = resolve("cross-forgery", protocol_table, fold="FS")
    assert rows_of(resolved.train) == [10, 11, 12]  # FS fakes come from B only: B's reals (data.reals: matched)
    assert rows_of(resolved.val) == [13, 14, 15]
    assert rows_of(resolve("cross-forgery", protocol_table, fold="FS", reals="all").train) == [0, 1, 10, 11, 12]
    assert rows_of(resolved.test) == ALL_TEST
    assert set(resolved.groups) == {"overall", "forgery_type=AM", "forgery_type=EFS", "forgery_type=FS"}
    assert rows_of(resolved.groups["forgery_type=EFS"]) == [7, 8]


def test_cross_dataset_protocol(protocol_table):
    resolved = resolve("cross-dataset", protocol_table, fold="B")
    assert rows_of(resolved.train) == [10, 11, 12]
    assert rows_of(resolved.val) == [13, 14, 15]
    assert rows_of(resolved.test) == ALL_TEST
    assert groups_of(resolved) == {
        "overall": ALL_TEST,
        "source_dataset=A": [7, 8, 9],
        "source_dataset=B": [16, 17, 18, 19, 20],
    }


def test_protocol_fold_errors(protocol_table):
    with pytest.raises(
        ProtocolError, match=r"cross-generator needs --fold: one of g1, g2, g3, g4 \(values of 'generator'\)"
    ):
        resolve("cross-generator", protocol_table)
    with pytest.raises(ProtocolError, match=r"has no fold 'g9'.*choose one of g1, g2, g3, g4"):
        resolve("cross-generator", protocol_table, fold="g9")
    with pytest.raises(ProtocolError, match="choose one of AM, EFS, FS"):
        resolve("cross-forgery", protocol_table, fold="real")  # reals are no fold
    with pytest.raises(ProtocolError, match="unknown protocol 'nope'"):
        resolve("nope", protocol_table)


def test_protocol_on_missing_columns(tmp_path, protocol_table):
    no_generator = load_table(write_csv(tmp_path / "q.csv", [r[:4] for r in PROTOCOL_ROWS], COLUMNS[:4]))
    with pytest.raises(ProtocolError, match="folds by column 'generator'"):
        resolve("cross-generator", no_generator, fold="g1")
    custom = Protocol(
        "custom",
        {"train": {"split": "train", "real": {"camera": "x"}}, "val": {"split": "val"}, "test": {"split": "test"}},
    )
    with pytest.raises(ProtocolError, match=r"protocol custom \(train\) filters on column 'camera'"):
        resolve(custom, protocol_table)
    leaky = Protocol("leaky", {"train": {}, "val": {"split": "val"}, "test": {"split": "test"}})
    with pytest.raises(ProtocolError, match=r"8 test row\(s\) are also training/validation rows \(e\.g\. line 9 "):
        resolve(leaky, protocol_table)


def test_protocol_from_a_yaml_file(tmp_path, protocol_table):
    path = write_text(
        tmp_path / "only-a.yaml",
        "train: {split: train, source_dataset: A}\n"
        "val: {split: val}\n"
        "test: {split: test, fake: {generator: [g1, g3]}}\n"
        "report: [generator]\n",
    )
    resolved = resolve(load_protocol(path), protocol_table)
    assert resolved.protocol == "only-a"
    assert rows_of(resolved.train) == [0, 1, 2, 3]
    assert rows_of(resolved.test) == [7, 8, 16, 17, 18]
    assert groups_of(resolved) == {"overall": [7, 8, 16, 17, 18], "generator=g1": [7, 8], "generator=g3": [16, 17, 18]}
    write_text(tmp_path / "bad.yaml", "train: {}\nval: {}\ntest: {}\nfolds: 3\n")
    with pytest.raises(ProtocolError, match="unknown key"):
        load_protocol(tmp_path / "bad.yaml")
    write_text(tmp_path / "short.yaml", "train: {}\nval: {}\n")
    with pytest.raises(ProtocolError, match="lacks the 'test' filter"):
        load_protocol(tmp_path / "short.yaml")


def test_require_empty_and_one_class_subsets(tmp_path):
    rows = [("a.png", 0, "train"), ("b.png", 1, "train"), ("c.png", 0, "test"), ("d.png", 0, "test")]
    table = load_table(write_csv(tmp_path / "r.csv", rows, COLUMNS[:3]))
    resolved = resolve("intra", table)
    assert rows_of(require(resolved, "train", table)) == [0, 1]
    with pytest.raises(SchemaError, match="protocol intra: the val subset of .* is empty"):
        require(resolved, "val", table)
    with pytest.raises(SchemaError, match="the test subset of .* holds only real images; it needs both classes"):
        require(resolved, "test", table)
    assert rows_of(require(resolved, "test", table, both_classes=False)) == [2, 3]


def test_report_groups_match_a_plain_reference_on_a_random_table():
    """The coded report_groups against the rule written out row by row: each value of a column among the fakes is a
    group of its fakes plus the reals of the source dataset(s) those fakes come from; empty values form the
    MISSING_VALUE group; source_dataset itself groups every row by value. Many values, missing ones, three sources."""
    rng = np.random.default_rng(3)
    n = 600
    labels = (rng.random(n) < 0.7).astype(np.int8)
    labels[rng.random(n) < 0.05] = -1  # rows with no valid label are never in a group unless among test_rows
    code = rng.integers(0, 40, n)
    generator = [f"g{c}" if rng.random() > 0.05 else "" for c in code]
    # most generators come from one source dataset, a few rows from another or from none
    source = ["ABC"[c // 15] if rng.random() > 0.1 else str(rng.choice(["A", "B", "C", ""])) for c in code]
    forgery = [str(rng.choice(["EFS", "AM", "FS"])) for _ in range(n)]
    table = SplitTable(
        Path("t.csv"),
        Path("."),
        {
            "path": [f"{i}.png" for i in range(n)],
            "generator": generator,
            "forgery_type": forgery,
            "source_dataset": source,
        },
        labels,
    )
    test_rows = rng.permutation(np.flatnonzero(rng.random(n) < 0.6))
    got = report_groups(table, test_rows, ["forgery_type", "generator", "source_dataset", "absent"])

    rows = sorted(test_rows.tolist())
    expected = {"overall": rows}
    for column, values in (("forgery_type", forgery), ("generator", generator)):
        named = {i: values[i] or MISSING_VALUE for i in rows}
        for value in sorted({named[i] for i in rows if labels[i] == 1}):
            fakes = [i for i in rows if labels[i] == 1 and named[i] == value]
            fake_sources = {source[i] for i in fakes}
            expected[f"{column}={value}"] = sorted(
                fakes + [i for i in rows if labels[i] == 0 and source[i] in fake_sources]
            )
    for value in sorted({source[i] or MISSING_VALUE for i in rows}):
        expected[f"source_dataset={value}"] = [i for i in rows if (source[i] or MISSING_VALUE) == value]

    assert list(got) == list(expected)  # the same groups in the same order
    assert {k: v.tolist() for k, v in got.items()} == expected
    assert f"generator={MISSING_VALUE}" in got and "source_dataset=(missing)" in got
