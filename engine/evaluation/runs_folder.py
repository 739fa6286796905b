"""The finished runs under a ``test.py --runs`` folder (the folder itself, ``DIR/NAME`` or ``DIR/NAME/FOLD``, each with
config.yaml and best.pt), found once for the comparison table and the fold matrix alike."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common.errors import UserError

log = logging.getLogger("cael")


class ComparisonError(UserError):
    """A runs folder that cannot be turned into one table."""


@dataclass(frozen=True, eq=False)  # hashed by identity: a dict key of the evaluation loop
class Run:
    label: str  # the run's folder under DIR (its first path component): the detector or ablation
    fold: str | None
    protocol: str
    checkpoint: Path
    model: dict[str, Any]
    recipe: str | None = None  # the run config without train.seed and data.fold (JSON); None: not known

    @property
    def row_name(self) -> str:
        return self.label if self.fold is None or self.fold == self.label else f"{self.label} ({self.fold})"


def _protocol_name(value: Any) -> str:
    return Path(str(value)).stem


def find_runs(runs_dir: Path) -> list[Run]:
    """Every finished run under ``runs_dir`` (the folder itself, one or two levels down)."""
    runs = []
    patterns = ("config.yaml", "*/config.yaml", "*/*/config.yaml")
    for config_path in sorted({path for pattern in patterns for path in runs_dir.glob(pattern)}):
        best = config_path.parent / "best.pt"
        if not best.is_file():
            log.warning(f"{config_path.parent}: no best.pt (unfinished run?), left out")
            continue
        config = yaml.safe_load(config_path.read_text()) or {}
        relative = config_path.parent.relative_to(runs_dir)
        label = relative.parts[0] if relative.parts else runs_dir.name
        data = config.get("data", {})
        recipe = {**config, "train": {**(config.get("train") or {}), "seed": None}, "data": {**data, "fold": None}}
        runs.append(
            Run(
                label=label,
                fold=data.get("fold"),
                protocol=_protocol_name(data.get("protocol", "")),
                checkpoint=best,
                model=config.get("model", {}),
                recipe=json.dumps(recipe, sort_keys=True, default=str),
            )
        )
    if not runs:
        raise ComparisonError(
            f"no finished runs under {runs_dir} (folders with config.yaml and best.pt): train some first."
        )
    return runs
