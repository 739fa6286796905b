"""data/build_index.py: a split CSV from a folder tree and a path pattern, seeded grouped splits, its command line."""

import pytest
from data_files import COLUMNS

from common.cli import run
from data import build_index as bi
from data.schema import load_table

FULL_PATTERN = "{source_dataset}/{split}/{forgery_type}/{generator}/{video_id}/*"


def touch(root, *relatives):
    for relative in relatives:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")


def test_build_index_from_a_full_pattern(tmp_path):
    touch(
        tmp_path,
        "DS/train/real/real/vid1/a.png",
        "DS/train/real/real/vid1/b.JPG",
        "DS/test/FS/swapper/vid2/b.png",
        "DS/validation/AM/editor/vid3/c.webp",
        "DS/test/FS/swapper/vid2/notes.txt",
        "DS/test/FS/too-shallow.png",
    )
    rows, columns, skipped = bi.build_index(tmp_path, FULL_PATTERN)
    assert columns == COLUMNS
    assert rows == [
        {
            "path": "DS/test/FS/swapper/vid2/b.png",
            "label": 1,
            "split": "test",
            "forgery_type": "FS",
            "generator": "swapper",
            "source_dataset": "DS",
            "video_id": "vid2",
        },
        {
            "path": "DS/train/real/real/vid1/a.png",
            "label": 0,
            "split": "train",
            "forgery_type": "real",
            "generator": "real",
            "source_dataset": "DS",
            "video_id": "vid1",
        },
        {
            "path": "DS/train/real/real/vid1/b.JPG",
            "label": 0,
            "split": "train",
            "forgery_type": "real",
            "generator": "real",
            "source_dataset": "DS",
            "video_id": "vid1",
        },
        {
            "path": "DS/validation/AM/editor/vid3/c.webp",
            "label": 1,
            "split": "val",
            "forgery_type": "AM",
            "generator": "editor",
            "source_dataset": "DS",
            "video_id": "vid3",
        },
    ]
    assert skipped == {"not an image": 1, "does not match the pattern": 1}


def test_build_index_label_folder_and_real_value(tmp_path):
    touch(tmp_path, "0/x/a.png", "1/y/b.png", "fake/z/c.png", "maybe/w/d.png")
    rows, columns, skipped = bi.build_index(
        tmp_path, "{label}/{video_id}/*", split_ratios=(1, 0, 0), group_by="video_id"
    )
    assert [(r["path"], r["label"], r["split"]) for r in rows] == [
        ("0/x/a.png", 0, "train"),
        ("1/y/b.png", 1, "train"),
        ("fake/z/c.png", 1, "train"),
    ]
    assert columns == ["path", "label", "split", "video_id"] and skipped == {"label not real/fake/0/1": 1}
    touch(tmp_path / "g", "pristine/a.png", "gan/b.png")
    rows, _, _ = bi.build_index(tmp_path / "g", "{generator}/*", real_value="pristine", split_ratios=(1, 1, 1))
    assert [(r["generator"], r["label"]) for r in rows] == [("gan", 1), ("pristine", 0)]


def grouped_tree(root):
    for generator in ("real", "g1", "g2"):
        for video in range(10):
            touch(root, *(f"{generator}/{generator}-v{video}/{frame}.png" for frame in range(3)))


def test_build_index_seeded_grouped_splits(tmp_path):
    grouped_tree(tmp_path)
    rows, columns, _ = bi.build_index(
        tmp_path, "{generator}/{video_id}/*", split_ratios=(0.6, 0.2, 0.2), group_by="video_id", seed=7
    )
    assert len(rows) == 90 and columns == ["path", "label", "split", "generator", "video_id"]
    video_split = {}
    for row in rows:
        assert video_split.setdefault(row["video_id"], row["split"]) == row["split"]  # one split per video
    for generator in ("real", "g1", "g2"):  # stratified: 6/2/2 of each generator's 10 videos
        splits = [s for v, s in video_split.items() if v.startswith(f"{generator}-")]
        assert (splits.count("train"), splits.count("val"), splits.count("test")) == (6, 2, 2)
    again, _, _ = bi.build_index(
        tmp_path, "{generator}/{video_id}/*", split_ratios=(0.6, 0.2, 0.2), group_by="video_id", seed=7
    )
    assert again == rows
    other, _, _ = bi.build_index(
        tmp_path, "{generator}/{video_id}/*", split_ratios=(0.6, 0.2, 0.2), group_by="video_id", seed=8
    )
    assert [r["split"] for r in other] != [r["split"] for r in rows]


