"""The face-extraction package's plug points: a detector added with one class and one decorator works in the tool
and in predict through the same frame -> detect -> crop loop, and extraction and predict accept the same media."""

import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.atomic import DiskFullError
from common.cli import run
from data import extract_faces, media
from data.faces import detectors
from data.faces.detectors import Detection, FaceDetector, register_detector
from data.faces.extract import extract
from data.faces.settings import ExtractionError, ExtractionSettings
from data.faces.sources import find_sources
from engine.inference.inputs import InputItem, collect_inputs, detector_beside, iter_face_crops

SQUARE = 24  # side of the bright square the toy detector finds


@pytest.fixture
def toy_detector():
    """Register a toy detector (the bright square of a frame) the way a new detector is added: one class under one
    decorator. The registry is restored afterwards."""

    @register_detector("toy-square")
    class ToySquareDetector(FaceDetector):
        name = "toy-square"

        def __init__(self, device="cpu"):
            self.device = device

        def detect(self, images, landmarks=False):
            answers = []
            for image in images:
                ys, xs = np.nonzero(image.min(axis=2) > 200)
                found = len(xs) > 0
                box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)) if found else None
                answers.append([Detection(box, 0.9)] if found else [])
            return answers

    yield ToySquareDetector
    del detectors.DETECTORS["toy-square"]


def frame_folder(folder: Path, count: int) -> list[tuple[float, ...]]:
    """``count`` 96x128 frames, each with a white square moving to the right (frame 2 has none); their boxes."""
    folder.mkdir(parents=True)
    boxes = []
    for index in range(count):
        frame = np.full((96, 128, 3), 60, dtype=np.uint8)
        x, y = 10 + 8 * index, 30
        if index != 2:
            frame[y : y + SQUARE, x : x + SQUARE] = 255
            frame[y + 4 : y + 8, x + 4 : x + 8] = 0  # something inside the crop to compare
        boxes.append((float(x), float(y), float(x + SQUARE), float(y + SQUARE)))
        Image.fromarray(frame).save(folder / f"{index:03d}.png")
    return boxes


