"""Frames -> detected faces -> crops: the one loop that the extraction tool and predict.py share, and the seconds a
video spends in each of its stages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue

import numpy as np

from common.batching import batched

from .crop import Face, faces_from_detections
from .detectors import FaceDetector, check_align
from .search import FaceSearch, _mapped, whole_frame_view
from .settings import DETECT_BATCH, ExtractionError, ExtractionSettings
from .video import VideoReadError, read_frames


@dataclass
class StageSeconds:
    """Wall seconds one video spent decoding (seeks included), detecting (the downscaling included), cropping and
    writing its crops and index: a few clock readings per batch of frames, nothing per pixel. Beside them, how many
    of its sampled frames the detector searched whole and how many around known faces only (``FaceSearch``)."""

    decoding: float = 0.0
    detecting: float = 0.0
    cropping: float = 0.0
    writing: float = 0.0
    whole_searches: int = 0
    window_searches: int = 0

    def add(self, other: "StageSeconds") -> None:
        self.decoding += other.decoding
        self.detecting += other.detecting
        self.cropping += other.cropping
        self.writing += other.writing
        self.whole_searches += other.whole_searches
        self.window_searches += other.window_searches

    def total(self) -> float:
        return self.decoding + self.detecting + self.cropping + self.writing


def timed_frames(frames: Iterable, seconds: StageSeconds) -> Iterator:
    """``frames`` passed on unchanged; the time spent producing each one (opening, seeking, decoding) is added to
    ``seconds.decoding``, not the time its consumer spends on it."""
    iterator = iter(frames)
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            seconds.decoding += time.perf_counter() - started
        yield item


class _Raised:
    """An exception of the producing thread, carried to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def prefetched(items: Iterable, depth: int = 4) -> Iterator:
    """``items`` produced in a thread of their own, up to ``depth`` ahead of the consumer: a video's frames decode
    while the detector works on the ones before (decoding, PyAV, and detecting, a C library called without the GIL,
    then run at once). An exception of the producer is raised in the consumer; a consumer that stops early stops the
    producer, which closes its generator (and the video) in its own thread."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # carried to the consumer, which raises it
            put(_Raised(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="frames", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def detect_in_frames(detector: FaceDetector, images: list[np.ndarray], settings: ExtractionSettings):
    """The detector's answers for RGB frames searched whole, in each frame's own pixels. With
    ``settings.detect_size`` it looks at the frames downscaled to that longer side (the DFDC winners' practice: far
    fewer pixels for the detector), and its boxes and landmarks are mapped back so that the crops come from the
    full-resolution frames."""
    views = [whole_frame_view(image, settings) for image in images]
    answers = detector.detect([view for view, _ in views], settings.align)
    return [[_mapped(d, *mapping) for d in found] for found, (_, mapping) in zip(answers, views)]


def faces_of_frames(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: FaceDetector,
    settings: ExtractionSettings,
    batch_size: int = DETECT_BATCH,
    seconds: StageSeconds | None = None,
) -> Iterator[tuple[int, list[Face]]]:
    """(frame index, its face crops, the largest first; empty when it has none) for every (index, RGB frame) of one
    video, in order, ``batch_size`` frames per detector call, searched whole or around the faces of the frame before
    (``FaceSearch``: ``settings.full_search_every``); the detector's and the cropping's time is added to ``seconds``,
    and the frames searched each way too."""
    search = FaceSearch(detector, settings)
    for batch in batched(frames, batch_size):
        started = time.perf_counter()
        answers = search.detect([image for _, image in batch])
        detected = time.perf_counter()
        crops = [faces_from_detections(image, found, settings, index) for (index, image), found in zip(batch, answers)]
        if seconds is not None:
            seconds.detecting += detected - started
            seconds.cropping += time.perf_counter() - detected
            seconds.whole_searches, seconds.window_searches = search.whole_searches, search.window_searches
        yield from zip([index for index, _ in batch], crops)


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
