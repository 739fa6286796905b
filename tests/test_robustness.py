"""Faults and hostile inputs: two runs on one folder, torn records, Ctrl-C, unreadable training data, and the
files that used to crash the validator (encodings, huge fields, decompression bombs, folders, truncated caches)."""

import csv
import json
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from csv_rows import read_rows, write_rows
from runs import quick_args

import train
from common.checkpoint import load_checkpoint
from data import build_index as bi
from data.decoding import ImageDecodeError
from data.images import load_image
from data.make_demo import make_demo
from data.schema import SchemaError, read_table
from data.validate import validate
from engine.training.run import RunLock
from engine.training.trainer import TooManySkippedError, TrainingInterrupted

QUICK = quick_args(data__augment="[{name: hflip, p: 0.5}]")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("robust"), identities=12, fakes_per_generator=16)


def _validate(csv_path, root=None, **kwargs):
    out = []

    class Sink:
        def write(self, text):
            out.append(text)

    status = validate(csv_path, root, out=Sink(), **kwargs)
    return status, "".join(out)


# ---------------------------------------------------------------- run folders


def test_a_second_run_on_a_locked_folder_stops_before_writing(demo, tmp_path):
    run = tmp_path / "run"
    with RunLock(run):
        with pytest.raises(Exception, match="is in use by another training run .*choose another --out"):
            train.main(["--csv", str(demo), "--out", str(run), *QUICK])
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written by the refused run


def test_resume_tolerates_a_torn_last_record_and_removes_partial_writes(demo, tmp_path):
    run = tmp_path / "run"
    train.main(["--csv", str(demo), "--out", str(run), *QUICK, "--set", "train.epochs=1"])
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 2, "train_lo')  # a crash in the middle of appending the next record
    (run / ".last.pt.x1y2.tmp").write_bytes(b"\0" * 4096)  # a checkpoint write killed half-way
    train.main(["--resume", str(run), "--set", "train.epochs=2"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert not list(run.glob(".*.tmp"))
    assert [int(r["epoch"]) for r in csv.DictReader(open(run / "metrics.csv"))] == [1, 2]


def test_ctrl_c_saves_a_resumable_checkpoint_at_the_current_step(demo, tmp_path, monkeypatch):
    handler_before = signal.getsignal(signal.SIGINT)
    args = ["--csv", str(demo), *QUICK]
    train.main([*args, "--out", str(tmp_path / "straight")])
    import loss_folder.losses as losses

    original, calls = losses.LOSSES["ce"], {"n": 0}

    def interrupting(config, class_counts):
        inner = original(config, class_counts)

        class Interrupting(torch.nn.Module):
            def forward(self, outputs, batch):
                calls["n"] += 1
                if calls["n"] == 3:
                    os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during step 3
                return inner(outputs, batch)

        return Interrupting()

    monkeypatch.setitem(losses.LOSSES, "ce", interrupting)
    with pytest.raises(TrainingInterrupted, match=r"SIGINT at optimizer step 3 .*--resume") as caught:
        train.main([*args, "--out", str(tmp_path / "stopped")])
    assert caught.value.exit_code == 130
    assert load_checkpoint(tmp_path / "stopped" / "last.pt")["step"] == 3
    monkeypatch.setitem(losses.LOSSES, "ce", original)
    # the handler is put back: the one the test began with (SIG_IGN when pytest runs as a background job of a shell)
    assert signal.getsignal(signal.SIGINT) is handler_before
    train.main(["--resume", str(tmp_path / "stopped")])
    first, second = (
        load_checkpoint(tmp_path / "straight" / "last.pt"),
        load_checkpoint(tmp_path / "stopped" / "last.pt"),
    )
    assert first["step"] == second["step"] == 8
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][name]), name


def test_a_full_disk_during_a_checkpoint_is_one_line_from_train_py(demo, tmp_path, monkeypatch, capsys):
    """torch.save loses the ENOSPC of its zip writer and raises 'unexpected pos': still one sentence naming the file."""
    from common.cli import run

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4416 vs 4310")

    monkeypatch.setattr(torch, "save", full)
    run_dir = tmp_path / "run"
    quick = [*QUICK, "--set", "train.epochs=1", "--set", "train.max-steps-per-epoch=1"]
    status = run(train.main, ["--csv", str(demo), "--out", str(run_dir), *quick])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 1 and "Traceback" not in err and len(errors) == 1, err
    assert errors[0].startswith("error: the disk is full writing ") and "best.pt: no best.pt was written" in errors[0]
    assert not list(run_dir.glob(".*.tmp"))


