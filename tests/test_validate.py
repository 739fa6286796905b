"""data/validate.py: the validator's report, its errors that name the line, and its format warnings."""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from data_files import write_csv, write_image

from data.schema import read_table
from data.validate import validate


def clean_rows(root, fake_format="PNG", real_options=None, fake_options=None):
    """Two real and two fake images per split, each its own video; real PNGs, fakes in ``fake_format``."""
    rows = []
    for split in ("train", "val", "test"):
        for label in (0, 1):
            for k in range(2):
                fmt, options = ("PNG", real_options or {}) if label == 0 else (fake_format, fake_options or {})
                name = f"{split}_{label}_{k}.{fmt.lower().replace('jpeg', 'jpg')}"
                write_image(root / name, value=40 * k + label, size=(16, 16), fmt=fmt, **options)
                rows.append(
                    {"path": name, "label": label, "split": split, "source_dataset": "A", "video_id": f"v-{name}"}
                )
    return rows


def run_validate(csv_path, **options):
    out = io.StringIO()
    status = validate(csv_path, out=out, **options)
    return status, out.getvalue()


def test_validate_clean_csv(tmp_path):
    csv_path = write_csv(tmp_path / "s.csv", clean_rows(tmp_path))
    status, text = run_validate(csv_path, check_images=True)
    assert status == 0
    assert "s.csv: 12 rows" in text
    assert "total: 6 real, 6 fake" in text
    assert re.search(r"^train\s+A\s+2\s+2$", text, re.M)
    assert "real files (6 of 6 checked): PNG 100%" in text
    assert "0 error(s), 0 warning(s): ok for training" in text


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ({"path": "missing.png", "label": 1, "split": "test"}, "error: line 14: missing.png does not exist"),
        (
            {"path": "../x.png", "label": 1, "split": "test"},
            "error: line 14: path '../x.png' points outside the data root",
        ),
        (
            {"path": "train_0_0.png", "label": 0, "split": "test"},
            "error: line 14: train_0_0.png repeats line 2 (in split train there, test here",
        ),
        (
            {"path": "new.png", "label": 1, "split": "val", "video_id": "v-test_0_0.png"},
            "error: line 14: video 'v-test_0_0.png' is in split test (line 10) and val",
        ),
        (
            {"path": "new.png", "label": "fake", "split": "test"},
            "error: line 14: label 'fake' is not 0 (real) or 1 (fake)",
        ),
    ],
    ids=["missing-file", "escaping-path", "duplicate-across-splits", "video-in-two-splits", "bad-label"],
)
def test_validate_errors_name_the_line(tmp_path, bad_row, message):
    rows = clean_rows(tmp_path)  # lines 2..13; the bad row is line 14
    write_image(tmp_path / "new.png")
    status, text = run_validate(write_csv(tmp_path / "s.csv", [*rows, bad_row]))
    assert status == 1, text
    assert message in text
    assert "training cannot proceed" in text


def test_validate_missing_csv_and_duplicate_within_split(tmp_path):
    status, text = run_validate(tmp_path / "none.csv")
    assert status == 1 and "does not exist" in text
    rows = clean_rows(tmp_path)
    status, text = run_validate(write_csv(tmp_path / "s.csv", [*rows, dict(rows[0])]))
    assert status == 0  # the same file twice in one split: a warning, not a leak
    assert "warning: line 14: train_0_0.png repeats line 2" in text


def test_validate_check_images_finds_a_corrupt_file(tmp_path):
    rows = clean_rows(tmp_path)
    (tmp_path / rows[3]["path"]).write_bytes(b"\xff\xd8 not really a jpeg")
    csv_path = write_csv(tmp_path / "s.csv", rows)
    assert run_validate(csv_path)[0] == 0  # the headers alone are not decoded
    status, text = run_validate(csv_path, check_images=True)
    assert status == 1
    assert re.search(r"error: line 5: image file .*train_1_1\.png could not be decoded", text)


