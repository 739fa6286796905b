"""Face extraction at scale: wall time, videos/s, frames/s, peak memory and where the time goes of the user's
``python -m data.extract_faces`` over N synthetic videos, a resume check after a kill, and detection on downscaled
frames (``--detect-size``) against its recall.

    python benchmarks/extraction_scale.py --videos 200 --workdir /tmp/xscale --keep \\
        --out benchmarks/cpu-2core-2026-12-02/extraction-scale.json        # workers 1 and 2, resume, detect sizes
    python benchmarks/extraction_scale.py --table benchmarks/cpu-2core-2026-12-02/extraction-scale.json

The videos (made once per ``--seed`` and kept in WORKDIR/videos with their manifest.json, reused when it matches):
durations uniform in 5..60 s, 25 or 30 frames/s, 854x480, 1280x720 or 1920x1080 (about 15% of them vertical),
H.264 (libx264, preset ultrafast, a keyframe every 2 s; MPEG-4 part 2 when PyAV has no libx264). About 15% show two
faces, 10% none; a face is scikit-image's astronaut (as benchmarks/extraction_speed.py), its face box 10 to 23% of
the frame's shorter side (a little less with two faces, which share the longer side), drifting slowly across one of
scikit-image's face-free photos. The manifest holds each face's
path, so the true face boxes of every frame are known.

Each run is the user's command in a subprocess (imports and the detector's start-up count), with the resident memory
of its whole process tree sampled every 50 ms (benchmarks/scale.py's sampler) and the tool's own summary
(``--summary-json``: videos/s, frames/s, seconds decoding / detecting / cropping / writing summed over the videos).
``--resume-check``: the command with 2 workers is killed (SIGKILL to its process group) once half the videos are
done and then run again; the rerun must skip what was done, extract the rest and list every video's faces once.
``--detect-sizes``: 1 worker over the first ``--subset`` videos per size, with the recall of the true faces in the
sampled frames (a crop box at IoU >= 0.5) and the boxes found in videos without a face; the same sizes on the detector
benchmark's images (benchmarks/face_detectors.py: 26 faces in 20 images of at most 1024 pixels, 17 face-free ones).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.face_detectors import score_image  # noqa: E402
from benchmarks.measure import MB, git_commit, machine, run_command  # noqa: E402
from common.atomic import write_text_atomic  # noqa: E402
from data.faces.detectors import Detection  # noqa: E402
from data.faces.settings import (  # noqa: E402
    DEFAULT_DETECTOR,
    INDEX_NAME,
    TEMP_PREFIX,
    VIDEO_DONE_NAME,
    library_versions,
)

SIZES = ((854, 480), (1280, 720), (1920, 1080))  # landscape (width, height); a vertical video swaps them
VERTICAL_FRACTION = 0.15
TWO_FACES_FRACTION = 0.15
NO_FACE_FRACTION = 0.10
FRAME_RATES = (25, 30)
SECONDS = (5.0, 60.0)
PATCH_OF_SIDE = (0.25, 0.6)  # side of the pasted astronaut patch / shorter side of the frame (its face: 0.39 of it)
DRIFT = 0.25  # a face moves at most this fraction of its free room over the whole video
ASTRONAUT_PATCH = (100, 0, 340, 240)  # the head and shoulders of skimage's astronaut (as extraction_speed.py)
PATCH_FACE_BOX = (72 / 240, 80 / 240, 166 / 240, 172 / 240)  # benchmarks/face_detectors.py's hand box, in the patch
BACKGROUNDS = ("coffee", "rocket", "immunohistochemistry", "brick")  # face-free photos (no detection on any)
MANIFEST = "manifest.json"
DETECT_SIZES = ("full", "320", "480", "640", "960")


# ------------------------------------------------------------------------------------------------ the videos
def video_plan(count: int, seed: int, sizes=SIZES, seconds=SECONDS) -> list[dict]:
    """What each synthetic video shows (drawn from ``seed``): size, rate, length, background and its faces' paths."""
    rng = np.random.default_rng(seed)
    plan = []
    for number in range(count):
        width, height = sizes[int(rng.integers(len(sizes)))]
        vertical = bool(rng.random() < VERTICAL_FRACTION)
        if vertical:
            width, height = height, width
        fps = int(rng.choice(FRAME_RATES))
        length = float(rng.uniform(*seconds))
        kind = rng.random()
        faces = 0 if kind < NO_FACE_FRACTION else 2 if kind < NO_FACE_FRACTION + TWO_FACES_FRACTION else 1
        video = {
            "file": f"{number:04d}.mp4",
            "width": width,
            "height": height,
            "vertical": vertical,
            "fps": fps,
            "frames": max(2, round(length * fps)),
            "background": BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
            "faces": [],
        }
        video["seconds"] = round(video["frames"] / fps, 3)
        for face in range(faces):
            video["faces"].append(face_path(rng, width, height, face, faces))
        plan.append(video)
    return plan


