"""Shared pieces of the tests that train: quick demo-run arguments and a crash injected right after a checkpoint."""

from pathlib import Path

QUICK_SETTINGS = {
    "data.workers": 0,
    "train.batch-size": 8,
    "train.epochs": 2,
    "train.max-steps-per-epoch": 4,
    "train.log-every": 1,
    "eval.batch-size": 64,
    "data.augment": "[{name: hflip, p: 0.5}, {name: jpeg, p: 0.5, quality: [60, 95]}]",
}


def quick_args(**settings) -> list[str]:
    """train.py arguments of a quick, deterministic run of the demo config: a tiny budget, with dropout and random
    augmentation on (so exact resume must restore the RNG and the data position). Keyword names use '__' for '.'
    and '_' for '-' (``train__batch_size=16``)."""
    merged = {**QUICK_SETTINGS, **{key.replace("__", ".").replace("_", "-"): value for key, value in settings.items()}}
    args = ["--config", "cael_demo"]
    for key, value in merged.items():
        args += ["--set", f"{key}={value}"]
    return args


class Crash(Exception):
    """Raised by ``crash_after_saves`` right after a checkpoint was written."""


def crash_after_saves(monkeypatch, count: int) -> list[int]:
    """Make the trainer raise ``Crash`` right after its ``count``-th last.pt; returns the saved steps as they come."""
    import engine.training.trainer as trainer_module

    real_save, saves = trainer_module.save_checkpoint, []

    def save_then_crash(path, checkpoint):
        real_save(path, checkpoint)
        if Path(path).name == "last.pt":
            saves.append(checkpoint["step"])
            if len(saves) == count:
                raise Crash

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_crash)
    return saves


def quick_demo_run(root: Path, args: list[str]) -> tuple[Path, Path]:
    """(demo CSV, run folder) of ``train.py args`` on a small demo (8 identities) written under ``root``."""
    import train
    from data.make_demo import make_demo

    csv_path = make_demo(root / "data", identities=8, fakes_per_generator=12)
    run_dir = root / "run"
    train.main(["--csv", str(csv_path), "--out", str(run_dir), *args])
    return csv_path, run_dir