def test_validate_warns_about_format_shortcuts(tmp_path):
    csv_path = write_csv(
        tmp_path / "a" / "s.csv", clean_rows(tmp_path / "a", fake_format="JPEG", fake_options={"quality": 90})
    )
    status, text = run_validate(csv_path)
    assert status == 0
    assert "warning: real and fake images differ in file format (real: PNG 100%; fake: JPEG 100%)" in text
    assert "fake files (6 of 6 checked): JPEG 100%; JPEG quality median 90 (min 90, max 90)" in text

    rows = []
    for row in clean_rows(tmp_path / "b", fake_format="JPEG", fake_options={"quality": 60}):
        if row["label"] == 0:  # reals as JPEG too, but at quality 95
            jpg = row["path"].replace(".png", ".jpg")
            write_image(tmp_path / "b" / jpg, size=(16, 16), quality=95)
            row = {**row, "path": jpg}
        rows.append(row)
    status, text = run_validate(write_csv(tmp_path / "b" / "s.csv", rows))
    assert status == 0
    assert "file format" not in text
    assert "warning: real and fake JPEGs differ in quality (median 95 vs 60)" in text


def test_many_files_in_one_folder_are_found_by_listing_it_once(tmp_path, monkeypatch):
    import data.validate as validate

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "folder.png").mkdir()
    names = [f"{i}.png" for i in range(40)]
    for name in names[:-1]:
        (tmp_path / "imgs" / name).write_bytes(b"x")
    rows = "".join(f"imgs/{name},0\n" for name in [*names, "folder.png", names[0]])
    (tmp_path / "splits.csv").write_text("path,label\n" + rows)
    table, _ = read_table(tmp_path / "splits.csv")
    calls = []
    monkeypatch.setattr(validate, "_stat_kind", lambda path: calls.append(path) or "file")
    problems = validate.check_paths(table, check_images=False)
    assert calls == []  # one directory listing, no stat per file
    assert [(p.kind, p.line) for p in problems] == [("missing file", 41), ("not a file", 42), ("duplicate path", 43)]


def test_validate_names_the_line_of_a_path_too_long_to_open(tmp_path):
    """A 131,072-character path (an unclosed quote can make one) used to end the validator in ENAMETOOLONG."""
    rows = clean_rows(tmp_path)
    rows.append({"path": "a" * 131_072, "label": 1, "split": "test"})
    rows.append({"path": "folder/" + "b" * 300 + ".png", "label": 1, "split": "test"})
    csv_path = write_csv(tmp_path / "s.csv", rows)
    for check_images in (False, True):
        status, text = run_validate(csv_path, check_images=check_images, format_sample=0)
        assert status == 1, text
        assert "error: line 14: the path 'aaaa" in text and "(131,072 characters) is too long to open" in text
        assert "error: line 15: the path 'folder/bbb" in text and "a file or folder name of 304 bytes" in text
        assert "a" * 1000 not in text and "does not exist" not in text  # one short sentence per row, not the path


def test_validate_says_an_empty_image_file_is_empty(tmp_path):
    rows = clean_rows(tmp_path)
    (tmp_path / rows[3]["path"]).write_bytes(b"")
    csv_path = write_csv(tmp_path / "s.csv", rows)
    for check_images in (False, True):
        status, text = run_validate(csv_path, check_images=check_images)
        assert status == 1
        assert "error: line 5: train_1_1.png is empty (0 bytes): copy or extract it again" in text
        assert "could not be decoded" not in text


def test_validate_takes_a_folder_holding_one_csv_and_lists_several(tmp_path):
    write_csv(tmp_path / "s.csv", clean_rows(tmp_path))
    status, text = run_validate(tmp_path)
    assert status == 0 and f"{tmp_path} is a folder: validating {tmp_path / 's.csv'}, the one CSV inside it" in text
    write_csv(tmp_path / "other.csv", clean_rows(tmp_path))
    status, text = run_validate(tmp_path)
    assert status == 1
    assert f"split CSV {tmp_path} is a folder; pass the CSV inside it: {tmp_path / 'other.csv'}, " in text


