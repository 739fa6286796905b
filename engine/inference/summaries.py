"""predict.py's results per input: a frame's score is its most-fake face's, an input's score the mean of its
frames' scores (the field's video-level convention; an image is one frame); each input's entry is yielded as soon as
its faces are scored, so memory does not grow with the inputs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from data.targets import FINE_LEVELS

from .forward import FaceResult
from .inputs import InputItem


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
