"""The train x test matrix of ``test.py --runs``: one detector's runs, one (or one per seed) per training fold,
each evaluated on every test group."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UserError
from data.protocols import OVERALL, load_protocol

from . import tables
from .evaluate import evaluate_checkpoint, runs_folder_name
from .runs_folder import Run, find_runs

log = logging.getLogger("cael")


def runs_by_fold(runs: list[Run], protocol: str, runs_dir: Path) -> dict[str | None, list[Path]]:
    """fold -> best.pt of every run in ``runs`` (``find_runs``) trained with ``protocol``.

    Several runs of one fold must differ only by ``train.seed``: they are reported as mean +- std.
    """
    spec = load_protocol(protocol)
    found: dict[str | None, list[Path]] = {}
    first_of_fold: dict[str | None, Run] = {}
    for run in runs:
        if run.protocol != spec.name:
            continue
        first = first_of_fold.setdefault(run.fold, run)
        if run.recipe != first.recipe:
            differing = _differing_keys(json.loads(first.recipe or "{}"), json.loads(run.recipe or "{}"))
            raise UserErrorRuns(
                f"two runs for fold {run.fold!r} of {spec.name} under {runs_dir} differ in more than the seed "
                f"({first.checkpoint.parent} and {run.checkpoint.parent}: {', '.join(differing[:4])}); "
                "keep runs that differ only by train.seed."
            )
        found.setdefault(run.fold, []).append(run.checkpoint)
    if not found:
        raise UserErrorRuns(f"no finished {spec.name} runs under {runs_dir} (folders with config.yaml and best.pt).")
    return found


def _differing_keys(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """``section.key`` of the config keys whose values differ between two run configs."""
    return sorted(
        f"{section}.{key}"
        for section in set(first) | set(other)
        if isinstance(first.get(section), dict)
        for key in set(first[section]) | set(other.get(section) or {})
        if first[section].get(key) != (other.get(section) or {}).get(key)
    )


class UserErrorRuns(UserError, ValueError):
    """A --runs folder that cannot be assembled into one table."""


LEVEL_METRIC = {"frame": "auc", "video": "video_auc"}
# each level's files, side by side: the video-level matrix never replaces the frame-level one
MATRIX_NAMES = {"frame": "matrix", "video": "matrix-video"}


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    known = [v for v in values if v is not None]
    if not known or len(known) != len(values):
        return None, None, len(known)
    return float(np.mean(known)), (float(np.std(known, ddof=1)) if len(known) > 1 else None), len(known)


def _fmt_mean_std(mean, std) -> str:
    text = tables.format_or_na(mean, percent=True)
    return text + (f" ± {100 * std:.2f}" if mean is not None and std is not None else "")


def evaluate_runs(
    runs_dir: str | Path,
    protocol: str,
    *,
    out_dir: Path | None,
    dist=None,
    level: str = "frame",
    runs: list[Run] | None = None,
    **evaluation,
) -> dict[str, Any]:
    """One checkpoint per fold (several seeds: mean +- std) -> the train x test AUC matrix.

    As the field reports it: each cell is a test group's AUC; the in-domain value (the fold's own group) is in its own
    column, and ``Avg unseen`` averages the other columns only (no pooled "overall" that mixes the training domain in).
    ``runs``: what ``find_runs(runs_dir)`` found, when the caller has scanned the folder already; ``evaluation``:
    ``evaluate_checkpoint``'s options (config_overrides, perturbations, device, workers, progress).
    """
    if level not in LEVEL_METRIC:
        raise UserErrorRuns(f"--level must be one of {', '.join(LEVEL_METRIC)}; got {level!r}.")
    metric = LEVEL_METRIC[level]
    runs_dir = Path(runs_dir)
    checkpoints = runs_by_fold(find_runs(runs_dir) if runs is None else runs, protocol, runs_dir)
    spec = load_protocol(protocol)
    out_dir = out_dir or runs_dir / runs_folder_name(
        "eval", spec.name, evaluation.get("config_overrides"), evaluation.get("perturbations")
    )
    per_run, columns = _evaluate_each_run(checkpoints, out_dir, dist, **evaluation)
    if dist is not None and not dist.is_main:
        return {}
    has_folds = spec.fold_by is not None
    column_values = [c.split("=", 1)[1] for c in columns]
    header = ["Train \\ Test"] + column_values + (["In-domain", "Avg unseen"] if has_folds else ["Avg"])
    rows, cells = [], {}
    for fold, payloads in per_run.items():
        row, row_cells = _matrix_row(fold, payloads, columns, metric, has_folds)
        rows.append([str(fold) if fold is not None else spec.name] + row)
        cells.update({(str(fold), column): cell for column, cell in row_cells.items()})
    what = "AUC (%)" if level == "frame" else "video-level AUC (%)"
    title = f"{spec.name}: test {what} of each training fold ({runs_dir.name})"
    card = _matrix_card(level, has_folds, per_run)
    name = MATRIX_NAMES[level]
    _write_matrix(out_dir, header, rows, title, card, spec.name, name)
    tables.write_json(
        out_dir / f"{name.replace('matrix', 'metrics')}.json",
        {
            "protocol": spec.name,
            "level": level,
            "metric": metric,
            "card": card,
            "cells": {f"{r}|{c}": v for (r, c), v in cells.items()},
            "folds": {
                str(f): [{"checkpoint": p["checkpoint"], "seed": p.get("seed"), "groups": p["groups"]} for p in ps]
                for f, ps in per_run.items()
            },
        },
    )
    return {
        "out_dir": str(out_dir),
        "header": header,
        "rows": rows,
        "console": tables.to_console(header, rows, card=card),
        "folds": per_run,
    }


def _evaluate_each_run(checkpoints: dict[str | None, list[Path]], out_dir: Path, dist, **evaluation):
    """(fold -> the payloads of its runs, the test groups in order of appearance) of every checkpoint; each run's
    own tables go to ``out_dir/FOLD`` (``out_dir/FOLD/RUN`` where a fold has several seeds)."""
    per_run, columns = {}, []
    for fold, fold_checkpoints in sorted(checkpoints.items(), key=lambda item: str(item[0])):
        for checkpoint in fold_checkpoints:
            log.info(f"fold {fold}: {checkpoint}")
            name = str(fold) if len(fold_checkpoints) == 1 else f"{fold}/{checkpoint.parent.name}"
            payload = evaluate_checkpoint(checkpoint, out_dir=out_dir / name, dist=dist, **evaluation)
            if dist is not None and not dist.is_main:
                continue
            per_run.setdefault(fold, []).append(payload)
            columns += [g for g in payload["groups"] if g != OVERALL and g not in columns]
    return per_run, columns


def _matrix_row(fold, payloads: list[dict], columns: list[str], metric: str, has_folds: bool):
    """(the cells of one training fold's row, {column value or "avg": mean, std, runs}) over its seeds."""
    column_values = [c.split("=", 1)[1] for c in columns]
    seeds = len(payloads)
    row, cells, in_domain = [], {}, (None, None)
    for column, value in zip(columns, column_values):
        mean, std, _ = _mean_std([p["groups"].get(column, {}).get("clean", {}).get(metric) for p in payloads])
        cells[value] = {"mean": mean, "std": std, "runs": seeds}
        row.append(_fmt_mean_std(mean, std))
        if has_folds and value == fold:
            in_domain = (mean, std)
    # Avg unseen per seed first, then mean +- std over seeds
    per_seed = []
    for p in payloads:
        values = [
            p["groups"].get(c, {}).get("clean", {}).get(metric)
            for c, v in zip(columns, column_values)
            if not (has_folds and v == fold)
        ]
        known = [v for v in values if v is not None]
        per_seed.append(float(np.mean(known)) if known else None)
    average = _mean_std(per_seed)
    if has_folds:
        row += [_fmt_mean_std(*in_domain), _fmt_mean_std(average[0], average[1])]
    else:
        row.append(_fmt_mean_std(average[0], average[1]))
    cells["avg"] = {"mean": average[0], "std": average[1], "runs": seeds}
    return row, cells


def _matrix_card(level: str, has_folds: bool, per_run: dict) -> list[str]:
    seeds = sorted({len(p) for p in per_run.values()})
    card = [
        f"level: {level} ({'one row = one face crop' if level == 'frame' else 'frame scores aggregated per video'}); "
        "rows: the fold trained on; "
        "columns: test groups, each fake group against the test reals of its own source dataset(s)",
        (
            "In-domain: the fold's own test group; Avg unseen: mean over the other columns only (the diagonal excluded)"
            if has_folds
            else "Avg: mean over the columns"
        ),
        f"runs per fold: {', '.join(map(str, seeds))}"
        + (" (mean ± sample std over seeds)" if max(seeds) > 1 else " (one seed)"),
        "selection: each best.pt = best validation metric on its fold's validation rows, never the test rows",
    ]
    first = next(iter(per_run.values()))[0]
    return card + [line for line in first.get("card", []) if line.startswith(("seed", "reals"))]


def _write_matrix(
    out_dir: Path, header: list[str], rows: list[list[str]], title: str, card: list[str], protocol: str, name: str
):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(tables.to_markdown(header, rows, title=title, card=card))
    tables.write_csv_table(out_dir / f"{name}.csv", header, rows, card=card)
    (out_dir / f"{name}.tex").write_text(
        tables.to_latex(header, rows, caption=title, label=f"tab:{protocol}-{name}", card=card)
    )
