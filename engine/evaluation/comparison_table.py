"""The comparison table: ``test.py --runs DIR`` over runs of different detectors (baselines, CAEL ablations).

Every run under DIR (``DIR/NAME`` or ``DIR/NAME/FOLD``, each with config.yaml and best.pt, as
``python -m tools.train_set`` writes them) is evaluated by the same ``evaluate_checkpoint`` on the same test rows;
the table has one row per run (detector, plus its training fold where the protocol has folds), a column per test
group, the average over the groups, the unseen-group average where runs have a fold, overall AUC, and the
parameter count and GFLOPs per image of the detector (``model.summary``). A folder that holds one detector's runs,
one per fold, keeps its train x test matrix (``engine.evaluation.folds.evaluate_runs``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UsageError
from data.protocols import OVERALL, load_protocol
from model.hub import TRAINING_ONLY_MODEL_KEYS

from . import tables
from .evaluate import evaluate_checkpoint, runs_folder_name
from .folds import evaluate_runs
from .runs_folder import ComparisonError, Run, find_runs

log = logging.getLogger("cael")


def _model_key(model: Mapping[str, Any]) -> str:
    kept = {key: value for key, value in model.items() if key not in TRAINING_ONLY_MODEL_KEYS}
    return json.dumps(kept, sort_keys=True, default=str)


def is_comparison(runs: list[Run]) -> bool:
    """True unless the runs are one detector's runs with one run per fold (the train x test matrix's case)."""
    if len({_model_key(run.model) for run in runs}) > 1:
        return True
    folds = [run.fold for run in runs]
    if len(set(folds)) == len(folds):
        return False
    # several runs per fold: seeds of one recipe are the matrix's case (mean +- std per cell); else a comparison
    return any(run.recipe is None for run in runs) or len({run.recipe for run in runs}) > 1


def choose_protocol(runs: list[Run], protocol: str | None, runs_dir: Path) -> str:
    if protocol is not None:
        return load_protocol(protocol).name
    names = sorted({run.protocol for run in runs})
    if len(names) != 1:
        raise ComparisonError(
            f"the runs under {runs_dir} were trained on several protocols ({', '.join(names)}): "
            "pick one with --protocol."
        )
    return names[0]


def unseen_groups(groups: list[str], fold_by: str | None, fold: str | None) -> list[str]:
    """The test groups of the protocol's fold column other than the training fold (e.g. the unseen generators)."""
    if not fold_by or fold is None:
        return []
    return [g for g in groups if g.startswith(f"{fold_by}=") and g != f"{fold_by}={fold}"]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(known)) if known else None


def comparison_table(
    payloads: Mapping[Run, Mapping],
    costs: Mapping[Run, Mapping],
    fold_by: str | None,
    marks: Mapping[Run, Mapping[str, str]] | None = None,
):
    """(header, rows, per-row numbers) of the comparison; AUCs in %, n/a where a group has no AUC; ``marks``: run ->
    group -> a mark after its AUC (a significant paired difference from the reference)."""
    marks = marks or {}
    columns: list[str] = []
    for payload in payloads.values():
        columns += [g for g in payload["groups"] if g != OVERALL and g not in columns]
    with_folds = any(run.fold is not None for run in payloads)
    header = ["Detector"] + [tables.group_label(c) for c in columns] + ["Avg"]
    header += ["Unseen avg"] if with_folds else []
    header += ["Overall", "Params (M)", "GFLOPs"]
    rows, numbers = [], {}
    for run, payload in payloads.items():
        aucs = {c: payload["groups"].get(c, {}).get("clean", {}).get("auc") for c in columns}
        unseen = _mean([aucs[c] for c in unseen_groups(columns, fold_by, run.fold)]) if run.fold is not None else None
        entry = {
            "label": run.label,
            "fold": run.fold,
            "checkpoint": str(run.checkpoint),
            "auc": aucs,
            "avg": _mean(list(aucs.values())),
            "unseen_avg": unseen,
            "overall": payload["groups"][OVERALL]["clean"].get("auc"),
            "parameters": costs[run]["parameters"],
            "gflops_per_image": costs[run]["gflops_per_image"],
        }
        numbers[run.row_name] = entry
        mark = marks.get(run, {})
        row = (
            [run.row_name]
            + [tables.format_or_na(aucs[c], percent=True) + mark.get(c, "") for c in columns]
            + [tables.format_or_na(entry["avg"], percent=True)]
        )
        row += [tables.format_or_na(unseen, percent=True)] if with_folds else []
        row += [tables.format_or_na(entry["overall"], percent=True) + mark.get(OVERALL, "")]
        row += [f"{entry['parameters'] / 1e6:.2f}"]
        row += [f"{entry['gflops_per_image']:.2f}"]
        rows.append(row)
    return header, rows, numbers