def face_path(rng, width: int, height: int, face: int, faces: int) -> dict:
    """One face's patch side and its start and end corners, inside its share of the frame (halves along the longer
    side when there are two)."""
    side = int(round(rng.uniform(*PATCH_OF_SIDE) * min(height, width if faces == 1 else max(width, height) / 2)))
    side = max(8, min(side, height, width))
    split_x = width >= height
    region = [0, 0, width, height]
    if faces == 2:
        axis, extent = (0, width) if split_x else (1, height)
        region[axis], region[axis + 2] = face * extent // 2, (face + 1) * extent // 2
        side = min(side, region[axis + 2] - region[axis])
    room_x, room_y = region[2] - region[0] - side, region[3] - region[1] - side
    start = [region[0] + rng.uniform(0, room_x), region[1] + rng.uniform(0, room_y)]
    end = [
        float(np.clip(start[0] + rng.uniform(-DRIFT, DRIFT) * room_x, region[0], region[0] + room_x)),
        float(np.clip(start[1] + rng.uniform(-DRIFT, DRIFT) * room_y, region[1], region[1] + room_y)),
    ]
    return {
        "side": side,
        "start": [round(v, 1) for v in start],
        "end": [round(v, 1) for v in end],
        "mirrored": face == 1,
    }


def face_corner(face: dict, frame: int, frames: int) -> tuple[int, int]:
    """Top-left pixel of the face's patch in ``frame`` (a straight, slow path from start to end)."""
    progress = frame / max(1, frames - 1)
    return tuple(int(round(a + (b - a) * progress)) for a, b in zip(face["start"], face["end"]))


def true_boxes(video: dict, frame: int) -> list[tuple[float, float, float, float]]:
    """The face boxes of ``frame`` in the frame's pixels (the hand-annotated astronaut box, scaled and moved)."""
    boxes = []
    for face in video["faces"]:
        x, y = face_corner(face, frame, video["frames"])
        x0, y0, x1, y1 = PATCH_FACE_BOX
        if face["mirrored"]:
            x0, x1 = 1 - x1, 1 - x0
        side = face["side"]
        boxes.append((x + x0 * side, y + y0 * side, x + x1 * side, y + y1 * side))
    return boxes


def _codec() -> tuple[str, dict]:
    import av

    if "libx264" in av.codecs_available:
        return "libx264", {"preset": "ultrafast", "crf": "30"}
    return "mpeg4", {}


