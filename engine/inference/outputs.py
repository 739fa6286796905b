"""predict.py's outputs: inputs.csv, frames.csv, faces.csv and predictions.json written input by input
(``PredictionWriter``), the progress journal a stopped run resumes from (``ProgressJournal``), and the console's
summary of a run."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.atomic import atomic_output
from data.targets import FINE_LEVELS
from engine.evaluation.tables import to_console

INPUT_COLUMNS = [
    "input",
    "kind",
    "status",
    "frames",
    "faces",
    "score",
    "probability",
    "verdict",
    "fake",
    "fake_at_0.5",
    "level2",
    "level2_prob",
    "level3",
    "level3_prob",
]
FRAME_COLUMNS = [
    "input",
    "kind",
    "frame",
    "faces",
    "face_index",
    "score",
    "probability",
    "verdict",
    "fake",
    "fake_at_0.5",
]
FACE_COLUMNS = [
    "input",
    "kind",
    "frame",
    "face_index",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
    "detector_score",
    "score",
    "probability",
    "verdict",
    "fake",
    "fake_at_0.5",
    "level2",
    "level2_prob",
    "level3",
    "level3_prob",
]


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: ("" if v is None else f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()}


def _rows_of(entry: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(frames.csv rows, faces.csv rows) of one input's entry."""
    frames, faces = [], []
    for frame in entry["frame_results"]:
        frames.append({"input": entry["input"], "kind": entry["kind"], **frame})
        for face in frame["face_results"]:
            box = dict(zip(("box_x0", "box_y0", "box_x1", "box_y1"), face["box"] or (None,) * 4))
            faces.append({"input": entry["input"], "kind": entry["kind"], "frame": frame["frame"], **face, **box})
    return frames, faces


CONSOLE_ROWS = 30  # inputs (and unscored inputs' reasons) printed; every input is in inputs.csv


@dataclass
class Tally:
    """What the console shows of a run: the first ``most`` inputs, the first ``most`` unscored ones, and counts."""

    most: int = CONSOLE_ROWS
    head: list[dict[str, Any]] = field(default_factory=list)
    unscored_head: list[dict[str, Any]] = field(default_factory=list)
    inputs: int = 0
    scored: int = 0
    faces: int = 0
    fake: int = 0
    fake_at_half: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)

    def add(self, entry: dict[str, Any]) -> None:
        self.inputs += 1
        self.faces += entry["faces"]
        if len(self.head) < self.most:
            self.head.append(entry)
        if entry["score"] is None:
            if len(self.unscored_head) < self.most:
                self.unscored_head.append(entry)
        else:
            self.scored += 1
            self.fake += entry["fake"]
            self.fake_at_half += entry["fake_at_0.5"]
            verdict = entry.get("verdict")
            if verdict:
                self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1

    @property
    def unscored(self) -> int:
        return self.inputs - self.scored


class PredictionWriter:
    """inputs.csv, frames.csv, faces.csv and predictions.json in ``out_dir``, written input by input as they are
    scored, so that memory does not grow with the inputs. Each file appears complete, in one rename, when
    ``finish`` is called inside the ``with`` block, or not at all (any previous file is then left as it was)."""

    def __init__(self, out_dir: Path, most: int = CONSOLE_ROWS):
        self.out_dir = Path(out_dir)
        self.tally = Tally(most)
        self._stack = contextlib.ExitStack()
        self._writers: dict[str, csv.DictWriter] = {}
        self._finished = False

    def __enter__(self) -> PredictionWriter:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self._stack as stack:
            for name, columns in (("inputs", INPUT_COLUMNS), ("frames", FRAME_COLUMNS), ("faces", FACE_COLUMNS)):
                stream = stack.enter_context(atomic_output(self.out_dir / f"{name}.csv"))
                writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
                writer.writeheader()
                self._writers[name] = writer
            # the entries of predictions.json until the header (known at the end) can go before them; unnamed
            self._entries = stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.out_dir))
            self._stack = stack.pop_all()
        return self

    def add(self, entry: dict[str, Any]) -> None:
        frames, faces = _rows_of(entry)
        self._writers["inputs"].writerow(_csv_row(entry))
        self._writers["frames"].writerows(map(_csv_row, frames))
        self._writers["faces"].writerows(map(_csv_row, faces))
        self._entries.write(("    " if self.tally.inputs == 0 else ",\n    ") + json.dumps(entry))
        self.tally.add(entry)

    def finish(self, header: dict[str, Any]) -> dict[str, Path]:
        """predictions.json (``header``, then one input a line under "inputs"), then every file in its place."""
        text = json.dumps({**header, "inputs": []}, indent=2)  # ends '"inputs": []\n}': "inputs" is the last key
        with atomic_output(self.out_dir / "predictions.json") as stream:
            stream.write(text[: -len("[]\n}")])
            if self.tally.inputs:
                stream.write("[\n")
                self._entries.seek(0)
                shutil.copyfileobj(self._entries, stream)
                stream.write("\n  ]\n}\n")
            else:
                stream.write("[]\n}\n")
        self._stack.close()
        self._finished = True
        names = ("inputs", "frames", "faces")
        return {name: self.out_dir / f"{name}.csv" for name in names} | {"json": self.out_dir / "predictions.json"}

    def __exit__(self, *exc_info) -> bool:
        if exc_info[0] is None and not self._finished:  # CSVs without their predictions.json: none of them
            error = RuntimeError(f"PredictionWriter for {self.out_dir} closed without finish(header)")
            self._stack.__exit__(RuntimeError, error, None)
            raise error
        return self._stack.__exit__(*exc_info)  # on an error: the temporary files go, nothing is replaced


