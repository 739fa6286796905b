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
from common.checkpoint import load_checkpoint
from common.errors import UsageError
from data.csv_dataset import CorruptImageError
from data.make_demo import make_demo
from data.protocols import ProtocolError
from data.schema import SchemaError, load_table
from engine.training.trainer import NonFiniteLossError

ROOT = Path(__file__).resolve().parent.parent
# A quick, deterministic CPU run of the demo config: tiny budget, a checkpoint every 2 steps, dropout and
# random augmentation on (so exact resume must restore the RNG and the data position).
QUICK = quick_args()
TIMING_KEYS = {"epoch_seconds", "val_seconds", "train_images_per_s", "first_step_s", "first_batch_s"}


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


def test_resume_auto_starts_continues_and_never_retrains_a_complete_run(demo, tmp_path, monkeypatch, capsys):
    """A requeued job reruns its command line: --resume auto starts the run, continues it from last.pt after a stop
    (ending like an uninterrupted run), and leaves a complete run as it is."""
    args = ["--csv", str(demo), *QUICK, "--set", "train.checkpoint-every-steps=2"]
    train.main([*args, "--out", str(tmp_path / "straight")])
    requeued = tmp_path / "requeued"
    command = [*args, "--out", str(requeued), "--resume", "auto"]
    capsys.readouterr()
    crash_after_saves(monkeypatch, 2)  # stopped right after the checkpoint of step 4 (the end of epoch 1)
    with pytest.raises(Crash):
        train.main(command)
    monkeypatch.undo()
    assert f"--resume auto: {requeued} holds no last.pt: starting a new run there" in capsys.readouterr().out
    train.main(command)
    assert f"--resume auto: {requeued} holds a run (last.pt at step 4): continuing it" in capsys.readouterr().out
    _assert_same_run(tmp_path / "straight", requeued)
    written = (requeued / "last.pt").stat().st_mtime_ns
    summary = train.main(command)
    out = capsys.readouterr().out
    assert f"{requeued} is complete: it trained 2 of train.epochs 2 (step 8, best validation AUC" in out
    assert "nothing to train" in out and summary["complete"] and summary["best_epoch"] in (1, 2)
    assert (requeued / "last.pt").stat().st_mtime_ns == written
    with pytest.raises(UsageError, match=r"holds a run with another config \(optim.lr: 0.001 -> 0.002\)"):
        train.main([*command, "--set", "optim.lr=2e-3"])
    with pytest.raises(UsageError, match="--resume auto needs --out RUN"):
        train.main([*args, "--resume", "auto"])


def test_resume_of_a_complete_run_says_so_and_extending_it_says_what_the_schedule_does(demo, tmp_path, capsys):
    from common.cli import run as run_command
    from engine.training.optim import build_scheduler

    run = tmp_path / "run"
    train.main(["--csv", str(demo), "--out", str(run), *QUICK, "--set", "train.epochs=1"])  # 4 steps, lr ends at 1e-6
    capsys.readouterr()
    assert run_command(train.main, ["--resume", str(run)]) == 0
    out, err = capsys.readouterr()
    assert f"{run} is complete: it trained 1 of train.epochs 1 (step 4" in out and "continuing at" not in out + err
    assert len(_records(run)) == 1

    # Longer: the schedule of a run planned for 2 epochs from the start, at step 4 (cosine: back up to about half).
    config = load_checkpoint(run / "last.pt")["config"]
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config["optim"]["lr"])
    planned = build_scheduler(optimizer, config["schedule"], steps_per_epoch=4, epochs=2, base_lr=config["optim"]["lr"])
    for _ in range(4):
        optimizer.step()
        planned.step()
    seen = []
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    hook = register_optimizer_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    try:
        train.main(["--resume", str(run), "--set", "train.epochs=2"])
    finally:
        hook.remove()
    assert seen[0] == pytest.approx(planned.get_last_lr()[0], rel=1e-9)  # the first step after resuming uses it
    log = (run / "train.log").read_text()
    assert (
        "train.epochs 1 -> 2: the cosine schedule is recomputed for 2 epochs (8 steps), as if the run had been planned "
        f"for 2 epochs from the start; the learning rate jumps from 1.00e-06 to {seen[0]:.2e} at step 4"
    ) in log
    assert [r["epoch"] for r in _records(run)] == [1, 2]


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