def broken_images_csv(root):
    """Good images with one corrupt, one empty and two truncated ones among them (lines 5, 8, 11 and 13)."""
    rows = clean_rows(root)
    (root / rows[3]["path"]).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / rows[6]["path"]).write_bytes(b"")
    for k in (9, 11):
        data = (root / rows[k]["path"]).read_bytes()
        (root / rows[k]["path"]).write_bytes(data[: len(data) // 2])
    return write_csv(root / "s.csv", rows)


def test_check_images_in_processes_finds_the_same_problems_in_the_same_order(tmp_path, monkeypatch):
    import data.validate as validate_module

    csv_path = broken_images_csv(tmp_path)
    table, _ = read_table(csv_path)
    items = [(table.line(row), str(table.resolve(row))) for row in range(len(table))]
    in_process = validate_module.undecodable(items, workers=1)
    assert [line for line, _ in in_process] == [5, 8, 11, 13]  # the empty file too, when its path reaches the decoder
    assert "is empty (0 bytes)" in in_process[1][1] and "could not be decoded" in in_process[2][1]
    monkeypatch.setattr(validate_module, "DECODE_CHUNK", 2)  # six chunks over two processes
    assert validate_module.undecodable(items, workers=2) == in_process
    assert validate_module.undecodable(items[::-1], workers=2) == in_process[::-1]  # the order given, not the lines'

    reports = {}
    for workers in (1, 2):
        status, reports[workers] = run_validate(csv_path, check_images=True, workers=workers)
        assert status == 1
    assert reports[1] == reports[2]
    errors = [line for line in reports[2].splitlines() if line.startswith("error: ")]
    assert [re.match(r"error: line (\d+)", line).group(1) for line in errors] == ["8", "5", "11", "13"]


def die_on_the_third_chunk(chunk):
    """Ends its process at item 5 (or line 6), as a crash in the image library or the out-of-memory killer would;
    half a second late, so that the first two chunks have their results by then (when the pool breaks, every chunk
    still in flight is lost too, and the test would depend on which process ran first)."""
    if any(item in (5, (6, "6.png")) for item in chunk):
        time.sleep(0.5)
        os._exit(3)
    return []


def test_the_decoding_processes_do_not_import_torch():
    """Each spawned process imports data.validate: torch would cost it seconds and hundreds of megabytes."""
    probe = "import sys, data.validate; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def sleep_then_return(chunk):
    time.sleep(chunk[0])
    return chunk


def test_processes_give_results_in_chunk_order_reading_chunks_as_they_go():
    import data.validate as validate_module

    # The first chunk finishes last: its result still comes first.
    assert list(validate_module.in_processes(sleep_then_return, [[0.5], [0], [0]], processes=2)) == [[0.5], [0], [0]]
    pulled = []

    def chunks():
        for k in range(40):
            pulled.append(k)
            yield [k]

    results = validate_module.in_processes(sorted, chunks(), processes=2)
    assert next(results) == [0] and len(pulled) <= 2 * 2  # a million rows are not all sent at once
    assert list(results) == [[k] for k in range(1, 40)]


def test_a_decoding_process_that_dies_is_an_error_naming_the_lines_not_a_hang(monkeypatch):
    import data.validate as validate_module

    with pytest.raises(validate_module.LostChunksError) as lost:
        list(validate_module.in_processes(die_on_the_third_chunk, [[1, 2], [3, 4], [5, 6], [7, 8]], processes=2))
    assert 2 in lost.value.chunks and 0 not in lost.value.chunks
    with pytest.raises(ValueError, match="invalid literal"):  # an error in a process reaches the caller
        list(validate_module.in_processes(int, ["1", "x", "3"], processes=2))

    monkeypatch.setattr(validate_module, "DECODE_CHUNK", 2)
    monkeypatch.setattr(validate_module, "_decode_failures", die_on_the_third_chunk)
    items = [(line, f"{line}.png") for line in range(2, 10)]
    with pytest.raises(
        validate_module.DecodingProcessError,
        match=r"s\.csv stopped without a result \(.*\) on a file of lines \d to \d: look at those files",
    ):
        validate_module.undecodable(items, workers=2, csv_path="s.csv")


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_workers_must_be_one_or_more(tmp_path, workers):
    from common.errors import UsageError
    from data.validate import main

    csv_path = write_csv(tmp_path / "s.csv", clean_rows(tmp_path))
    with pytest.raises(
        UsageError, match=rf"^--workers must be 1 or more \(1 decodes in this process\); got {workers}\.$"
    ):
        main([str(csv_path), "--check-images", "--workers", workers])
    assert main([str(csv_path), "--check-images", "--workers", "1"]) == 0
