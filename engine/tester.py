"""Evaluation behind ``test.py``: a checkpoint (or one per fold) on a protocol's test rows -> metrics and tables."""
from __future__ import annotations

import copy

from common.errors import MissingFileError, UsageError, UserError
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from data.dataset import SplitDataset
from data.loader import build_loader
from data.perturb import Perturbation
from data.protocols import OVERALL, load_protocol, require, resolve
from data.schema import SchemaError, SplitTable, load_table
from model import build_model

from . import report
from .checkpoint import read_checkpoint
from .config import apply_overrides, deep_merge, flatten_overrides
from .distributed import DistInfo
from .evaluate import predict, resolve_precision
from data.targets import FINE_LEVELS

log = logging.getLogger("cael")

# Model keys that do not change what a trained model computes at test time.
TRAINING_ONLY_MODEL_KEYS = {"pretrained", "pretrained-file", "drop-path-rate", "dropout", "emb-dropout", "bn-momentum"}


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint that does not fit the requested model config."""


def check_model_config(checkpoint_model: Mapping[str, Any], requested: Mapping[str, Any], source: str) -> None:
    from model.registry import model_defaults

    # a checkpoint written before a model key existed holds that key's default
    defaults = model_defaults(checkpoint_model.get("name", "cael"))
    checkpoint_model = {**{k: v for k, v in defaults.items() if v is not None}, **checkpoint_model}
    differing = sorted(
        key for key in set(checkpoint_model) | set(requested)
        if key not in TRAINING_ONLY_MODEL_KEYS and checkpoint_model.get(key) != requested.get(key)
    )  # fmt: skip
    if differing:
        detail = ", ".join(f"{k}: checkpoint {checkpoint_model.get(k)!r} vs requested {requested.get(k)!r}" for k in differing[:6])
        raise CheckpointMismatchError(
            f"{source} was trained with a different model config ({detail}): drop --config to use the checkpoint's own, "
            "or pass the config it was trained with."
        )


def load_detector(path: str | Path, requested_config: Mapping[str, Any] | None = None):
    """(model on CPU in eval mode, run config, class names) of one of our checkpoints or a released CAEL one.

    A model folder written by ``python -m model.export`` or a hub id of one (``owner/name``) works as well.
    """
    from model.hub import is_model_folder, load_pretrained, looks_like_hub_id

    if is_model_folder(path) or looks_like_hub_id(path):
        pretrained = load_pretrained(str(path))
        if requested_config is not None:
            check_model_config(pretrained.config["model"], requested_config["model"], str(path))
        from .config import load_config

        return pretrained.model, deep_merge(load_config(None), pretrained.config), pretrained.class_names
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"no checkpoint at {path}: give RUN/best.pt written by train.py (or a released CAEL checkpoint).")
    obj = read_checkpoint(path)
    if isinstance(obj, Mapping) and "config" in obj and "model" in obj:
        config = obj["config"]
        if requested_config is not None:
            check_model_config(config["model"], requested_config["model"], str(path))
        model_config = {**config["model"], "pretrained": False, "pretrained-file": None}
        model = build_model(model_config)
        missing, unexpected = model.load_state_dict(obj["model"], strict=False)
        if missing or unexpected:
            raise CheckpointMismatchError(
                f"{path} does not fit its own model config: missing {list(missing)[:4]}, unexpected {list(unexpected)[:4]}."
            )
        return model.eval(), config, obj.get("class_names") or {}
    from model.convert_released import load_released_checkpoint

    model, config, _, _ = load_released_checkpoint(obj, requested_config)
    log.info(f"{path}: a released CAEL checkpoint, evaluated with our released-mode model")
    from .config import load_config

    return model.eval(), deep_merge(load_config(None), config), {}


def _subset_predictions(model, table, rows, config, device, *, perturb=None, workers="auto", progress=True, description="test"):
    dataset = SplitDataset(table, rows, size=config["model"]["image-size"], on_error=config["data"]["on-error"], perturb=perturb)
    loader = build_loader(dataset, batch_size=int(config["eval"]["batch-size"]), train=False, workers=workers)
    precision = resolve_precision(config["train"]["precision"], device)
    return predict(model, loader, device, precision=precision, channels_last=bool(config["train"]["channels-last"]),
                   progress=progress, description=description)  # fmt: skip


def _scores_by_row(n_rows: int, predictions) -> np.ndarray:
    scores = np.full(n_rows, np.nan)
    scores[predictions.indices] = predictions.scores
    return scores


def score_table(model, table: SplitTable, rows: np.ndarray, config, device, perturbations: Sequence[Perturbation], *, workers="auto", progress=True):
    """Scores per table row (NaN where unscored) for the clean images and each perturbation, plus fine predictions."""
    model.to(device)
    if config["train"]["channels-last"]:
        model.to(memory_format=torch.channels_last)
    clean = _subset_predictions(model, table, rows, config, device, workers=workers, progress=progress)
    if clean.skipped:
        log.warning(f"skipped {clean.skipped} unreadable test images (data.on-error: skip); they are left out of every metric")
    scores = {"clean": _scores_by_row(len(table), clean)}
    for perturbation in perturbations:
        result = _subset_predictions(model, table, rows, config, device, perturb=perturbation, workers=workers, progress=progress, description=perturbation.name)
        scores[perturbation.name] = _scores_by_row(len(table), result)
    fine = {}
    for level, values in clean.fine.items():
        predicted = np.full(len(table), -1, dtype=np.int64)
        predicted[clean.indices] = values
        fine[level] = predicted
    return scores, fine


def write_report(out_dir: Path, table: SplitTable, resolved, scores, fine, class_names, config, *, title: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every evaluation output for one checkpoint; returns the metrics payload."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = report.evaluate_groups(table, resolved.groups, scores, config["eval"], seed=int(config["train"]["seed"]))
    perturbations = [name for name in scores if name != "clean"]
    header, rows, notes = report.metrics_rows(results, perturbations)
    attribution = {}
    for level, predicted in fine.items():
        names = class_names.get(level)
        if not names:
            continue
        entry = report.attribution(table, resolved.test, predicted[resolved.test], level, FINE_LEVELS[level], names)
        attribution[level] = entry
        report.plot_confusion(out_dir / f"confusion_{level}.png", np.asarray(entry["confusion"]), names, f"{FINE_LEVELS[level]} attribution (acc {_pct(entry['accuracy'])})")
    payload = {"title": title, "protocol": resolved.protocol, "fold": resolved.fold, "csv": str(table.csv_path),
               "groups": results, "attribution": attribution, **(extra or {})}  # fmt: skip
    report.write_json(out_dir / "metrics.json", payload)
    (out_dir / "table.md").write_text(report.to_markdown(header, rows, notes, title=title))
    report.write_csv_table(out_dir / "table.csv", header, rows)
    label = "tab:" + "-".join(filter(None, [resolved.protocol, resolved.fold]))
    (out_dir / "table.tex").write_text(report.to_latex(header, rows, caption=title + " (scores in %)", label=label, notes=notes))
    report.plot_roc(out_dir / "roc.png", table, resolved.groups, scores["clean"], results, title)
    named_fine = {level: (values, class_names[level]) for level, values in fine.items() if class_names.get(level)}
    report.write_predictions(out_dir / "predictions.csv", table, np.sort(resolved.test), scores, named_fine)
    console = report.to_console(header, rows, notes)
    for level, entry in attribution.items():
        console += f"\n{FINE_LEVELS[level]} attribution accuracy on {entry['n']} test fakes: {_pct(entry['accuracy'])}"
    payload["console"] = console
    return payload


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def evaluate_checkpoint(
    checkpoint: str | Path, *, config_overrides: Mapping[str, Any], out_dir: Path | None, perturbations, device,
    requested_config=None, workers="auto", progress=True, dist: DistInfo | None = None, protocol: str | None = None, fold: str | None = None,
) -> dict[str, Any]:
    """Score the test rows of a protocol (default: the checkpoint's own protocol, fold and CSV) and write the report."""
    model, config, class_names = load_detector(checkpoint, requested_config)
    config = apply_overrides(copy.deepcopy(config), flatten_overrides(config_overrides))
    if protocol is not None and protocol != config["data"]["protocol"]:
        config["data"]["protocol"], config["data"]["fold"] = protocol, fold  # another protocol: its own fold, if any
    elif fold is not None:
        config["data"]["fold"] = fold
    data = config["data"]
    if not data.get("csv"):
        raise SchemaError(f"{checkpoint} carries no test data: pass --csv SPLITS.csv (and --protocol).")
    table = load_table(data["csv"], data["root"])
    resolved = resolve(data["protocol"], table, data["fold"])
    require(resolved, "test", table, both_classes=False)
    scores, fine = score_table(model, table, resolved.test, config, device, perturbations, workers=workers, progress=progress)
    if dist is not None and not dist.is_main:
        return {}
    fold = f", trained on {resolved.fold}" if resolved.fold else ""
    title = f"{Path(checkpoint).parent.name}: protocol {resolved.protocol}{fold}, test rows of {table.csv_path.name}"
    eval_name = "eval-" + "-".join(filter(None, [resolved.protocol, resolved.fold]))
    out_dir = out_dir or _default_eval_parent(checkpoint) / eval_name
    payload = write_report(out_dir, table, resolved, scores, fine, class_names, config, title=title, extra={"checkpoint": str(checkpoint)})
    payload["out_dir"] = str(out_dir)
    return payload


def _default_eval_parent(checkpoint: str | Path) -> Path:
    """Where RUN/eval-* goes: beside a checkpoint file, inside a model folder, under ./<owner--name> for a hub id."""
    path = Path(checkpoint)
    if path.is_dir():
        return path
    if not path.exists():
        return Path.cwd() / str(checkpoint).replace("/", "--")
    return path.parent


def evaluate_predictions(predictions_csv: str | Path, *, protocol: str, eval_config: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    """Recompute every table from a predictions.csv (no model): its ``score*`` columns are the scores."""
    table = load_table(predictions_csv, root=Path(predictions_csv).parent)
    score_columns = [c for c in table.column_names if c == "score" or c.startswith("score_")]
    if "score" not in score_columns:
        raise SchemaError(f"{predictions_csv} has no 'score' column: give a predictions.csv written by test.py.")
    scores = {}
    for column in score_columns:
        values = np.array([float(v) if v else np.nan for v in table.column(column)])
        scores["clean" if column == "score" else column[len("score_"):]] = values
    resolved = resolve_all_rows(table, protocol)  # predictions.csv holds the test rows only
    config = {"eval": {**eval_config}, "train": {"seed": 0}}
    title = f"recomputed from {Path(predictions_csv).name}: protocol {resolved.protocol}"
    payload = write_report(out_dir, table, resolved, scores, {}, {}, config, title=title)
    payload["out_dir"] = str(out_dir)
    return payload


def resolve_all_rows(table: SplitTable, protocol: str):
    from data.protocols import ResolvedProtocol, report_groups

    spec = load_protocol(protocol)
    rows = np.flatnonzero(table.labels >= 0)
    return ResolvedProtocol(protocol=spec.name, fold=None, train=np.zeros(0, int), val=np.zeros(0, int), test=rows, groups=report_groups(table, rows, spec.report))


def discover_runs(runs_dir: Path, protocol: str) -> dict[str, Path]:
    """fold -> best.pt of every run under ``runs_dir`` (two levels deep) trained with ``protocol``."""
    spec = load_protocol(protocol)
    found: dict[str, Path] = {}
    for config_path in sorted(list(runs_dir.glob("*/config.yaml")) + list(runs_dir.glob("config.yaml"))):
        config = yaml.safe_load(config_path.read_text()) or {}
        data = config.get("data", {})
        if Path(str(data.get("protocol", ""))).stem != spec.name and data.get("protocol") != spec.name:
            continue
        best = config_path.parent / "best.pt"
        if not best.is_file():
            log.warning(f"{config_path.parent}: no best.pt (unfinished run?), left out")
            continue
        fold = data.get("fold")
        if fold in found:
            raise UsageError(f"two runs for fold {fold!r} of {spec.name} under {runs_dir}: {found[fold].parent} and {config_path.parent}; keep one.")
        found[fold] = best
    if not found:
        raise MissingFileError(f"no finished {spec.name} runs under {runs_dir} (folders with config.yaml and best.pt).")
    return found


def evaluate_runs(runs_dir: str | Path, protocol: str, *, config_overrides, out_dir: Path | None, perturbations, device, workers="auto", progress=True, dist=None) -> dict[str, Any]:
    """One checkpoint per fold -> the train x test AUC matrix (cross-generator/forgery) or per-dataset rows."""
    runs_dir = Path(runs_dir)
    runs = discover_runs(runs_dir, protocol)
    out_dir = out_dir or runs_dir / f"eval-{load_protocol(protocol).name}"
    per_fold, columns = {}, []
    for fold, checkpoint in sorted(runs.items()):
        log.info(f"fold {fold}: {checkpoint}")
        payload = evaluate_checkpoint(checkpoint, config_overrides=config_overrides, out_dir=out_dir / str(fold), perturbations=perturbations, device=device, workers=workers, progress=progress, dist=dist)
        if dist is not None and not dist.is_main:
            continue
        per_fold[fold] = payload
        columns += [g for g in payload["groups"] if g != OVERALL and g not in columns]
    if dist is not None and not dist.is_main:
        return {}
    spec = load_protocol(protocol)
    header = ["Train \\ Test"] + [report.group_label(c) for c in columns] + ["Avg", "Overall"]
    rows = []
    for fold, payload in per_fold.items():
        aucs = [payload["groups"].get(c, {}).get("clean", {}).get("auc") for c in columns]
        known = [a for a in aucs if a is not None]
        overall = payload["groups"][OVERALL]["clean"].get("auc")
        rows.append([str(fold)] + [report._fmt(a, True) for a in aucs] + [report._fmt(float(np.mean(known)) if known else None, True), report._fmt(overall, True)])
    title = f"{spec.name}: test AUC (%) of each training fold ({runs_dir.name})"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "matrix.md").write_text(report.to_markdown(header, rows, title=title))
    report.write_csv_table(out_dir / "matrix.csv", header, rows)
    (out_dir / "matrix.tex").write_text(report.to_latex(header, rows, caption=title, label=f"tab:{spec.name}-matrix"))
    report.write_json(out_dir / "metrics.json", {"protocol": spec.name, "folds": {f: {"checkpoint": p["checkpoint"], "groups": p["groups"]} for f, p in per_fold.items()}})
    return {"out_dir": str(out_dir), "header": header, "rows": rows, "console": report.to_console(header, rows), "folds": per_fold}