@pytest.mark.slow
def test_a_requeued_job_rerunning_its_command_line_after_sigterm_ends_like_an_uninterrupted_run(demo, tmp_path):
    """What a scheduler does: SIGTERM (train.py saves and exits 130), then the same command line again."""
    args = ["--csv", str(demo), *QUICK, "--set", "train.checkpoint-every-steps=1"]
    train.main([*args, "--out", str(tmp_path / "straight")])
    command = [sys.executable, str(ROOT / "train.py"), *args, "--out", str(tmp_path / "job"), "--resume", "auto"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "job" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)  # forwarded twice, as torchrun and srun do: still one save-and-stop
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-2000:]
    assert "stopped by SIGTERM at optimizer step" in err and "holds no last.pt: starting a new run" in out
    stopped_at = load_checkpoint(last)["step"]
    assert 0 < stopped_at < 8
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"holds a run (last.pt at step {stopped_at}): continuing it" in again.stdout
    _assert_same_run(tmp_path / "straight", tmp_path / "job")


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


def test_a_path_too_long_to_open_is_named_by_its_line_before_training(demo, tmp_path):
    rows = read_rows(demo)
    rows[5]["path"] = "a" * 131_072  # line 7
    csv_path = write_rows(tmp_path / "long.csv", rows)
    with pytest.raises(SchemaError) as caught:
        train.main(["--csv", str(csv_path), "--out", str(tmp_path / "run"), *QUICK])
    text = str(caught.value)
    assert "line 7: the path 'aaaa" in text and "(131,072 characters) is too long to open" in text
    assert len(text) < 1000


def test_csv_may_be_a_folder_holding_one_csv(demo, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    write_rows(folder / "splits.csv", read_rows(demo))
    args = train.get_args_parser().parse_args(["--csv", str(folder), "--data-root", str(demo.parent)])
    config = train._resolve(args)[0]
    assert config["data"]["csv"] == str((folder / "splits.csv").resolve())
    assert f"--csv {folder} is a folder: training on {folder / 'splits.csv'}, the one CSV inside it" in (
        capsys.readouterr().out
    )
    write_rows(folder / "other.csv", read_rows(demo))
    with pytest.raises(SchemaError, match=r"is a folder; pass the CSV inside it: .*other.csv, .*splits.csv\."):
        train.main(["--csv", str(folder), *QUICK])
    with pytest.raises(SchemaError, match="is a folder; pass the CSV inside it"):
        load_table(folder)


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


def test_a_start_that_fails_leaves_no_run_folder_behind(demo, tmp_path):
    """A typo in --csv, a CSV without the protocol's column, or a setup error after the folder was made: nothing is
    left that test.py --runs would list as an unfinished run; a folder that existed keeps exactly what it held."""
    with pytest.raises(SchemaError, match="does not exist"):
        train.main(["--csv", str(demo.parent / "demo-typo.csv"), "--out", str(tmp_path / "typo"), *QUICK])
    no_generator = _rewrite(
        demo, tmp_path, lambda rows: [{k: v for k, v in r.items() if k != "generator"} for r in rows]
    )
    with pytest.raises(ProtocolError, match="column 'generator'"):
        train.main(
            [
                "--csv",
                str(no_generator),
                "--data-root",
                str(demo.parent),
                "--protocol",
                "cross-generator",
                "--fold",
                "swap-blend",
                "--out",
                str(tmp_path / "column"),
                *QUICK,
            ]
        )
    too_big = ["--set", "train.batch-size=100000"]  # fails in the trainer's setup, after the folder was written
    with pytest.raises(SchemaError, match="gives no full step"):
        train.main(["--csv", str(demo), "--out", str(tmp_path / "setup"), *QUICK, *too_big])
    assert not any((tmp_path / name).exists() for name in ("typo", "column", "setup"))
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(SchemaError, match="gives no full step"):
        train.main(["--csv", str(demo), "--out", str(existing), *QUICK, *too_big])
    assert [path.name for path in existing.iterdir()] == ["notes.txt"]


def test_a_start_stopped_by_another_runs_lock_removes_nothing_of_that_run(demo, tmp_path, monkeypatch):
    """The other run may write between this start's look at the folder and its try at the lock: none of it goes."""
    from common.errors import UserError
    from engine.training import run as run_module

    def busy(self):
        (self.run_dir / "written-by-the-other-run").parent.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "written-by-the-other-run").write_text("theirs")
        raise UserError(f"{self.run_dir} is in use by another training run")

    monkeypatch.setattr(run_module.RunLock, "acquire", busy)
    with pytest.raises(UserError, match="in use by another training run"):
        train.main(["--csv", str(demo), "--out", str(tmp_path / "busy"), *QUICK])
    assert (tmp_path / "busy" / "written-by-the-other-run").read_text() == "theirs"


def test_a_data_root_without_the_images_is_named_before_training(demo, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError) as error:
        train.main(["--csv", str(demo), "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), *QUICK])
    assert f"of {demo} is under the data root {tmp_path / 'empty'} (none of 32 spread over them exists" in str(
        error.value
    )
    assert "pass --data-root DIR" in str(error.value) and "on-error" not in str(error.value)
    assert not (tmp_path / "run").exists()


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