def write_video(path: Path, video: dict) -> None:
    """Encode one planned video; frames are built with numpy (a copy of the background and a pasted patch each)."""
    import av
    import skimage.data as skimage_data

    width, height, fps = video["width"], video["height"], video["fps"]
    background = Image.fromarray(_rgb(getattr(skimage_data, video["background"])()))
    background = np.asarray(background.resize((width, height), Image.Resampling.BILINEAR))
    astronaut = Image.fromarray(skimage_data.astronaut()).crop(ASTRONAUT_PATCH)
    patches = []
    for face in video["faces"]:
        patch = np.asarray(astronaut.resize((face["side"], face["side"]), Image.Resampling.BICUBIC))
        patches.append(np.ascontiguousarray(patch[:, ::-1]) if face["mirrored"] else patch)
    codec, options = _codec()
    temporary = path.with_name(f"{TEMP_PREFIX}{path.name}")
    with av.open(str(temporary), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {**options, "g": str(2 * fps)}
        for index in range(video["frames"]):
            frame = background.copy()
            for face, patch in zip(video["faces"], patches):
                x, y = face_corner(face, index, video["frames"])
                frame[y : y + face["side"], x : x + face["side"]] = patch
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    os.replace(temporary, path)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]


def _write_one(item: tuple[str, dict]) -> None:
    write_video(Path(item[0]), item[1])


def synthesise(folder: Path, plan: list[dict], parameters: dict, workers: int) -> dict:
    """The planned videos in ``folder`` with their manifest; kept when the manifest there has the same parameters."""
    manifest_file = folder / MANIFEST
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        if manifest.get("parameters") == parameters and all((folder / v["file"]).is_file() for v in plan):
            return {**manifest, "synthesis_s": 0.0, "reused": True}
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    manifest_file.unlink(missing_ok=True)  # written last: a killed synthesis is redone
    for leftover in folder.glob(f"{TEMP_PREFIX}*"):  # a killed synthesis's half-written file: extraction would read it
        leftover.unlink()
    items = [(str(folder / video["file"]), video) for video in plan]
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_one, items):
                pass
    else:
        for item in items:
            _write_one(item)
    manifest = {"parameters": parameters, "codec": _codec()[0], "videos": plan}
    write_text_atomic(manifest_file, json.dumps(manifest) + "\n")
    return {**manifest, "synthesis_s": round(time.perf_counter() - started, 1), "reused": False}


def describe(plan: list[dict], folder: Path) -> dict:
    """Counts of the synthetic set: videos, frames, seconds, sizes, vertical, two faces, no face, bytes."""
    sizes: dict[str, int] = {}
    for video in plan:
        key = f"{video['width']}x{video['height']}"
        sizes[key] = sizes.get(key, 0) + 1
    return {
        "videos": len(plan),
        "frames": sum(v["frames"] for v in plan),
        "seconds": round(sum(v["seconds"] for v in plan), 1),
        "sizes": dict(sorted(sizes.items())),
        "frame_rates": {str(r): sum(v["fps"] == r for v in plan) for r in FRAME_RATES},
        "vertical": sum(v["vertical"] for v in plan),
        "two_faces": sum(len(v["faces"]) == 2 for v in plan),
        "no_face": sum(not v["faces"] for v in plan),
        "mb_on_disk": round(sum((folder / v["file"]).stat().st_size for v in plan) / MB, 1),
    }


# ------------------------------------------------------------------------------------------------ the runs
def extraction_command(
    source: Path, out: Path, workers: int, args, detect_size: str | None = None, detector: str | None = None
) -> list[str]:
    """The user's command; without ``detect_size`` the tool's default detect size, without ``detector`` --detector."""
    command = [sys.executable, "-m", "data.extract_faces", str(source), "--out", str(out), "--workers", str(workers)]
    command += ["--detector", detector or args.detector, "--no-progress"]
    command += ["--summary-json", str(out.with_suffix(".summary.json"))]
    command += ["--frames", str(args.frames)] if args.frames else []
    command += ["--full-search-every", str(args.full_search_every)] if args.full_search_every else []
    command += ["--device", args.device] if args.device != "cpu" else []
    command += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    return command + (["--detect-size", "0" if detect_size == "full" else detect_size] if detect_size else [])


