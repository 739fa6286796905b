"""Face extraction: sampled video frames (or folders of frame images) -> detected, square face crops + an index.

One job per module: ``settings`` (what changes the crops, the output's file names), ``detectors`` (the detector
registry and its backends), ``video`` (reading sampled frames), ``crop`` (detections -> crops), ``pipeline`` (the
one frames -> detect -> crop loop, shared with predict.py), ``extract`` (the tool's run and resume), ``cli``.
A new detector is one ``FaceDetector`` subclass under ``@register_detector("name")`` in ``detectors``.
"""

from .cli import get_args_parser, main, settings_from_args
from .crop import Face, crop_face, faces_from_detections, square_box
from .detectors import (
    Detection,
    DlibCnnDetector,
    DlibHogDetector,
    FaceDetector,
    MtcnnDetector,
    OpenCvHaarDetector,
    build_detector,
    check_align,
    detector_device,
    dlib_model_file,
    list_detectors,
    register_detector,
)
from .extract import VideoResult, copy_metadata, extract, extract_video, find_sources, write_index
from .pipeline import StageSeconds, detect_in_frames, faces_in_image, faces_in_video, faces_of_frames
from .settings import (
    DEFAULT_DETECT_SIZE,
    DEFAULT_DETECTOR,
    DETECT_BATCH,
    INDEX_COLUMNS,
    INDEX_NAME,
    SETTINGS_NAME,
    TEMP_PREFIX,
    ExtractionError,
    ExtractionSettings,
    extraction_settings_for,
    library_versions,
)
from .video import VideoReadError, read_folder_frames, read_frames, read_video_frames, sample_indices

__all__ = [
    "DEFAULT_DETECT_SIZE",
    "DEFAULT_DETECTOR",
    "DETECT_BATCH",
    "INDEX_COLUMNS",
    "INDEX_NAME",
    "SETTINGS_NAME",
    "TEMP_PREFIX",
    "Detection",
    "DlibCnnDetector",
    "DlibHogDetector",
    "ExtractionError",
    "ExtractionSettings",
    "Face",
    "FaceDetector",
    "MtcnnDetector",
    "OpenCvHaarDetector",
    "StageSeconds",
    "VideoReadError",
    "VideoResult",
    "build_detector",
    "check_align",
    "copy_metadata",
    "crop_face",
    "detect_in_frames",
    "detector_device",
    "dlib_model_file",
    "extract",
    "extract_video",
    "extraction_settings_for",
    "faces_from_detections",
    "faces_in_image",
    "faces_in_video",
    "faces_of_frames",
    "find_sources",
    "get_args_parser",
    "library_versions",
    "list_detectors",
    "main",
    "read_folder_frames",
    "read_frames",
    "read_video_frames",
    "register_detector",
    "sample_indices",
    "settings_from_args",
    "square_box",
    "write_index",
]
