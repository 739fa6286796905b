"""Face extraction at scale: the source scan, the per-video time split of the summary, the default detect size and
its resume rules, and the extraction benchmark (benchmarks/extraction_scale.py) on a few tiny videos."""

import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data as skimage_data
from PIL import Image

from benchmarks import extraction_scale, measure
from common.cli import run
from data import extract_faces
from data.faces import cli as faces_cli
from data.faces import detectors
from data.faces import settings as settings_module
from data.faces.detectors import Detection, FaceDetector, register_detector
from data.faces.pipeline import StageSeconds, prefetched, timed_frames
from data.faces.settings import ExtractionError, ExtractionSettings
from data.faces.sources import find_sources
from data.faces.video import VideoReadError, read_video_frames


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
        delay = DETECT_SLEEP

        def __init__(self, device="cpu"):
            self.device = device

        def detect(self, images, landmarks=False):
            time.sleep(self.delay)
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
    # one worker: the frames decode in a thread of their own while the detector works, so the decoder's time and
    # the rest each lie inside the loop's wall time, and may add up past it
    assert split["decoding"] <= summary["seconds"] + 0.01
    assert split["detecting"] + split["cropping"] + split["writing"] <= summary["seconds"] + 0.01
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


def test_frames_decode_while_the_detector_works_and_the_decoders_errors_reach_the_consumer():
    def frames(count, fail_at=None, closed=None):
        try:
            for index in range(count):
                time.sleep(0.05)  # decoding
                if index == fail_at:
                    raise VideoReadError("decoding failed after 2 frame(s)", "decode-error")
                yield index, threading.current_thread().name
        finally:
            if closed is not None:
                closed.append(threading.current_thread().name)

    started = time.perf_counter()
    seen = []
    for index, thread in prefetched(frames(6)):
        time.sleep(0.05)  # detecting
        seen.append((index, thread))
    assert time.perf_counter() - started < 0.5  # 6 x (0.05 + 0.05) one after the other: 0.6 s
    assert [index for index, _ in seen] == list(range(6)) and {thread for _, thread in seen} == {"frames"}
    with pytest.raises(VideoReadError, match="after 2 frame") as raised:
        list(prefetched(frames(6, fail_at=2)))
    assert raised.value.status == "decode-error"
    closed = []
    for index, _ in prefetched(frames(100, closed=closed)):
        if index == 1:
            break  # the consumer stops: the producer stops too, and closes its video in its own thread
    assert closed == ["frames"] and not [t for t in threading.enumerate() if t.name == "frames"]


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
    assert ExtractionSettings().detect_size == 64 and "(default: 64)" in faces_cli.get_args_parser().format_help()
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


# ------------------------------------------------------------------------------------------------ the benchmark
def test_a_killed_command_loses_its_whole_process_group(tmp_path):
    """run_command's kill_when: SIGKILL to the command and to what it started (extraction's workers), at once."""
    marker, child_pid = tmp_path / "started", tmp_path / "child.pid"
    script = (
        "import pathlib, subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"pathlib.Path({str(child_pid)!r}).write_text(str(child.pid)); "
        f"pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(60)"
    )
    command = [sys.executable, "-c", script]
    measured = measure.run_command(command, timeout=60, environment=None, kill_when=marker.exists)
    assert measured.record["exit_code"] == -signal.SIGKILL and measured.record["killed_at_s"] < 30
    time.sleep(0.2)
    status = Path(f"/proc/{child_pid.read_text()}/status")
    assert not status.exists() or "\nState:\tZ" in status.read_text()  # gone, or dead and not yet reaped