def measure(command: list[str], out: Path, timeout: float, kill_when=None) -> dict:
    """One run of the tool: the sampler's record and the tool's own summary (none when it was killed)."""
    summary_file = out.with_suffix(".summary.json")
    summary_file.unlink(missing_ok=True)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    measured = run_command(command, timeout=timeout, environment=environment, kill_when=kill_when)
    record = dict(measured.record)
    record["summary"] = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    record["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return record


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.with_suffix(".summary.json").unlink(missing_ok=True)
    return folder


def done_videos(out: Path) -> int:
    """Videos complete under ``out``: their VIDEO_DONE_NAME, not in a temporary folder (the benchmark's videos lie
    side by side, so one folder level is read: cheap enough to poll beside the run)."""
    return sum(not path.parent.name.startswith(TEMP_PREFIX) for path in out.glob(f"*/{VIDEO_DONE_NAME}"))


def faces_per_video(out: Path) -> tuple[dict[str, int], int]:
    """Rows of ``faces.csv`` per video, and the rows that repeat a (video, frame, face) already listed."""
    counts: dict[str, int] = {}
    seen, repeated = set(), 0
    with open(out / INDEX_NAME, newline="") as handle:
        for row in csv.DictReader(handle):
            counts[row["video_id"]] = counts.get(row["video_id"], 0) + 1
            key = (row["video_id"], row["frame"], row["face_index"])
            repeated += key in seen
            seen.add(key)
    return counts, repeated


def resume_check(source: Path, runs: Path, videos: int, reference: Path, args) -> dict:
    """Kill the command with ``--resume-workers`` workers once half the videos are done, run it again, and compare
    its faces.csv with an uninterrupted run's (``reference``)."""
    out = fresh(runs / "resume")
    command = extraction_command(source, out, args.resume_workers, args)
    half = max(1, videos // 2)
    killed = measure(command, out, args.timeout, kill_when=lambda: out.is_dir() and done_videos(out) >= half)
    done_before = done_videos(out) if out.is_dir() else 0
    rerun = measure(command, out, args.timeout)
    summary = rerun["summary"] or {}
    result = {"killed_run": killed, "rerun": rerun, "videos": videos, "videos_done_before_kill": done_before}
    result["rerun_skipped"] = summary.get("skipped (already complete)")
    result["rerun_extracted"] = summary.get("extracted")
    if rerun["exit_code"] == 0 and (reference / INDEX_NAME).is_file():
        counts, repeated = faces_per_video(out)
        expected, _ = faces_per_video(reference)
        result["faces_rows"], result["reference_faces_rows"] = sum(counts.values()), sum(expected.values())
        result["repeated_rows"] = repeated
        result["videos_whose_faces_differ"] = sorted(
            v for v in set(counts) | set(expected) if counts.get(v) != expected.get(v)
        )
        result["temporary_folders_left"] = sum(1 for _ in out.rglob(f"{TEMP_PREFIX}*"))
    result["killed_part_way"] = "killed_at_s" in killed and 0 < done_before < videos
    result["ok"] = bool(
        result["killed_part_way"]
        and rerun["exit_code"] == 0
        and result["rerun_skipped"] == done_before
        and result["rerun_extracted"] == videos - done_before - summary.get("not readable whole", 0)
        and result.get("repeated_rows") == 0
        and result.get("videos_whose_faces_differ") == []
        and result.get("temporary_folders_left") == 0
    )
    return result


# ------------------------------------------------------------------------------------------------ recall
def video_recall(out: Path, plan: list[dict]) -> dict:
    """True faces of the sampled (decoded) frames found by a crop box, and the boxes that overlap no true face (in
    videos with faces, and in videos without), scored as the detector benchmark scores an image (IoU >= 0.5, each
    face found once; false: IoU < 0.3 with every true face)."""
    found_boxes: dict[tuple[str, int], list[Detection]] = {}
    with open(out / INDEX_NAME, newline="") as handle:
        for row in csv.DictReader(handle):
            box = tuple(float(row[f"box_{k}"]) for k in ("x0", "y0", "x1", "y1"))
            found_boxes.setdefault((row["video_id"], int(row["frame"])), []).append(Detection(box, float(row["score"])))
    faces = found = false_with_faces = false_without = 0
    for video in plan:
        video_id = Path(video["file"]).stem
        done = out / video_id / VIDEO_DONE_NAME
        for frame in json.loads(done.read_text())["frames"] if done.is_file() else []:
            truths = true_boxes(video, frame)
            hits, false = score_image(found_boxes.get((video_id, frame), []), truths)
            faces, found = faces + len(truths), found + hits
            if truths:
                false_with_faces += false
            else:
                false_without += false
    return {
        "recall_iou_0.5": round(found / faces, 4) if faces else None,
        "true_faces": faces,
        "found": found,
        "false_boxes_in_videos_with_faces": false_with_faces,
        "boxes_in_videos_without_a_face": false_without,
    }


def scenes_recall(detector_name: str, sizes: list[str]) -> dict:
    """benchmarks/face_detectors.py's images through detect_in_frames at each detect size: recall at IoU >= 0.5 and
    false detections (its scenes are 256 to 1024 pixels: sizes above 1024 change nothing)."""
    import skimage.data as skimage_data

    from benchmarks.face_detectors import FACE_FREE, face_scenes, rgb
    from data.faces.detectors import build_detector
    from data.faces.pipeline import detect_in_frames
    from data.faces.settings import ExtractionSettings

    detector = build_detector(detector_name)
    scenes = face_scenes(skimage_data)
    negatives = [rgb(getattr(skimage_data, name)()) for name in FACE_FREE]
    results = {}
    for size in sizes:
        settings = ExtractionSettings(detector=detector_name, detect_size=None if size == "full" else int(size))
        found = faces = false_on_faces = false_on_negatives = 0
        for _, image, truths in scenes:
            hits, false = score_image(detect_in_frames(detector, [image], settings)[0], truths)
            found, faces, false_on_faces = found + hits, faces + len(truths), false_on_faces + false
        for image in negatives:
            false_on_negatives += len(detect_in_frames(detector, [image], settings)[0])
        results[size] = {
            "recall_iou_0.5": round(found / faces, 3),
            "faces": faces,
            "false_on_face_images": false_on_faces,
            "false_on_face_free_images": false_on_negatives,
        }
    return results


def detect_size_sweep(source: Path, runs: Path, plan: list[dict], args) -> dict:
    """1 worker over the first ``--subset`` videos at each detect size: the run's figures and the recall."""
    subset = subset_folder(source, runs, f"subset-{len(plan)}", plan)
    results = {}
    for size in args.detect_sizes:
        out = fresh(runs / f"detect-{size}")
        record = measure(extraction_command(subset, out, 1, args, size), out, args.timeout)
        if record["exit_code"] == 0:
            record["recall"] = video_recall(out, plan)
        results[size] = record
        _say(f"detect size {size}: {_brief(record)}")
    return results


# ------------------------------------------------------------------------------------------------ the report
def _brief(record: dict) -> str:
    summary = record.get("summary") or {}
    recall = (record.get("recall") or {}).get("recall_iou_0.5")
    text = f"{record['wall_s']:.1f} s, {record['peak_rss_mb']:.0f} MB, exit {record['exit_code']}"
    text += f", {summary.get('videos/s')} videos/s, {summary.get('frames/s')} frames/s" if summary else ""
    return text + (f", recall {recall}" if recall is not None else "")


def _say(text: str) -> None:
    print(f"[extraction-scale] {text}", file=sys.stderr, flush=True)


STAGES = ("decoding", "detecting", "cropping", "writing")


def render_table(result: dict) -> str:
    """Markdown for docs: the runs by workers, the resume check, and the detect sizes with their recall."""
    videos = result["videos"]
    lines = [
        f"{videos['videos']} videos, {videos['frames']:,} frames, {videos['seconds'] / 3600:.1f} h "
        f"({', '.join(f'{k}: {v}' for k, v in videos['sizes'].items())}; {videos['two_faces']} with two faces, "
        f"{videos['no_face']} without), {result['machine'].get('cpu')}, {result['date']}, {result['git_commit']}.",
        "",
        "| detector | videos | workers | wall s | videos/s | frames/s | peak MB | MB per worker | recall | false "
        + "boxes | "
        + " | ".join(f"s {s}" for s in STAGES)
        + " | frames searched whole / around faces |",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(STAGES) + "---|",
    ]
    detector, count = result.get("detector", ""), videos["videos"]
    rows = [(detector, f"all {count}", result.get("workers", {}))]
    for size, subset in result.get("size_subsets", {}).items():
        rows.append((detector, f"{subset['videos']} at {size}", subset["workers"]))
    for other, runs in result.get("compare", {}).items():
        rows.append((other, f"all {count}", runs))
    for name, which, runs in rows:
        for workers, record in runs.items():
            cells = [name, which, workers.split("=")[-1], *_run_cells(record, stages=True, recall=True)]
            summary = record.get("summary") or {}
            searches = (summary.get("frames searched whole"), summary.get("frames searched around known faces"))
            cells.append(f"{searches[0]:,} / {searches[1]:,}" if None not in searches else "")
            lines.append("| " + " | ".join(cells) + " |")
    resume = result.get("resume_check")
    if resume:
        lines += [
            "",
            f"Killed after {resume['videos_done_before_kill']} of {resume['videos']} videos; the rerun skipped "
            f"{resume['rerun_skipped']} and extracted {resume['rerun_extracted']}; every video's faces listed once "
            f"as in the uninterrupted run: {'yes' if resume['ok'] else 'NO'}.",
        ]
    sweep = result.get("detect_sizes")
    if sweep:
        scenes = result.get("scenes_recall", {})
        lines += [
            "",
            "| detect size | wall s | videos/s | frames/s | peak MB | video recall | false boxes | image recall |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for size, record in sweep.items():
            recall = record.get("recall") or {}
            false = (recall.get("false_boxes_in_videos_with_faces"), recall.get("boxes_in_videos_without_a_face"))
            image_recall = (scenes.get(size) or {}).get("recall_iou_0.5", "")
            cells = [
                *_run_cells(record, stages=False),
                str(recall.get("recall_iou_0.5", "")),
                f"{false[0]} / {false[1]}",
            ]
            lines.append(f"| {size} | " + " | ".join(cells) + f" | {image_recall} |")
        lines.append("")
        lines.append("False boxes: in videos with faces (IoU < 0.3 with every true face) / in videos without a face.")
    return "\n".join(lines) + "\n"


def _run_cells(record: dict, stages: bool, recall: bool = False) -> list[str]:
    summary = record.get("summary") or {}
    if record.get("exit_code") != 0 or not summary:
        blank = 3 + (len(STAGES) if stages else 0) + (3 if recall else 0)
        return [f"failed (exit {record.get('exit_code')})"] + [""] * blank
    cells = [
        f"{record['wall_s']:.1f}",
        str(summary["videos/s"]),
        str(summary["frames/s"]),
        f"{record['peak_rss_mb']:.0f}",
    ]
    if recall:
        found = record.get("recall") or {}
        cells += [
            f"{summary.get('peak MB per worker', 0):.0f}",
            str(found.get("recall_iou_0.5", "")),
            f"{found.get('false_boxes_in_videos_with_faces')} / {found.get('boxes_in_videos_without_a_face')}",
        ]
    if stages:
        total = sum(summary[f"seconds {s}"] for s in STAGES) or 1.0
        cells += [f"{summary[f'seconds {s}']:.1f} ({100 * summary[f'seconds {s}'] / total:.0f}%)" for s in STAGES]
    return cells


# ------------------------------------------------------------------------------------------------ the command
def _frame_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 1280x720)") from None
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text}: width and height must be even and at least 16 pixels")
    return width, height


def _detect_size(text: str) -> str:
    if text.lower() in ("full", "none", "0"):
        return "full"
    if not text.isdigit() or int(text) < 64:
        raise argparse.ArgumentTypeError(f"{text!r}: a detect size is full (or none) or at least 64 pixels")
    return text


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Face extraction over many synthetic videos: speed, memory, time split, resume, detect sizes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--videos", type=int, default=200, help="synthetic videos (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="videos in WORKDIR/videos (kept and reused), runs in WORKDIR/runs")
    parser.add_argument("--keep", action="store_true", help="keep the runs' output folders (and a temporary workdir)")
    parser.add_argument("--out", help="JSON to write (atomically); default: print it")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="one run per count (default 1 2)")
    parser.add_argument("--resume-check", action="store_true", help="kill a run half-way, rerun it, compare")
    parser.add_argument("--resume-workers", type=int, default=2, help="workers of the resume check (default 2)")
    parser.add_argument(
        "--detect-sizes",
        type=_detect_size,
        nargs="*",
        default=list(DETECT_SIZES),
        help=f"detect sizes to compare on the subset, full = the full frame (default {' '.join(DETECT_SIZES)})",
    )
    parser.add_argument("--subset", type=int, default=20, help="videos of the detect-size comparison (default 20)")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"face detector (default {DEFAULT_DETECTOR})")
    parser.add_argument(
        "--compare",
        nargs="*",
        default=[],
        metavar="DETECTOR",
        help="also run these detectors over the same videos with the same --workers (e.g. mtcnn)",
    )
    parser.add_argument(
        "--size-subsets",
        type=_frame_size,
        nargs="*",
        default=[],
        metavar="WxH",
        help="also run --workers over the videos of this frame size alone (e.g. 1920x1080)",
    )
    parser.add_argument("--device", default="cpu", help="the tool's --device (cuda: mtcnn on the GPU)")
    parser.add_argument("--batch-size", type=int, help="the tool's --batch-size (default: its own)")
    parser.add_argument("--frames", type=int, help="sampled frames per video (default: the tool's, 32)")
    parser.add_argument(
        "--full-search-every",
        type=int,
        metavar="K",
        help="the tool's --full-search-every (default: its own; 1: every sampled frame searched whole)",
    )
    parser.add_argument(
        "--no-image-recall", action="store_true", help="skip the detect sizes on the detector benchmark's images"
    )
    parser.add_argument(
        "--sizes",
        type=_frame_size,
        nargs="+",
        default=list(SIZES),
        help="landscape frame sizes WxH (default "
        + " ".join(f"{w}x{h}" for w, h in SIZES)
        + "); vertical videos swap them",
    )
    parser.add_argument("--seconds", type=float, nargs=2, default=list(SECONDS), metavar=("MIN", "MAX"))
    parser.add_argument("--encode-workers", type=int, default=os.cpu_count() or 1, help="processes making videos")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per command before it is killed")
    parser.add_argument("--table", metavar="JSON", help="print this result as markdown (for docs)")
    return parser


