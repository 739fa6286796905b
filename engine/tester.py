"""Evaluation behind ``test.py``: a checkpoint (or one per fold) on a protocol's test rows -> metrics and tables."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from common.errors import MissingFileError, UserError
from data.dataset import SplitDataset
from data.loader import build_loader
from data.perturb import Perturbation
from data.protocols import OVERALL, load_protocol, require, resolve
from data.schema import SchemaError, SplitTable, load_table
from data.targets import FINE_LEVELS
from model import build_model, without_downloads

from . import figures, report
from .checkpoint import read_checkpoint
from .config import apply_overrides, deep_merge, flatten_overrides
from .device import resolve_precision
from .distributed import DistInfo
from .inference import score_loader

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
        key
        for key in set(checkpoint_model) | set(requested)
        if key not in TRAINING_ONLY_MODEL_KEYS and checkpoint_model.get(key) != requested.get(key)
    )
    if differing:
        detail = ", ".join(
            f"{k}: checkpoint {checkpoint_model.get(k)!r} vs requested {requested.get(k)!r}" for k in differing[:6]
        )
        raise CheckpointMismatchError(
            f"{source} was trained with a different model config ({detail}): drop --config to use the checkpoint's "
            "own, "
            "or pass the config it was trained with."
        )


def load_detector(path: str | Path, requested_config: Mapping[str, Any] | None = None):
    """(model on CPU in eval mode, run config, class names) of one of our checkpoints or a released CAEL one."""
    model, config, class_names, _ = load_detector_with_info(path, requested_config)
    return model, config, class_names


def load_detector_with_info(path: str | Path, requested_config: Mapping[str, Any] | None = None):
    """``load_detector`` plus what the protocol card and the calibrated accuracy need: epoch, metrics,
    code version and ``calibration`` (the threshold chosen on the validation rows; None when absent).

    A model folder written by ``python -m model.export`` or a hub id of one (``owner/name``) works as well.
    """
    from model.hub import is_model_folder, load_pretrained, looks_like_hub_id

    if is_model_folder(path) or looks_like_hub_id(path):
        pretrained = load_pretrained(str(path))
        if requested_config is not None:
            check_model_config(pretrained.config["model"], requested_config["model"], str(path))
        from .config import load_config

        info = {
            **{key: pretrained.metadata.get(key) for key in ("epoch", "metrics", "code_version")},
            "calibration": pretrained.calibration,
        }
        return pretrained.model, deep_merge(load_config(None), pretrained.config), pretrained.class_names, info
    path = Path(path)
    if not path.exists():
        raise MissingFileError(
            f"no checkpoint at {path}: give RUN/best.pt written by train.py (or a released CAEL checkpoint)."
        )
    obj = read_checkpoint(path)
    if isinstance(obj, Mapping) and "config" in obj and "model" in obj:
        config = obj["config"]
        if requested_config is not None:
            check_model_config(config["model"], requested_config["model"], str(path))
        model_config = without_downloads(config["model"])
        model = build_model(model_config)
        missing, unexpected = model.load_state_dict(obj["model"], strict=False)
        if missing or unexpected:
            raise CheckpointMismatchError(
                f"{path} does not fit its own model config: missing {list(missing)[:4]}, unexpected "
                f"{list(unexpected)[:4]}."
            )
        info = {key: obj.get(key) for key in ("epoch", "metrics", "code_version", "calibration")}
        return model.eval(), config, obj.get("class_names") or {}, info
    from model.convert_released import load_released_checkpoint

    model, config, _, _ = load_released_checkpoint(obj, requested_config)
    log.info(f"{path}: a released CAEL checkpoint, evaluated with our released-mode model")
    from .config import load_config

    info = {"epoch": None, "metrics": None, "code_version": None, "calibration": None, "released": True}
    return model.eval(), deep_merge(load_config(None), config), {}, info


def _subset_predictions(
    model, table, rows, config, device, *, perturb=None, workers="auto", progress=True, description="test"
):
    dataset = SplitDataset(
        table,
        rows,
        size=config["model"]["image-size"],
        on_error=config["data"]["on-error"],
        perturb=perturb,
        crop=config["data"].get("crop", "resize"),
    )
    loader = build_loader(dataset, batch_size=int(config["eval"]["batch-size"]), train=False, workers=workers)
    precision = resolve_precision(config["train"]["precision"], device)
    return score_loader(
        model,
        loader,
        device,
        precision=precision,
        channels_last=bool(config["train"]["channels-last"]),
        progress=progress,
        description=description,
    )


def _scores_by_row(n_rows: int, predictions) -> np.ndarray:
    scores = np.full(n_rows, np.nan)
    scores[predictions.indices] = predictions.scores
    return scores


class NonFiniteScoreError(UserError, ValueError):
    """Scores that are NaN, infinite or missing where a metric needs them; the message names the rows."""


def check_finite_scores(table: SplitTable, rows: np.ndarray, scores: np.ndarray, what: str, allow: bool) -> int:
    """Count of ``rows`` whose score is not finite; an error naming them unless ``allow`` (then a warning)."""
    bad = rows[~np.isfinite(scores[rows])]
    if len(bad) == 0:
        return 0
    shown = ", ".join(f"line {table.line(r)} ({table.column('path')[r]})" for r in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    if not allow:
        raise NonFiniteScoreError(
            f"{len(bad)} {what} of {table.csv_path} are NaN, infinite or missing ({shown}{more}): fix the scores "
            "(an fp16 overflow? evaluate with --precision bf16 or fp32), "
            "or pass --allow-nonfinite to report them as left out."
        )
    log.warning(
        f"{len(bad)} {what} are NaN, infinite or missing ({shown}{more}); they are left out and counted in the tables"
    )
    return len(bad)


def score_table(
    model,
    table: SplitTable,
    rows: np.ndarray,
    config,
    device,
    perturbations: Sequence[Perturbation],
    *,
    workers="auto",
    progress=True,
):
    """Scores per table row (NaN where unscored) for the clean images and each perturbation, plus fine predictions.

    A non-finite model output stops evaluation with the rows named, unless ``eval.allow-nonfinite`` is on.
    """
    model.to(device)
    if config["train"]["channels-last"]:
        model.to(memory_format=torch.channels_last)
    allow = bool(config["eval"].get("allow-nonfinite", False))
    clean = _subset_predictions(model, table, rows, config, device, workers=workers, progress=progress)
    if clean.skipped:
        log.warning(
            f"skipped {clean.skipped} unreadable test images (data.on-error: skip); "
            "they are left out and counted in the tables"
        )
    check_finite_scores(table, clean.indices, _scores_by_row(len(table), clean), "model scores", allow)
    scores = {"clean": _scores_by_row(len(table), clean)}
    for perturbation in perturbations:
        result = _subset_predictions(
            model,
            table,
            rows,
            config,
            device,
            perturb=perturbation,
            workers=workers,
            progress=progress,
            description=perturbation.name,
        )
        scores[perturbation.name] = _scores_by_row(len(table), result)
        check_finite_scores(
            table, result.indices, scores[perturbation.name], f"model scores under {perturbation.name}", allow
        )
    fine = {}
    for level, values in clean.fine.items():
        predicted = np.full(len(table), -1, dtype=np.int64)
        predicted[clean.indices] = values
        fine[level] = predicted
    return scores, fine


def protocol_card(
    table: SplitTable, resolved, config: Mapping[str, Any], info: Mapping[str, Any] | None, *, level: str = "frame"
) -> list[str]:
    """The lines printed under every table: what was measured, on which rows, with which checkpoint."""
    test = np.sort(resolved.test)
    card = []
    videos = table.video_keys(test)
    if videos is None:
        card.append("level: frame (one row = one image); the CSV has no video_id, so no video-level AUC")
    else:
        _, counts = np.unique(np.asarray(videos, dtype=object), return_counts=True)
        faces = " (the most-fake face of each frame first)" if table.has("frame") else ""
        card.append(
            f"level: {level} (frame: one row = one face crop; video AUC: {config['eval']['video-aggregation']} "
            f"of frame scores per video{faces}); {len(counts)} test videos, {int(np.median(counts))} frames per "
            f"video (median; {counts.min()}-{counts.max()}); video ids namespaced by source dataset, forgery type "
            "and generator"
        )
    card.append(
        "reals: each fake group is scored against the test reals of its own source dataset(s); training reals: "
        + (
            f"data.reals = {config['data'].get('reals', 'matched')}"
            if resolved.fold is not None
            else "the protocol's training rows"
        )
    )
    clusters, unit = table.cluster_keys(test)
    bootstrap = int(config["eval"]["bootstrap"] or 0)
    card.append(
        f"AUC 95% CI: {bootstrap} percentile bootstrap resamples of {unit}, stratified by class"
        if bootstrap
        else "AUC 95% CI: off (--bootstrap 0)"
    )
    calibration = (info or {}).get("calibration")
    threshold = f"Acc@0.5 at threshold {config['eval']['threshold']:g}; "
    if calibration:
        threshold += (
            f"Acc@val-thr at {calibration['threshold']:.4f} ({calibration['method']} on the "
            f"{calibration['split']} rows, epoch {calibration['epoch']}); "
        )
    else:
        threshold += "Acc@val-thr n/a (no calibration saved with the checkpoint; 0.5 would be used); "
    card.append(
        threshold + "Acc oracle at the best threshold of each test group itself (optimistic, as UnivFD reports it)"
    )
    if info is not None and not info.get("released") and info.get("epoch") is not None:
        select = config["train"]["select-metric"]
        card.append(
            f"selection: best.pt = best validation {select} on the protocol's validation rows "
            f"(epoch {info['epoch']} of {config['train']['epochs']}); test rows never seen in training. "
            "Some published work (e.g. DeepfakeBench) selects on the test set, which reads higher"
        )
    elif info is not None and info.get("released"):
        card.append("selection: a released checkpoint (selection rule of its authors)")
    version = (info or {}).get("code_version") or {}
    commit = version.get("commit")
    shown = commit[:10] + (" (dirty)" if version.get("dirty") else "") if commit else "unknown"
    card.append(f"seed {config['train']['seed']}; code version {shown}")
    return card


def write_report(
    out_dir: Path,
    table: SplitTable,
    resolved,
    scores,
    fine,
    class_names,
    config,
    *,
    title: str,
    extra: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
    card_extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Every evaluation output for one checkpoint; returns the metrics payload."""
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration = (info or {}).get("calibration")
    results = report.evaluate_groups(
        table,
        resolved.groups,
        scores,
        config["eval"],
        seed=int(config["train"]["seed"]),
        calibrated_threshold=calibration["threshold"] if calibration else None,
    )
    perturbations = [name for name in scores if name != "clean"]
    header, rows, notes = report.metrics_rows(results, perturbations)
    detector = (config.get("model") or {}).get("name")
    figure_title = figures.describe_run(
        detector, resolved.protocol, resolved.fold, f"test rows of {table.csv_path.name}"
    )
    palettes = figures.table_palettes(table)
    card = [*card_extra, *protocol_card(table, resolved, config, info)]
    attribution = {}
    for level, predicted in fine.items():
        names = class_names.get(level)
        if not names:
            continue
        entry = report.attribution(table, resolved.test, predicted[resolved.test], level, FINE_LEVELS[level], names)
        attribution[level] = entry
        report.plot_confusion(
            out_dir / f"confusion_{level}.png",
            np.asarray(entry["confusion"]),
            names,
            f"{figure_title}\n{FINE_LEVELS[level]} attribution (acc {_pct(entry['accuracy'])})",
            palette=palettes.get(FINE_LEVELS[level]),
        )
    payload = {
        "title": title,
        "protocol": resolved.protocol,
        "fold": resolved.fold,
        "csv": str(table.csv_path),
        "groups": results,
        "attribution": attribution,
        "calibration": calibration,
        "card": card,
        **(extra or {}),
    }
    report.write_json(out_dir / "metrics.json", payload)
    (out_dir / "table.md").write_text(report.to_markdown(header, rows, notes, title=title, card=card))
    report.write_csv_table(out_dir / "table.csv", header, rows, notes, card)
    label = "tab:" + "-".join(filter(None, [resolved.protocol, resolved.fold]))
    (out_dir / "table.tex").write_text(
        report.to_latex(header, rows, caption=title + " (scores in %)", label=label, notes=notes, card=card)
    )
    report.plot_roc(
        out_dir / "roc.png",
        table,
        resolved.groups,
        scores["clean"],
        results,
        figure_title,
        log_fpr=bool(config["eval"].get("roc-log-fpr")),
        palettes=palettes,
    )
    named_fine = {level: (values, class_names[level]) for level, values in fine.items() if class_names.get(level)}
    report.write_predictions(out_dir / "predictions.csv", table, np.sort(resolved.test), scores, named_fine)
    console = report.to_console(header, rows, notes, card)
    for level, entry in attribution.items():
        console += f"\n{FINE_LEVELS[level]} attribution accuracy on {entry['n']} test fakes: {_pct(entry['accuracy'])}"
    payload["console"] = console
    return payload


