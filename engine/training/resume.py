"""What ``train.py --resume`` continues with: the run's own config, the edits it takes (a moved CSV or data root, a
longer schedule, from the command line or the run's config.yaml) and those it refuses, and the check that moved data
holds the rows and labels the run trained on (``data.fingerprint``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from common.errors import MissingFileError, UsageError
from data.fingerprint import fingerprint_differences
from engine.config import apply_overrides, load_config

# The keys a resumed run may change: where its data is (checked by the data fingerprint) and how long it trains.
MAY_CHANGE = ("data.csv", "data.root", "train.epochs")
CONFIG_FILE = "config.yaml"


def changed_keys(saved: dict, given: dict, *, ignore=(), prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, given value) of every config value both name and that differ, sorted (keys of only
    one side are skipped: a newer version of the code may add defaults)."""
    found = []
    for key in saved.keys() & given.keys():
        dotted = prefix + key
        if dotted in ignore:
            continue
        a, b = saved[key], given[key]
        if isinstance(a, dict) and isinstance(b, dict):
            found += changed_keys(a, b, ignore=ignore, prefix=dotted + ".")
        elif _plain(a) != _plain(b):
            found.append((dotted, a, b))
    return sorted(found, key=lambda change: change[0])


def describe(changes: list[tuple[str, Any, Any]], limit: int = 3) -> str:
    """``key: saved -> given`` of the first ``limit`` changes, joined by '; ' (and how many more)."""
    shown = "; ".join(f"{key}: {a!r} -> {b!r}" for key, a, b in changes[:limit])
    return shown + (f"; and {len(changes) - limit} more" if len(changes) > limit else "")


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def value_at(config: dict, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def config_file_edits(checkpoint: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """{key: value} of the edits made to RUN/config.yaml since the checkpoint was written, where they are keys a
    resumed run may change; an edit of any other key is an error naming it (it would otherwise be ignored)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return {}
    changes = changed_keys(checkpoint["config"], load_config(path))
    refused = [change for change in changes if change[0] not in MAY_CHANGE]
    if refused:
        raise UsageError(
            f"{path} was edited after the run's last checkpoint ({describe(refused)}): a resumed run keeps its config "
            f"except {', '.join(MAY_CHANGE)}; undo the edit, or train a new run with it: python train.py --config "
            f"{path} --out NEW_RUN"
        )
    return {key: given for key, _, given in changes}


def resumed_config(checkpoint: dict[str, Any], changes: dict[str, Any], overrides=()) -> dict[str, Any]:
    """The run's own config (the checkpoint's) with ``changes`` ({key: value}) and then ``overrides`` (``--set``)."""
    config = apply_overrides(copy.deepcopy(checkpoint["config"]), changes)
    return apply_overrides(config, overrides)


def refuse_other_overrides(overrides) -> None:
    for override in overrides:
        key = override.partition("=")[0].strip()
        if key not in MAY_CHANGE:
            raise UsageError(
                f"--resume: only {', '.join(MAY_CHANGE)} may change (got --set {override}): to train with other "
                "settings, start a new run (python train.py --config RUN/config.yaml --set ... --out NEW_RUN)."
            )


def check_data_present(config: dict[str, Any], run_dir: Path) -> None:
    """An error saying how to give the new place of a run's CSV or data root that is no longer where it was."""
    data = config["data"]
    how = "train.py checks that it holds the rows and labels the run trained on"
    if data["csv"] and not Path(data["csv"]).is_file():
        raise MissingFileError(
            f"--resume {run_dir}: the run's split CSV {data['csv']} is no longer there: if the data moved, give its "
            f"new place with --csv NEW (and --data-root ROOT if the images are not beside it); {how}."
        )
    if data["root"] and not Path(data["root"]).is_dir():
        raise MissingFileError(
            f"--resume {run_dir}: the run's data root {data['root']} is no longer there: if the images moved, give "
            f"their new place with --data-root ROOT (and --csv NEW if the CSV moved too); {how}."
        )


def check_same_data(checkpoint: dict[str, Any], fingerprint: dict[str, Any], config: dict[str, Any], run_dir) -> str:
    """An error unless the data a resumed run reads holds the rows and labels of the data it trained on (by their
    fingerprints); returns the line to say when the data moved ('' when it did not)."""
    saved, data = checkpoint["config"]["data"], config["data"]
    moved = [key for key in ("csv", "root") if saved.get(key) != data.get(key)]
    recorded = checkpoint.get("data_fingerprint")
    if recorded is None:
        old_place = f"data.csv {saved.get('csv')}" + (f", data.root {saved['root']}" if saved.get("root") else "")
        if moved:
            raise UsageError(
                f"--resume {run_dir}: its last.pt was written before runs recorded a fingerprint of their data, so "
                f"train.py cannot check that {data['csv']} holds the rows the run trained on: make its data readable "
                f"at the old place again ({old_place}; a symbolic link will do) and resume once without --csv: the "
                "next checkpoint records the fingerprint, and later resumes may move the data."
            )
        return ""
    differences = fingerprint_differences(recorded, fingerprint)
    if differences:
        raise UsageError(
            f"--resume {run_dir}: {data['csv']} does not hold the rows and labels the run trained on "
            f"({'; '.join(differences)}; recorded in its last.pt): give the CSV and --data-root of the run's own "
            "data, or train a new run on this one."
        )
    if not moved:
        return ""
    where = ", ".join(f"data.{key} {data.get(key)}" for key in moved)
    return f"--resume: the run's data moved ({where}): the same rows and labels as recorded in its last.pt"
