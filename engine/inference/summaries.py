"""predict.py's results per input: a frame's score is its most-fake face's, an input's score the mean of its
frames' scores (the field's video-level convention; an image is one frame); each input's entry is yielded as soon as
its faces are scored, so memory does not grow with the inputs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UserError
from data.targets import FINE_LEVELS
from engine.evaluation.calibration import Calibration
from engine.evaluation.calibration import verdict as band_verdict

from .forward import FaceResult
from .inputs import InputItem


def _fine_label(probabilities: list[np.ndarray], names: Sequence[str] | None) -> tuple[str, float] | None:
    if not probabilities or not names:
        return None
    mean = np.mean(probabilities, axis=0)
    best = int(mean.argmax())
    return names[best], float(mean[best])


@dataclass(frozen=True)
class Decision:
    """How a score is read: ``fake`` at the checkpoint's threshold and at 0.5 (raw scores), the calibrated
    ``probability`` of fake (a fitted map of the raw score; the raw score without one) and the ``verdict`` real /
    fake / uncertain of the uncertain band (of calibrated probabilities; without a band: fake at the threshold)."""

    threshold: float
    calibration: Callable[[np.ndarray], np.ndarray] | None = None
    band: Mapping[str, float] | None = None

    def __call__(self, score: float) -> dict[str, Any]:
        probability = float(self.calibration(np.array([score]))[0]) if self.calibration is not None else score
        if self.band is None:
            verdict = "fake" if score >= self.threshold else "real"
        else:
            verdict = band_verdict(probability, self.band)
        return {
            "fake": int(score >= self.threshold),
            "fake_at_0.5": int(score >= 0.5),
            "probability": probability,
            "verdict": verdict,
        }


def score_reading(stored: Mapping[str, Any] | None, source: str, calibration_file: str | Path | None = None):
    """(``iter_summaries``' calibration and band, the notes saying how scores are read) from a checkpoint's stored
    calibration (``train.py``: threshold, map and band fitted on its validation rows) or a map that
    ``test.py --calibrate`` wrote (``calibration_file``: calibration.json; no band: the verdict is the threshold's)."""
    stored = dict(stored or {})
    if calibration_file is not None:
        path = Path(calibration_file)
        try:
            fitted = Calibration.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            raise UserError(
                f"--calibration {path} cannot be read as a calibration map ({error}): give the calibration.json that "
                "test.py --calibrate wrote."
            ) from None
        band = None
        origin = f"{path}"
    else:
        fitted = Calibration.from_dict(stored.get("probability"))
        band = stored.get("uncertain")
        origin = f"{source}"
    notes = []
    if fitted is None:
        notes.append(
            f"{origin} stores no calibration map (trained before maps were fitted, or with train.calibrate none): "
            "P(fake) is the model's own probability; test.py --calibrate fits one"
        )
    else:
        notes.append(f"P(fake): calibrated by {fitted.describe()} ({origin})")
    if band is not None:
        notes.append(
            f"verdict: fake at P(fake) >= {band['high']:.4f}, real at <= {band['low']:.4f}, uncertain between; the "
            f"band keeps the error on the answered validation rows under {100 * band['risk']:g}% (answered "
            f"{100 * band['coverage']:.1f}% of them; on new inputs the error is an estimate)"
        )
    else:
        notes.append("verdict: fake or real at the threshold (no uncertain band stored)")
    return {"calibration": fitted.apply if fitted is not None else None, "band": band}, notes


def iter_summaries(
    items: Sequence[InputItem],
    results: Iterable[FaceResult],
    *,
    threshold: float,
    class_names: dict[str, list[str]],
    calibration: Callable[[np.ndarray], np.ndarray] | None = None,
    band: Mapping[str, float] | None = None,
) -> Iterator[dict[str, Any]]:
    """Per input, in input order: its frames (each with its faces), the frame scores (most-fake face) and the input
    score (mean), each read by ``Decision(threshold, calibration, band)``. ``results`` come in input order (as
    ``score_crops`` yields them), so each input's entry is yielded as soon as the next input's first face arrives:
    memory does not grow with the inputs."""
    decide = Decision(threshold, calibration, band)

    def through(first: int, faces: list[FaceResult]) -> Iterator[dict[str, Any]]:
        """The entries from input ``first`` to that of ``faces``: the ones before it had no face."""
        index = faces[0].crop.input_index
        yield from (_entry(items[i], [], decide, class_names) for i in range(first, index))
        yield _entry(items[index], faces, decide, class_names)

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
    yield from (_entry(items[i], [], decide, class_names) for i in range(done, len(items)))


def _entry(
    item: InputItem, faces: Sequence[FaceResult], decide: Decision, class_names: dict[str, list[str]]
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
                **decide(top.score),
                "face_results": [
                    _face_record(r, decide, class_names)
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
        "probability": None,
        "verdict": None,
    }
    if frames:
        score = float(np.mean([f["score"] for f in frames]))
        entry.update(score=score, **decide(score))
        for level in FINE_LEVELS:
            label = _fine_label([r.fine[level] for r in chosen if level in r.fine], class_names.get(level))
            if label:
                entry[level], entry[f"{level}_prob"] = label
    entry["frame_results"] = frames
    return entry


def _face_record(result: FaceResult, decide: Decision, class_names: dict[str, list[str]]) -> dict[str, Any]:
    crop = result.crop
    record: dict[str, Any] = {
        "face_index": crop.face_index,
        "box": list(crop.box) if crop.box else None,
        "detector_score": crop.detector_score,
        "score": result.score,
        **decide(result.score),
    }
    for level, probabilities in result.fine.items():
        label = _fine_label([probabilities], class_names.get(level))
        if label:
            record[level], record[f"{level}_prob"] = label
    return record
