"""train.py end to end on small demo data: learning happens, exact resume, and injected faults give clear errors."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from csv_rows import read_rows, write_rows
from runs import Crash, crash_after_saves, quick_args

import train
from common.errors import UsageError
from data.dataset import CorruptImageError
from data.make_demo import make_demo
from data.protocols import ProtocolError
from data.schema import SchemaError
from engine.checkpoint import load_checkpoint
from engine.trainer import NonFiniteLossError

ROOT = Path(__file__).resolve().parent.parent
# A quick, deterministic CPU run of the demo config: tiny budget, a checkpoint every 2 steps, dropout and
# random augmentation on (so exact resume must restore the RNG and the data position).
QUICK = quick_args()
TIMING_KEYS = {"epoch_seconds", "train_images_per_s"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo dataset (6 generators, 3 forgery types, 2 source datasets)."""
    root = tmp_path_factory.mktemp("demo")
    return make_demo(root, identities=12, fakes_per_generator=16)


def _records(run: Path):
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


def _assert_same_run(a: Path, b: Path):
    first, second = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert first["step"] == second["step"]
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][name]), name
    assert _records(a) == _records(b)


def test_run_folder_has_everything_a_paper_needs(demo, tmp_path):
    run = tmp_path / "run"
    summary = train.main(["--csv", str(demo), "--out", str(run), *QUICK])
    for name in (
        "config.yaml",
        "env.json",
        "metrics.csv",
        "metrics.jsonl",
        "last.pt",
        "best.pt",
        "curves.png",
        "curves.pdf",
        "train.log",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    env = json.loads((run / "env.json").read_text())
    assert env["libraries"]["torch"] and "commit" in env["code"]
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] == summary["best_epoch"] and best["metrics"]["val_auc"] == summary["best_value"]
    calibration = best[
        "calibration"
    ]  # chosen on the validation rows of the selected epoch (read by test.py / predict.py)
    assert (
        calibration["split"] == "val"
        and calibration["epoch"] == best["epoch"]
        and 0.0 <= calibration["threshold"] <= 1.0
    )
    assert calibration["method"] == "max-balanced-accuracy"
    last = load_checkpoint(run / "last.pt")
    assert set(last) >= {
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "epoch",
        "step",
        "rng",
        "config",
        "metrics",
        "code_version",
    }
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(r["val_auc"] for r in rows)
    with pytest.raises(UsageError, match="already holds a run"):
        train.main(["--csv", str(demo), "--out", str(run), *QUICK])


@pytest.mark.parametrize("crash_after_save", [1, 2, 3])
def test_resume_after_a_crash_ends_like_an_uninterrupted_run(demo, tmp_path, monkeypatch, crash_after_save):
    """Checkpoints land after steps 2 (mid-epoch), 4 (end of epoch 1), 6 (mid-epoch 2); crash right after one."""
    args = ["--csv", str(demo), *QUICK, "--set", "train.checkpoint-every-steps=2"]
    train.main([*args, "--out", str(tmp_path / "straight")])

    crash_after_saves(monkeypatch, crash_after_save)
    with pytest.raises(Crash):
        train.main([*args, "--out", str(tmp_path / "crashed")])
    monkeypatch.undo()
    train.main(["--resume", str(tmp_path / "crashed")])
    _assert_same_run(tmp_path / "straight", tmp_path / "crashed")


@pytest.mark.slow
def test_resume_after_sigkill_ends_like_an_uninterrupted_run(demo, tmp_path):
    args = ["--csv", str(demo), *QUICK, "--set", "train.checkpoint-every-steps=1"]
    train.main([*args, "--out", str(tmp_path / "straight")])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, "--out", str(tmp_path / "killed")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere after the first checkpoint, possibly in the middle of writing another
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert last.exists(), "the run ended before its first checkpoint: nothing to resume"
    train.main(["--resume", str(tmp_path / "killed")])
    _assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(demo, tmp_path, monkeypatch):
    import loss_folder.losses as losses

    calls = {"n": 0}
    original = losses.LOSSES["ce"]

    def poisoned(config, class_counts):
        inner = original(config, class_counts)

        class Poisoned(torch.nn.Module):
            def forward(self, outputs, batch):
                calls["n"] += 1
                loss = inner(outputs, batch)
                return loss * float("nan") if calls["n"] == 3 else loss

        return Poisoned()

    monkeypatch.setitem(losses.LOSSES, "ce", poisoned)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"optimizer step 3 .*last good checkpoint .*last.pt is kept"):
        train.main(["--csv", str(demo), "--out", str(run), *QUICK, "--set", "train.checkpoint-every-steps=1"])
    kept = load_checkpoint(run / "last.pt")
    assert kept["step"] == 2
    assert all(torch.isfinite(t).all() for t in kept["model"].values() if t.is_floating_point())


def _rewrite(demo: Path, tmp_path: Path, edit) -> Path:
    return write_rows(tmp_path / "edited.csv", edit(read_rows(demo)))


def test_empty_validation_split_is_one_clear_error(demo, tmp_path):
    edited = _rewrite(
        demo, tmp_path, lambda rows: [{**r, "split": "train" if r["split"] == "val" else r["split"]} for r in rows]
    )
    with pytest.raises(SchemaError, match="the val subset of .*edited.csv is empty"):
        train.main(["--csv", str(edited), "--data-root", str(demo.parent), "--out", str(tmp_path / "run"), *QUICK])


def test_missing_protocol_column_is_one_clear_error(demo, tmp_path):
    edited = _rewrite(demo, tmp_path, lambda rows: [{k: v for k, v in r.items() if k != "generator"} for r in rows])
    with pytest.raises(ProtocolError, match="column 'generator'"):
        train.main(
            [
                "--csv",
                str(edited),
                "--data-root",
                str(demo.parent),
                "--protocol",
                "cross-generator",
                "--fold",
                "swap-blend",
                "--out",
                str(tmp_path / "run"),
                *QUICK,
            ]
        )


