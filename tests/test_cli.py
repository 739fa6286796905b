"""Entry points as a user meets them: one `error: <sentence>` and an exit status for bad input, never a traceback;
typed configs; the one checkpoint reader for truncated, hostile and foreign files."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common.checkpoint import CheckpointError, cleanup_partial_writes, read_checkpoint, save_checkpoint
from common.cli import run, user_message
from common.errors import ConfigError, UnknownKeyError, UsageError, UserError
from engine.config import apply_overrides, load_config

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args, env=None, timeout=120):
    environment = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environment
    )


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["train.py", "--config", "no-such-config"], 1, "config file no-such-config not found"),
        (["train.py", "--set", "train.epochs=abc"], 1, "train.epochs must be an integer"),
        (["train.py", "--set", "trian.epochs=2"], 1, "did you mean train"),
        (["train.py", "--resume", "/nonexistent/run"], 1, "no last.pt there"),
        (["train.py", "--config", "cael", "--fold", "all"], 2, "pass --csv"),
        (["test.py", "--checkpoint", "no-such-file.pt"], 1, "no checkpoint at no-such-file.pt"),
        (["test.py", "--runs", "/nonexistent-runs"], 1, "nonexistent-runs"),
        (
            ["-m", "model.convert_released", "/nonexistent.pth", "/tmp/out.pt"],
            1,
            "no released checkpoint at /nonexistent.pth",
        ),
        (["-m", "model.summary", "cael_demo", "--set", "model.depth=abc"], 2, "model.depth must be an integer"),
        (["-m", "data.validate", "/nonexistent.csv"], 1, "does not exist"),
        (
            ["-m", "data.build_index", "/nonexistent", "--pattern", "{generator}/*", "--out", "/tmp/x.csv"],
            2,
            "is not a folder",
        ),
    ],
)
def test_user_errors_are_one_sentence_and_an_exit_status(args, status, message):
    done = _cli(*args)
    assert done.returncode == status, (done.stdout[-500:], done.stderr[-1500:])
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert message in done.stderr or message in done.stdout


def test_debug_shows_the_traceback():
    done = _cli("train.py", "--config", "no-such-config", "--debug")
    assert done.returncode == 1 and "Traceback" in done.stderr and "ConfigError" in done.stderr
    assert "Traceback" in _cli("train.py", "--config", "no-such-config", env={"CAEL_DEBUG": "1"}).stderr


def test_runner_maps_errors_to_statuses(capsys):
    def failing(exception):
        def main(argv):
            raise exception

        return main

    assert run(failing(UserError("bad row 3")), []) == 1
    assert run(failing(UsageError("bad flag")), []) == 2
    assert run(failing(KeyboardInterrupt()), []) == 130
    assert run(failing(OSError(28, "No space left on device", "/run/last.pt")), []) == 1
    err = capsys.readouterr().err
    assert (
        "error: bad row 3" in err
        and "error: bad flag" in err
        and "interrupted" in err
        and "disk is full writing /run/last.pt" in err
    )
    with pytest.raises(ZeroDivisionError):  # a bug is not a user error: it keeps its traceback
        run(failing(ZeroDivisionError()), [])
    assert run(lambda argv: {"ok": 1}, []) == 0 and run(lambda argv: 3, []) == 3


def test_worker_errors_lose_the_worker_traceback():
    text = (
        "Caught CorruptImageError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n  "
        "File x\n"
        "data.csv_dataset.CorruptImageError: image file /a.png could not be decoded"
    )
    assert user_message(UserError(text)) == "image file /a.png could not be decoded"
    assert str(UnknownKeyError("unknown key 'x'")) == "unknown key 'x'"  # a KeyError that does not quote its sentence


@pytest.mark.parametrize(
    "text, expected", [("optim.lr=1e-3", 1e-3), ("optim.lr=1E-4", 1e-4), ("optim.lr=5", 5.0), ("optim.lr=.5", 0.5)]
)
def test_scientific_notation_is_a_number_everywhere(text, expected, tmp_path):
    value = load_config("cael", [text])["optim"]["lr"]
    assert isinstance(value, float) and value == pytest.approx(expected)
    config = tmp_path / "c.yaml"
    config.write_text(f"base: {ROOT / 'model/configs/cael.yaml'}\noptim:\n  lr: {text.split('=')[1]}\n")
    assert load_config(config)["optim"]["lr"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=abc", "train.epochs must be an integer"),
        ("train.epochs=2.5", "must be an integer"),
        ("optim.lr=fast", "optim.lr must be a number"),
        ("train.ema=maybe", "train.ema must be true or false"),
        ("model.depth=abc", "model.depth must be an integer"),
        ("data.augment=5", "data.augment must be a list"),
    ],
)
def test_config_values_are_checked_against_the_defaults_types(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("cael", [override])


def test_overrides_keep_valid_unions_and_go_through_one_path():
    config = load_config(
        "cael", ["train.compile=max-autotune", "data.workers=4", "train.grad-clip=null", "data.fold=2019"]
    )
    assert config["train"]["compile"] == "max-autotune" and config["data"]["workers"] == 4
    assert config["train"]["grad-clip"] is None and config["data"]["fold"] == "2019"
    apply_overrides(config, {"data.csv": "/a b: c#d.csv"})  # typed values pass through untouched (no YAML re-parse)
    assert config["data"]["csv"] == "/a b: c#d.csv"
    with pytest.raises(UnknownKeyError, match="did you mean train.epochs"):
        apply_overrides(config, {"train.epoch": 3})


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("lr=1e-4", "optim.lr"),
        ("epochs=3", "train.epochs"),
        ("dropout=0.1", "model.dropout"),
        ("optim.lrr=1", "optim.lr"),
    ],
)
def test_a_key_without_its_section_is_found_in_every_section(override, suggestion):
    with pytest.raises(UnknownKeyError, match=rf"no key '\w+' \(did you mean {suggestion}\?\)"):
        load_config("cael", [override])


def test_the_checkpoint_reader_names_the_file_for_every_bad_file(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"model": {"w": torch.ones(2)}})
    assert torch.equal(read_checkpoint(good)["model"]["w"], torch.ones(2))
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    (tmp_path / "text.pt").write_text("not a checkpoint")

    class Payload:
        def __reduce__(self):
            return (exec, ("print('pwned')",))

    torch.save({"model": Payload()}, tmp_path / "hostile.pt")
    for name, message in [
        ("cut.pt", "truncated or not a PyTorch checkpoint"),
        ("text.pt", "truncated or not a PyTorch checkpoint"),
        ("hostile.pt", "not loaded for safety"),
        ("missing.pt", "no checkpoint at"),
    ]:
        with pytest.raises(CheckpointError, match=message) as caught:
            read_checkpoint(tmp_path / name)
        text = str(caught.value)
        assert name in text and "\n" not in text and "allowlist" not in text.lower() and "exec" not in text
    with pytest.raises(CheckpointError, match="is a folder"):
        read_checkpoint(tmp_path)


def test_checkpoints_respect_the_umask_and_leftover_temp_files_are_removed(tmp_path):
    previous = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "last.pt", {"model": {}})
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"x" * 1000)  # what a writer killed mid-write leaves
    assert [p.name for p in cleanup_partial_writes(tmp_path)] == [".last.pt.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.parametrize(
    "torch_message",
    [
        "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0: file write failed",
        "[enforce fail at inline_container.cc:672] . unexpected pos 4416 vs 4310",  # the ENOSPC torch.save loses
    ],
)
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch, torch_message):
    path = save_checkpoint(tmp_path / "last.pt", {"model": {"step": torch.tensor(1)}})

    def full(*args, **kwargs):
        raise RuntimeError(torch_message)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match=r"disk is full writing .*last.pt: the previous last.pt is kept"):
        save_checkpoint(path, {"model": {"step": torch.tensor(2)}})
    monkeypatch.undo()
    assert read_checkpoint(path)["model"]["step"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_pretrained_weights_fail_fast_offline_with_the_offline_route(monkeypatch):
    from model.pretrained import PretrainedWeightsError, create_timm_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        PretrainedWeightsError, match=r"not cached and HF_HUB_OFFLINE=1: .*python -m model.pretrained .*pretrained-file"
    ):
        create_timm_model("tf_efficientnet_b0.aa_in1k", pretrained=True, num_classes=0)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("model.pretrained.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(PretrainedWeightsError, match="the hub is unreachable"):
        create_timm_model("tf_efficientnet_b0.aa_in1k", pretrained=True, num_classes=0)


def test_sigterm_inside_sigterm_interrupts_is_a_ctrl_c_that_with_blocks_clean_up(tmp_path):
    import signal

    from common.atomic import atomic_output
    from common.cli import sigterm_interrupts

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_interrupts(), atomic_output(tmp_path / "out.csv") as stream:
        stream.write("half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert list(tmp_path.iterdir()) == []  # the temporary file went with the interrupted block
    assert signal.getsignal(signal.SIGTERM) is before


def test_test_py_without_arguments_scores_the_latest_finished_demo_run_and_says_which(tmp_path, monkeypatch, capsys):
    """An interrupted demo run, newer than the finished one, is not what `python test.py` scores."""
    import test as test_script
    from engine.evaluation import evaluate

    def demo_run(name, finished, mtime):
        run_dir = tmp_path / "checkpoint" / name
        run_dir.mkdir(parents=True)
        state = {"finished": finished, "step_in_epoch": 0}
        save_checkpoint(
            run_dir / "last.pt", {"state": state, "epoch": 2 if finished else 1, "config": {"train": {"epochs": 2}}}
        )
        save_checkpoint(run_dir / "best.pt", {"model": {}})
        os.utime(run_dir / "last.pt", (mtime, mtime))
        return run_dir / "best.pt"

    monkeypatch.setattr(test_script, "REPO_ROOT", tmp_path)
    with pytest.raises(UserError, match="no finished demo run under checkpoint/: run `python train.py` first"):
        test_script._latest_demo_checkpoint()
    older = demo_run("demo-intra-20260101-000000", True, 1_000)
    demo_run("demo-intra-20260102-000000", True, 2_000)
    os.utime(tmp_path / "checkpoint" / "demo-intra-20260102-000000" / "last.pt", (500, 500))  # finished earlier
    demo_run("demo-intra-20260103-000000", False, 3_000)  # interrupted (Ctrl-C), the newest
    scored = []
    monkeypatch.setattr(
        evaluate,
        "evaluate_checkpoint",
        lambda checkpoint, **_: scored.append(checkpoint) or {"console": "the tables", "out_dir": "x"},
    )
    test_script.main(["--quiet"])
    assert scored == [older]
    out = capsys.readouterr().out
    assert out.startswith(f"no --checkpoint given: scoring the latest finished demo run, {older}\n")
