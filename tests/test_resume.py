"""train.py --resume of a run whose data moved (--csv NEW, --data-root, --set data.csv, --resume auto): taken when the
new place holds the rows and labels the run recorded (data.fingerprint), refused naming the difference when not; edits
to the run's config.yaml are taken or refused, never ignored; the demo continues its interrupted run."""

import shutil

import pytest
from csv_rows import read_rows, write_rows
from runs import quick_args

import train
from common.checkpoint import load_checkpoint, save_checkpoint
from common.errors import MissingFileError, UsageError
from data.make_demo import make_demo
from data.schema import SchemaError
from engine.config import load_config, save_config

LONGER = ["--set", "train.epochs=2"]  # the fixture's run trained 1 epoch: asking for 2 makes it resumable


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data folder, run folder) of a one-epoch quick run on a small demo: tests copy both before changing them."""
    root = tmp_path_factory.mktemp("trained")
    csv_path = make_demo(root / "data", identities=8, fakes_per_generator=12)
    train.main(["--csv", str(csv_path), "--out", str(root / "run"), *quick_args(train__epochs=1)])
    return root / "data", root / "run"


@pytest.fixture
def moved(trained, tmp_path):
    """A copy of the run whose data has moved from where the run recorded it: (run folder, the data's new folder)."""
    data, run = trained
    shutil.copytree(run, tmp_path / "run")
    old = tmp_path / "old-mount"
    shutil.copytree(data, old)
    _retarget(tmp_path / "run", old)
    new = tmp_path / "new-mount"
    old.rename(new)
    return tmp_path / "run", new


def _retarget(run, data):
    """Make the copied run's checkpoint and config.yaml name ``data``'s CSV (as if it had been trained there)."""
    checkpoint = load_checkpoint(run / "last.pt")
    checkpoint["config"]["data"]["csv"] = str(data / "demo.csv")
    save_checkpoint(run / "last.pt", checkpoint)
    save_config(checkpoint["config"], run / "config.yaml")


@pytest.fixture
def no_training(monkeypatch):
    """Trainer.fit records the config it was given and trains nothing (the resolution is what is tested)."""
    from engine.training.trainer import Trainer

    given = []

    def fit(self):
        given.append(self.config)
        return {
            "run_dir": str(self.run_dir),
            "select_metric": "auc",
            "best_value": None,
            "best_epoch": None,
            "last": None,
        }

    monkeypatch.setattr(Trainer, "fit", fit)
    return given


def test_a_run_records_the_fingerprint_of_its_data(trained):
    import json

    _, run = trained
    recorded = load_checkpoint(run / "last.pt")["data_fingerprint"]
    assert {split: recorded[split]["rows"] for split in ("train", "val", "test")} == {
        "train": 72,
        "val": 32,
        "test": 32,
    }
    assert load_checkpoint(run / "best.pt")["data_fingerprint"] == recorded
    assert json.loads((run / "env.json").read_text())["data_fingerprint"] == recorded


def test_a_moved_csv_is_named_and_csv_new_is_the_way(moved):
    run, new = moved
    with pytest.raises(
        MissingFileError, match=r"the run's split CSV .*old-mount/demo.csv is no longer there: .*--csv NEW"
    ):
        train.main(["--resume", str(run), *LONGER])


def test_resume_with_the_moved_csv_continues_the_run(moved, capsys):
    run, new = moved
    summary = train.main(["--resume", str(run), "--csv", str(new / "demo.csv"), *LONGER])
    assert f"--resume: the run's data moved (data.csv {new / 'demo.csv'})" in capsys.readouterr().out
    assert summary["last"]["epoch"] == 2
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["config"]["data"]["csv"] == str(new / "demo.csv") and resumed["epoch"] == 2
    assert load_config(run / "config.yaml")["data"]["csv"] == str(new / "demo.csv")


def test_set_data_csv_and_resume_auto_take_the_moved_csv(moved, no_training, capsys):
    run, new = moved
    train.main(["--resume", str(run), "--set", f"data.csv={new / 'demo.csv'}", *LONGER])
    assert no_training[-1]["data"]["csv"] == str(new / "demo.csv")
    command = ["--csv", str(new / "demo.csv"), *quick_args(), "--out", str(run), "--resume", "auto"]
    train.main(command)
    assert "holds a run (last.pt at step 4): continuing it" in capsys.readouterr().out
    assert no_training[-1]["data"]["csv"] == str(new / "demo.csv") and no_training[-1]["train"]["epochs"] == 2


def test_a_csv_of_other_rows_or_labels_is_refused_naming_the_difference(moved, tmp_path):
    run, new = moved
    rows = read_rows(new / "demo.csv")
    flipped = next(i for i, row in enumerate(rows) if row["split"] == "val" and row["label"] == "0")
    rows[flipped]["label"] = "1"
    dropped = next(i for i, row in enumerate(rows) if row["split"] == "train")
    del rows[dropped]
    edited = write_rows(new / "edited.csv", rows)
    with pytest.raises(UsageError) as error:
        train.main(["--resume", str(run), "--csv", str(edited), *LONGER])
    assert "does not hold the rows and labels the run trained on (train: 72 rows (24 fake) recorded, 71 rows" in str(
        error.value
    )
    assert "val: 32 rows (24 fake) recorded, 32 rows (25 fake) here" in str(error.value)
    with pytest.raises(UsageError, match="does not hold the rows and labels the run trained on"):
        train.main(["--resume", str(run), "--set", f"data.csv={edited}", *LONGER])
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # nothing was trained


def test_a_wrong_data_root_on_resume_says_no_image_is_there(moved, tmp_path):
    run, new = moved
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match=r"none of the 104 images of .*demo.csv is under the data root .*empty"):
        train.main(
            ["--resume", str(run), "--csv", str(new / "demo.csv"), "--data-root", str(tmp_path / "empty"), *LONGER]
        )


