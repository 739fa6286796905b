"""predict.py's inputs: image files, folders and videos listed (``collect_inputs``), and their face crops made
with the face-extraction settings stored with the checkpoint (``data.faces``), or taken as they are
(``detect=False``) for images that are already face crops. tools/explain.py reuses the face gathering."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from common.errors import UserError
from data import faces as face_extraction
from data.decoding import ImageDecodeError
from data.images import load_image, resize_array
from data.media import files_under, is_image, is_video


class InputError(UserError):
    """Inputs that cannot be scored at all (every one unreadable, or none given)."""


@dataclass
class InputItem:
    path: Path
    kind: str  # image | video
    status: str = "ok"  # ok | no face | error: <reason>


@dataclass
class FaceCrop:
    input_index: int
    frame: int
    face_index: int
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in the frame; None: the whole image (no detection)
    detector_score: float | None
    pixels: torch.Tensor  # (3, S, S) uint8, S = the model's image size


def collect_inputs(paths: Sequence[str | Path]) -> list[InputItem]:
    """Files as given and the image/video files under folders (recursive, sorted); missing paths are listed."""
    items: list[InputItem] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():  # one scandir per folder (a million files in seconds), in path order, no hidden ones
            found = [
                relative
                for relative in files_under(path)
                if (is_image(relative) or is_video(relative)) and not ("/" + relative).count("/.")
            ]
            if not found:
                items.append(InputItem(path, "folder", f"error: no image or video files under {path}"))
            items += [InputItem(path / relative, _kind(relative)) for relative in found]
        elif path.is_file():
            items.append(InputItem(path, _kind(path)))
        else:
            items.append(InputItem(path, _kind(path), f"error: {path} does not exist"))
    if not items:
        raise InputError("no inputs given: name image files, folders or videos.")
    return items


def _kind(path: str | Path) -> str:
    return "video" if is_video(path) else "image"


def detector_beside(settings, device) -> Any:
    """The face detector of ``settings`` for a model on ``device``: on that device where the detector runs there
    (mtcnn on CUDA), else on the CPU (dlib-hog and opencv-haar beside a model on a GPU)."""
    device = face_extraction.detector_device(settings.detector, str(device))
    return face_extraction.build_detector(settings.detector, device=device)


def extraction_settings(stored: dict[str, Any] | None):
    """The ExtractionSettings a checkpoint was trained with; the defaults (said once) when it stores none."""
    if stored:
        return face_extraction.ExtractionSettings.from_dict(stored), True
    return face_extraction.ExtractionSettings(), False


def iter_face_crops(
    items: Sequence[InputItem],
    *,
    image_size: int,
    detect: bool,
    settings=None,
    detector=None,
    progress: bool = True,
) -> Iterator[FaceCrop]:
    """The crops of every readable input, in input order; an unreadable input gets its status and is skipped."""
    bar = tqdm(total=len(items), unit="input", desc="predict", disable=None if progress else True, dynamic_ncols=True)
    for index, item in enumerate(items):
        bar.update(1)
        if item.status != "ok":
            continue
        try:
            found = 0
            for crop in _crops_of(
                index, item, image_size=image_size, detect=detect, settings=settings, detector=detector
            ):
                found += 1
                yield crop
            if found == 0:
                item.status = "no face"
        except (ImageDecodeError, UserError) as error:
            item.status = f"error: {error}"
    bar.close()


def _crops_of(index: int, item: InputItem, *, image_size: int, detect: bool, settings, detector) -> Iterator[FaceCrop]:
    if not detect:
        if item.kind == "video":
            raise UserError(f"{item.path} is a video: videos need face detection (drop --no-detect)")
        pixels = load_image(item.path, image_size)  # exactly the training loader's decode and resize
        yield FaceCrop(index, 0, 0, None, None, pixels)
        return
    if item.kind == "video":
        faces = face_extraction.faces_in_video(item.path, detector, settings)
    else:
        frame = load_image(item.path).permute(1, 2, 0).numpy()
        faces = face_extraction.faces_in_image(frame, detector, settings)
    for face in faces:
        box = tuple(float(v) for v in face.box)
        yield FaceCrop(
            index,
            int(face.frame),
            int(face.face_index),
            box,
            float(face.score),
            resize_array(face.crop, image_size),
        )
