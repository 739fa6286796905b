"""The extraction tool's run: find the videos and frame folders under a source (this shard's share of them), extract
each into its own folder (written under a temporary name and renamed when complete, so a killed run resumes), in
parallel workers, then gather the per-video records into the indexes (``data.faces.index``): ``faces.csv``, one row
per crop, ``videos.csv``, one row per source video with its status, and ``extraction_log.txt``."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic import write_text_atomic
from common.memory import keep_freed_memory, release_freed_memory
from data.media import VIDEO_SUFFIXES

from .detectors import FaceDetector, build_detector, check_align
from .index import no_face_reason, ok_reason, read_record, write_index
from .pipeline import StageSeconds, faces_of_frames, prefetched, timed_frames
from .settings import (
    DETECT_BATCH,
    INDEX_COLUMNS,
    INDEX_NAME,
    SETTINGS_NAME,
    STATUSES,
    TEMP_PREFIX,
    VIDEO_DONE_NAME,
    ExtractionError,
    ExtractionSettings,
    library_versions,
)
from .shards import Shard, shard_folder, write_shard_record
from .sources import copy_metadata, find_sources
from .video import VideoReadError, read_frames


@dataclass
class VideoResult:
    video_id: str
    faces: int = 0
    frames: int = 0
    frames_without_face: list[int] | None = None
    missing: list[int] | None = None
    error: str | None = None  # the reason of a video that could not be read (decode-error, too-short, unreadable)
    skipped: bool = False
    seconds: StageSeconds | None = None  # where the video's time went (None when skipped)
    status: str = "ok"
    peak_mb: float = 0.0  # the peak resident memory of the process that extracted it, so far (the OS's ru_maxrss)


def _write_png(path: Path, crop: np.ndarray) -> None:
    """A crop as a lossless PNG: zlib level 1, Huffman coding only (after PNG's row filters, LZ77 matching finds little
    in photographs: measured on 256-pixel face crops, half the time of Pillow's level 1 and 8% smaller files), and
    the Paeth filter on every row instead of trying all five per row (on 200 of the benchmark's crops: 2.1 ms a crop
    instead of 3.0, 90.4 KB either way)."""
    import cv2

    options = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV 4.11 and later
        options += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]
    encoded, data = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), options)
    if not encoded:
        raise ExtractionError(f"OpenCV could not encode the crop {path} as PNG.")
    path.write_bytes(data.tobytes())


def extract_video(
    path: Path,
    video_id: str,
    out: Path,
    detector: FaceDetector,
    settings: ExtractionSettings,
    batch_size: int = DETECT_BATCH,
    source_path: str | None = None,
    redo: tuple[str, ...] = (),
    decode_threads: int = 0,
) -> VideoResult:
    """Extract one video into ``out/video_id`` via a temporary folder renamed at the end (the resume unit). Every
    video gets a record, whatever its status; a complete one is skipped unless its status is in ``redo``."""
    final = out / video_id
    done = read_record(final)
    if done is not None and done["status"] not in redo:
        return VideoResult(video_id, skipped=True, status=done["status"])
    temporary = final.parent / f"{TEMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    rows, frames_seen, without, missing = [], [], [], []
    seconds = StageSeconds()
    record = {"video_id": video_id, "source": str(path), "source_path": source_path or video_id}
    frames = timed_frames(_note_missing(read_frames(path, settings, True, decode_threads), missing), seconds)
    if decode_threads != 1:  # a core to spare: decoded in a thread of their own while the detector works (timed there)
        frames = prefetched(frames)
    try:
        for index, faces in faces_of_frames(frames, detector, settings, batch_size, seconds):
            started = time.perf_counter()
            frames_seen.append(index)
            if not faces:
                without.append(index)
            for face in faces:
                name = f"f{face.frame:06d}_{face.face_index}.png"
                _write_png(temporary / name, face.crop)
                box = (f"{v:.1f}" for v in face.box)
                rows.append([f"{video_id}/{name}", video_id, face.frame, face.face_index, *box, f"{face.score:.4f}"])
            seconds.writing += time.perf_counter() - started
    except VideoReadError as error:
        started = time.perf_counter()
        shutil.rmtree(temporary, ignore_errors=True)  # its crops too: a video that cannot be read whole has none
        temporary.mkdir(parents=True)
        record.update(status=error.status, reason=str(error), frames=[], frames_without_face=[], faces=0)
        _finish_video(temporary, final, [], record)
        seconds.writing += time.perf_counter() - started
        return VideoResult(video_id, error=str(error), seconds=seconds, status=error.status)
    started = time.perf_counter()
    status = "ok" if rows else "no-face"
    reason = ok_reason(len(frames_seen), len(without), len(missing)) if rows else no_face_reason(len(frames_seen))
    record.update(
        status=status,
        reason=reason,
        frames=frames_seen,
        frames_without_face=without,
        frames_not_decoded=missing,
        faces=len(rows),
    )
    _finish_video(temporary, final, rows, record)
    seconds.writing += time.perf_counter() - started
    return VideoResult(
        video_id,
        len(rows),
        len(frames_seen),
        frames_without_face=without,
        missing=missing,
        seconds=seconds,
        status=status,
    )


def _finish_video(temporary: Path, final: Path, rows: list[list], record: dict) -> None:
    """Write the video's index and, last, its completion record, then give its temporary folder its final name."""
    with open(temporary / INDEX_NAME, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS)
        writer.writerows(rows)
    (temporary / VIDEO_DONE_NAME).write_text(json.dumps(record))
    if final.exists():  # an incomplete folder from another tool or an older layout, or a video redone: replaced
        shutil.rmtree(final)
    os.replace(temporary, final)


def _note_missing(frames, missing: list[int]):
    """Pass decoded frames on; collect the indices of sampled frames past the end of the stream."""
    for index, image in frames:
        if image is None:
            missing.append(index)
        else:
            yield index, image


_worker: dict = {}


def _init_worker(
    detector_name: str, device: str, settings: dict, out: str, batch_size: int, workers: int, redo: tuple
) -> None:
    if "torch" in sys.modules or detector_name == "mtcnn":
        import torch

        # The cores shared among the workers: each torch process would otherwise use all of them (4.0 frames/s with
        # 2 workers on 2 cores instead of 8.8 with one).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    keep_freed_memory()  # freed frame buffers serve the next frame (returned between videos: extract_and_release)
    _worker["detector"] = build_detector(detector_name, device)
    _worker["batch_size"] = batch_size
    _worker["settings"] = ExtractionSettings.from_dict(settings)
    _worker["out"] = Path(out)
    _worker["redo"] = redo
    _worker["decode_threads"] = decode_threads(workers)


def _run_one(item: tuple[str, str, str]) -> VideoResult:
    path, video_id, source_path = item
    return extract_and_release(
        Path(path),
        video_id,
        _worker["out"],
        _worker["detector"],
        _worker["settings"],
        _worker["batch_size"],
        source_path,
        _worker["redo"],
        _worker["decode_threads"],
    )


def decode_threads(workers: int) -> int:
    """The video decoder's threads in each of ``workers`` processes: FFmpeg's choice when a worker has cores of its
    own to spare, else one (decoding threads cost CPU time that other workers would use: data.faces.video). With one,
    the worker also decodes in its own thread, between detections, rather than in a thread beside the detector: when
    the workers fill the cores the overlap gains nothing and the thread costs (200 benchmark videos, 2 workers on 2
    cores, two runs each: 2.31 and 2.30 videos/s without it, 2.27 and 2.22 with it)."""
    return 0 if (os.cpu_count() or 1) // max(1, workers) > 1 else 1


RELEASE_ABOVE_MB = 512  # a worker returns its freed memory after a video once its resident size is above this


def extract_and_release(*arguments) -> VideoResult:
    """``extract_video``, then the memory it freed goes back to the system when the process holds more than
    RELEASE_ABOVE_MB: without it a worker's resident size climbs with every video (glibc keeps freed frame buffers:
    mtcnn's workers held 1.9 GB after 40 videos instead of 0.8; common/memory.py). Below the bound the freed buffers
    serve the next video (a yunet worker stays near 330 MB)."""
    result = extract_video(*arguments)
    release_freed_memory(above_mb=RELEASE_ABOVE_MB)
    result.peak_mb = peak_resident_mb()
    return result


def peak_resident_mb() -> float:
    """This process's peak resident memory in MB (Linux and macOS; 0 where the resource module is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)  # bytes on macOS, KiB on Linux


def _other_settings(out: Path, settings_file: Path, previous: ExtractionSettings, settings: ExtractionSettings) -> str:
    """The sentence refusing to mix two settings in one folder: what differs, and how to continue the old run."""
    there, now = previous.to_dict(), settings.to_dict()
    differing = [name for name in there if there[name] != now[name]]
    said = ", ".join(f"{name} {json.dumps(there[name])} there, {json.dumps(now[name])} now" for name in differing)
    hints = []
    if "detect_size" in differing:  # the default may have changed since that folder was made
        size = previous.detect_size
        hints.append(f"--detect-size {size}" if size else "--detect-size 0: the full frame")
    if "full_search_every" in differing:
        hints.append(f"--full-search-every {previous.full_search_every}")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return (
        f"{out} was extracted with other settings ({said}; see {settings_file}): pass the same settings to continue "
        f"it{hint}, or a new --out folder."
    )


def _prepare_out(source: Path, out: Path, settings: ExtractionSettings, video_ids: set[str] | None = None) -> None:
    """Create ``out`` with its settings record (or check it holds the same settings), copy the dataset's list files,
    and remove the half-written folders of a killed run (of ``video_ids`` only, when given: a shard leaves the
    folders that other shards are writing into the same ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    settings_file = out / SETTINGS_NAME
    if settings_file.is_file():
        previous = json.loads(settings_file.read_text()).get("settings")
        if previous is None:
            raise ExtractionError(f"{settings_file} holds no settings: pass a new --out folder.")
        if ExtractionSettings.from_dict(previous) != settings:
            raise ExtractionError(_other_settings(out, settings_file, ExtractionSettings.from_dict(previous), settings))
    else:
        record = {"settings": settings.to_dict(), "versions": library_versions(), "source": str(source.resolve())}
        write_text_atomic(settings_file, json.dumps(record, indent=2))
    copy_metadata(source, out)
    for leftover in sorted(out.rglob(f"{TEMP_PREFIX}*"), reverse=True):
        name = leftover.name[len(TEMP_PREFIX) :].rpartition("-")[0]  # .tmp-NAME-PID
        video_id = (leftover.parent / name).relative_to(out).as_posix()
        if leftover.is_dir() and (video_ids is None or video_id in video_ids):
            shutil.rmtree(leftover)


def _run_videos(
    items, out: Path, detector, settings, *, workers: int, device: str, batch_size: int, progress: bool, redo: tuple
):
    """Each video's result, in one process or in ``workers`` spawned ones, with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), unit="video", disable=not progress, dynamic_ncols=True)
    faces_found = failed = 0
    if workers > 1:
        context = multiprocessing.get_context("spawn")  # fork would copy detector state that is not fork-safe
        arguments = (settings.detector, device, settings.to_dict(), str(out), batch_size, workers, redo)
        with context.Pool(workers, _init_worker, arguments) as pool:
            results = pool.imap_unordered(_run_one, [(str(p), v, s) for p, v, s in items])
            for result in results:
                faces_found, failed = faces_found + result.faces, failed + (result.error is not None)
                bar.set_postfix(faces=faces_found, failed=failed)
                bar.update()
                yield result
    else:
        keep_freed_memory()
        threads = decode_threads(1)
        for path, video_id, source_path in items:
            result = extract_and_release(
                path, video_id, out, detector, settings, batch_size, source_path, redo, threads
            )
            faces_found, failed = faces_found + result.faces, failed + (result.error is not None)
            bar.set_postfix(faces=faces_found, failed=failed)
            bar.update()
            yield result
    bar.close()


def source_items(source: Path, out: Path, shard: Shard | None = None) -> list[tuple[Path, str, str]]:
    """(path, video id, path relative to the source) of every source under ``source``, or of ``shard``'s share."""
    found = find_sources(source, skip=out)
    items = [
        (path, video_id, path.relative_to(source).as_posix() if source.is_dir() else path.name)
        for path, video_id in found
    ]
    return [item for item in items if shard is None or shard.holds(item[2])]


def check_redo(redo) -> tuple[str, ...]:
    unknown = sorted(set(redo or ()) - set(STATUSES))
    if unknown:
        raise ExtractionError(f"--redo {' '.join(unknown)}: a status is one of {', '.join(STATUSES)}.")
    return tuple(redo or ())


def extract(
    source,
    out,
    settings: ExtractionSettings,
    *,
    workers: int = 1,
    device: str = "cpu",
    progress: bool = True,
    batch_size: int = DETECT_BATCH,
    shard: Shard | None = None,
    redo=(),
) -> dict:
    """Run extraction over ``source`` (or ``shard``'s share of it) into ``out``; returns the run summary (also
    printed by the tool). ``redo``: statuses whose complete videos are extracted again.

    ``seconds`` is the wall time of the videos' loop; "seconds decoding", "seconds detecting", "seconds cropping" and
    "seconds writing" are each video's time in that stage summed over the videos (unreadable ones included): time
    inside the workers. With fewer workers than cores a video's frames decode in a thread of their own while its
    earlier frames are detected, cropped and written, so decoding overlaps the three others: with W workers, decoding
    and the three others each add up to at most W times ``seconds`` (with as many workers as cores, all four together
    do). "peak MB per worker" is the largest peak resident memory of a process
    that extracted a video. The status counts are over all the videos of the index (those skipped as complete
    included). "frames searched whole" and "frames searched around known faces" count the detector's searches
    (``data.faces.search``): a frame whose known face was lost around it is counted in both.
    """
    source, out = Path(source), Path(out)
    redo = check_redo(redo)
    items = source_items(source, out, shard)
    if not items and shard is None:
        suffixes = ", ".join(sorted(VIDEO_SUFFIXES))
        raise ExtractionError(f"no video ({suffixes}) or folder of frame images under {source}.")
    detector = build_detector(settings.detector, device)  # fail here, once, if the package is missing
    check_align(detector, settings)
    _prepare_out(source, out, settings, None if shard is None else {video_id for _, video_id, _ in items})
    started = time.perf_counter()
    options = dict(workers=workers, device=device, batch_size=batch_size, progress=progress, redo=redo)
    results = list(_run_videos(items, out, detector, settings, **options))
    seconds = time.perf_counter() - started
    index_folder = out if shard is None else shard_folder(out, shard)
    index_folder.mkdir(parents=True, exist_ok=True)
    written = write_index(out, [video_id for _, video_id, _ in items], index_folder)
    processed = [r for r in results if not r.skipped and not r.error]
    frames = sum(r.frames for r in processed)
    spent = StageSeconds()
    for result in results:
        if result.seconds is not None:
            spent.add(result.seconds)
    summary = {
        "videos": len(items),
        **({"shard": str(shard)} if shard is not None else {}),
        "extracted": len(processed),
        "skipped (already complete)": sum(r.skipped for r in results),
        "not readable whole": sum(r.error is not None for r in results),
        **{f"status {status}": written["statuses"].get(status, 0) for status in STATUSES},
        "frames": frames,
        "frames without a face": sum(len(r.frames_without_face) for r in processed),
        "sampled frames not decoded": sum(len(r.missing) for r in processed),
        "faces": sum(r.faces for r in processed),
        "frames searched whole": spent.whole_searches,
        "frames searched around known faces": spent.window_searches,
        "index rows": written["index rows"],
        "seconds": round(seconds, 2),
        "videos/s": round(len(processed) / seconds, 3) if seconds > 0 else None,
        "frames/s": round(frames / seconds, 2) if seconds > 0 else None,
        "seconds decoding": round(spent.decoding, 3),
        "seconds detecting": round(spent.detecting, 3),
        "seconds cropping": round(spent.cropping, 3),
        "seconds writing": round(spent.writing, 3),
        "peak MB per worker": max((r.peak_mb for r in results), default=0.0),
    }
    if shard is not None:
        write_shard_record(out, shard, settings, source, {"videos": len(items), "statuses": written["statuses"]})
    return summary