def evaluate_comparison(
    runs: list[Run],
    runs_dir: Path,
    protocol: str,
    *,
    config_overrides,
    out_dir: Path | None,
    perturbations,
    device,
    workers="auto",
    progress=True,
    dist=None,
    level="frame",
    rescore=False,
    reference: str | None = None,
    calibrate: str | None = None,
    calibration_csv=None,
    min_coverage: float | None = None,
) -> dict[str, Any]:
    """Evaluate every run on ``protocol``'s test rows and write comparison.{md,csv,tex} and metrics.json, with each
    detector's paired test against the ``reference`` (default: the first in name order) in compare-*/ beside it."""
    if level != "frame":
        raise UsageError(
            "--level video applies to one detector's fold matrix; the comparison table is frame level (its "
            "per-run tables under compare-*/ also give video AUC)."
        )
    from model.summary import summarize_model_config

    spec = load_protocol(protocol)
    chosen = [run for run in runs if run.protocol == spec.name]
    for run in runs:
        if run.protocol != spec.name:
            log.warning(f"{run.checkpoint.parent}: trained on protocol {run.protocol}, not {spec.name}: left out")
    if not chosen:
        raise ComparisonError(f"no run under {runs_dir} was trained on protocol {spec.name}: pick another --protocol.")
    names = Counter(run.row_name for run in chosen)
    duplicates = sorted(name for name, count in names.items() if count > 1)
    if duplicates:
        raise ComparisonError(
            f"several runs under {runs_dir} would share the row {duplicates[0]!r}: keep one run per detector and fold, "
            "each in its own folder DIR/NAME (or DIR/NAME/FOLD)."
        )
    out_dir = out_dir or runs_dir / runs_folder_name("compare", spec.name, config_overrides, perturbations)
    payloads, costs, cost_cache = {}, {}, {}
    for run in sorted(chosen, key=lambda r: (r.label, str(r.fold))):
        log.info(f"{run.row_name}: {run.checkpoint}")
        folder = out_dir / run.label / str(run.fold) if run.fold is not None else out_dir / run.label
        payload = evaluate_checkpoint(
            run.checkpoint,
            config_overrides=config_overrides,
            out_dir=folder,
            perturbations=perturbations,
            device=device,
            workers=workers,
            progress=progress,
            dist=dist,
            rescore=rescore,
            calibrate=calibrate,
            calibration_csv=calibration_csv,
            min_coverage=min_coverage,
        )
        if dist is not None and not dist.is_main:
            continue
        payloads[run] = payload
        key = _model_key(run.model)
        if key not in cost_cache:
            cost_cache[key] = summarize_model_config(run.model)
        costs[run] = cost_cache[key]
    if dist is not None and not dist.is_main:
        return {}
    marks, paired_notes, tests = paired_against_reference(payloads, reference, spec.name, out_dir)
    header, rows, numbers = comparison_table(payloads, costs, spec.fold_by, marks)
    for run, entry in numbers.items():
        entry["paired"] = tests.get(run)
    title = f"{spec.name}: test AUC (%) of each detector ({runs_dir.name})"
    notes = ["Avg: mean over the test groups; Overall: all test rows together; GFLOPs: one forward of one image"]
    notes += paired_notes
    if any(run.fold is not None for run in payloads):
        notes.append(f"Unseen avg: mean over the {spec.fold_by} groups other than the training fold")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.md").write_text(tables.to_markdown(header, rows, notes, title=title))
    tables.write_csv_table(out_dir / "comparison.csv", header, rows)
    (out_dir / "comparison.tex").write_text(
        tables.to_latex(header, rows, caption=title, label=f"tab:{spec.name}-comparison", notes=notes)
    )
    tables.write_json(out_dir / "metrics.json", {"protocol": spec.name, "runs_dir": str(runs_dir), "rows": numbers})
    console = tables.to_console(header, rows, notes)
    return {"out_dir": str(out_dir), "header": header, "rows": rows, "numbers": numbers, "console": console}


