"""Each source video's extraction status reaches the split CSV: a dataset builder writes one placeholder row (the
video's own path, its labels and groups, ``extraction_status``) for a listed video that gave no crop; data.validate
counts such rows by status instead of calling them missing images; the protocols leave them out of training and
validation (with a log line), and the dataset never decodes them."""

import csv
import io
import logging

import numpy as np
import pytest
from test_extraction_shards import face_frames, write_video

from common.cli import run
from data import datasets, validate
from data import faces as ef
from data.csv_dataset import SplitDataset
from data.protocols import resolve
from data.schema import load_table, read_table

VIDEOS = {  # name: (label, split, what it shows)
    "real1": (0, "train", "face"),
    "fake1": (1, "train", "face"),
    "real2": (0, "val", "face"),
    "fake2": (1, "val", "face"),
    "real3": (0, "test", "face"),
    "fake3": (1, "test", "face"),
    "empty": (1, "train", "no face"),
    "broken": (0, "val", "corrupt"),
    "short": (1, "test", "too short"),
}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """The videos above extracted with yunet, 4 frames each."""
    source = tmp_path_factory.mktemp("source")
    for name, (_, _, shows) in VIDEOS.items():
        if shows == "corrupt":
            (source / "clips").mkdir(exist_ok=True)
            (source / "clips" / f"{name}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
        else:
            write_video(
                source / "clips" / f"{name}.mp4", face_frames(3 if shows == "too short" else 8, shows != "no face")
            )
    out = tmp_path_factory.mktemp("faces")
    arguments = ["--out", str(out), "--detector", "yunet", "--frames", "4", "--size", "32", "--no-progress"]
    assert run(ef.main, [str(source), *arguments]) == 0
    return out


@pytest.fixture
def toy_builder(request):
    request.addfinalizer(lambda: datasets.BUILDERS.pop("toy-status", None))

    @datasets.register_builder("toy-status")
    def build(root, options):
        videos = [
            datasets.Video(f"clips/{name}", label, split, "gan" if label else "real", "FS" if label else "real", name)
            for name, (label, split, _) in VIDEOS.items()
        ]
        return datasets.rows_of_videos(root, videos, {}, "Toy", options)


def test_the_builder_writes_one_placeholder_row_per_video_without_crops(extracted, toy_builder, capsys):
    assert run(datasets.main, ["toy-status", str(extracted)]) == 0
    printed = capsys.readouterr().out
    assert "3 listed video(s) gave no crop (no-face 1, too-short 1, unreadable 1)" in printed
    with open(extracted / "toy-status.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert "extraction_status" in rows[0]
    placeholders = [row for row in rows if row["extraction_status"] != "ok"]
    assert [
        (r["path"], r["label"], r["split"], r["video_id"], r["generator"], r["frame"], r["extraction_status"])
        for r in placeholders
    ] == [
        ("clips/empty.mp4", "1", "train", "clips/empty", "gan", "", "no-face"),
        ("clips/broken.mp4", "0", "val", "clips/broken", "real", "", "unreadable"),
        ("clips/short.mp4", "1", "test", "clips/short", "gan", "", "too-short"),
    ]
    crops = [row for row in rows if row["extraction_status"] == "ok"]
    assert len(crops) == 6 * 4 and all((extracted / row["path"]).is_file() for row in crops)
    # data.validate: placeholder rows are counted by status, never reported as missing images
    printed = io.StringIO()
    assert validate.validate(extracted / "toy-status.csv", out=printed) == 0
    report = printed.getvalue()
    assert "placeholder rows: 3 source video(s) without a crop" in report
    assert "  no-face (train): 0 real, 1 fake" in report and "  unreadable (val): 1 real, 0 fake" in report
    assert "missing file" not in report and "total: 12 real, 12 fake" in report


def test_training_and_validation_never_load_placeholder_rows(extracted, toy_builder):
    assert run(datasets.main, ["toy-status", str(extracted)]) == 0
    table = load_table(extracted / "toy-status.csv")
    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logger = logging.getLogger("cael")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        resolved = resolve("intra", table)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    placeholders = table.placeholder_mask()
    assert placeholders.sum() == 3
    assert not placeholders[resolved.train].any() and not placeholders[resolved.val].any()
    assert [table.column("path")[i] for i in resolved.not_extracted["train"]] == ["clips/empty.mp4"]
    assert [table.column("path")[i] for i in resolved.not_extracted["val"]] == ["clips/broken.mp4"]
    assert len(resolved.train) == len(resolved.val) == 8
    assert any("left out 1 from train (no-face 1) and 1 from val (unreadable 1)" in line for line in said)
    # the test subset keeps them (evaluation counts them unscored), and the dataset never decodes them
    test_paths = [table.column("path")[i] for i in resolved.test]
    assert "clips/short.mp4" in test_paths and len(resolved.test) == 9
    dataset = SplitDataset(table, resolved.test, size=32)
    samples = [dataset[position] for position in range(len(dataset))]
    assert [sample is None for sample in samples] == [path.endswith(".mp4") for path in test_paths]


def test_an_unknown_extraction_status_is_a_row_error(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("path,label,extraction_status\na.png,0,ok\nb.mp4,1,lost\nc.png,1,\n")
    table, problems = read_table(path)
    assert [(p.kind, p.line) for p in problems] == [("bad extraction_status", 3)]
    assert "extraction_status 'lost' is not one of ok, no-face, decode-error, too-short, unreadable" in str(problems[0])
    assert table.placeholder_mask().tolist() == [False, True, False]
    assert np.array_equal(table.placeholder_mask(), np.array([False, True, False]))