def test_a_run_that_cannot_read_its_images_stops_instead_of_training_on_nothing(demo, tmp_path):
    """A data root without the training images (its validation images are there, so the look before training finds
    some): with on-error skip, the first epoch stops at data.max-skipped. A root without any image stops before
    (tests/test_train.py)."""
    partial_root = tmp_path / "elsewhere"
    for row in read_rows(demo):
        if row["split"] != "train":
            (partial_root / row["path"]).parent.mkdir(parents=True, exist_ok=True)
            (partial_root / row["path"]).write_bytes((demo.parent / row["path"]).read_bytes())
    with pytest.raises(TooManySkippedError, match=r"of epoch 1 were unreadable .*data.max-skipped .*--data-root"):
        train.main(
            [
                "--csv",
                str(demo),
                "--data-root",
                str(partial_root),
                "--out",
                str(tmp_path / "run"),
                *QUICK,
                "--set",
                "data.on-error=skip",
            ]
        )
    assert not (tmp_path / "run" / "best.pt").exists()


# ------------------------------------------------------------------ validator


def test_csv_encodings_and_huge_fields(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    rows = "path,label,note\na.png,0,café\n"
    (tmp_path / "utf16.csv").write_text(rows, encoding="utf-16")
    table, _ = read_table(tmp_path / "utf16.csv")
    assert table.column("note") == ["café"]
    (tmp_path / "latin1.csv").write_bytes(rows.encode("latin-1"))
    with pytest.raises(SchemaError, match=r"latin1.csv is not UTF-8 text .*save it as UTF-8"):
        read_table(tmp_path / "latin1.csv")
    status, report = _validate(tmp_path / "latin1.csv")
    assert status == 1 and "not UTF-8" in report
    (tmp_path / "long.csv").write_text("path,label,note\na.png,0," + "x" * 200_000 + "\n")
    assert len(read_table(tmp_path / "long.csv")[0].column("note")[0]) == 200_000


def _png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    )


def test_validate_reports_bombs_folders_and_misspelt_headers_without_crashing(tmp_path):
    _png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    (tmp_path / "folder.png").mkdir()
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ok.png")
    write_rows(
        tmp_path / "s.csv",
        [
            {"path": "bomb.png", "label": "1", "Split": "train", "genrator": "x"},
            {"path": "folder.png", "label": "0", "Split": "train", "genrator": "real"},
            {"path": "ok.png", "label": "0", "Split": "train", "genrator": "real"},
        ],
    )
    for check_images in (False, True):
        status, report = _validate(tmp_path / "s.csv", check_images=check_images)
        assert status == 1
        assert "folder.png is a folder" in report
        assert "did you mean 'split'?" in report and "did you mean 'generator'?" in report
    assert "bomb.png" in report and "could not be decoded" in report
    with pytest.raises(ImageDecodeError, match="bomb.png"):
        load_image(tmp_path / "bomb.png")


def test_a_truncated_image_cache_is_named(tmp_path):
    from tools import cache

    Image = pytest.importorskip("PIL.Image")
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), i * 50, np.uint8)).save(tmp_path / f"{i}.png")
    write_rows(tmp_path / "s.csv", [{"path": f"{i}.png", "label": str(i % 2)} for i in range(3)])
    cached = cache.main([str(tmp_path / "s.csv"), "--size", "8", "--out", str(tmp_path / "c"), "--workers", "1"])
    container = tmp_path / "c" / "images_8.u8"
    container.write_bytes(container.read_bytes()[:100])
    row = read_rows(cached)[1]
    with pytest.raises(ImageDecodeError, match=r"images_8.u8 is truncated or damaged .*rebuild it with tools/cache.py"):
        load_image(tmp_path / "c" / row["path"], 8)


# ---------------------------------------------------------------- build_index


def _tree(root: Path, files):
    for relative in files:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")


