"""The protocol card: the lines under every evaluation table that say what was measured, on which rows, with which
checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from data.schema import SplitTable

from . import conventions
from .metrics import BOOTSTRAP_MAX_ROWS


def protocol_card(
    table: SplitTable, resolved, config: Mapping[str, Any], info: Mapping[str, Any] | None, *, level: str = "frame"
) -> list[str]:
    """The lines printed under every table: what was measured, on which rows, with which checkpoint."""
    test = np.sort(resolved.test)
    card = []
    videos = table.video_codes(test)
    if videos is None:
        card.append("level: frame (one row = one image); the CSV has no video_id, so no video-level AUC")
    else:
        counts = np.bincount(videos.codes)
        counts = counts[counts > 0]
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
    card.append(interval_card_line(config["eval"], table.cluster_codes(test[:0])[1]))
    calibration = (info or {}).get("calibration")
    threshold = f"Acc@0.5 at threshold {config['eval']['threshold']:g}; "
    if calibration:
        threshold += (
            f"Acc@val-thr at {calibration['threshold']:.4f} ({calibration['method']} on the "
            f"{calibration['split']} rows, epoch {calibration['epoch']}); "
        )
    else:
        threshold += "Acc@val-thr n/a (no calibration saved with the checkpoint; 0.5 would be used); "
    card.append(threshold + "Acc oracle at the best threshold of each test group itself (optimistic)")
    card.append(conventions.OUR_RULES_CARD)
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


def interval_card_line(eval_config: Mapping[str, Any], unit: str) -> str:
    """The protocol card's line on the AUC's 95% interval: which method, over which unit, for which groups."""
    samples = int(eval_config.get("bootstrap") or 0)
    if not samples:
        return "AUC 95% CI: off (--bootstrap 0)"
    method = eval_config.get("interval", "auto")
    normal = (
        "DeLong's normal-theory interval (AUC +- 1.96 SE)"
        if unit == "images"
        else f"Obuchowski's normal-theory interval over {unit} (DeLong's for clustered data)"
    )
    bootstrap = f"percentile bootstrap, {samples} resamples of {unit}, stratified by class"
    if method == "bootstrap":
        return f"AUC 95% CI: {bootstrap}"
    if method == "delong":
        return f"AUC 95% CI: {normal}"
    limit = int(eval_config.get("bootstrap-max-rows", BOOTSTRAP_MAX_ROWS))
    return (
        f"AUC 95% CI: {bootstrap}, in groups of up to {limit:,} rows; larger groups: {normal}, which agrees with the "
        "bootstrap at such sizes (each group's method: auc_ci_method in metrics.json, and the table notes)"
    )
