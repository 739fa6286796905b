"""Frames -> detected faces -> crops: the one loop that the extraction tool and predict.py share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .crop import Face, faces_from_detections
from .detectors import FaceDetector, check_align
from .settings import DETECT_BATCH, ExtractionError, ExtractionSettings
from .video import VideoReadError, read_frames


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def faces_of_frames(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: FaceDetector,
    settings: ExtractionSettings,
    batch_size: int = DETECT_BATCH,
) -> Iterator[tuple[int, list[Face]]]:
    """(frame index, its face crops, the largest first; empty when it has none) for every (index, RGB frame),
    ``batch_size`` frames per detector call."""
    for batch in _batches(frames, batch_size):
        answers = detector.detect([image for _, image in batch], settings.align)
        for (index, image), detections in zip(batch, answers):
            yield index, faces_from_detections(image, detections, settings, index)


def faces_in_image(image: np.ndarray, detector: FaceDetector, settings: ExtractionSettings) -> list[Face]:
    """Faces of one HxWx3 uint8 RGB image (frame 0), the largest first."""
    check_align(detector, settings)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ExtractionError(f"faces_in_image needs an HxWx3 uint8 RGB array, not shape {image.shape}.")
    return next(faces_of_frames([(0, image)], detector, settings))[1]


def faces_in_video(
    path, detector: FaceDetector, settings: ExtractionSettings, batch_size: int = DETECT_BATCH
) -> Iterator[Face]:
    """Faces of the sampled frames of a video file or frame folder; a UserError when it cannot be read."""
    check_align(detector, settings)
    try:
        decoded = ((index, image) for index, image in read_frames(Path(path), settings) if image is not None)
        for _, faces in faces_of_frames(decoded, detector, settings, batch_size):
            yield from faces
    except VideoReadError as error:
        raise ExtractionError(f"video {path} {error}: check the file (re-download it if it is truncated).") from None
