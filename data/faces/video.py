"""Reading sampled frames: evenly spaced (or every k-th) frames of a video, seeking instead of decoding it whole, or
of a folder of frame images."""

from __future__ import annotations

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


class VideoReadError(Exception):
    """A video (or frame folder) that cannot be read; becomes a line in the extraction log, not a crash."""


def _video_frame_count(container, stream) -> int:
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.average_rate:
        return int(stream.duration * stream.time_base * stream.average_rate)
    if container.duration is not None and stream.average_rate:
        return int(container.duration / 1_000_000 * stream.average_rate)
    return 0


def read_video_frames(path: str | Path, settings: ExtractionSettings) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, HxWx3 uint8 RGB) for the sampled frames of a video, seeking instead of decoding everything.

    A frame's index is its presentation time times the average frame rate; sampled frames past the end of the
    stream come as (index, None). Between two sampled frames that lie
    more than a second apart the reader seeks (to the keyframe before the target) rather than decoding through.
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
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        if rate <= 0:
            raise VideoReadError("has no frame rate")
        targets = sample_indices(_video_frame_count(container, stream), settings)
        if not targets:
            raise VideoReadError("has no frames")
        start = stream.start_time or 0
        to_index = lambda pts: int(round((pts - start) * float(stream.time_base) * rate))  # noqa: E731
        position = last = -1  # index of the last decoded and of the last delivered frame
        frames_iterator = None
        delivered = 0
        try:
            for number, target in enumerate(targets):
                if target <= last:
                    continue  # already delivered (a seek that landed past its target)
                if frames_iterator is None or target - position > rate:
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
                    for missing in targets[number:]:
                        yield missing, None
                    break
        except av.FFmpegError as error:
            raise VideoReadError(
                f"decoding failed after {delivered} frame(s) ({type(error).__name__}: {error})"
            ) from None
        if delivered == 0:
            raise VideoReadError("no frame could be decoded")


def read_folder_frames(folder: Path, settings: ExtractionSettings) -> Iterator[tuple[int, np.ndarray]]:
    """Sampled frames of a folder of frame images (sorted by name; the index is the position in that order)."""
    from data.decoding import ImageDecodeError  # imports torch: kept out of the workers that need only video
    from data.images import load_image  # imports torch: kept out of the workers that need only video

    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))
    for index in sample_indices(len(files), settings):
        try:
            yield index, load_image(files[index]).permute(1, 2, 0).numpy()
        except ImageDecodeError as error:
            raise VideoReadError(str(error)) from None


def read_frames(path: Path, settings: ExtractionSettings) -> Iterator[tuple[int, np.ndarray | None]]:
    """Sampled frames of a video file or of a folder of frame images."""
    return read_folder_frames(path, settings) if path.is_dir() else read_video_frames(path, settings)