def _synthetic_videos(args, workdir: Path) -> tuple[Path, list[dict], dict]:
    sizes = [tuple(size) for size in args.sizes]
    plan = video_plan(args.videos, args.seed, sizes, tuple(args.seconds))
    parameters = {"videos": args.videos, "seed": args.seed, "sizes": sizes, "seconds": list(args.seconds)}
    parameters = json.loads(json.dumps(parameters))  # tuples as the manifest reads them back
    source = workdir / "videos"
    made = synthesise(source, plan, parameters, max(1, args.encode_workers))
    how = "reused" if made["reused"] else f"made in {made['synthesis_s']} s"
    _say(f"{len(plan)} videos in {source} ({how})")
    return source, plan, {**describe(plan, source), "codec": made["codec"], "synthesis_s": made["synthesis_s"]}


def subset_folder(source: Path, runs: Path, name: str, plan: list[dict]) -> Path:
    """A folder of links to some of the videos (made once)."""
    subset = runs / name
    if not subset.is_dir():
        subset.mkdir(parents=True)
        for video in plan:
            (subset / video["file"]).symlink_to((source / video["file"]).resolve())
    return subset


def worker_runs(source: Path, runs: Path, plan: list[dict], args, label: str, detector: str | None = None) -> dict:
    """The tool over ``source`` with each of --workers, each run's recall of the manifest's faces with it."""
    results = {}
    for workers in args.workers:
        out = fresh(runs / f"{label}-workers-{workers}")
        record = measure(extraction_command(source, out, workers, args, detector=detector), out, args.timeout)
        if record["exit_code"] == 0:
            record["recall"] = video_recall(out, plan)
        results[f"workers={workers}"] = record
        _say(f"{label} workers={workers}: {_brief(record)}")
    return results