def _pct(value) -> str:
    text = report.format_or_na(value, percent=True)
    return text if text == "n/a" else f"{text}%"


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    config_overrides: Mapping[str, Any],
    out_dir: Path | None,
    perturbations,
    device,
    requested_config=None,
    workers="auto",
    progress=True,
    dist: DistInfo | None = None,
    protocol: str | None = None,
    fold: str | None = None,
) -> dict[str, Any]:
    """Score the test rows of a protocol (default: the checkpoint's own protocol, fold and CSV) and write the report."""
    model, config, class_names, info = load_detector_with_info(checkpoint, requested_config)
    config = apply_overrides(copy.deepcopy(config), flatten_overrides(config_overrides))
    if protocol is not None and protocol != config["data"]["protocol"]:
        config["data"]["protocol"], config["data"]["fold"] = protocol, fold  # another protocol: its own fold, if any
    elif fold is not None:
        config["data"]["fold"] = fold
    data = config["data"]
    if not data.get("csv"):
        raise SchemaError(f"{checkpoint} carries no test data: pass --csv SPLITS.csv (and --protocol).")
    table = load_table(data["csv"], data["root"])
    resolved = resolve(data["protocol"], table, data["fold"], data.get("reals", "matched"))
    require(resolved, "test", table, both_classes=False)
    scores, fine = score_table(
        model, table, resolved.test, config, device, perturbations, workers=workers, progress=progress
    )
    if dist is not None and not dist.is_main:
        return {}
    if info.get("calibration") is None:
        log.warning(f"{checkpoint} carries no calibrated threshold: Acc@val-thr is n/a (readers fall back to 0.5)")
    fold = f", trained on {resolved.fold}" if resolved.fold else ""
    title = f"{Path(checkpoint).parent.name}: protocol {resolved.protocol}{fold}, test rows of {table.csv_path.name}"
    out_dir = out_dir or _default_eval_parent(checkpoint) / (
        "eval-" + "-".join(filter(None, [resolved.protocol, resolved.fold]))
    )
    payload = write_report(
        out_dir,
        table,
        resolved,
        scores,
        fine,
        class_names,
        config,
        title=title,
        info=info,
        extra={"checkpoint": str(checkpoint), "seed": config["train"]["seed"], "epoch": info.get("epoch")},
    )
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