def test_a_registered_detector_is_a_choice_of_the_tool_and_predict_with_the_same_crops(toy_detector, tmp_path):
    assert "toy-square" in detectors.list_detectors()
    boxes = frame_folder(tmp_path / "src" / "clip", 5)
    out = tmp_path / "out"
    arguments = ["--out", str(out), "--detector", "toy-square", "--frames", "5", "--size", "32", "--no-progress"]
    assert run(extract_faces.main, [str(tmp_path / "src"), *arguments]) == 0
    with open(out / "faces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["frame"]) for r in rows] == [0, 1, 3, 4]  # frame 2 has no face
    assert [tuple(float(r[f"box_{k}"]) for k in ("x0", "y0", "x1", "y1")) for r in rows] == [
        boxes[i] for i in (0, 1, 3, 4)
    ]
    # predict.py's path for a video (here a folder of frames) gives the same faces, crops included.
    settings = ExtractionSettings(detector="toy-square", frames=5, size=32)
    detector = detector_beside(settings, "cpu")
    assert isinstance(detector, toy_detector)
    item = InputItem(tmp_path / "src" / "clip", "video")
    crops = list(iter_face_crops([item], image_size=32, detect=True, settings=settings, detector=detector))
    assert [(c.frame, c.box) for c in crops] == [(int(r["frame"]), boxes[int(r["frame"])]) for r in rows]
    for crop, row in zip(crops, rows):
        written = np.asarray(Image.open(out / row["path"]))
        assert np.array_equal(crop.pixels.permute(1, 2, 0).numpy(), written)


def test_a_detector_name_is_registered_once(toy_detector):
    with pytest.raises(ValueError, match="already registered"):
        register_detector("toy-square")(toy_detector)
    with pytest.raises(ExtractionError, match="unknown face detector 'toy-circle'.*toy-square"):
        detectors.build_detector("toy-circle")


def test_extraction_and_predict_accept_the_same_media_suffixes(tmp_path):
    """Extraction used to skip .m4v, .flv, .mpg, .mpeg and .wmv videos that predict.py scores."""
    source = tmp_path / "media"
    for suffix in sorted(media.VIDEO_SUFFIXES):
        (source / "videos").mkdir(parents=True, exist_ok=True)
        name = f"clip_{suffix[1:]}{suffix.upper() if suffix == '.flv' else suffix}"  # suffixes in any case
        (source / "videos" / name).write_bytes(b"")
    for suffix in sorted(media.IMAGE_SUFFIXES):
        (source / f"frames{suffix}").mkdir(parents=True)
        (source / f"frames{suffix}" / f"0{suffix}").write_bytes(b"")
    (source / "videos" / "notes.txt").write_text("not media")
    extracted = {(path.name if path.is_file() else path.name + "/") for path, _ in find_sources(source)}
    videos = {item.path.name for item in collect_inputs([source / "videos"]) if item.kind == "video"}
    assert extracted - {f"frames{s}/" for s in media.IMAGE_SUFFIXES} == videos
    assert len(videos) == len(media.VIDEO_SUFFIXES)
    images = {item.path.suffix for item in collect_inputs([source]) if item.kind == "image"}
    frame_folders = {name for name in extracted if name.endswith("/")}
    assert images == set(media.IMAGE_SUFFIXES) and len(frame_folders) == len(media.IMAGE_SUFFIXES)


def test_a_full_disk_while_writing_the_index_keeps_the_previous_one(toy_detector, tmp_path, monkeypatch):
    frame_folder(tmp_path / "src" / "clip", 3)
    settings = ExtractionSettings(detector="toy-square", frames=3, size=16)
    extract(tmp_path / "src", tmp_path / "out", settings, progress=False)
    before = (tmp_path / "out" / "faces.csv").read_bytes()

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(DiskFullError, match="the disk is full writing .*faces.csv: the previous faces.csv is kept"):
        extract(tmp_path / "src", tmp_path / "out", settings, progress=False)
    assert (tmp_path / "out" / "faces.csv").read_bytes() == before
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_one_suffix_list_for_indexing_builders_extraction_and_predict(tmp_path, monkeypatch):
    """A suffix added to data/media.py reaches every reader of media files (each used to spell its own list)."""
    from data import build_index, datasets

    monkeypatch.setattr(media, "IMAGE_SUFFIXES", media.IMAGE_SUFFIXES | {".heic"})
    monkeypatch.setattr(media, "VIDEO_SUFFIXES", media.VIDEO_SUFFIXES | {".3gp"})
    (tmp_path / "train" / "real" / "v1").mkdir(parents=True)
    (tmp_path / "train" / "real" / "v1" / "f000000_0.heic").write_bytes(b"")
    (tmp_path / "clip.3gp").write_bytes(b"")
    rows, _, _ = build_index.build_index(tmp_path, "{split}/{generator}/{video_id}/*")
    assert [row["path"] for row in rows] == ["train/real/v1/f000000_0.heic"]
    video = datasets.Video("train/real/v1", 0, "train", "real", "real")
    assert [row["path"] for row in datasets.video_rows(tmp_path, video, "Toy")] == ["train/real/v1/f000000_0.heic"]
    assert [video_id for _, video_id in find_sources(tmp_path)] == ["clip", "train/real/v1"]
    kinds = {item.path.name: item.kind for item in collect_inputs([tmp_path])}
    assert kinds == {"clip.3gp": "video", "f000000_0.heic": "image"}


def test_detect_size_is_a_flag_stored_with_the_settings_and_older_records_still_resume(toy_detector, tmp_path, capsys):
    boxes = frame_folder(tmp_path / "src" / "clip", 2)
    flags = ["--detector", "toy-square", "--frames", "2", "--size", "16", "--no-progress"]
    out = tmp_path / "out"
    assert run(extract_faces.main, [str(tmp_path / "src"), "--out", str(out), *flags, "--detect-size", "64"]) == 0
    record = json.loads((out / "extraction.json").read_text())
    assert record["settings"]["detect_size"] == 64
    with open(out / "faces.csv", newline="") as handle:  # found on 64x48 frames, given in the 128x96 frame's pixels
        assert [float(row["box_x0"]) for row in csv.DictReader(handle)] == [boxes[0][0], boxes[1][0]]
    # A record written before detect_size existed reads as detect_size null: the same settings, so it resumes.
    older, full_frame = tmp_path / "older", [*flags, "--detect-size", "0"]  # 0: the full frame, whatever the default
    assert run(extract_faces.main, [str(tmp_path / "src"), "--out", str(older), *full_frame]) == 0
    record = json.loads((older / "extraction.json").read_text())
    del record["settings"]["detect_size"]
    (older / "extraction.json").write_text(json.dumps(record))
    assert run(extract_faces.main, [str(tmp_path / "src"), "--out", str(older), *full_frame]) == 0
    assert "skipped (already complete): 1" in capsys.readouterr().out
    assert run(extract_faces.main, [str(tmp_path / "src"), "--out", str(older), *flags, "--detect-size", "64"]) == 1
    assert "other settings" in capsys.readouterr().err
    assert run(extract_faces.main, [str(tmp_path / "src"), "--out", str(older), *flags, "--detect-size", "8"]) == 2
    assert "detect_size must be at least 64" in capsys.readouterr().err


def test_freed_memory_goes_back_to_the_system_after_every_video(toy_detector, tmp_path, monkeypatch):
    """glibc keeps what a worker freed: without a trim between videos its resident size climbs video after video; the
    trim happens once the worker holds more than the bound (below it the freed buffers serve the next video)."""
    import importlib
    import platform

    from common.memory import keep_freed_memory, release_freed_memory, resident_mb

    extract_module = importlib.import_module("data.faces.extract")  # the module (data.faces.extract is the function)

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert release_freed_memory() is glibc
    assert keep_freed_memory() is glibc
    if glibc:
        assert resident_mb() > 1
        assert release_freed_memory(above_mb=resident_mb() + 1e6) is False  # under the bound: kept
        assert release_freed_memory(above_mb=0) is True
    for name in ("a", "b", "c"):
        frame_folder(tmp_path / "src" / name, 2)
    releases = []
    monkeypatch.setattr(extract_module, "release_freed_memory", lambda above_mb: releases.append(above_mb) or True)
    settings = ExtractionSettings(detector="toy-square", frames=2, size=16)
    summary = extract(tmp_path / "src", tmp_path / "out", settings, progress=False)
    assert summary["extracted"] == 3 and releases == [extract_module.RELEASE_ABOVE_MB] * 3
