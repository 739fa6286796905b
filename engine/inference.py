"""Scoring with a trained detector: labelled loaders (validation during training, test.py), and new images and
videos (predict.py: inputs -> face crops -> batched scores -> per face, frame and input results; tools/explain.py
reuses the face gathering). Both score a batch through one forward pass on the device.

Crops are made with the face-extraction settings stored with the checkpoint (``data.faces``), or taken as
they are (``detect=False``) for images that are already face crops. A frame's score is its most-fake face, an
input's score the mean of its frames' scores (the field's video-level convention; an image is one frame).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.atomic import atomic_output
from common.batching import batched
from common.errors import UserError
from data import faces as face_extraction
from data.images import ImageDecodeError, load_image, resize_array
from data.media import files_under, is_image, is_video
from data.targets import FINE_LEVELS
from loss_folder import logits_of

from .device import autocast, to_device
from .distributed import gather_arrays
from .report import to_console

log = logging.getLogger("cael")


class InputError(UserError):
    """Inputs that cannot be scored at all (every one unreadable, or none given)."""


@dataclass
class InputItem:
    path: Path
    kind: str  # image | video
    status: str = "ok"  # ok | no face | error: <reason>


@dataclass
class FaceCrop:
    input_index: int
    frame: int
    face_index: int
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in the frame; None: the whole image (no detection)
    detector_score: float | None
    pixels: torch.Tensor  # (3, S, S) uint8, S = the model's image size


@dataclass
class FaceResult:
    crop: FaceCrop
    score: float
    fine: dict[str, np.ndarray] = field(default_factory=dict)  # level -> class probabilities


# ------------------------------------------------------------------------------------------------ inputs
def collect_inputs(paths: Sequence[str | Path]) -> list[InputItem]:
    """Files as given and the image/video files under folders (recursive, sorted); missing paths are listed."""
    items: list[InputItem] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():  # one scandir per folder (a million files in seconds), in path order, no hidden ones
            found = [
                relative
                for relative in files_under(path)
                if (is_image(relative) or is_video(relative)) and not ("/" + relative).count("/.")
            ]
            if not found:
                items.append(InputItem(path, "folder", f"error: no image or video files under {path}"))
            items += [InputItem(path / relative, _kind(relative)) for relative in found]
        elif path.is_file():
            items.append(InputItem(path, _kind(path)))
        else:
            items.append(InputItem(path, _kind(path), f"error: {path} does not exist"))
    if not items:
        raise InputError("no inputs given: name image files, folders or videos.")
    return items


def _kind(path: str | Path) -> str:
    return "video" if is_video(path) else "image"


# ---------------------------------------------------------------------------------------------- face crops
def detector_beside(settings, device) -> Any:
    """The face detector of ``settings`` for a model on ``device``: on that device where the detector runs there
    (mtcnn on CUDA), else on the CPU (dlib-hog and opencv-haar beside a model on a GPU)."""
    device = face_extraction.detector_device(settings.detector, str(device))
    return face_extraction.build_detector(settings.detector, device=device)


def extraction_settings(stored: dict[str, Any] | None):
    """The ExtractionSettings a checkpoint was trained with; the defaults (said once) when it stores none."""
    if stored:
        return face_extraction.ExtractionSettings.from_dict(stored), True
    return face_extraction.ExtractionSettings(), False


def iter_face_crops(
    items: Sequence[InputItem],
    *,
    image_size: int,
    detect: bool,
    settings=None,
    detector=None,
    progress: bool = True,
) -> Iterator[FaceCrop]:
    """The crops of every readable input, in input order; an unreadable input gets its status and is skipped."""
    bar = tqdm(total=len(items), unit="input", desc="predict", disable=None if progress else True, dynamic_ncols=True)
    for index, item in enumerate(items):
        bar.update(1)
        if item.status != "ok":
            continue
        try:
            found = 0
            for crop in _crops_of(
                index, item, image_size=image_size, detect=detect, settings=settings, detector=detector
            ):
                found += 1
                yield crop
            if found == 0:
                item.status = "no face"
        except (ImageDecodeError, UserError) as error:
            item.status = f"error: {error}"
    bar.close()


def _crops_of(index: int, item: InputItem, *, image_size: int, detect: bool, settings, detector) -> Iterator[FaceCrop]:
    if not detect:
        if item.kind == "video":
            raise UserError(f"{item.path} is a video: videos need face detection (drop --no-detect)")
        pixels = load_image(item.path, image_size)  # exactly the training loader's decode and resize
        yield FaceCrop(index, 0, 0, None, None, pixels)
        return
    if item.kind == "video":
        faces = face_extraction.faces_in_video(item.path, detector, settings)
    else:
        frame = load_image(item.path).permute(1, 2, 0).numpy()
        faces = face_extraction.faces_in_image(frame, detector, settings)
    for face in faces:
        box = tuple(float(v) for v in face.box)
        yield FaceCrop(
            index,
            int(face.frame),
            int(face.face_index),
            box,
            float(face.score),
            resize_array(face.crop, image_size),
        )


# ------------------------------------------------------------------------------------------------ scoring
def _forward(
    model: torch.nn.Module,
    images: torch.Tensor,
    device: torch.device,
    *,
    precision: str,
    channels_last: bool,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(float32 real/fake logits, fine-grained logits by level) of a uint8 batch, on the device, under autocast."""
    images = to_device(images, device, channels_last)
    if transform is not None:
        images = transform(images)
    with autocast(device, precision):
        outputs = model(images)
    fine = {}
    if isinstance(outputs, dict):
        fine = {level: outputs[f"{level}_logits"] for level in FINE_LEVELS if f"{level}_logits" in outputs}
    return logits_of(outputs).float(), fine