def test_build_index_reads_real_folders_in_any_case_and_refuses_silent_split_changes(tmp_path):
    _tree(tmp_path, ["train/Real/v1/0.png", "train/gan/v2/0.png", "test/REAL/v3/0.png", "test/gan/v4/0.png"])
    rows, _, _ = bi.build_index(tmp_path, "{split}/{generator}/{video_id}/*")
    assert {r["path"]: r["label"] for r in rows} == {
        "train/Real/v1/0.png": 0,
        "train/gan/v2/0.png": 1,
        "test/REAL/v3/0.png": 0,
        "test/gan/v4/0.png": 1,
    }
    with pytest.raises(bi.IndexError_, match="captures {split} .*--split-ratios would override it"):
        bi.build_index(tmp_path, "{split}/{generator}/{video_id}/*", split_ratios=(0.8, 0.1, 0.1), group_by="video_id")
    with pytest.raises(bi.IndexError_, match="would cut video_id groups across splits .*add --group-by video_id"):
        bi.build_index(tmp_path, "{other}/{generator}/{video_id}/*", split_ratios=(0.8, 0.1, 0.1))


def test_validate_catches_a_video_with_real_and_fake_frames_that_would_stop_training(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rows = []
    for i, (label, generator, video) in enumerate(
        [("0", "real", "v1"), ("1", "attr-edit", "v1"), ("0", "", "v2"), ("1", "", "v2")]
    ):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"path": f"{i}.png", "label": label, "split": "train", "generator": generator, "video_id": video})
    write_rows(tmp_path / "s.csv", rows)
    status, report = _validate(tmp_path / "s.csv")
    assert status == 1 and "video '/v2' has real frames (line 4) and fake frames" in report
    assert "v1' has real" not in report  # namespaced by generator, as evaluation does: two videos


@pytest.mark.slow
def test_a_signal_after_an_epochs_last_step_stops_before_validating_it(demo, tmp_path, monkeypatch):
    """At a million rows, validating takes minutes that a scheduler's grace period does not have: a stop asked for
    after the epoch's last step saves and exits without validating; the resumed run validates that epoch first and
    ends like an uninterrupted one."""
    import engine.training.trainer as trainer_module

    args = ["--csv", str(demo), *QUICK]
    train.main([*args, "--out", str(tmp_path / "straight")])
    real_bar, real_validate, validations = trainer_module.Trainer._progress_bar, trainer_module.Trainer.validate, []

    signalled = []

    def bar_that_signals_at_the_end_of_epoch_1(self, epoch, total, initial):
        bar = real_bar(self, epoch, total, initial)
        if epoch == 0:
            close = bar.close

            def close_then_signal_once():  # the loop's stop checks are past
                close()
                # tqdm's __del__ closes the bar again, at whatever later moment the garbage collector picks: by then
                # the trainer's handler is gone and a second SIGTERM would end the whole test session
                if not signalled:
                    signalled.append(True)
                    os.kill(os.getpid(), signal.SIGTERM)

            bar.close = close_then_signal_once
        return bar

    def counting_validate(self, *arguments, **options):
        validations.append(self.state.epoch)
        return real_validate(self, *arguments, **options)

    monkeypatch.setattr(trainer_module.Trainer, "_progress_bar", bar_that_signals_at_the_end_of_epoch_1)
    monkeypatch.setattr(trainer_module.Trainer, "validate", counting_validate)
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM after the last step of epoch 1, before its validation"):
        train.main([*args, "--out", str(tmp_path / "stopped")])
    assert signalled == [True] and validations == [] and load_checkpoint(tmp_path / "stopped" / "last.pt")["step"] == 4
    monkeypatch.setattr(trainer_module.Trainer, "_progress_bar", real_bar)
    train.main(["--resume", str(tmp_path / "stopped")])
    assert validations == [0, 1]  # epoch 1 validated on resume, then epoch 2
    first, second = (load_checkpoint(tmp_path / run / "last.pt") for run in ("straight", "stopped"))
    assert first["step"] == second["step"] == 8
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][name]), name
    history = [[record.get("val_auc") for record in c["state"]["history"]] for c in (first, second)]
    assert history[0] == history[1]
