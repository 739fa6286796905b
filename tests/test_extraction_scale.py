"""Face extraction at scale: the source scan, the per-video time split of the summary, the default detect size and
its resume rules, and the extraction benchmark (benchmarks/extraction_scale.py) on a few tiny videos."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.cli import run
from data import extract_faces
from data.faces import detectors
from data.faces import settings as settings_module
from data.faces.detectors import Detection, FaceDetector, register_detector
from data.faces.extract import find_sources
from data.faces.pipeline import StageSeconds, timed_frames
from data.faces.settings import ExtractionError, ExtractionSettings


def test_two_sources_with_one_name_are_one_sentence_naming_the_first(tmp_path):
    for name in ("b/clip.mp4", "b/clip.avi", "a/x.mp4", "a/x.mkv", "c/only.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ExtractionError, match=r"two sources with the same name 'a/x' .*rename one\.$"):
        find_sources(tmp_path)
    (tmp_path / "a" / "x.mkv").unlink()
    (tmp_path / "b" / "clip.avi").unlink()
    assert [video_id for _, video_id in find_sources(tmp_path)] == ["a/x", "b/clip", "c/only"]


DETECT_SLEEP = 0.05  # seconds per detector call of the slow toy detector


@pytest.fixture
def slow_square_detector():
    """A registered toy detector (the bright square of a frame) that takes DETECT_SLEEP seconds per call."""

    @register_detector("slow-square")
    class SlowSquareDetector(FaceDetector):
        name = "slow-square"

        def __init__(self, device="cpu"):
            self.device = device

        def detect(self, images, landmarks=False):
            time.sleep(DETECT_SLEEP)
            answers = []
            for image in images:
                ys, xs = np.nonzero(image.min(axis=2) > 200)
                box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)) if len(xs) else None
                answers.append([Detection(box, 0.9)] if box else [])
            return answers

    yield SlowSquareDetector
    del detectors.DETECTORS["slow-square"]


def square_frames(folder: Path, count: int) -> None:
    """``count`` 96x128 frames with a white 24-pixel square moving to the right."""
    folder.mkdir(parents=True)
    for index in range(count):
        frame = np.full((96, 128, 3), 60, dtype=np.uint8)
        frame[30:54, 10 + 8 * index : 34 + 8 * index] = 255
        Image.fromarray(frame).save(folder / f"{index:03d}.png")


def test_the_summary_says_where_the_time_went(slow_square_detector, tmp_path, capsys):
    for clip in ("a", "b"):
        square_frames(tmp_path / "src" / clip, 3)
    out, summary_file = tmp_path / "out", tmp_path / "summary.json"
    flags = ["--detector", "slow-square", "--frames", "3", "--size", "16", "--batch-size", "1", "--no-progress"]
    arguments = [str(tmp_path / "src"), "--out", str(out), *flags, "--summary-json", str(summary_file)]
    assert run(extract_faces.main, arguments) == 0
    printed = capsys.readouterr().out
    summary = json.loads(summary_file.read_text())
    split = {stage: summary[f"seconds {stage}"] for stage in ("decoding", "detecting", "cropping", "writing")}
    assert all(f"seconds {stage}: {value}" in printed for stage, value in split.items())
    assert all(value >= 0 for value in split.values())
    # 2 videos x 3 frames, one frame per detector call: six calls of DETECT_SLEEP seconds each are detection
    assert 6 * DETECT_SLEEP - 0.001 <= split["detecting"] < 6 * DETECT_SLEEP + 0.5
    assert split["decoding"] > 0 and split["writing"] > 0  # PNG frames read, PNG crops and an index written
    assert sum(split.values()) <= summary["seconds"] + 0.01  # one worker: inside the loop's wall time
    assert summary["frames"] == 6 and summary["faces"] == 6
    # A rerun skips both videos: nothing decoded, detected or written
    assert run(extract_faces.main, arguments) == 0
    again = json.loads(summary_file.read_text())
    assert again["skipped (already complete)"] == 2
    assert [again[f"seconds {stage}"] for stage in split] == [0, 0, 0, 0]


def test_decoding_time_is_the_producers_not_the_consumers():
    spent = StageSeconds()

    def slow_frames():
        for index in range(3):
            time.sleep(0.02)
            yield index, None

    for _ in timed_frames(slow_frames(), spent):
        time.sleep(0.05)  # the consumer's time (detecting, writing) is not decoding
    assert 0.06 <= spent.decoding < 0.06 + 0.1


def test_the_default_detect_size_is_one_constant_and_old_full_frame_folders_still_resume(
    slow_square_detector, tmp_path, monkeypatch, capsys
):
    square_frames(tmp_path / "src" / "clip", 2)
    source, out = str(tmp_path / "src"), str(tmp_path / "out")
    flags = ["--detector", "slow-square", "--frames", "2", "--size", "16", "--no-progress"]
    monkeypatch.setattr(settings_module, "DEFAULT_DETECT_SIZE", None)
    assert run(extract_faces.main, [source, "--out", out, *flags]) == 0  # a folder made on the full frame
    assert json.loads((tmp_path / "out" / "extraction.json").read_text())["settings"]["detect_size"] is None
    monkeypatch.setattr(settings_module, "DEFAULT_DETECT_SIZE", 64)  # the default changes: one line
    assert ExtractionSettings().detect_size == 64 and "(default: 64)" in extract_faces.get_args_parser().format_help()
    # the same command over the old folder: refused (never two settings in one folder), saying how to continue it
    assert run(extract_faces.main, [source, "--out", out, *flags]) == 1
    error = capsys.readouterr().err
    assert "detect_size null there, 64 now" in error and "(--detect-size 0: the full frame)" in error
    for full_frame in ("0", "full"):
        assert run(extract_faces.main, [source, "--out", out, *flags, "--detect-size", full_frame]) == 0
        assert "skipped (already complete): 1" in capsys.readouterr().out
    # records and checkpoints written before detect_size existed detected on the full frame, whatever the default
    old_record = {key: value for key, value in ExtractionSettings(frames=4).to_dict().items() if key != "detect_size"}
    assert ExtractionSettings.from_dict(old_record).detect_size is None
    # a new folder takes the new default
    assert run(extract_faces.main, [source, "--out", str(tmp_path / "new"), *flags]) == 0
    assert json.loads((tmp_path / "new" / "extraction.json").read_text())["settings"]["detect_size"] == 64
    with pytest.raises(SystemExit, match="2"):  # argparse's own usage error
        extract_faces.main([source, "--out", out, *flags, "--detect-size", "none"])
    assert "'none' is not a number of pixels (or 0 / full: the full frame)" in capsys.readouterr().err
