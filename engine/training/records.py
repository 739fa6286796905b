"""Per-epoch records of a run: metrics.csv, metrics.jsonl, TensorBoard events and the curves figure
(curves.png and curves.pdf)."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

from common.atomic import write_text_atomic
from common.errors import UserError
from engine.figures import curves_figure, describe_run, save_figure

log = logging.getLogger("cael")


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a torn last line (a crash mid-write) is left out with a warning."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                log.warning(f"{path}: its last line was cut by a crash; it is left out (the epoch is redone on resume)")
                break
            raise UserError(
                f"{path} line {number} is not a JSON record: repair or remove that line, then resume."
            ) from error
    return records


# drawing the curves costs 1-3 s (matplotlib, PNG and PDF): after an epoch only when this long has passed since the
# last drawing, and always when the run ends, so a two-epoch demo draws them once and a long run after every epoch
PLOT_EVERY_S = 60.0


class RunRecorder:
    """Appends one record per epoch; redraws the curves at most every PLOT_EVERY_S seconds and when closed. Does
    nothing on ranks other than 0."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.run_dir, self.enabled = run_dir, enabled
        self.writer = None
        self._plotted_at = time.monotonic()
        self._unplotted = False
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def history(self) -> list[dict[str, Any]]:
        return read_records(self.run_dir / "metrics.jsonl")

    def truncate_after(self, epoch: int) -> None:
        """On resume: drop records of epochs after the checkpoint's (written before a crash, then lost), and a
        last line that a crash cut in half."""
        if not self.enabled:
            return
        kept = [r for r in self.history() if r["epoch"] <= epoch]
        write_text_atomic(self.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        self._write_csv(kept)

    def _write_csv(self, records: list[dict[str, Any]]) -> None:
        columns: list[str] = []
        for record in records:
            columns += [k for k in record if k not in columns]
        with open(self.run_dir / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(records)

    def record(self, record: dict[str, Any], step: int) -> None:
        if not self.enabled:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        history = self.history()
        self._write_csv(history)
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch", "step"):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, step)
            self.writer.flush()
        self._unplotted = True
        if time.monotonic() - self._plotted_at >= PLOT_EVERY_S:
            self.plot(history)

    def plot(self, history: list[dict[str, Any]]) -> list[Path]:
        """curves.png and curves.pdf, titled with the run's detector and protocol (from its config.yaml)."""
        figure = curves_figure(history, run_title(self.run_dir), selected_epoch(history))
        written = save_figure(figure, self.run_dir / "curves.png")
        self._plotted_at, self._unplotted = time.monotonic(), False
        return written

    def close(self) -> None:
        """The curves of every record (if some are not drawn yet) and the TensorBoard writer closed; twice is once."""
        if self.enabled and self._unplotted:
            self.plot(self.history())
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def run_title(run_dir: Path) -> str:
    """The curves' title: the detector, protocol and fold the run's config.yaml names (the folder name without one)."""
    import yaml

    config_path = run_dir / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else None
    if not isinstance(config, dict):
        return run_dir.name
    data = config.get("data") or {}
    csv = Path(data["csv"]).name if data.get("csv") else None
    title = describe_run((config.get("model") or {}).get("name"), data.get("protocol"), data.get("fold"), csv)
    return f"training of {title}"


def selected_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch best.pt holds: the first whose validation metric equals the run's best value."""
    if not history:
        return None
    last = history[-1]
    for key, best in last.items():
        if key.startswith("best_") and best is not None:
            metric = key[len("best_") :]
            for record in history:
                if record.get(f"val_{metric}") == best:
                    return int(record["epoch"])
    return None
