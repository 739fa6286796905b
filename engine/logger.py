"""Per-epoch records of a run: metrics.csv, metrics.jsonl, TensorBoard events and a curves.png plot."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from common.atomic import write_text_atomic
from common.errors import UserError

log = logging.getLogger("cael")


def setup_logging(run_dir: Path | None, is_main: bool) -> None:
    """Console (rank 0) and ``train.log`` in the run folder."""
    logger = logging.getLogger("cael")
    logger.handlers.clear()
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if run_dir is not None and is_main:
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)


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


class RunRecorder:
    """Appends one record per epoch; rewrites the plot each time. Does nothing on ranks other than 0."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.run_dir, self.enabled = run_dir, enabled
        self.writer = None
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
        self.plot(history)

    def plot(self, history: list[dict[str, Any]]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        epochs = [r["epoch"] for r in history]
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
            values = [r.get(key) for r in history]
            if any(v is not None for v in values):
                left.plot(epochs, [math.nan if v is None else v for v in values], style, label=key.replace("_", " "))
        left.set_xlabel("epoch")
        left.set_ylabel("cross-entropy")
        left.set_title("loss")
        left.legend()
        for key in ("val_auc", "val_ap", "val_acc"):
            values = [r.get(key) for r in history]
            if any(v is not None for v in values):
                right.plot(epochs, [math.nan if v is None else v for v in values], "-o", label=key.replace("_", " "))
        right.set_xlabel("epoch")
        right.set_ylabel("validation metric (0-1)")
        right.set_title("validation")
        selected = _selected_epoch(history)
        for axis in (left, right):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            if selected is not None:
                axis.axvline(
                    selected,
                    color="grey",
                    ls="--",
                    lw=1.0,
                    label=f"selected (epoch {selected})" if axis is right else None,
                )
        right.legend()
        figure.tight_layout()
        figure.savefig(self.run_dir / "curves.png", dpi=100)
        plt.close(figure)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _selected_epoch(history: list[dict[str, Any]]) -> int | None:
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