@dataclass
class Predictions:
    """Per-row outputs of a labelled loader, sorted by the CSV row index."""

    indices: np.ndarray
    scores: np.ndarray  # probability of fake
    loss: float | None = None  # mean cross-entropy of the binary logits
    skipped: int = 0
    fine: dict[str, np.ndarray] = field(default_factory=dict)  # level2/level3 predicted class per row


@torch.no_grad()
def score_loader(
    model: torch.nn.Module,
    loader,
    device: torch.device,
    *,
    precision: str = "fp32",
    channels_last: bool = False,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
    description: str = "eval",
) -> Predictions:
    """Score every row of a labelled loader (each rank its share; streamed on the device, one host sync at the end),
    gather all ranks' rows, sort them by row index."""
    model.eval()
    indices, scores, fine = [], [], {}
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    count, skipped = 0, 0
    bar = tqdm(
        total=len(loader.dataset),
        unit="img",
        desc=description,
        disable=None if progress else True,
        dynamic_ncols=True,
        leave=False,
    )
    for batch in loader:
        skipped += int(batch["skipped"])
        bar.update(len(batch["label"]) + int(batch["skipped"]))
        if len(batch["label"]) == 0:
            continue
        logits, fine_logits = _forward(
            model, batch["image"], device, precision=precision, channels_last=channels_last, transform=transform
        )
        labels = batch["label"].to(device, non_blocking=True)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        count += len(labels)
        scores.append(logits.softmax(dim=-1)[:, 1])
        indices.append(batch["index"])
        for level, level_logits in fine_logits.items():
            fine.setdefault(level, []).append(level_logits.argmax(dim=-1))
    bar.close()
    local_scores = torch.cat(scores).double().cpu().numpy() if scores else np.zeros(0)
    local_indices = torch.cat(indices).numpy() if indices else np.zeros(0, dtype=np.int64)
    local_fine = {k: torch.cat(v).cpu().numpy() for k, v in fine.items()}
    stats = np.array([loss_sum.item(), count, skipped], dtype=np.float64)
    names = sorted(local_fine)
    gathered = gather_arrays(local_indices, local_scores, stats, *[local_fine[k] for k in names])
    all_indices, all_scores, all_stats = gathered[0], gathered[1], gathered[2].reshape(-1, 3).sum(axis=0)
    order = np.argsort(all_indices, kind="stable")
    total = int(all_stats[1])
    return Predictions(
        indices=all_indices[order],
        scores=all_scores[order],
        loss=float(all_stats[0] / total) if total else None,
        skipped=int(all_stats[2]),
        fine={name: values[order] for name, values in zip(names, gathered[3:])},
    )