def read_prediction_scores(table: SplitTable, path: Path) -> dict[str, np.ndarray]:
    """``score*`` columns as float arrays (NaN where empty); a value that is not a number is an error naming it."""
    score_columns = [c for c in table.column_names if c == "score" or c.startswith("score_")]
    if "score" not in score_columns:
        raise SchemaError(
            f"{path} has no 'score' column: give a predictions.csv written by test.py (path,label,score,...)."
        )
    scores = {}
    for column in score_columns:
        values = np.full(len(table), np.nan)
        for row, text in enumerate(table.column(column)):
            if not text:
                continue
            try:
                values[row] = float(text)
            except ValueError:
                raise SchemaError(
                    f"{path} line {table.line(row)}: {column} {text!r} is not a number; "
                    "scores are probabilities of fake."
                ) from None
        scores["clean" if column == "score" else column[len("score_") :]] = values
    return scores


def evaluate_predictions(
    predictions_csv: str | Path,
    *,
    protocol: str,
    eval_config: Mapping[str, Any],
    out_dir: Path,
    fold: str | None = None,
) -> dict[str, Any]:
    """Recompute every table from a predictions.csv (no model): its ``score*`` columns are the scores.

    The protocol's test filter is applied (rows of other splits are not scored); a file without a ``split``
    column is taken as test rows only, and the card says so. Missing or non-finite scores of test rows are an
    error naming them unless ``eval_config['allow-nonfinite']``.
    """
    predictions_csv = Path(predictions_csv)
    table = load_table(predictions_csv, root=predictions_csv.parent)
    if len(table) == 0:
        raise SchemaError(f"{predictions_csv} has no rows: give a predictions.csv written by test.py.")
    scores = read_prediction_scores(table, predictions_csv)
    resolved, card_extra = resolve_test_rows(table, protocol, fold)
    if len(resolved.test) == 0:
        raise SchemaError(
            f"{predictions_csv} has no test rows for protocol {resolved.protocol}: check its split column."
        )
    allow = bool(eval_config.get("allow-nonfinite", False))
    for name, values in scores.items():
        check_finite_scores(
            table,
            resolved.test,
            values,
            "test-row scores" if name == "clean" else f"test-row scores under {name}",
            allow,
        )
    outside = resolved.test[(scores["clean"][resolved.test] < 0) | (scores["clean"][resolved.test] > 1)]
    if len(outside):
        note = (
            f"{len(outside)} score(s) outside [0, 1] (e.g. line {table.line(outside[0])}): ranking metrics hold, "
            "accuracies at 0.5 assume probabilities"
        )
        log.warning(note)
        card_extra.append(note)
    config = {"eval": {**eval_config}, "train": {"seed": 0}, "data": {"reals": "matched"}}
    title = f"recomputed from {predictions_csv.name}: protocol {resolved.protocol}"
    card_extra.insert(0, f"recomputed from {predictions_csv} (no model; no calibrated threshold)")
    payload = write_report(out_dir, table, resolved, scores, {}, {}, config, title=title, card_extra=card_extra)
    payload["out_dir"] = str(out_dir)
    return payload