def benchmark(args, workdir: Path) -> dict:
    started_load = [round(v, 2) for v in os.getloadavg()]
    commit = git_commit()
    source, plan, videos = _synthetic_videos(args, workdir)
    runs = workdir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    result = {"workers": worker_runs(source, runs, plan, args, "all")}
    for width, height in args.size_subsets:  # the videos of one frame size on their own (landscape ones)
        chosen = [v for v in plan if (v["width"], v["height"]) == (width, height)]
        folder = subset_folder(source, runs, f"size-{width}x{height}", chosen)
        runs_of_size = worker_runs(folder, runs, chosen, args, f"{width}x{height}")
        result.setdefault("size_subsets", {})[f"{width}x{height}"] = {"videos": len(chosen), "workers": runs_of_size}
    for detector in args.compare:  # another detector over the same videos in the same invocation (e.g. mtcnn)
        result.setdefault("compare", {})[detector] = worker_runs(source, runs, plan, args, detector, detector)
    if args.resume_check:
        reference = runs / f"all-workers-{args.resume_workers}"
        if not (reference / INDEX_NAME).is_file():
            finished = [runs / f"all-workers-{w}" for w in args.workers]
            reference = next((folder for folder in finished if (folder / INDEX_NAME).is_file()), None)
        if reference is None:  # faces do not depend on the worker count: any uninterrupted run is the reference
            reference = fresh(runs / "reference")
            result["resume_reference"] = measure(
                extraction_command(source, reference, 1, args), reference, args.timeout
            )
        result["resume_check"] = resume_check(source, runs, len(plan), reference, args)
        _say(f"resume check ok: {result['resume_check']['ok']}")
    if args.detect_sizes:
        result["detect_sizes"] = detect_size_sweep(source, runs, plan[: args.subset], args)
        if not args.no_image_recall:
            result["scenes_recall"] = scenes_recall(args.detector, args.detect_sizes)
    return {
        "benchmark": "extraction_scale",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit,
        "command": "python benchmarks/extraction_scale.py " + " ".join(args.argv),
        "machine": machine(),
        "versions": library_versions(),
        "load_average_start": started_load,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "detector": args.detector,
        "frames_per_video": args.frames,
        "full_search_every": args.full_search_every,
        "videos": videos,
        "subset": min(args.subset, len(plan)) if args.detect_sizes else None,
        **result,
        "notes": (
            "wall_s and peak_rss_mb (resident memory of the whole process tree, workers included) are the command's; "
            "summary is the tool's own (--summary-json): seconds decoding/detecting/cropping/writing are summed over "
            "the videos, inside the workers. recall: true faces of the sampled frames matched by a crop box at IoU >= "
            "0.5; scenes_recall: benchmarks/face_detectors.py's images through the same detect sizes."
        ),
    }


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.table:
        print(render_table(json.loads(Path(args.table).read_text())), end="")
        return 0
    if args.videos < 1 or any(w < 1 for w in args.workers) or args.resume_workers < 1 or args.subset < 1:
        raise SystemExit("--videos, --workers, --resume-workers and --subset must be at least 1.")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cael-extraction-scale-"))
    try:
        result = benchmark(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir / "runs" if args.workdir else workdir, ignore_errors=True)
    text = json.dumps(result, indent=2) + "\n"
    write_text_atomic(args.out, text) if args.out else print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