@torch.no_grad()
def score_crops(
    model: torch.nn.Module,
    crops: Iterable[FaceCrop],
    device: torch.device,
    *,
    precision: str = "fp32",
    batch_size: int = 64,
    channels_last: bool = False,
) -> Iterator[FaceResult]:
    """Fake probability (and fine-grained class probabilities) of every crop, batched on ``device``; yielded in the
    crops' order as each batch is scored (a crop's pixels are let go once it is scored)."""
    model.eval()
    for batch in batched(crops, batch_size):
        logits, fine_logits = _forward(
            model, torch.stack([c.pixels for c in batch]), device, precision=precision, channels_last=channels_last
        )
        scores = logits.softmax(dim=-1)[:, 1].cpu().numpy()
        fine = {level: values.float().softmax(dim=-1).cpu().numpy() for level, values in fine_logits.items()}
        for i, crop in enumerate(batch):
            crop.pixels = crop.pixels[:0]  # scored: let the pixels go, keep the bookkeeping
            yield FaceResult(crop, float(scores[i]), {level: probs[i] for level, probs in fine.items()})


# ---------------------------------------------------------------------------------------------- aggregation
def _fine_label(probabilities: list[np.ndarray], names: Sequence[str] | None) -> tuple[str, float] | None:
    if not probabilities or not names:
        return None
    mean = np.mean(probabilities, axis=0)
    best = int(mean.argmax())
    return names[best], float(mean[best])


def iter_summaries(
    items: Sequence[InputItem], results: Iterable[FaceResult], *, threshold: float, class_names: dict[str, list[str]]
) -> Iterator[dict[str, Any]]:
    """Per input, in input order: its frames (each with its faces), the frame scores (most-fake face) and the input
    score (mean). ``results`` come in input order (as ``score_crops`` yields them), so each input's entry is yielded
    as soon as the next input's first face arrives: memory does not grow with the inputs."""

    def through(first: int, faces: list[FaceResult]) -> Iterator[dict[str, Any]]:
        """The entries from input ``first`` to that of ``faces``: the ones before it had no face."""
        index = faces[0].crop.input_index
        yield from (_entry(items[i], [], threshold, class_names) for i in range(first, index))
        yield _entry(items[index], faces, threshold, class_names)

    done, pending, last = 0, [], -1  # done: the inputs before it have been yielded; last: the previous face's input
    for result in results:
        index = result.crop.input_index
        if index < last:
            raise ValueError(f"face results out of input order: input {index} after input {last}")
        last = index
        if pending and index != pending[0].crop.input_index:
            yield from through(done, pending)
            done, pending = pending[0].crop.input_index + 1, []
        pending.append(result)
    if pending:
        yield from through(done, pending)
        done = pending[0].crop.input_index + 1
    yield from (_entry(items[i], [], threshold, class_names) for i in range(done, len(items)))