def resolve_test_rows(table: SplitTable, protocol: str, fold: str | None = None):
    """The protocol's test rows and groups of a table holding scores (training-side filters are not needed)."""
    from data.protocols import ResolvedProtocol, _match, report_groups

    spec = load_protocol(protocol)
    notes = []
    test_filter = dict(spec.spec["test"] or {})
    if "split" in test_filter and not table.has("split"):
        test_filter.pop("split")
        notes.append(f"{table.csv_path.name} has no split column: every row is taken as a test row")
    mask = _match(table, test_filter, fold, f"protocol {spec.name} (test)") & (table.labels >= 0)
    rows = np.flatnonzero(mask)
    excluded = int(len(table) - len(rows))
    if excluded:
        notes.append(f"{excluded} row(s) of {table.csv_path.name} outside the protocol's test rows are not scored")
    empty = np.zeros(0, dtype=np.int64)
    resolved = ResolvedProtocol(
        protocol=spec.name, fold=fold, train=empty, val=empty, test=rows, groups=report_groups(table, rows, spec.report)
    )
    return resolved, notes


def discover_runs(runs_dir: Path, protocol: str) -> dict[str | None, list[Path]]:
    """fold -> best.pt of every run under ``runs_dir`` (two levels deep) trained with ``protocol``.

    Several runs of one fold must differ only by ``train.seed``: they are reported as mean +- std.
    """
    spec = load_protocol(protocol)
    found: dict[str | None, list[Path]] = {}
    configs: dict[str | None, tuple[Path, dict]] = {}
    candidates = sorted(
        set(runs_dir.glob("*/config.yaml")) | set(runs_dir.glob("*/*/config.yaml")) | set(runs_dir.glob("config.yaml"))
    )
    for config_path in candidates:
        config = yaml.safe_load(config_path.read_text()) or {}
        data = config.get("data", {})
        if Path(str(data.get("protocol", ""))).stem != spec.name and data.get("protocol") != spec.name:
            continue
        best = config_path.parent / "best.pt"
        if not best.is_file():
            log.warning(f"{config_path.parent}: no best.pt (unfinished run?), left out")
            continue
        fold = data.get("fold")
        comparable = deep_merge(config, {"train": {"seed": None}})
        if fold in configs and configs[fold][1] != comparable:
            first = configs[fold][1]
            differing = sorted(
                f"{section}.{key}"
                for section in set(first) | set(comparable)
                if isinstance(first.get(section), dict)
                for key in set(first[section]) | set(comparable.get(section) or {})
                if first[section].get(key) != (comparable.get(section) or {}).get(key)
            )
            raise UserErrorRuns(
                f"two runs for fold {fold!r} of {spec.name} under {runs_dir} differ in more than the seed "
                f"({configs[fold][0].parent} and {config_path.parent}: {', '.join(differing[:4])}); "
                "keep runs that differ only by train.seed."
            )
        configs.setdefault(fold, (config_path, comparable))
        found.setdefault(fold, []).append(best)
    if not found:
        raise UserErrorRuns(f"no finished {spec.name} runs under {runs_dir} (folders with config.yaml and best.pt).")
    return found