def test_build_index_errors(tmp_path):
    touch(tmp_path, "g1/v1/a.png")
    with pytest.raises(bi.IndexError_, match=r"must capture \{label\}, \{forgery_type\} or \{generator\}"):
        bi.build_index(tmp_path, "{source_dataset}/{video_id}/*", split_ratios=(1, 1, 1))
    with pytest.raises(bi.IndexError_, match=r"no \{split\}: pass --split-ratios"):
        bi.build_index(tmp_path, "{generator}/{video_id}/*")
    with pytest.raises(bi.IndexError_, match="--group-by identity"):
        bi.build_index(tmp_path, "{generator}/{video_id}/*", split_ratios=(1, 1, 1), group_by="identity")
    with pytest.raises(bi.IndexError_, match="captures {generator} twice"):
        bi.build_index(tmp_path, "{generator}/{generator}/*", split_ratios=(1, 1, 1))
    with pytest.raises(bi.IndexError_, match="no image under"):
        bi.build_index(tmp_path, "{generator}/*", split_ratios=(1, 1, 1))
    with pytest.raises(bi.IndexError_, match="is not a folder"):
        bi.build_index(tmp_path / "nowhere", "{generator}/*", split_ratios=(1, 1, 1))


def test_build_index_cli(tmp_path, capsys):
    tree = tmp_path / "tree"
    touch(tree, "DS/train/real/real/vid1/a.png", "DS/test/FS/swapper/vid2/b.png")
    out = tmp_path / "out" / "splits.csv"
    assert bi.main([str(tree), "--pattern", FULL_PATTERN, "--out", str(out)]) == 0
    assert "wrote 2 rows (1 real, 1 fake)" in capsys.readouterr().out
    table = load_table(out, root=tree)
    assert table.column_names == COLUMNS
    assert table.labels.tolist() == [1, 0] and table.column("split") == ["test", "train"]

    grouped_tree(tree / "g")
    grouped = tmp_path / "grouped.csv"
    grouped_args = ["--pattern", "{generator}/{video_id}/*", "--split-ratios", "0.6,0.2,0.2", "--group-by", "video_id"]
    assert bi.main([str(tree / "g"), *grouped_args, "--out", str(grouped)]) == 0
    assert len(load_table(grouped, root=tree / "g")) == 90

    assert run(bi.main, [str(tree), "--pattern", "{source_dataset}/*", "--out", str(tmp_path / "x.csv")]) == 2
    assert "error: the pattern must capture" in capsys.readouterr().err
    assert (
        run(
            bi.main,
            [
                str(tree / "g"),
                "--pattern",
                "{generator}/{video_id}/*",
                "--split-ratios",
                "0.8,0.2",
                "--out",
                str(tmp_path / "x.csv"),
            ],
        )
        == 2
    )
    assert "--split-ratios must be three non-negative numbers" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_files_under_lists_files_in_path_order_without_entering_linked_folders(tmp_path):
    root = tmp_path / "root"
    names = ["a-b/x.png", "a/b/y.png", "a/c.png", "a.b/z.png", "B/q.png", ".hidden/h.png", "a/b/c/deep.png"]
    touch(root, *names)
    outside = tmp_path / "outside"
    touch(outside, "o.png")
    (root / "linked-folder").symlink_to(outside, target_is_directory=True)
    (root / "linked-file.png").symlink_to(outside / "o.png")
    (root / "broken.png").symlink_to(tmp_path / "nowhere.png")
    expected = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "linked-folder" not in p.parts  # rglob does not enter linked folders either
    )
    expected = [p.relative_to(root).as_posix() for p in sorted(root / e for e in expected)]
    assert bi.files_under(root) == expected
    assert "linked-file.png" in expected and "broken.png" not in expected and "a-b/x.png" in expected
    assert expected.index("a/c.png") < expected.index("a-b/x.png")  # component order, not string order ("-" < "/")


def test_suffixes_match_pathlib():
    from pathlib import Path

    from data.media import is_image, suffix_of

    for name in ["a.PNG", "dir.jpg/file", "a.", ".png", "..png", "a..png", "x/y.tar.gz", "noext", "a.b/c.Jpeg"]:
        assert suffix_of(name) == Path(name).suffix.lower(), name
    assert is_image("A/B.JPG") and not is_image("a.jpg/notes") and not is_image(".png")
