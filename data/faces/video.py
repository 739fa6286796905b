"""Reading sampled frames: evenly spaced (or every k-th) frames of a video, seeking instead of decoding it whole, or
of a folder of frame images."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from data.media import is_image

from .settings import ExtractionSettings


def sample_indices(frame_count: int, settings: ExtractionSettings) -> list[int]:
    """Evenly spaced frame indices over the whole video (``np.linspace``, as DeepfakeBench) or every k-th frame."""
    if frame_count <= 0:
        return []
    if settings.stride is not None:
        return list(range(0, frame_count, settings.stride))
    count = min(settings.frames, frame_count)
    return sorted({int(i) for i in np.linspace(0, frame_count - 1, count).round()})


UNREADABLE, DECODE_ERROR, TOO_SHORT = "unreadable", "decode-error", "too-short"  # a video's statuses (settings.py)


class VideoReadError(Exception):
    """A video (or frame folder) that cannot be read; becomes its status and reason in the extraction's index (and a
    line of its log), not a crash. ``status``: unreadable (cannot be opened as a video), decode-error (opened, but
    its frames do not decode), too-short (fewer frames than the sampling asks for)."""

    def __init__(self, message: str, status: str = UNREADABLE):
        super().__init__(message)
        self.status = status


def _too_short(count: int, settings: ExtractionSettings, what: str) -> VideoReadError:
    return VideoReadError(f"{what} {count} frame(s); the sampling asks for {settings.frames} (--frames)", TOO_SHORT)


def _video_frame_count(container, stream) -> int:
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.average_rate:
        return int(stream.duration * stream.time_base * stream.average_rate)
    if container.duration is not None and stream.average_rate:
        return int(container.duration / 1_000_000 * stream.average_rate)
    return 0


def _keyframes(stream, to_index) -> list[int]:
    """The frame indices of the stream's keyframes from the container's own index (MP4's sample tables, read with the
    header: nothing is decoded), sorted; empty when the container keeps none (then seeks are decided by distance)."""
    try:
        entries = stream.index_entries
        return sorted({to_index(entries[i].timestamp) for i in range(len(entries)) if entries[i].is_keyframe})
    except (AttributeError, TypeError, ValueError):  # PyAV before 15 has no index_entries; an entry without a time
        return []


def _seek_pays(keyframes: list[int], position: int, target: int, rate: float) -> bool:
    """Whether seeking (to the keyframe at or before ``target``) decodes fewer frames than decoding on from
    ``position``: with the container's keyframes, exactly when one lies after ``position``; without them, when
    ``target`` is more than a second ahead. Only the work differs: the frame delivered is the same either way."""
    if not keyframes:
        return target - position > rate
    before = bisect_right(keyframes, target) - 1
    return before >= 0 and keyframes[before] > position


def read_video_frames(
    path: str | Path, settings: ExtractionSettings, whole: bool = False, threads: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, HxWx3 uint8 RGB) for the sampled frames of a video, seeking instead of decoding everything.

    A frame's index is its presentation time times the average frame rate; sampled frames past the end of the
    stream come as (index, None). The reader seeks (to the keyframe before the next sampled frame) when a keyframe
    lies between the frame it decoded last and that one, as the container's index says (without an index: when the
    two lie more than a second apart), and decodes on otherwise: the fewest frames decoded (on the extraction
    benchmark's 200 videos, 6% less decoding CPU time than seeking by distance; 21% on its first 60).
    ``whole``: a video with fewer frames than ``settings.frames`` asks for is a VideoReadError (too-short), found from
    its header before anything is decoded, or when its stream ends early (the extraction tool; predict.py takes what
    there is). ``threads``: 0 lets FFmpeg decode with frame and slice threads over the cores, 1 decodes in the
    calling thread (about a quarter less CPU time per frame: what workers that share the cores want).
    """
    import av  # PyAV bundles its own FFmpeg libraries: no system ffmpeg needed

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(f"cannot open ({type(error).__name__}: {error})") from None
    with container:
        if not container.streams.video:
            raise VideoReadError("has no video stream")
        stream = container.streams.video[0]
        if threads == 1:
            stream.thread_count = 1
        else:
            stream.thread_type = "AUTO"
            stream.thread_count = threads
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        if rate <= 0:
            raise VideoReadError("has no frame rate")
        count = _video_frame_count(container, stream)
        if whole and settings.frames is not None and 0 < count < settings.frames:
            raise _too_short(count, settings, "has")
        targets = sample_indices(count, settings)
        if not targets:
            raise VideoReadError("has no frames (its header gives no frame count or duration)")
        start = stream.start_time or 0
        to_index = lambda pts: int(round((pts - start) * float(stream.time_base) * rate))  # noqa: E731
        keyframes = _keyframes(stream, to_index)
        position = last = -1  # index of the last decoded and of the last delivered frame
        frames_iterator = None
        delivered = 0
        try:
            for number, target in enumerate(targets):
                if target <= last:
                    continue  # already delivered (a seek that landed past its target)
                if frames_iterator is None or _seek_pays(keyframes, position, target, rate):
                    container.seek(int(target / rate / float(stream.time_base)) + start, stream=stream, backward=True)
                    frames_iterator = container.decode(stream)
                for frame in frames_iterator:
                    position = to_index(frame.pts) if frame.pts is not None else position + 1
                    if position >= target and position > last:
                        yield position, frame.to_ndarray(format="rgb24")  # the frame's own index, also after a seek
                        last, delivered = position, delivered + 1
                        break
                else:
                    # The stream ended early (frame counts in headers are estimates): say which frames are missing.
                    if whole and settings.frames is not None and 0 <= position < settings.frames - 1:
                        raise _too_short(position + 1, settings, f"ends after (its header says {count})")
                    for missing in targets[number:]:
                        yield missing, None
                    break
        except av.FFmpegError as error:
            raise VideoReadError(
                f"decoding failed after {delivered} frame(s) ({type(error).__name__}: {error})", DECODE_ERROR
            ) from None
        if delivered == 0:
            raise VideoReadError("no frame could be decoded", DECODE_ERROR)


def read_folder_frames(
    folder: Path, settings: ExtractionSettings, whole: bool = False
) -> Iterator[tuple[int, np.ndarray]]:
    """Sampled frames of a folder of frame images (sorted by name; the index is the position in that order)."""
    from data.decoding import ImageDecodeError  # imports torch: kept out of the workers that need only video
    from data.images import load_image  # imports torch: kept out of the workers that need only video

    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))
    if whole and settings.frames is not None and len(files) < settings.frames:
        raise _too_short(len(files), settings, "holds")
    for index in sample_indices(len(files), settings):
        try:
            yield index, load_image(files[index]).permute(1, 2, 0).numpy()
        except ImageDecodeError as error:
            raise VideoReadError(str(error), DECODE_ERROR) from None


def read_frames(
    path: Path, settings: ExtractionSettings, whole: bool = False, threads: int = 0
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Sampled frames of a video file or of a folder of frame images; ``whole``: fewer frames than the sampling asks
    for is a VideoReadError (too-short); ``threads``: the video decoder's (``read_video_frames``)."""
    if path.is_dir():
        return read_folder_frames(path, settings, whole)
    return read_video_frames(path, settings, whole, threads)