def test_a_checkpoint_without_a_fingerprint_refuses_moved_data_saying_why_and_what_to_do(moved):
    run, new = moved
    checkpoint = load_checkpoint(run / "last.pt")
    del checkpoint["data_fingerprint"]
    save_checkpoint(run / "last.pt", checkpoint)
    with pytest.raises(UsageError, match=r"written before runs recorded a fingerprint of their data.*symbolic link"):
        train.main(["--resume", str(run), "--csv", str(new / "demo.csv"), *LONGER])


def test_config_yaml_edits_are_taken_or_refused_never_ignored(moved, no_training):
    run, new = moved
    config = load_config(run / "config.yaml")
    config["data"]["csv"] = str(new / "demo.csv")
    config["train"]["epochs"] = 2
    save_config(config, run / "config.yaml")
    train.main(["--resume", str(run)])
    assert no_training[-1]["data"]["csv"] == str(new / "demo.csv") and no_training[-1]["train"]["epochs"] == 2
    config["optim"]["lr"] = 5e-4
    config["train"]["seed"] = 3
    save_config(config, run / "config.yaml")
    with pytest.raises(
        UsageError,
        match=r"config.yaml was edited after the run's last checkpoint \(optim.lr: 0.001 "
        r"-> 0.0005; train.seed: 0 -> 3\).*python train.py --config .*config.yaml --out NEW_RUN",
    ):
        train.main(["--resume", str(run)])
    with pytest.raises(UsageError, match="only data.csv, data.root, train.epochs may change"):
        train.main(["--resume", str(run), "--set", "optim.lr=1e-4"])


def test_the_no_argument_demo_continues_its_interrupted_run(trained, tmp_path, monkeypatch, capsys):
    """``python train.py`` after a Ctrl-C continues the demo run it stopped (and says so), not a new run from step 0;
    an interrupted run of another config is named with the command that continues it; a finished one is left."""
    import copy

    _, run = trained
    monkeypatch.setattr(train, "REPO_ROOT", tmp_path)
    interrupted = tmp_path / "checkpoint" / "demo-intra-20260101-000000"
    shutil.copytree(run, interrupted)
    checkpoint = load_checkpoint(interrupted / "last.pt")
    checkpoint["config"]["train"]["epochs"] = 2
    checkpoint["state"]["finished"] = False  # stopped by Ctrl-C at the end of epoch 1 of 2
    save_checkpoint(interrupted / "last.pt", checkpoint)
    save_config(checkpoint["config"], interrupted / "config.yaml")
    config = copy.deepcopy(checkpoint["config"])

    continued, run_dir, resume = train._interrupted_demo_run(copy.deepcopy(config), None)
    assert run_dir == interrupted and resume["step"] == 4 and continued == config
    assert (
        f"continuing the interrupted demo run {interrupted} (stopped at step 4, 1 of 2 epochs done); to start a new "
        "demo run instead: python train.py --out checkpoint/demo-NEW"
    ) in capsys.readouterr().out

    other = copy.deepcopy(config)
    other["optim"]["lr"] = 5e-4
    assert train._interrupted_demo_run(other, None) == (other, None, None)
    assert f"continue it with  python train.py --resume {interrupted}; starting a new demo run" in (
        capsys.readouterr().out
    )
    checkpoint["state"]["finished"] = True
    save_checkpoint(interrupted / "last.pt", checkpoint)
    assert train._interrupted_demo_run(config, None) == (config, None, None)
    assert capsys.readouterr().out == ""
