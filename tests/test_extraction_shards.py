"""Face extraction at dataset scale: every video's status in videos.csv (ok, no-face, decode-error, too-short,
unreadable) and --redo, shares of the videos by --shard I/N, and merge: three shards merged equal one unsharded run
row for row, a killed shard resumes, and shards of other settings (missing, repeated, unfinished) are refused."""

import csv
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data as skimage_data
from PIL import Image

from common.cli import run
from data import faces as ef
from data.faces.shards import parse_shard, shard_of

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--detector", "yunet", "--frames", "4", "--size", "32", "--no-progress"]


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"g": "10"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def face_frames(count: int, face: bool = True) -> list[np.ndarray]:
    """``count`` 256x192 frames, the astronaut's head drifting right (or a face-free photo)."""
    picture = skimage_data.astronaut()[0:300, 90:390] if face else skimage_data.coffee()
    image = np.asarray(Image.fromarray(picture).resize((192, 192) if face else (256, 192)))
    canvas = np.full((192, 256, 3), 90, dtype=np.uint8)
    frames = []
    for index in range(count):
        frame = canvas.copy()
        if face:
            x = min(64, 2 * index)
            frame[:, x : x + 192] = image
        else:
            frame[:] = image
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Twelve videos with a face, one without, one corrupt, one too short for --frames 4, a frame folder with an
    image that does not decode, and a list file."""
    root = tmp_path_factory.mktemp("dataset")
    for index in range(12):
        write_video(root / f"group{index % 3}" / f"v{index:02d}.mp4", face_frames(12))
    write_video(root / "odd" / "empty_room.mp4", face_frames(12, face=False))
    (root / "odd" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    write_video(root / "odd" / "short.mp4", face_frames(3))
    frames = root / "odd" / "frames"
    for index, frame in enumerate(face_frames(5)):
        (frames).mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(frames / f"{index:03d}.png")
    (frames / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut short")  # a sampled frame
    (root / "lists").mkdir()
    (root / "lists" / "test.txt").write_text("group0/v00.mp4\n")
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def unsharded(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unsharded") / "faces"
    assert run(ef.main, [str(dataset), "--out", str(out), *FAST]) == 0
    return out


INDEX_FILES = ("faces.csv", "videos.csv", "extraction_log.txt")


def test_every_video_has_a_status_and_a_reason(unsharded):
    videos = {row["video_id"]: row for row in read_csv(unsharded / "videos.csv")}
    assert len(videos) == 16 and list(videos) == sorted(videos)
    statuses = {video_id: row["status"] for video_id, row in videos.items() if not video_id.startswith("group")}
    assert statuses == {
        "odd/corrupt": "unreadable",
        "odd/empty_room": "no-face",
        "odd/frames": "decode-error",
        "odd/short": "too-short",
    }
    assert all(row["status"] == "ok" and row["frames"] == "4" for v, row in videos.items() if v.startswith("group"))
    assert videos["odd/short"]["reason"] == "has 3 frame(s); the sampling asks for 4 (--frames)"
    assert "cut short" in videos["odd/frames"]["reason"] or "decode" in videos["odd/frames"]["reason"]
    assert videos["odd/empty_room"]["reason"] == "no face in the 4 sampled frame(s)"
    assert videos["odd/short"]["source"] == "odd/short.mp4" and videos["odd/frames"]["source"] == "odd/frames"
    faces = read_csv(unsharded / "faces.csv")  # the crops of the ok videos only: one face in every sampled frame
    assert {row["video_id"] for row in faces} == {v for v in videos if v.startswith("group")}
    assert len(faces) == 12 * 4 and all(int(videos[r["video_id"]]["faces"]) == 4 for r in faces)
    assert not list((unsharded / "odd" / "short").glob("*.png"))  # a video that is not read whole leaves no crop
    log = (unsharded / "extraction_log.txt").read_text()
    assert "too-short\todd/short\thas 3 frame(s)" in log and "unreadable\todd/corrupt\t" in log


def test_shards_are_disjoint_stable_and_cover_every_video():
    paths = [f"group{i % 7}/video{i:04d}.mp4" for i in range(300)]
    shares = {path: shard_of(path, 3) for path in paths}
    assert set(shares.values()) == {1, 2, 3} and min(list(shares.values()).count(s) for s in (1, 2, 3)) > 70
    assert {path: shard_of(path, 3) for path in paths + ["new/clip.mp4"]}.items() >= shares.items()  # stable
    assert parse_shard("2/3").holds(paths[0]) == (shares[paths[0]] == 2)
    assert parse_shard("0/3") == parse_shard("3/3")  # 0-based array indices 0..N-1 cover the shards once too
    for bad in ("4/3", "1/0", "a/b", "2"):
        with pytest.raises(ef.ExtractionError, match="--shard"):
            parse_shard(bad)


def _shard(dataset: Path, out: Path, shard: str, *extra: str) -> None:
    assert run(ef.main, [str(dataset), "--out", str(out), *FAST, "--shard", shard, *extra]) == 0


def test_three_shards_in_one_folder_merged_equal_one_unsharded_run(dataset, unsharded, tmp_path, capsys):
    out = tmp_path / "faces"
    for shard in ("1/3", "2/3", "3/3"):
        _shard(dataset, out, shard)
    assert "when every shard is done: python -m data.extract_faces merge" in capsys.readouterr().out
    assert not (out / "faces.csv").exists()  # a shard's index is its own: OUT/shards/I-of-N/
    shard_videos = [read_csv(out / "shards" / f"{i}-of-3" / "videos.csv") for i in (1, 2, 3)]
    assert sum(map(len, shard_videos)) == 16 and all(shard_videos)
    shard_folders = [str(out / "shards" / f"{i}-of-3") for i in (1, 2, 3)]  # a shard's own folder names its --out
    assert run(ef.main, ["merge", *shard_folders]) == 0
    assert "videos: 16" in capsys.readouterr().out
    for name in INDEX_FILES:
        assert (out / name).read_text() == (unsharded / name).read_text(), name
    assert (out / "lists" / "test.txt").is_file()


def test_shards_in_separate_folders_merge_into_one(dataset, unsharded, tmp_path):
    folders = [tmp_path / f"machine{i}" for i in (1, 2, 3)]
    for index, folder in enumerate(folders, start=1):
        _shard(dataset, folder, f"{index}/3")
    merged = tmp_path / "merged"
    assert run(ef.main, ["merge", *map(str, folders), "--out", str(merged)]) == 0
    for name in INDEX_FILES:
        assert (merged / name).read_text() == (unsharded / name).read_text(), name
    rows = read_csv(merged / "faces.csv")
    assert all((merged / row["path"]).is_file() for row in rows)  # the crops were moved in
    assert (merged / "extraction.json").is_file() and (merged / "shards" / "2-of-3" / "shard.json").is_file()


def test_merge_refuses_other_settings_missing_repeated_and_unfinished_shards(dataset, tmp_path, capsys):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _shard(dataset, first, "1/2")
    _shard(dataset, other, "2/2", "--margin", "1.5")
    assert run(ef.main, ["merge", str(first), str(other), "--out", str(tmp_path / "m")]) == 1
    said = capsys.readouterr().err
    assert "shard 2/2 in" in said and "other settings" in said and "margin 1.5 there, 1.3 here" in said
    assert run(ef.main, ["merge", str(first)]) == 1
    assert "shard(s) 2/2 missing" in capsys.readouterr().err
    shutil.copytree(first, tmp_path / "copy")
    assert run(ef.main, ["merge", str(first), str(tmp_path / "copy")]) == 1
    assert "pass each shard once" in capsys.readouterr().err
    (second / "shards" / "2-of-2").mkdir(parents=True)  # a shard killed before it wrote its record
    assert run(ef.main, ["merge", str(first), str(second)]) == 1
    assert "has not finished" in capsys.readouterr().err
    assert run(ef.main, [str(dataset), "--out", str(first), *FAST, "--shard", "2/2", "--margin", "1.5"]) == 1
    assert "other settings" in capsys.readouterr().err  # one folder holds one setting, whichever the shard


def test_a_killed_shard_resumes_and_the_merge_equals_one_run(dataset, unsharded, tmp_path):
    out = tmp_path / "faces"
    _shard(dataset, out, "1/2")
    command = [sys.executable, "-m", "data.extract_faces", str(dataset), "--out", str(out), *FAST, "--shard", "2/2"]
    mine = [row["video_id"] for row in read_csv(unsharded / "videos.csv") if shard_of(row["source"], 2) == 2]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any((out / video_id / "video.json").is_file() for video_id in mine):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = [video_id for video_id in mine if (out / video_id / "video.json").is_file()]
    assert 1 <= len(done) < len(mine), "the shard should have been killed part-way"
    assert run(ef.main, ["merge", str(out)]) == 1  # its record is missing: not merged half-done
    settings = ef.settings_from_args(ef.get_args_parser().parse_args([str(dataset), "--out", str(out), *FAST]))
    summary = ef.extract(dataset, out, settings, shard=parse_shard("2/2"), progress=False)
    assert summary["skipped (already complete)"] == len(done) and summary["videos"] == len(mine)
    assert not list(out.rglob(f"{ef.TEMP_PREFIX}*"))
    assert run(ef.main, ["merge", str(out)]) == 0
    for name in INDEX_FILES:
        assert (out / name).read_text() == (unsharded / name).read_text(), name


def test_redo_extracts_again_only_the_videos_of_a_status(dataset, unsharded, tmp_path, capsys):
    out = tmp_path / "faces"
    assert run(ef.main, [str(dataset), "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("video.json")}
    assert run(ef.main, [str(dataset), "--out", str(out), *FAST, "--redo", "too-short", "no-face"]) == 0
    printed = capsys.readouterr().out
    assert "skipped (already complete): 14" in printed
    changed = sorted(p.parent.relative_to(out).as_posix() for p in before if p.stat().st_mtime_ns != before[p])
    assert changed == ["odd/empty_room", "odd/short"]
    assert (out / "videos.csv").read_text() == (unsharded / "videos.csv").read_text()
    with pytest.raises(SystemExit):  # argparse names the statuses
        ef.main([str(dataset), "--out", str(out), *FAST, "--redo", "broken"])
    assert "invalid choice: 'broken' (choose from 'ok', 'no-face'," in capsys.readouterr().err


def test_the_slurm_array_script_runs_one_shard_per_task(tmp_path):
    """tools/slurm/extract.sbatch: task I of an array of N runs the extraction with --shard I/N and a worker per CPU,
    passing the other options on; outside an array it says how to submit it."""
    script = ROOT / "tools" / "slurm" / "extract.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    stub = tmp_path / "python"
    stub.write_text('#!/bin/bash\nprintf "%q " "$@" > "$ARGS"\n')
    stub.chmod(0o755)
    env = {
        **os.environ,
        "PYTHON": str(stub),
        "ARGS": str(tmp_path / "args"),
        "SLURM_SUBMIT_DIR": str(ROOT),
        "SLURM_ARRAY_TASK_ID": "2",
        "SLURM_ARRAY_TASK_COUNT": "3",
        "SLURM_CPUS_PER_TASK": "4",
    }
    command = ["bash", str(script), "/data/dfdc", "/data/dfdc-faces", "--detector", "mtcnn"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    argv = shlex.split((tmp_path / "args").read_text())
    assert argv[:2] == ["-m", "data.extract_faces"]
    args = ef.get_args_parser().parse_args(argv[2:])
    assert (args.source, args.out, args.shard, args.workers, args.detector) == (
        "/data/dfdc",
        "/data/dfdc-faces",
        "2/3",
        4,
        "mtcnn",
    )
    assert parse_shard(args.shard) == ef.Shard(2, 3)
    outside = {k: v for k, v in env.items() if not k.startswith("SLURM_ARRAY")}
    done = subprocess.run(command, env=outside, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "run this script as a job array: sbatch --array=1-N" in done.stderr


@pytest.mark.slow
def test_the_default_detector_finds_the_benchmarks_faces_as_mtcnn_does(tmp_path):
    """Recall before speed: on videos of the extraction benchmark (their manifest holds every frame's true boxes),
    the default detector's crops cover the true faces within one point of mtcnn's recall (IoU >= 0.5), with no more
    false boxes, and it spends less time detecting."""
    from benchmarks import extraction_scale

    plan = extraction_scale.video_plan(8, seed=5, sizes=[(640, 360)], seconds=(1.0, 2.0))
    source = tmp_path / "videos"
    extraction_scale.synthesise(source, plan, {"test": "recall"}, workers=1)
    assert sum(len(video["faces"]) for video in plan) >= 6  # faces to find, one video with two, one without
    found = {}
    for detector in (ef.DEFAULT_DETECTOR, "mtcnn"):
        out = tmp_path / detector
        summary = ef.extract(source, out, ef.ExtractionSettings(detector=detector, frames=6, size=32), progress=False)
        found[detector] = (extraction_scale.video_recall(out, plan), summary["seconds detecting"])
    (ours, ours_seconds), (mtcnn, mtcnn_seconds) = found[ef.DEFAULT_DETECTOR], found["mtcnn"]
    assert ours["true_faces"] == mtcnn["true_faces"] > 40
    assert ours["recall_iou_0.5"] >= mtcnn["recall_iou_0.5"] - 0.01 and ours["recall_iou_0.5"] >= 0.99
    ours_false = ours["false_boxes_in_videos_with_faces"] + ours["boxes_in_videos_without_a_face"]
    mtcnn_false = mtcnn["false_boxes_in_videos_with_faces"] + mtcnn["boxes_in_videos_without_a_face"]
    assert ours_false <= mtcnn_false
    assert ef.DEFAULT_DETECTOR == "yunet" and ours_seconds < mtcnn_seconds
