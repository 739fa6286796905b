"""Face-extraction settings: what changes the crops (stored with the crops and in checkpoints) and the file names
of an extraction's output folder."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from common.errors import UserError
from data.schema import EXTRACTION_STATUSES

# Chosen by measurement (docs/extraction.md: benchmarks/face_detectors.py and extraction_scale.py): yunet finds the
# benchmark's faces as mtcnn does at a fraction of its CPU time; mtcnn (--detector mtcnn, the default before) stays
# for small faces and GPUs; dlib-hog is DeepfakeBench's, for comparability.
DEFAULT_DETECTOR = "yunet"
# Longer side of the downscaled frame the detector looks at (None: the full frame); chosen by measurement with
# benchmarks/extraction_scale.py (docs/extraction.md). Out folders and checkpoints keep the value they were made with.
DEFAULT_DETECT_SIZE: int | None = 640
# Search the whole frame every this many sampled frames (and wherever a known face is lost), in between only around
# the faces of the frame before (data/faces/search.py); 1: every frame whole. The default for yunet, chosen by
# measurement (docs/extraction.md); the other detectors search every frame whole unless asked (mtcnn is the choice
# for small faces and crowds, where people come and go, and batches whole frames on a GPU): --detector mtcnn alone
# is the default before.
DEFAULT_FULL_SEARCH_EVERY = 4
WINDOW_SEARCH_DETECTORS = ("yunet",)
INDEX_NAME = "faces.csv"
SETTINGS_NAME = "extraction.json"
LOG_NAME = "extraction_log.txt"
VIDEO_DONE_NAME = "video.json"  # written last inside a video's folder: its presence marks the video complete
TEMP_PREFIX = ".tmp-"
DETECT_BATCH = 16  # sampled frames per detector call (batched detectors: mtcnn, dlib-cnn); --batch-size
MIN_DETECT_SIZE = 64  # below it a frame's faces are too small for any of the detectors
INDEX_COLUMNS = ("path", "video_id", "frame", "face_index", "box_x0", "box_y0", "box_x1", "box_y1", "score")
# The index of the source videos: one row per video, its status and why (``reason``); ``source`` is the video's
# path relative to the source folder (a folder of frames: the folder's), ``frames`` the sampled frames decoded.
VIDEOS_NAME = "videos.csv"
VIDEO_COLUMNS = ("video_id", "source", "status", "frames", "faces", "reason")
# A video's status: ok (faces found), no-face (decoded, no face in any sampled frame), decode-error (opened, its
# frames do not decode), too-short (fewer frames than --frames asks for), unreadable (not a video that can be opened).
STATUSES = EXTRACTION_STATUSES  # the split CSV's extraction_status column (data/schema.py) carries them
SHARDS_DIR = "shards"  # OUT/shards/I-of-N/: a shard's own index, log and record (python -m data.extract_faces merge)
SHARD_RECORD = "shard.json"


class ExtractionError(UserError):
    """A source, a detector or a setting that extraction cannot use; one sentence naming it."""


def _positive_int_or_none(name: str, value) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ExtractionError(f"face extraction setting {name} must be a positive integer or null, not {value!r}.")


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
    # Detect on the frame downscaled to at most this many pixels on its longer side, crop from the full frame;
    # None: detect on the full frame. Read when a setting is made, so DEFAULT_DETECT_SIZE is the one place to change.
    detect_size: int | None = field(default_factory=lambda: DEFAULT_DETECT_SIZE)
    # The whole frame is searched every this many sampled frames, in between around the faces of the frame before;
    # None: the detector's default (DEFAULT_FULL_SEARCH_EVERY for WINDOW_SEARCH_DETECTORS, else 1), stored resolved.
    full_search_every: int | None = None

    def __post_init__(self):
        if (self.frames is None) == (self.stride is None):
            raise ExtractionError("face extraction needs exactly one of frames (evenly spaced) or stride (every k-th).")
        for name in ("frames", "stride", "max_faces"):
            _positive_int_or_none(name, getattr(self, name))
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
        _positive_int_or_none("detect_size", self.detect_size)
        if self.full_search_every is None:
            default = DEFAULT_FULL_SEARCH_EVERY if self.detector in WINDOW_SEARCH_DETECTORS else 1
            object.__setattr__(self, "full_search_every", default)
        every = self.full_search_every
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ExtractionError(
                f"face extraction setting full_search_every (--full-search-every) must be a positive integer "
                f"(1: search every frame whole), not {every!r}."
            )
        if self.detect_size is not None and self.detect_size < MIN_DETECT_SIZE:
            raise ExtractionError(
                f"face extraction setting detect_size must be at least {MIN_DETECT_SIZE} pixels (or null, "
                f"--detect-size 0: detect on the full frame), not {self.detect_size}."
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ExtractionSettings":
        """Settings from a record; one written before detect_size existed detected on the full frame (null), one
        written before full_search_every existed searched every frame whole (1), whatever the defaults are now."""
        values = {"detect_size": None, "full_search_every": 1, **values}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ExtractionError(
                f"face extraction settings have unknown key(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})."
            )
        return cls(**values)


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