class ProgressJournal:
    """Each written input's entry, one JSON line, appended and flushed as predict.py goes, in ``out_dir``: a run
    stopped half-way (Ctrl-C, SIGTERM, a crash) and started again with the same checkpoint and settings reuses the
    entries there and scores only the rest. The first line is the run's ``key``; a journal of another key is
    discarded, and a line cut short by the stop is dropped. Removed once the outputs are complete."""

    NAME = ".predict-progress.jsonl"

    def __init__(self, out_dir: Path, key: dict[str, Any]):
        self.path = Path(out_dir) / self.NAME
        self.key = json.loads(json.dumps(key))  # as it reads back
        self.note = ""
        self._writer = self._reader = None

    def load(self) -> dict[str, int]:
        """Input -> byte offset of its entry (the last one when an input appears twice), from a journal of this key;
        the file is cut after its last complete line. Empty when there is none to reuse (``note`` says why)."""
        if not self.path.is_file():
            return {}
        offsets: dict[str, int] = {}
        end = 0
        with open(self.path, "rb") as stream:
            first = stream.readline()
            try:
                key = json.loads(first).get("key") if first.endswith(b"\n") else None
            except (ValueError, AttributeError):
                key = None
            if key != self.key:
                self.note = (
                    f"{self.path} holds the progress of another run (other checkpoint or settings): starting over"
                )
                self.path.unlink()
                return {}
            end = stream.tell()
            while line := stream.readline():
                if not line.endswith(b"\n"):
                    break  # cut short by the stop
                try:
                    offsets[json.loads(line)["input"]] = end
                except (ValueError, KeyError, TypeError):
                    break  # not a line this journal wrote whole: what follows is not trusted either
                end = stream.tell()
        os.truncate(self.path, end)
        return offsets

    def __enter__(self) -> ProgressJournal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.is_file()
        self._writer = open(self.path, "a", encoding="utf-8")
        if fresh:
            self._writer.write(json.dumps({"key": self.key}) + "\n")
            self._writer.flush()
        self._reader = open(self.path, "rb")  # offsets are byte offsets
        return self

    def entry_at(self, offset: int) -> dict[str, Any]:
        self._reader.seek(offset)
        return json.loads(self._reader.readline())

    def append(self, entry: dict[str, Any]) -> None:
        self._writer.write(json.dumps(entry) + "\n")
        self._writer.flush()  # to the OS at once: a killed process loses nothing it wrote

    def __exit__(self, *exc_info) -> bool:
        for stream in (self._writer, self._reader):
            if stream is not None:
                stream.close()
        return False

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def console_summary(summary: Iterable[dict[str, Any]] | Tally, threshold: float, most: int = CONSOLE_ROWS) -> str:
    """The first ``most`` inputs as a table (score, calibrated probability, verdict, decisions at the threshold and
    at 0.5); above that, a line of counts over all of them (a folder of a million images is not printed row by
    row)."""
    if not isinstance(summary, Tally):
        tally = Tally(most)
        for entry in summary:
            tally.add(entry)
        summary = tally
    tally = summary
    header = ["input", "kind", "frames", "faces", "score", "P(fake)", "verdict"]
    header += [f"decision@{threshold:.4g}", "decision@0.5"]
    fine_levels = [level for level in FINE_LEVELS if any(level in e for e in tally.head)]
    header += fine_levels
    rows = []
    notes = [f"{entry['input']}: {entry['status']}" for entry in tally.unscored_head]
    if tally.unscored > len(tally.unscored_head):
        notes.append(
            f"... and {tally.unscored - len(tally.unscored_head)} more unscored inputs: their status is in inputs.csv"
        )
    for entry in tally.head:
        row = [entry["input"], entry["kind"], str(entry["frames"]), str(entry["faces"])]
        if entry["score"] is None:
            row += ["n/a"] * 5
        else:
            probability = entry.get("probability")
            row += [
                f"{entry['score']:.4f}",
                f"{probability:.4f}" if probability is not None else "n/a",
                entry.get("verdict") or "n/a",
                "fake" if entry["fake"] else "real",
                "fake" if entry["fake_at_0.5"] else "real",
            ]
        rows.append(row + [str(entry.get(level, "")) for level in fine_levels])
    if tally.inputs > len(tally.head):
        verdicts = ", ".join(f"{n} {name}" for name, n in sorted(tally.verdicts.items()))
        notes.insert(
            0,
            f"... {tally.inputs - len(tally.head)} more inputs in inputs.csv. Of all {tally.inputs}: {tally.scored} "
            f"scored{f' ({verdicts})' if verdicts else ''}, {tally.fake} of them fake at {threshold:.4g} and "
            f"{tally.fake_at_half} at 0.5; {tally.unscored} unscored",
        )
    return to_console(header, rows, notes)