def _entry(
    item: InputItem, faces: Sequence[FaceResult], threshold: float, class_names: dict[str, list[str]]
) -> dict[str, Any]:
    by_frame: dict[int, list[FaceResult]] = {}
    for result in faces:
        by_frame.setdefault(result.crop.frame, []).append(result)
    frames = []
    chosen: list[FaceResult] = []
    for frame, frame_faces in sorted(by_frame.items()):
        top = max(frame_faces, key=lambda r: r.score)
        chosen.append(top)
        frames.append(
            {
                "frame": frame,
                "score": top.score,
                "face_index": top.crop.face_index,
                "faces": len(frame_faces),
                **_decisions(top.score, threshold),
                "face_results": [
                    _face_record(r, threshold, class_names)
                    for r in sorted(frame_faces, key=lambda r: r.crop.face_index)
                ],
            }
        )
    entry: dict[str, Any] = {
        "input": str(item.path),
        "kind": item.kind,
        "status": item.status,
        "frames": len(frames),
        "faces": sum(f["faces"] for f in frames),
        "score": None,
        "fake": None,
        "fake_at_0.5": None,
    }
    if frames:
        score = float(np.mean([f["score"] for f in frames]))
        entry.update(score=score, **_decisions(score, threshold))
        for level in FINE_LEVELS:
            label = _fine_label([r.fine[level] for r in chosen if level in r.fine], class_names.get(level))
            if label:
                entry[level], entry[f"{level}_prob"] = label
    entry["frame_results"] = frames
    return entry


def _decisions(score: float, threshold: float) -> dict[str, int]:
    return {"fake": int(score >= threshold), "fake_at_0.5": int(score >= 0.5)}


def _face_record(result: FaceResult, threshold: float, class_names: dict[str, list[str]]) -> dict[str, Any]:
    crop = result.crop
    record: dict[str, Any] = {
        "face_index": crop.face_index,
        "box": list(crop.box) if crop.box else None,
        "detector_score": crop.detector_score,
        "score": result.score,
        **_decisions(result.score, threshold),
    }
    for level, probabilities in result.fine.items():
        label = _fine_label([probabilities], class_names.get(level))
        if label:
            record[level], record[f"{level}_prob"] = label
    return record


# -------------------------------------------------------------------------------------------------- outputs
INPUT_COLUMNS = [
    "input",
    "kind",
    "status",
    "frames",
    "faces",
    "score",
    "fake",
    "fake_at_0.5",
    "level2",
    "level2_prob",
    "level3",
    "level3_prob",
]
FRAME_COLUMNS = ["input", "kind", "frame", "faces", "face_index", "score", "fake", "fake_at_0.5"]
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
    """The first ``most`` inputs as a table; above that, a line of counts over all of them (a folder of a million
    images is not printed row by row)."""
    if not isinstance(summary, Tally):
        tally = Tally(most)
        for entry in summary:
            tally.add(entry)
        summary = tally
    tally = summary
    header = ["input", "kind", "frames", "faces", "score", f"decision@{threshold:.4g}", "decision@0.5"]
    fine_levels = [level for level in FINE_LEVELS if any(level in e for e in tally.head)]
    header += fine_levels
    rows = []
    notes = [f"{entry['input']}: {entry['status']}" for entry in tally.unscored_head]
    if tally.unscored > len(tally.unscored_head):
        notes.append(
            f"... and {tally.unscored - len(tally.unscored_head)} more unscored inputs: their status is in inputs.csv"
        )
    for entry in tally.head:
        if entry["score"] is None:
            row = [entry["input"], entry["kind"], str(entry["frames"]), str(entry["faces"]), "n/a", "n/a", "n/a"]
        else:
            row = [
                entry["input"],
                entry["kind"],
                str(entry["frames"]),
                str(entry["faces"]),
                f"{entry['score']:.4f}",
                "fake" if entry["fake"] else "real",
                "fake" if entry["fake_at_0.5"] else "real",
            ]
        rows.append(row + [str(entry.get(level, "")) for level in fine_levels])
    if tally.inputs > len(tally.head):
        notes.insert(
            0,
            f"... {tally.inputs - len(tally.head)} more inputs in inputs.csv. Of all {tally.inputs}: {tally.scored} "
            f"scored, {tally.fake} of them fake at {threshold:.4g} and {tally.fake_at_half} at 0.5; "
            f"{tally.unscored} unscored",
        )
    return to_console(header, rows, notes)
