"""Cropping: detections in a frame -> square face crops around them (margin, optional eye alignment, resize)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .detectors import Detection
from .settings import ExtractionSettings


@dataclass
class Face:
    """One face crop of a frame: face 0 is the frame's largest face; the box is the detector's, in frame pixels."""

    frame: int
    face_index: int
    box: tuple[float, float, float, float]
    score: float
    crop: np.ndarray  # (size, size, 3) uint8 RGB


def square_box(box, margin: float) -> tuple[float, float, float, float]:
    """The square of side ``margin * max(w, h)`` centred on ``box`` (may reach outside the frame)."""
    x0, y0, x1, y1 = box
    side = margin * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def cut(image: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """``image[top:bottom, left:right]`` where the rectangle may reach outside it: black there (PIL's crop), without
    copying the whole frame."""
    height, width = image.shape[:2]
    region = np.zeros((max(0, bottom - top), max(0, right - left), *image.shape[2:]), dtype=image.dtype)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    if x1 > x0 and y1 > y0:
        region[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return region


def crop_face(image: np.ndarray, detection: Detection, settings: ExtractionSettings) -> np.ndarray:
    """Square crop around the detection, enlarged by the margin, resized (bicubic) to ``size``; black outside."""
    x0, y0, x1, y1 = square_box(detection.box, settings.margin)
    rectangle = (round(x0), round(y0), round(x1), round(y1))
    if settings.align and detection.landmarks is not None:
        # Rotate about the box centre so that the eyes lie on a horizontal line, then crop the same square.
        (left_x, left_y), (right_x, right_y) = detection.landmarks[0], detection.landmarks[1]
        angle = math.degrees(math.atan2(right_y - left_y, right_x - left_x))
        picture = Image.fromarray(image)
        picture = picture.rotate(angle, resample=Image.Resampling.BICUBIC, center=((x0 + x1) / 2, (y0 + y1) / 2))
        crop = picture.crop(rectangle)
    else:  # the square alone, not the whole frame, goes through PIL: the same pixels as cropping the frame there
        crop = Image.fromarray(np.ascontiguousarray(cut(image, *rectangle)))
    return np.asarray(crop.resize((settings.size, settings.size), Image.Resampling.BICUBIC), dtype=np.uint8)


def _area(detection: Detection) -> float:
    x0, y0, x1, y1 = detection.box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def faces_from_detections(
    image: np.ndarray, detections: list[Detection], settings: ExtractionSettings, frame: int
) -> list[Face]:
    """The crops of a frame's detections above ``min_score``, the largest first, at most ``max_faces``."""
    kept = sorted((d for d in detections if d.score >= settings.min_score), key=_area, reverse=True)
    if settings.max_faces is not None:
        kept = kept[: settings.max_faces]
    return [Face(frame, index, tuple(d.box), d.score, crop_face(image, d, settings)) for index, d in enumerate(kept)]