class UserErrorRuns(UserError, ValueError):
    """A --runs folder that cannot be assembled into one table."""


LEVEL_METRIC = {"frame": "auc", "video": "video_auc"}


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    known = [v for v in values if v is not None]
    if not known or len(known) != len(values):
        return None, None, len(known)
    return float(np.mean(known)), (float(np.std(known, ddof=1)) if len(known) > 1 else None), len(known)


def _fmt_mean_std(mean, std) -> str:
    text = report.format_or_na(mean, percent=True)
    return text + (f" ± {100 * std:.2f}" if mean is not None and std is not None else "")


def evaluate_runs(
    runs_dir: str | Path,
    protocol: str,
    *,
    config_overrides,
    out_dir: Path | None,
    perturbations,
    device,
    workers="auto",
    progress=True,
    dist=None,
    level: str = "frame",
) -> dict[str, Any]:
    """One checkpoint per fold (several seeds: mean +- std) -> the train x test AUC matrix.

    As the field reports it: each cell is a test group's AUC; the in-domain value (the fold's own group) is in its own
    column, and ``Avg unseen`` averages the other columns only (no pooled "overall" that mixes the training domain in).
    """
    if level not in LEVEL_METRIC:
        raise UserErrorRuns(f"--level must be one of {', '.join(LEVEL_METRIC)}; got {level!r}.")
    metric = LEVEL_METRIC[level]
    runs_dir = Path(runs_dir)
    runs = discover_runs(runs_dir, protocol)
    spec = load_protocol(protocol)
    out_dir = out_dir or runs_dir / f"eval-{spec.name}"
    per_run, columns = {}, []
    for fold, checkpoints in sorted(runs.items(), key=lambda item: str(item[0])):
        for index, checkpoint in enumerate(checkpoints):
            log.info(f"fold {fold}: {checkpoint}")
            name = str(fold) if len(checkpoints) == 1 else f"{fold}/{checkpoint.parent.name}"
            payload = evaluate_checkpoint(
                checkpoint,
                config_overrides=config_overrides,
                out_dir=out_dir / name,
                perturbations=perturbations,
                device=device,
                workers=workers,
                progress=progress,
                dist=dist,
            )
            if dist is not None and not dist.is_main:
                continue
            per_run.setdefault(fold, []).append(payload)
            columns += [g for g in payload["groups"] if g != OVERALL and g not in columns]
    if dist is not None and not dist.is_main:
        return {}
    has_folds = spec.fold_by is not None
    column_values = [c.split("=", 1)[1] for c in columns]
    header = ["Train \\ Test"] + column_values + (["In-domain", "Avg unseen"] if has_folds else ["Avg"])
    rows, cells = [], {}
    for fold, payloads in per_run.items():
        row = [str(fold) if fold is not None else spec.name]
        seeds = len(payloads)
        unseen_means, in_domain = [], (None, None)
        for column, value in zip(columns, column_values):
            mean, std, _ = _mean_std([p["groups"].get(column, {}).get("clean", {}).get(metric) for p in payloads])
            cells[(str(fold), value)] = {"mean": mean, "std": std, "runs": seeds}
            row.append(_fmt_mean_std(mean, std))
            if has_folds and value == fold:
                in_domain = (mean, std)
            elif mean is not None:
                unseen_means.append(mean)
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
        cells[(str(fold), "avg")] = {"mean": average[0], "std": average[1], "runs": seeds}
        rows.append(row)
    seeds = sorted({len(p) for p in per_run.values()})
    what = "AUC (%)" if level == "frame" else "video-level AUC (%)"
    title = f"{spec.name}: test {what} of each training fold ({runs_dir.name})"
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
    card += [line for line in first.get("card", []) if line.startswith(("seed", "reals"))]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "matrix.md").write_text(report.to_markdown(header, rows, title=title, card=card))
    report.write_csv_table(out_dir / "matrix.csv", header, rows, card=card)
    (out_dir / "matrix.tex").write_text(
        report.to_latex(header, rows, caption=title, label=f"tab:{spec.name}-matrix", card=card)
    )
    report.write_json(
        out_dir / "metrics.json",
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
        "console": report.to_console(header, rows, card=card),
        "folds": per_run,
    }
