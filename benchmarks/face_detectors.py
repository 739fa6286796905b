"""Face detector benchmark: recall at IoU >= 0.5, false detections and frames/s of the registered detectors.

    python benchmarks/face_detectors.py [--out benchmarks/face_detectors-cpu.json] [--detectors opencv-haar ...]

The faces are real photos shipped inside scikit-image (no download): the astronaut portrait with a hand-annotated
box, its scaled, rotated, darkened, noisy and JPEG-degraded variants, and composites that paste the face (plain and
mirrored, several sizes) onto scikit-image's face-free photos. Those face-free photos alone (a cat, coffee, coins,
a rocket, textures, ...) count false detections. Speed is measured on 640x360 frames (a common video size), given
to the detector in one call (batched detectors run them as one batch). With a GPU, ``mtcnn (cuda)`` is measured too.

Faces by size (``photos_by_size``): three real photographs that installed packages ship, each with a face box
annotated by hand (scikit-image's astronaut and cameraman, matplotlib's portrait of Grace Hopper; no installed package
ships a photograph of several people), scaled so that the face is 16 to 384 pixels and pasted, plain and mirrored,
with its head and shoulders onto a 1280x720 face-free photo; each frame goes through the extraction's own path
(``detect_in_frames``: downscaled to ``--detect-sizes`` pixels on the longer side, boxes mapped back). Recall at IoU
>= 0.5 per face-size bucket (the face's side in the 1280x720 frame) and false boxes per frame.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.faces import (  # noqa: E402
    DlibCnnDetector,
    DlibHogDetector,
    YunetDetector,
    build_detector,
    library_versions,
)

ASTRONAUT_FACE = (172.0, 80.0, 266.0, 172.0)  # eyebrows to chin, cheek to cheek; annotated by hand on the 512x512 image
FACE_FREE = (
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "coins",
    "brick",
    "grass",
    "gravel",
    "colorwheel",
    "retina",
    "horse",
    "moon",
    "clock",
    "page",
    "text",
    "logo",
)


def rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.shape[2] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image.astype(np.uint8))


def scaled(image, boxes, factor):
    picture = Image.fromarray(image)
    size = (round(picture.width * factor), round(picture.height * factor))
    return np.asarray(picture.resize(size, Image.Resampling.BICUBIC)), [tuple(v * factor for v in b) for b in boxes]


def jpeg(image, quality):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def face_scenes(skimage_data) -> list[tuple[str, np.ndarray, list]]:
    """(name, image, true boxes) of every image with faces."""
    astronaut = rgb(skimage_data.astronaut())
    box = [ASTRONAUT_FACE]
    cx, cy = (ASTRONAUT_FACE[0] + ASTRONAUT_FACE[2]) / 2, (ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3]) / 2
    scenes = [("original", astronaut, box)]
    for factor in (0.5, 0.75, 1.5, 2.0):
        scenes.append((f"scale x{factor}", *scaled(astronaut, box, factor)))
    for angle in (-30, -15, 15, 30):
        # Rotation about the face centre keeps the true box (a near-square face box barely changes at <= 30 degrees).
        turned = np.asarray(
            Image.fromarray(astronaut).rotate(angle, resample=Image.Resampling.BICUBIC, center=(cx, cy))
        )
        scenes.append((f"rotate {angle:+d} deg", turned, box))
    for factor in (0.35, 0.2):
        scenes.append(
            (f"dark x{factor}", np.asarray(ImageEnhance.Brightness(Image.fromarray(astronaut)).enhance(factor)), box)
        )
    for quality in (30, 10):
        scenes.append((f"jpeg q{quality}", jpeg(astronaut, quality), box))
    noise = np.random.default_rng(0).normal(0, 20, astronaut.shape)
    scenes.append(("noise sigma 20", np.clip(astronaut + noise, 0, 255).astype(np.uint8), box))
    # Composites: the face region pasted (plain and mirrored) at several sizes onto face-free photos.
    patch_box = (ASTRONAUT_FACE[0] - 45, ASTRONAUT_FACE[1] - 60, ASTRONAUT_FACE[2] + 45, ASTRONAUT_FACE[3] + 40)
    patch = Image.fromarray(astronaut).crop(tuple(round(v) for v in patch_box))
    rng = np.random.default_rng(0)
    for background_name in ("coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "chelsea", "brick"):
        background = Image.fromarray(rgb(getattr(skimage_data, background_name)()))
        boxes = []
        for number, side in enumerate((90, 150)):
            factor = side / patch.width
            piece = patch.resize((side, round(patch.height * factor)), Image.Resampling.BICUBIC)
            if number == 1:
                piece = piece.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            left = int(rng.integers(0, background.width // 2 - side)) + (background.width // 2 if number else 0)
            top = int(rng.integers(0, max(1, background.height - piece.height)))
            background.paste(piece, (left, top))
            fx0, fy0, fx1, fy1 = ((v - o) * factor for v, o in zip(ASTRONAUT_FACE, (patch_box[0], patch_box[1]) * 2))
            if number == 1:
                fx0, fx1 = side - fx1, side - fx0
            boxes.append((left + fx0, top + fy0, left + fx1, top + fy1))
        scenes.append((f"two faces on {background_name}", np.asarray(background), boxes))
    return scenes


# Hand-annotated face boxes (x0, y0, x1, y1; eyebrows to chin, cheek to cheek) of real photographs shipped by installed
# packages; the cameraman is seen in three-quarter profile (ear to nose tip).
PHOTO_FACES = {
    "astronaut": ASTRONAUT_FACE,
    "cameraman": (188.0, 134.0, 256.0, 198.0),
    "grace_hopper": (187.0, 172.0, 350.0, 330.0),
}
FACE_SIDES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384)  # the face box's longer side in the frame, pixels
SIZE_BUCKETS = ((0, 32), (32, 64), (64, 128), (128, 256), (256, 10_000))
PHOTO_FRAME = (1280, 720)
PHOTO_BACKGROUNDS = ("coffee", "rocket", "brick", "immunohistochemistry")


def photo(name: str, skimage_data) -> np.ndarray:
    """One of the real photographs with faces, RGB."""
    if name == "grace_hopper":
        import matplotlib

        return rgb(np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")))
    return rgb({"astronaut": skimage_data.astronaut, "cameraman": skimage_data.camera}[name]())


def bucket_name(low: int, high: int) -> str:
    return f">= {low} px" if high >= 10_000 else f"{low}-{high - 1} px"


def photo_scenes(skimage_data) -> list[tuple[str, np.ndarray, list]]:
    """(name, 1280x720 frame, [true box]) of every photograph at every face side, plain and mirrored."""
    width, height = PHOTO_FRAME
    rng = np.random.default_rng(1)
    backgrounds = [
        np.asarray(Image.fromarray(rgb(getattr(skimage_data, name)())).resize(PHOTO_FRAME, Image.Resampling.BILINEAR))
        for name in PHOTO_BACKGROUNDS
    ]
    scenes = []
    for name, face in PHOTO_FACES.items():
        picture = Image.fromarray(photo(name, skimage_data))
        for side in FACE_SIDES:
            factor = side / max(face[2] - face[0], face[3] - face[1])
            scaled_picture = picture.resize(
                (round(picture.width * factor), round(picture.height * factor)), Image.Resampling.BICUBIC
            )
            box = [v * factor for v in face]
            # the head and shoulders: the face box enlarged 2.2 times, within the photo and the frame
            cx, cy, half = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.1 * side
            left, top = max(0, round(cx - half)), max(0, round(cy - half))
            right = min(scaled_picture.width, round(cx + half), left + width)
            bottom = min(scaled_picture.height, round(cy + half), top + height)
            patch = scaled_picture.crop((left, top, right, bottom))
            for mirrored in (False, True):
                piece = patch.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else patch
                x0, x1 = box[0] - left, box[2] - left
                if mirrored:
                    x0, x1 = piece.width - x1, piece.width - x0
                px = int(rng.integers(0, max(1, width - piece.width)))
                py = int(rng.integers(0, max(1, height - piece.height)))
                frame = Image.fromarray(backgrounds[len(scenes) % len(backgrounds)].copy())
                frame.paste(piece, (px, py))
                truth = (px + x0, py + box[1] - top, px + x1, py + box[3] - top)
                label = f"{name} {side} px{' mirrored' if mirrored else ''}"
                scenes.append((label, np.asarray(frame), [truth]))
    return scenes


def measure_photos(detector, scenes, detect_size, min_score: float) -> dict:
    """Recall per face-size bucket and false boxes per frame of ``detector`` through the extraction's own path."""
    from data.faces.pipeline import detect_in_frames
    from data.faces.settings import ExtractionSettings

    settings = ExtractionSettings(detect_size=detect_size)
    found_in = {bucket: [0, 0] for bucket in SIZE_BUCKETS}
    false = 0
    for _, frame, truths in scenes:
        detections = [d for d in detect_in_frames(detector, [frame], settings)[0] if d.score >= min_score]
        hits, wrong = score_image(detections, truths)
        side = max(truths[0][2] - truths[0][0], truths[0][3] - truths[0][1])
        bucket = next(b for b in SIZE_BUCKETS if b[0] <= round(side) < b[1])
        found_in[bucket][0] += hits
        found_in[bucket][1] += len(truths)
        false += wrong
    return {
        "detect_size": detect_size,
        "recall_by_face_side": {bucket_name(*b): f"{found}/{total}" for b, (found, total) in found_in.items()},
        "recall": round(sum(f for f, _ in found_in.values()) / sum(t for _, t in found_in.values()), 3),
        "false_boxes_per_frame": round(false / len(scenes), 3),
        "frames": len(scenes),
    }


def iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score_image(detections, truths) -> tuple[int, int]:
    """(true faces found at IoU >= 0.5, false detections: IoU < 0.3 with every true face)."""
    found, taken = 0, set()
    for detection in sorted(detections, key=lambda d: -d.score):
        best = max(range(len(truths)), key=lambda i: iou(detection.box, truths[i]), default=None)
        if best is not None and best not in taken and iou(detection.box, truths[best]) >= 0.5:
            taken.add(best)
            found += 1
    false = sum(all(iou(d.box, t) < 0.3 for t in truths) for d in detections)
    return found, false


def measure(detector, scenes, negatives, speed_frames, min_score) -> dict:
    per_scene, found_total, faces_total, false_on_faces = {}, 0, 0, 0
    for name, image, truths in scenes:
        detections = [d for d in detector.detect([image])[0] if d.score >= min_score]
        found, false = score_image(detections, truths)
        per_scene[name] = f"{found}/{len(truths)} found, {false} false"
        found_total, faces_total, false_on_faces = (
            found_total + found,
            faces_total + len(truths),
            false_on_faces + false,
        )
    false_on_negatives = sum(sum(d.score >= min_score for d in detector.detect([image])[0]) for _, image in negatives)
    detector.detect(speed_frames[:1])  # warm-up
    started = time.perf_counter()
    detector.detect(speed_frames)
    seconds = time.perf_counter() - started
    return {
        "recall_iou_0.5": round(found_total / faces_total, 3),
        "faces": faces_total,
        "false_detections_on_face_images": false_on_faces,
        "false_detections_on_face_free_images": false_on_negatives,
        "face_free_images": len(negatives),
        "frames_per_s_640x360": round(len(speed_frames) / seconds, 2),
        "per_scene": per_scene,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "face_detectors-cpu.json"))
    parser.add_argument("--speed-frames", type=int, default=20, help="640x360 frames timed per detector")
    parser.add_argument("--detectors", nargs="+", help="candidates to (re)measure (default: all)")
    parser.add_argument(
        "--detect-sizes",
        nargs="+",
        default=["640", "480", "320"],
        help="detect sizes of the faces-by-size photographs, full = the full frame (default 640 480 320)",
    )
    args = parser.parse_args(argv)
    import skimage.data as skimage_data

    photos = photo_scenes(skimage_data)
    scenes = face_scenes(skimage_data)
    negatives = [(name, rgb(getattr(skimage_data, name)())) for name in FACE_FREE]
    speed_frame = np.asarray(Image.fromarray(scenes[-1][1]).resize((640, 360), Image.Resampling.BICUBIC))
    speed_frames = [np.roll(speed_frame, shift, axis=1) for shift in range(args.speed_frames)]
    candidates = {
        "yunet (default)": lambda: (build_detector("yunet"), 0.0),
        "yunet (threshold 0.5)": lambda: (YunetDetector(threshold=0.5), 0.0),
        "yunet (threshold 0.3)": lambda: (YunetDetector(threshold=0.3), 0.0),
        "mtcnn": lambda: (build_detector("mtcnn"), 0.0),
        "dlib-hog (upsample 1)": lambda: (build_detector("dlib-hog"), 0.0),
        "dlib-hog (upsample 0)": lambda: (DlibHogDetector(upsample=0), 0.0),
        "dlib-hog (upsample 2)": lambda: (DlibHogDetector(upsample=2), 0.0),
        "opencv-haar": lambda: (build_detector("opencv-haar"), -1e9),
        "dlib-cnn (upsample 0)": lambda: (DlibCnnDetector(upsample=0), 0.0),
    }
    import torch

    if torch.cuda.is_available():  # the same network batched on the GPU: the speed differs, not the boxes
        candidates["mtcnn (cuda)"] = lambda: (build_detector("mtcnn", "cuda"), 0.0)
    chosen = args.detectors or list(candidates)
    unknown = sorted(set(chosen) - set(candidates))
    if unknown:
        parser.error(f"unknown candidate(s) {unknown}; choose from {list(candidates)}")
    # Results of other candidates already in --out are kept, so slow candidates can be measured in a separate run.
    results = json.loads(Path(args.out).read_text())["results"] if Path(args.out).is_file() else {}
    for name in chosen:
        detector, min_score = candidates[name]()
        results[name] = measure(detector, scenes, negatives, speed_frames[: args.speed_frames], min_score)
        results[name]["speed_frames"] = len(speed_frames[: args.speed_frames])
        results[name]["photos_by_size"] = [
            measure_photos(detector, photos, None if size == "full" else int(size), min_score)
            for size in args.detect_sizes
        ]
        r = results[name]
        print(
            f"{name:32} recall {r['recall_iou_0.5']:.3f} of {r['faces']} faces, "
            f"false {r['false_detections_on_face_images']}"
            f" on face images + {r['false_detections_on_face_free_images']} "
            f"on {r['face_free_images']} face-free images,"
            f" {r['frames_per_s_640x360']} frames/s (640x360)"
        )
        for by_size in r["photos_by_size"]:
            print(
                f"{'':32} photos at detect size {by_size['detect_size']}: recall {by_size['recall']} "
                f"({', '.join(f'{k}: {v}' for k, v in by_size['recall_by_face_side'].items())}), "
                f"{by_size['false_boxes_per_frame']} false boxes a frame"
            )
    record = {
        "command": "python benchmarks/face_detectors.py",
        "machine": platform.processor() or platform.machine(),
        "cpu_threads": os.cpu_count(),
        "versions": library_versions(),
        "results": results,
        "notes": "recall counts a true face found at IoU >= 0.5; a false detection overlaps no true face (IoU < 0.3).",
        "load_average": os.getloadavg(),
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