def paired_against_reference(payloads: Mapping[Run, Mapping], reference: str | None, protocol: str, out_dir: Path):
    """(marks, notes, per-run test summaries): each run's paired test against the reference detector's run of the
    same training fold (``engine.evaluation.compare`` on their predictions.csv files, Holm over each table's tests);
    a mark after each AUC that differs significantly from the reference's."""
    from .compare import Detector, compare, read_result, write_comparison

    labels = sorted({run.label for run in payloads})
    chosen = reference or labels[0]
    if chosen not in labels:
        raise ComparisonError(f"--reference {chosen!r} is none of the detectors here ({', '.join(labels)}).")
    by_fold: dict[Any, list[Run]] = {}
    for run in payloads:
        by_fold.setdefault(run.fold, []).append(run)
    marks: dict[Run, dict[str, str]] = {}
    tests: dict[Run, dict[str, Any]] = {}
    compared = 0
    for fold, runs in by_fold.items():
        base = [run for run in runs if run.label == chosen]
        others = [run for run in runs if run.label != chosen]
        if not base or not others:
            continue
        detectors = [
            Detector(run.label, [read_result(Path(payloads[run]["out_dir"]) / "predictions.csv")])
            for run in [base[0], *others]
        ]
        result = compare(detectors, protocol=protocol, fold=fold, intersect=True)
        folder = out_dir / (f"compare-{fold}" if fold is not None else "compare")
        write_comparison(folder, result, title=f"{protocol}: each detector against {chosen} ({fold or 'all'})")
        compared += 1
        for run in others:
            marks[run] = {}
            tests[run] = {"against": chosen, "compare_json": str(folder / "compare.json")}
            for group, entries in result["groups"].items():
                entry = entries[run.label]["seeds"][0]
                if entry.get("significant"):
                    marks[run][group] = "*"
                tests[run][group] = {k: entry.get(k) for k in ("difference", "ci95", "p", "p_holm", "method")}
    notes = []
    if compared:
        notes.append(
            f"*: AUC significantly different from {chosen}'s (paired test on the same rows, clustered by video where "
            "the CSV has them; Holm's p < 0.05 over each table's tests); differences, intervals and p-values in "
            "compare*/compare.md"
        )
    return marks, notes, tests


def evaluate_run_folder(runs_dir: str | Path, protocol: str | None, **options) -> dict[str, Any]:
    """``test.py --runs``: the comparison table for runs of several detectors, else one detector's fold matrix."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ComparisonError(f"--runs {runs_dir} is not a folder: give the folder that holds the runs.")
    runs = find_runs(runs_dir)
    protocol = choose_protocol(runs, protocol, runs_dir)
    matching = [run for run in runs if run.protocol == protocol] or runs
    nested = any(len(run.checkpoint.parent.relative_to(runs_dir).parts) > 1 for run in runs)
    if nested or is_comparison(matching):
        return evaluate_comparison(runs, runs_dir, protocol, **options)
    if options.pop("reference", None):
        raise ComparisonError(
            f"--reference names a detector of a comparison table; {runs_dir} holds one detector's runs (its fold "
            "matrix)."
        )
    return evaluate_runs(runs_dir, protocol, runs=runs, **options)
