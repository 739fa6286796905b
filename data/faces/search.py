"""Where the detector looks in a video's sampled frames: the whole frame every ``full_search_every``-th frame, and in
between only around the faces of the frame before, falling back to the whole frame whenever a face is not found
again there.

A face detector's cost grows with the pixels it searches (YuNet: about 25 ms for a 640x360 frame on one core, 3 ms for
a 192x192 window), and most sampled frames of a video show the faces of the frame before, near where they were. A
window three face-widths wide around each known face, scaled so that the face is at most ``WINDOW_FACE`` pixels
(never larger than the whole-frame search would see it), finds them again for a tenth of the pixels. What it cannot
see is a face that appears while every known face is still found: that face is found at the next whole-frame search,
at most ``full_search_every - 1`` sampled frames later (``--full-search-every 1`` searches every frame whole). A frame
after one without faces, a frame where a known face is lost, and the first frame of every video are searched whole.
"""

from __future__ import annotations

import numpy as np

from .detectors import Detection, FaceDetector
from .settings import ExtractionSettings

WINDOW_SIDE = 3.0  # the window around a known face, in face widths (the face may move one width either way)
WINDOW_FACE = 64  # the largest size, in pixels, at which a known face is looked for again (YuNet: sure from ~20 px)
DUPLICATE_IOU = 0.5  # two windows that found the same face: the detection with the higher score is kept


def _downscaled(image: np.ndarray, longest: int) -> tuple[np.ndarray, float, float]:
    """``image`` shrunk to at most ``longest`` pixels on its longer side, and the factors from its pixels back to
    the original's (x, y); the image itself when it is small enough."""
    height, width = image.shape[:2]
    if max(height, width) <= longest:
        return image, 1.0, 1.0
    scale = longest / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return _resized(image, size), width / size[0], height / size[1]


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    # OpenCV's area averaging (no aliasing at large factors): 3 ms for a 1080p frame, where Pillow's antialiased
    # bilinear, used before, took 11.5 ms (the detector's boxes move by about a pixel)
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)


def _mapped(detection: Detection, x_factor: float, y_factor: float, left: float = 0.0, top: float = 0.0) -> Detection:
    """A detection in a resized (and cut) image's pixels, in the original frame's."""
    x0, y0, x1, y1 = detection.box
    box = (x0 * x_factor + left, y0 * y_factor + top, x1 * x_factor + left, y1 * y_factor + top)
    landmarks = None
    if detection.landmarks is not None:
        landmarks = detection.landmarks * np.array([x_factor, y_factor]) + np.array([left, top])
    return Detection(box, detection.score, landmarks)


def whole_frame_view(image: np.ndarray, settings: ExtractionSettings) -> tuple[np.ndarray, tuple]:
    """What the detector sees of a whole frame (downscaled to ``settings.detect_size``) and how to map back."""
    if settings.detect_size is None:
        return image, (1.0, 1.0, 0.0, 0.0)
    small, x_factor, y_factor = _downscaled(image, settings.detect_size)
    return small, (x_factor, y_factor, 0.0, 0.0)


def window_view(image: np.ndarray, face: Detection, settings: ExtractionSettings) -> tuple[np.ndarray, tuple] | None:
    """The window around a known face (three face widths, inside the frame) at the scale where the face is at most
    WINDOW_FACE pixels and never larger than in the whole-frame search; None when it falls outside the frame."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = face.box
    side = max(x1 - x0, y1 - y0, 1.0)
    centre_x, centre_y, half = (x0 + x1) / 2, (y0 + y1) / 2, WINDOW_SIDE * side / 2
    left, top = max(0, int(np.floor(centre_x - half))), max(0, int(np.floor(centre_y - half)))
    right, bottom = min(width, int(np.ceil(centre_x + half))), min(height, int(np.ceil(centre_y + half)))
    if right - left < 2 or bottom - top < 2:
        return None
    whole = 1.0 if settings.detect_size is None else min(1.0, settings.detect_size / max(height, width))
    scale = min(whole, WINDOW_FACE / side)
    region = image[top:bottom, left:right]
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    view = region if size == (right - left, bottom - top) else _resized(region, size)
    return np.ascontiguousarray(view), ((right - left) / size[0], (bottom - top) / size[1], float(left), float(top))


def _iou(a, b) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _without_duplicates(detections: list[Detection]) -> list[Detection]:
    kept: list[Detection] = []
    for detection in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(_iou(detection.box, other.box) < DUPLICATE_IOU for other in kept):
            kept.append(detection)
    return kept


class FaceSearch:
    """The detector's answers for the sampled frames of one video, given in order (in batches): frame pixels, as
    ``detect_in_frames`` gives them. Frames that can be searched together (whole frames, and windows whose frame
    before is answered) go to the detector in one call, so batched detectors keep their batches.
    ``whole_searches`` and ``window_searches`` count the frames searched each way (what the summary reports)."""

    def __init__(self, detector: FaceDetector, settings: ExtractionSettings):
        self.detector = detector
        self.settings = settings
        self.every = settings.full_search_every
        self.position = 0  # sampled frames of the video answered so far
        self.previous: list[Detection] | None = None  # the answer for the frame before; None: none yet
        self.whole_searches = 0
        self.window_searches = 0

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        count = len(images)
        answers: list[list[Detection] | None] = [None] * count
        whole = {i for i in range(count) if (self.position + i) % self.every == 0}
        pending = list(range(count))
        while pending:
            requests = []  # (frame, views with their mappings, whether it is a whole-frame search)
            for i in pending:
                before = self.previous if i == 0 else answers[i - 1]
                if i in whole or (before is not None and not before) or (i == 0 and before is None):
                    requests.append((i, [whole_frame_view(images[i], self.settings)], True))
                elif before is not None:
                    views = [window_view(images[i], face, self.settings) for face in before]
                    if any(view is None for view in views):
                        whole.add(i)  # a known face has left the frame: search it whole
                        requests.append((i, [whole_frame_view(images[i], self.settings)], True))
                    else:
                        requests.append((i, views, False))
            found = self.detector.detect(
                [view for _, views, _ in requests for view, _ in views], self.settings.align
            )
            at = 0
            for i, views, is_whole in requests:
                per_view = found[at : at + len(views)]
                at += len(views)
                mapped = [[_mapped(d, *mapping) for d in answer] for answer, (_, mapping) in zip(per_view, views)]
                if is_whole:
                    answers[i] = mapped[0]
                    self.whole_searches += 1
                elif all(mapped):  # every known face found again
                    answers[i] = _without_duplicates([d for answer in mapped for d in answer])
                    self.window_searches += 1
                else:
                    whole.add(i)  # a known face lost: the frame is searched whole in the next call
                    self.window_searches += 1
            pending = [i for i in pending if answers[i] is None]
        self.position += count
        self.previous = answers[-1] if count else self.previous
        return answers  # type: ignore[return-value]
