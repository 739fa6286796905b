"""Face extraction: sampled video frames (or folders of frame images) -> detected, square face crops + an index.

One job per module: ``settings`` (what changes the crops, the output's file names), ``sources`` (the videos under a
source, the list files beside them), ``detectors`` (the detector registry and its backends), ``video`` (reading
sampled frames), ``search`` (where the detector looks: whole frames, or around the known faces), ``crop`` (detections
-> crops), ``pipeline`` (the one frames -> detect -> crop loop, shared with
predict.py), ``extract`` (the tool's run and resume), ``index`` (the per-crop and per-video indexes, with each
video's status), ``shards`` (``--shard I/N`` and ``merge``), ``cli``.
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
    YunetDetector,
    build_detector,
    check_align,
    detector_device,
    dlib_model_file,
    list_detectors,
    register_detector,
)
from .extract import VideoResult, extract, extract_video
from .index import read_record, read_videos_index, write_index
from .pipeline import StageSeconds, detect_in_frames, faces_in_image, faces_in_video, faces_of_frames
from .search import FaceSearch
from .settings import (
    DEFAULT_DETECT_SIZE,
    DEFAULT_DETECTOR,
    DEFAULT_FULL_SEARCH_EVERY,
    DETECT_BATCH,
    INDEX_COLUMNS,
    INDEX_NAME,
    SETTINGS_NAME,
    STATUSES,
    TEMP_PREFIX,
    VIDEO_COLUMNS,
    VIDEOS_NAME,
    ExtractionError,
    ExtractionSettings,
    extraction_settings_for,
    library_versions,
)
from .shards import Shard, merge, parse_shard, shard_of
from .sources import copy_metadata, find_sources
from .video import VideoReadError, read_folder_frames, read_frames, read_video_frames, sample_indices

__all__ = [
    "DEFAULT_DETECT_SIZE",
    "DEFAULT_DETECTOR",
    "DEFAULT_FULL_SEARCH_EVERY",
    "DETECT_BATCH",
    "INDEX_COLUMNS",
    "INDEX_NAME",
    "SETTINGS_NAME",
    "STATUSES",
    "TEMP_PREFIX",
    "VIDEOS_NAME",
    "VIDEO_COLUMNS",
    "Detection",
    "DlibCnnDetector",
    "DlibHogDetector",
    "ExtractionError",
    "ExtractionSettings",
    "Face",
    "FaceDetector",
    "FaceSearch",
    "MtcnnDetector",
    "OpenCvHaarDetector",
    "Shard",
    "StageSeconds",
    "VideoReadError",
    "VideoResult",
    "YunetDetector",
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
    "merge",
    "parse_shard",
    "read_folder_frames",
    "read_frames",
    "read_record",
    "read_video_frames",
    "read_videos_index",
    "register_detector",
    "sample_indices",
    "settings_from_args",
    "shard_of",
    "square_box",
    "write_index",
]