def _copy_with_garbage(demo: Path, root: Path, is_garbage) -> Path:
    """A copy of the demo under ``root`` where the rows ``is_garbage(row)`` picks hold bytes that are no image."""
    for row in csv.DictReader(open(demo)):
        target = root / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"not an image" if is_garbage(row) else (demo.parent / row["path"]).read_bytes())
    return _rewrite(demo, root, lambda rows: rows)


def test_corrupt_training_image_stops_or_is_skipped_and_counted(demo, tmp_path):
    broken = [r for r in csv.DictReader(open(demo)) if r["split"] == "train"][:3]
    broken_paths = {r["path"] for r in broken}
    csv_path = _copy_with_garbage(demo, tmp_path / "data", lambda row: row["path"] in broken_paths)
    with pytest.raises(
        CorruptImageError, match=broken[0]["path"].split("/")[-1].replace(".", r"\.") + "|could not be decoded"
    ):
        train.main(
            [
                "--csv",
                str(csv_path),
                "--out",
                str(tmp_path / "stop"),
                *QUICK,
                "--set",
                "train.max-steps-per-epoch=null",
                "--set",
                "train.epochs=1",
            ]
        )
    train.main(
        [
            "--csv",
            str(csv_path),
            "--out",
            str(tmp_path / "skip"),
            *QUICK,
            "--set",
            "train.max-steps-per-epoch=null",
            "--set",
            "train.epochs=1",
            "--set",
            "data.on-error=skip",
            "--set",
            "data.max-skipped=0.1",
        ]
    )
    record = json.loads((tmp_path / "skip" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 1 <= record["train_skipped"] <= 3  # drop_last may leave a corrupt row out of the epoch
    assert "skipped" in (tmp_path / "skip" / "train.log").read_text()


def test_training_never_reads_the_test_rows(demo, tmp_path):
    csv_path = _copy_with_garbage(demo, tmp_path / "data", lambda row: row["split"] == "test")
    summary = train.main(["--csv", str(csv_path), "--out", str(tmp_path / "run"), *QUICK])  # on-error: error
    assert summary["best_value"] is not None


def test_gradient_accumulation_ema_and_step_schedule_run(demo, tmp_path):
    run = tmp_path / "run"
    train.main(
        [
            "--csv",
            str(demo),
            "--out",
            str(run),
            *QUICK,
            "--set",
            "train.accumulate=2",
            "--set",
            "train.ema=true",
            "--set",
            "schedule.name=step",
            "--set",
            "schedule.step-epochs=1",
            "--set",
            "optim.name=sgd",
            "--set",
            "loss.name=focal",
        ]
    )
    last = load_checkpoint(run / "last.pt")
    assert last["step"] == 8 and last["ema"] is not None
    best = load_checkpoint(run / "best.pt")
    assert best["weights"] == "ema" and best["ema"] is None and best["optimizer"] is None
    assert last["scheduler"]["last_epoch"] == 8


def test_best_and_last_share_one_checkpoint_schema(demo, tmp_path):
    run = tmp_path / "run"
    train.main(["--csv", str(demo), "--out", str(run), *QUICK, "--set", "train.epochs=1"])
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert set(best) == set(last) and best["format"] == last["format"] == 1
    assert (best["kind"], last["kind"]) == ("best", "last") and best["weights"] == last["weights"] == "model"
    assert best["optimizer"] is None and best["rng"] is None and last["optimizer"] is not None and last["rng"]
    assert "epoch" not in last["state"] and "step" not in last["state"]  # stored once, at the top level
    assert best["epoch"] == last["epoch"] == 1 and best["step"] == last["step"] == 4
    with pytest.raises(UsageError, match="not a training checkpoint"):
        train.main(["--resume", str(run / "best.pt")])


def test_fine_grained_heads_train_with_the_multitask_loss(demo, tmp_path):
    run = tmp_path / "run"
    train.main(
        [
            "--csv",
            str(demo),
            "--out",
            str(run),
            *QUICK,
            "--set",
            "model.fine-grained-heads=true",
            "--set",
            "model.level2-num-classes=3",
            "--set",
            "model.level3-num-classes=6",
            "--set",
            "loss.name=multitask",
        ]
    )
    best = load_checkpoint(run / "best.pt")
    assert best["class_names"]["level2"] == ["AM", "EFS", "FS"]
    assert len(best["class_names"]["level3"]) == 6
    with pytest.raises(SchemaError, match="level3-num-classes=6"):
        train.main(
            [
                "--csv",
                str(demo),
                "--out",
                str(tmp_path / "bad"),
                *QUICK,
                "--set",
                "model.fine-grained-heads=true",
                "--set",
                "model.level3-num-classes=5",
            ]
        )


@pytest.mark.slow
def test_learning_happens_on_the_demo_data(tmp_path):
    """A short CPU training on easy-but-real demo data lifts validation AUC far above chance."""
    csv_path = make_demo(tmp_path / "data", identities=40, fakes_per_generator=64)
    summary = train.main(
        [
            "--config",
            "cael_demo",
            "--csv",
            str(csv_path),
            "--protocol",
            "cross-forgery",
            "--fold",
            "EFS",
            "--out",
            str(tmp_path / "run"),
            "--set",
            "data.workers=0",
            "--set",
            "train.epochs=3",
            "--set",
            "train.batch-size=16",
        ]
    )
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train_loss"] < 0.6 * records[0]["train_loss"]
    assert summary["best_value"] >= 0.9