def test_the_synthetic_videos_have_the_asked_mix():
    plan = extraction_scale.video_plan(400, seed=0)
    assert plan == extraction_scale.video_plan(400, seed=0)  # deterministic
    share = lambda condition: sum(map(condition, plan)) / len(plan)  # noqa: E731
    assert 0.10 < share(lambda v: v["vertical"]) < 0.20
    assert 0.10 < share(lambda v: len(v["faces"]) == 2) < 0.20 and 0.06 < share(lambda v: not v["faces"]) < 0.14
    assert {v["fps"] for v in plan} == {25, 30} and all(5 <= v["seconds"] <= 60.1 for v in plan)
    landscape = {(854, 480), (1280, 720), (1920, 1080)}
    assert {(v["width"], v["height"]) for v in plan} == landscape | {(h, w) for w, h in landscape}
    for video in plan:
        for frame in (0, video["frames"] // 2, video["frames"] - 1):
            boxes = extraction_scale.true_boxes(video, frame)
            assert all(0 <= x0 < x1 <= video["width"] and 0 <= y0 < y1 <= video["height"] for x0, y0, x1, y1 in boxes)
            shorter = min(video["height"], video["width"])  # two faces share the longer side: a little smaller
            assert all(0.08 * shorter <= y1 - y0 <= 0.24 * shorter for _, y0, _, y1 in boxes)
            corners = [extraction_scale.face_corner(face, frame, video["frames"]) for face in video["faces"]]
            if len(corners) == 2:  # two faces never overlap
                (ax, ay), (bx, by) = corners
                side_a, side_b = (face["side"] for face in video["faces"])
                assert ax + side_a <= bx or bx + side_b <= ax or ay + side_a <= by or by + side_b <= ay


def test_a_synthetic_video_shows_its_faces_where_the_manifest_says_and_is_made_once(tmp_path):
    video = extraction_scale.video_plan(1, seed=3, sizes=[(160, 120)], seconds=(1.0, 1.0))[0]
    video |= {"width": 160, "height": 120, "vertical": False, "background": "coffee"}
    video["faces"] = [{"side": 64, "start": [4.0, 10.0], "end": [90.0, 50.0], "mirrored": False}]
    parameters = {"test": 1}
    made = extraction_scale.synthesise(tmp_path, [video], parameters, workers=1)
    assert not made["reused"] and (tmp_path / "manifest.json").is_file()
    settings = ExtractionSettings(frames=None, stride=video["frames"] - 1)
    frames = dict(read_video_frames(tmp_path / video["file"], settings))
    assert sorted(frames) == [0, video["frames"] - 1]
    patch = np.asarray(
        Image.fromarray(skimage_data.astronaut()).crop(extraction_scale.ASTRONAUT_PATCH).resize((64, 64))
    )
    for index, image in frames.items():
        x, y = extraction_scale.face_corner(video["faces"][0], index, video["frames"])
        difference = np.abs(image[y : y + 64, x : x + 64].astype(int) - patch).mean()
        assert difference < 20, (index, difference)  # the face is where the manifest puts it in this frame
        elsewhere = 0 if x > 48 else 96  # the other end of the frame: background
        assert np.abs(image[y : y + 64, elsewhere : elsewhere + 64].astype(int) - patch).mean() > 30
    assert extraction_scale.synthesise(tmp_path, [video], parameters, workers=1)["reused"]
    (tmp_path / ".tmp-0001.mp4").write_bytes(b"half")  # from a killed synthesis: extraction would read it
    assert not extraction_scale.synthesise(tmp_path, [video], {"test": 2}, workers=1)["reused"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [video["file"], "manifest.json"]


def test_recall_counts_each_true_face_once_and_false_boxes_apart(tmp_path):
    with_face = {"file": "a.mp4", "width": 200, "height": 100, "frames": 10, "faces": []}
    with_face["faces"] = [{"side": 60, "start": [10.0, 10.0], "end": [10.0, 10.0], "mirrored": False}]
    without = {"file": "b.mp4", "width": 200, "height": 100, "frames": 10, "faces": []}
    truth = extraction_scale.true_boxes(with_face, 0)[0]
    rows = [
        ("a", 0, truth),  # found
        ("a", 0, tuple(v + 1 for v in truth)),  # the same face again: not a second find, not false either
        ("a", 9, (150.0, 10.0, 190.0, 50.0)),  # a false box; the face of frame 9 is missed
        ("b", 0, (5.0, 5.0, 40.0, 40.0)),  # a box in a video without a face
    ]
    for video_id in ("a", "b"):
        (tmp_path / video_id).mkdir()
        (tmp_path / video_id / "video.json").write_text(json.dumps({"frames": [0, 9]}))
    lines = ["path,video_id,frame,face_index,box_x0,box_y0,box_x1,box_y1,score"]
    lines += [f"p,{v},{f},0,{','.join(map(str, box))},0.9" for v, f, box in rows]
    (tmp_path / "faces.csv").write_text("\n".join(lines) + "\n")
    recall = extraction_scale.video_recall(tmp_path, [with_face, without])
    assert recall == {
        "recall_iou_0.5": 0.5,
        "true_faces": 2,
        "found": 1,
        "false_boxes_in_videos_with_faces": 1,
        "boxes_in_videos_without_a_face": 1,
    }


def test_the_benchmark_end_to_end_on_three_tiny_videos(tmp_path, capsys):
    out = tmp_path / "result.json"
    arguments = ["--videos", "3", "--sizes", "160x120", "--seconds", "1", "2", "--workers", "1", "--resume-check"]
    arguments += ["--resume-workers", "1", "--detect-sizes", "none", "96", "--subset", "3", "--encode-workers", "1"]
    arguments += ["--detector", "opencv-haar", "--frames", "4", "--workdir", str(tmp_path / "work"), "--out", str(out)]
    arguments += ["--no-image-recall"]  # the detector benchmark's images: in the next test, with a fast detector
    arguments += ["--size-subsets", "160x120", "--compare", "yunet"]  # one frame size alone; another detector
    assert extraction_scale.main(arguments) == 0
    result = json.loads(out.read_text())
    assert {"machine", "git_commit", "command", "load_average_start", "videos", "workers", "resume_check"} <= set(
        result
    )
    assert result["videos"]["videos"] == 3 and result["videos"]["codec"] in ("libx264", "mpeg4")
    run_record = result["workers"]["workers=1"]
    assert run_record["exit_code"] == 0 and run_record["peak_rss_mb"] > 0 and "--summary-json" in run_record["command"]
    summary = run_record["summary"]
    assert summary["extracted"] == 3 and all(summary[f"seconds {s}"] >= 0 for s in extraction_scale.STAGES)
    assert summary["peak MB per worker"] > 0 and 0.0 <= run_record["recall"]["recall_iou_0.5"] <= 1.0
    assert result["size_subsets"]["160x120"]["videos"] == 2
    assert result["size_subsets"]["160x120"]["workers"]["workers=1"]["summary"]["extracted"] == 2
    compared = result["compare"]["yunet"]["workers=1"]
    assert compared["exit_code"] == 0 and "yunet" in compared["command"] and "recall" in compared
    resume = result["resume_check"]
    assert isinstance(resume["ok"], bool) and resume["rerun"]["exit_code"] == 0
    if resume["killed_part_way"]:  # a kill after the last video is possible on a busy machine: nothing to resume
        assert resume["ok"] and resume["rerun_skipped"] + resume["rerun_extracted"] == 3
    assert list(result["detect_sizes"]) == ["full", "96"]
    for size, record in result["detect_sizes"].items():
        assert record["exit_code"] == 0 and 0.0 <= record["recall"]["recall_iou_0.5"] <= 1.0
    assert "--detect-size 0" in result["detect_sizes"]["full"]["command"]
    assert not (tmp_path / "work" / "runs").exists() and (tmp_path / "work" / "videos" / "manifest.json").is_file()
    assert extraction_scale.main(["--table", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| opencv-haar | all 3 | 1 |" in table and "| opencv-haar | 2 at 160x120 | 1 |" in table
    assert "| yunet | all 3 | 1 |" in table and "| 96 |" in table and "Killed after" in table


def test_detect_sizes_on_the_detector_benchmarks_images(slow_square_detector, monkeypatch):
    monkeypatch.setattr(slow_square_detector, "delay", 0.0)
    recall = extraction_scale.scenes_recall("slow-square", ["full", "128"])
    assert list(recall) == ["full", "128"]
    for figures in recall.values():
        assert figures["faces"] == 26 and 0.0 <= figures["recall_iou_0.5"] <= 1.0
        assert figures["false_on_face_images"] >= 0 and figures["false_on_face_free_images"] >= 0
