"""A seeded, GenFace-like synthetic benchmark: face-like real videos and six synthetic "generators".

    python -m data.make_demo OUT [--seed 0] [--identities 200] [--fakes-per-generator 300]

Two source datasets (two "cameras") of procedurally drawn faces, filmed as short "videos" of 4 frames: one face
with small motion between frames (the frames of a video are correlated, as in real footage: one pose, one lighting,
a small random-walk shift, fresh sensor noise per frame). Every generator is applied to both source datasets, so the
camera is no shortcut for the label; identities are disjoint across splits (a person's real video, and every fake
made from or with that person, are on one side), so that video AUC and the video bootstrap mean something.
Fakes come from six generators under GenFace's three forgery types, each leaving its own trace:

| forgery type | generator | trace |
| --- | --- | --- |
| EFS (entire face synthesis) | gan-upsample | rendered at half size, upsampled with a transposed-conv checkerboard |
| EFS | diffusion-smooth | over-smooth texture (detail and camera noise washed out, faint synthetic grain) |
| AM (attribute manipulation) | attr-hair | hair recoloured and re-textured, without camera noise, soft mask |
| AM | attr-mouth | mouth region regenerated at half resolution (expression changed) |
| FS (face swap) | swap-blend | another identity's inner face pasted with a feathered seam and tone mismatch |
| FS | swap-warp | another identity's face resampled (shrunk and re-enlarged) and pasted with a hard edge |

Every image is written as PNG (lossless, one format for both classes), with ``demo.csv`` in the schema of
``data/schema.py`` (columns ``identity`` and ``frame`` included). A small CAEL learns it in minutes on a CPU.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from common.cli import run

SIZE = 64
FRAMES_PER_VIDEO = 4
GENERATORS = {  # generator -> forgery type; each is applied to both source datasets
    "gan-upsample": "EFS",
    "diffusion-smooth": "EFS",
    "attr-hair": "AM",
    "attr-mouth": "AM",
    "swap-blend": "FS",
    "swap-warp": "FS",
}
MOTION_SIGMA = 0.6  # pixels of random-walk shift between consecutive frames
CAMERAS = {  # source dataset -> (lens blur sigma, sensor noise sigma, lighting contrast)
    "DemoFace-A": (0.6, 5.0, 0.35),
    "DemoFace-B": (0.8, 3.5, 0.2),
}
SPLIT_RATIOS = (("train", 0.7), ("val", 0.15), ("test", 0.15))

_SKIN = np.array([[224, 187, 160], [198, 148, 110], [160, 110, 80], [110, 75, 55], [240, 200, 180]], dtype=np.float64)
_HAIR = np.array([[30, 20, 15], [80, 50, 30], [150, 110, 60], [200, 180, 120], [60, 60, 60]], dtype=np.float64)
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)


@dataclass
class Identity:
    skin: np.ndarray
    hair: np.ndarray
    background: np.ndarray
    face_w: float
    face_h: float
    eye_gap: float
    mouth_w: float
    hair_line: float


def _identity(rng: np.random.Generator) -> Identity:
    return Identity(
        skin=_SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 10, 3),
        hair=_HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 10, 3),
        background=rng.uniform(40, 220, (2, 3)),
        face_w=rng.uniform(15, 19),
        face_h=rng.uniform(19, 23),
        eye_gap=rng.uniform(6, 8.5),
        mouth_w=rng.uniform(4.5, 7.5),
        hair_line=rng.uniform(0.45, 0.7),
    )


def _ellipse(cx, cy, rx, ry, scale=1.0):
    return ((_XX / scale - cx) / rx) ** 2 + ((_YY / scale - cy) / ry) ** 2


def _soft(distance, edge=0.15):
    """Anti-aliased inside-mask of an implicit ellipse distance (1 inside, 0 outside)."""
    return np.clip((1.0 - distance) / edge + 0.5, 0.0, 1.0)


def _render(
    who: Identity,
    rng: np.random.Generator,
    contrast: float,
    scale: float = 1.0,
    mouth_open: float | None = None,
    motion=(0.0, 0.0),
):
    """A clean (noise-free, unblurred) face at SIZE*scale pixels, with its masks (face, hair, mouth, inner face).

    ``rng`` draws the pose (re-seeded identically for every frame of a video); ``motion`` shifts it per frame."""
    size = int(SIZE * scale)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / scale
    cx, cy = SIZE / 2 + rng.normal(0, 1.5) + motion[0], SIZE / 2 + 2 + rng.normal(0, 1.5) + motion[1]
    light = rng.normal(0, 1, 2)
    light /= np.linalg.norm(light) + 1e-9
    t = (yy / SIZE)[..., None]
    image = who.background[0] * (1 - t) + who.background[1] * t
    face_d = ((xx - cx) / who.face_w) ** 2 + ((yy - cy) / who.face_h) ** 2
    face = _soft(face_d)[..., None]
    shade = 1.0 + contrast * (light[0] * (xx - cx) / who.face_w + light[1] * (yy - cy) / who.face_h) * 0.5
    image = image * (1 - face) + (who.skin * shade[..., None]) * face
    hair_d = ((xx - cx) / (who.face_w + 2.5)) ** 2 + ((yy - cy + 3) / (who.face_h + 3)) ** 2
    hair = _soft(hair_d)[..., None] * (yy < cy - who.face_h * who.hair_line + 3 * np.sin(xx / 3.0))[..., None]
    image = image * (1 - hair) + who.hair * (0.85 + 0.15 * np.sin(xx * 1.7 + yy * 0.4))[..., None] * hair
    for side in (-1, 1):
        ex, ey = cx + side * who.eye_gap, cy - 4
        white = _soft(((xx - ex) / 3.2) ** 2 + ((yy - ey) / 1.8) ** 2)[..., None]
        image = image * (1 - white) + np.array([235.0, 235, 230]) * white
        iris = _soft(((xx - ex) / 1.5) ** 2 + ((yy - ey) / 1.5) ** 2)[..., None]
        image = image * (1 - iris) + np.array([40.0, 30, 25]) * iris
        brow = _soft(((xx - ex) / 3.8) ** 2 + ((yy - ey + 3.8) / 0.8) ** 2)[..., None]
        image = image * (1 - 0.8 * brow) + who.hair * 0.8 * brow
    nose = _soft(((xx - cx) / 1.2) ** 2 + ((yy - cy - 1.5) / 3.5) ** 2)[..., None]
    image = image * (1 - 0.25 * nose) + (who.skin * 0.7) * 0.25 * nose
    opening = rng.uniform(0.6, 2.2) if mouth_open is None else mouth_open
    mouth_d = ((xx - cx) / who.mouth_w) ** 2 + ((yy - cy - 8) / opening) ** 2
    mouth = _soft(mouth_d)[..., None]
    image = image * (1 - mouth) + np.array([150.0, 50, 60]) * mouth
    inner = _soft(((xx - cx) / (who.face_w * 0.8)) ** 2 + ((yy - cy + 1) / (who.face_h * 0.8)) ** 2, edge=0.4)
    mouth_region = _soft(((xx - cx) / (who.mouth_w + 4)) ** 2 + ((yy - cy - 8) / 5) ** 2, edge=0.5)
    return image, {"face": face[..., 0], "hair": hair[..., 0], "mouth": mouth_region, "inner": inner}


def _camera(image, rng, blur, noise):
    """Lens blur then sensor noise, as a real capture would add."""
    blurred = ndimage.gaussian_filter(image, sigma=(blur, blur, 0))
    return blurred + rng.normal(0, noise, image.shape)


def _to_uint8(image):
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _checkerboard_upsample(small, rng):
    """2x nearest upsampling followed by a fixed 2x2-periodic gain pattern: a transposed-conv fingerprint."""
    big = small.repeat(2, axis=0).repeat(2, axis=1)
    phase = np.array([[1.0, 0.94], [0.97, 1.03]]) + rng.normal(0, 0.005, (2, 2))
    return big * np.tile(phase, (SIZE // 2, SIZE // 2))[..., None]


def real_frame(who, rng, dataset, noise_rng=None, motion=(0.0, 0.0)):
    """A camera frame: ``rng`` draws what stays fixed within a video, ``noise_rng`` the sensor noise of this frame."""
    blur, noise, contrast = CAMERAS[dataset]
    clean, masks = _render(who, rng, contrast, motion=motion)
    return _camera(clean, noise_rng or rng, blur, noise), clean, masks


def fake_frame(generator, who, donor, rng, dataset, noise_rng=None, motion=(0.0, 0.0)):
    blur, noise, contrast = CAMERAS[dataset]
    noise_rng = noise_rng or rng
    if generator == "gan-upsample":
        small, _ = _render(who, rng, contrast, scale=0.5, motion=motion)
        small = ndimage.gaussian_filter(small, sigma=(0.5, 0.5, 0)) + noise_rng.normal(0, noise * 0.6, small.shape)
        return _checkerboard_upsample(small, rng)
    if generator == "diffusion-smooth":
        clean, _ = _render(who, rng, contrast, motion=motion)
        smooth = ndimage.gaussian_filter(clean, sigma=(1.6, 1.6, 0))
        grain = ndimage.gaussian_filter(noise_rng.normal(0, 1, clean.shape), sigma=(0.7, 0.7, 0))
        return smooth + grain * noise * 0.8
    frame, clean, masks = real_frame(who, rng, dataset, noise_rng, motion)
    if generator == "attr-hair":
        colour = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 20, 3)
        hair = ndimage.gaussian_filter(masks["hair"], 1.0)[..., None]
        texture = ndimage.gaussian_filter(clean, sigma=(1.2, 1.2, 0)).mean(axis=2, keepdims=True)
        recoloured = colour * (texture / (texture.mean() + 1e-6)) ** 0.3
        return frame * (1 - hair) + recoloured * hair
    if generator == "attr-mouth":
        region = masks["mouth"][..., None]
        edited, _ = _render(
            who, np.random.default_rng(rng.integers(2**32)), contrast, mouth_open=rng.uniform(2.5, 3.5), motion=motion
        )
        low = _camera(edited, noise_rng, blur, noise)[::2, ::2]
        regenerated = ndimage.zoom(low, (2, 2, 1), order=1)
        return frame * (1 - region) + regenerated * region
    donor_frame, _, donor_masks = real_frame(donor, rng, dataset, noise_rng, motion)
    if generator == "swap-blend":
        mask = ndimage.gaussian_filter(masks["inner"], 1.5)[..., None]
        tone = rng.uniform(0.85, 1.15, 3)
        return frame * (1 - mask) + donor_frame * tone * mask
    if generator == "swap-warp":
        shrunk = ndimage.zoom(donor_frame, (0.6, 0.6, 1), order=1)
        warped = ndimage.zoom(shrunk, (SIZE / shrunk.shape[0], SIZE / shrunk.shape[1], 1), order=1)
        mask = (masks["inner"] > 0.5)[..., None].astype(np.float64)
        return frame * (1 - mask) + warped * mask
    raise ValueError(f"unknown demo generator {generator!r}")


def _assign_splits(video_ids: list[str], rng: np.random.Generator) -> dict[str, str]:
    """Seeded split per video; from three videos up, every split gets at least one."""
    n = len(video_ids)
    held_out = {name: max(1, int(round(ratio * n))) if n >= 3 else 0 for name, ratio in SPLIT_RATIOS[1:]}
    counts = {SPLIT_RATIOS[0][0]: n - sum(held_out.values()), **held_out}
    order = rng.permutation(n)
    splits, start = {}, 0
    for split, count in counts.items():
        for i in order[start : start + count]:
            splits[video_ids[i]] = split
        start += count
    return splits


# below this many images the processes' start costs more than they save (measured: see _workers)
PROCESSES_FROM_IMAGES = 1000


def _workers(images: int, workers: int | None) -> int:
    """Processes to draw ``images`` with: ``workers`` if given, else the cores (up to 8) for a large set, else 1.
    The default set (2,040 images) takes 6.4 s in one process on a 2-core machine and about 3.5 s in two."""
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be 1 or more; got {workers}.")
        return workers
    if images < PROCESSES_FROM_IMAGES:
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _draw_frame(frame: tuple[Path, str, str, Identity, Identity | None, int, int, tuple[float, float]]) -> None:
    """Draw one frame from its seeds and write it as PNG."""
    path, generator, dataset, who, donor, video_seed, noise_seed, motion = frame
    pose_rng = np.random.default_rng(video_seed)  # the same pose, lighting and edit in every frame of a video
    noise_rng = np.random.default_rng(noise_seed)
    if generator == "real":
        image = real_frame(who, pose_rng, dataset, noise_rng, motion)[0]
    else:
        image = fake_frame(generator, who, donor, pose_rng, dataset, noise_rng, motion)
    Image.fromarray(_to_uint8(image)).save(path, compress_level=1)


def make_demo(
    out: str | Path,
    *,
    seed: int = 0,
    identities: int = 120,
    fakes_per_generator: int = 180,
    workers: int | None = None,
) -> Path:
    """Write the demo dataset under ``out`` and return the path of its CSV. ``workers``: processes drawing the
    frames (default: the cores, up to 8, for 1,000 images or more; else 1); the files are the same for any number."""
    if identities < 3:
        raise ValueError(f"the demo needs at least 3 identities per source dataset (one per split); got {identities}.")
    out = Path(out)
    rng = np.random.default_rng(seed)
    rows = []
    datasets = list(CAMERAS)
    people = {name: [_identity(rng) for _ in range(identities)] for name in datasets}
    # identities first: each person (and every video made from or with them) belongs to one split
    person_split = {name: _assign_splits(list(range(identities)), rng) for name in datasets}
    by_split = {
        name: {split: [p for p, s in person_split[name].items() if s == split] for split, _ in SPLIT_RATIOS}
        for name in datasets
    }
    videos: dict[
        tuple[str, str], list[tuple[str, str, int, int | None]]
    ] = {}  # (generator, dataset) -> (video, split, person, donor)
    for name in datasets:
        for index in range(identities):
            videos.setdefault(("real", name), []).append(
                (f"{name}-real-{index:04d}", person_split[name][index], index, None)
            )
    fake_videos = max(2, fakes_per_generator // FRAMES_PER_VIDEO)
    for g, generator in enumerate(GENERATORS):
        # the generator's videos alternate between the datasets and are split together (stratified by generator)
        made_from = [datasets[(g + index) % len(datasets)] for index in range(fake_videos)]
        ids = [f"{name}-{generator}-{index:04d}" for index, name in enumerate(made_from)]
        splits = _assign_splits(ids, rng)
        for video, name in zip(ids, made_from):
            pool = by_split[name][splits[video]]
            person = int(pool[rng.integers(len(pool))])
            donor = int(pool[(pool.index(person) + 1 + rng.integers(max(1, len(pool) - 1))) % len(pool)])
            videos.setdefault((generator, name), []).append((video, splits[video], person, donor))
    # every random draw is made here, in one sequence; the frames are then drawn from their own seeds, in any order
    # and in as many processes as there are cores: the same files whatever the number of workers
    frames: list[tuple[Path, str, str, Identity, Identity | None, int, int, tuple[float, float]]] = []
    for (generator, dataset), entries in videos.items():
        forgery = "real" if generator == "real" else GENERATORS[generator]
        folder = out / dataset / generator
        folder.mkdir(parents=True, exist_ok=True)
        for video, split, person, donor in entries:
            who = people[dataset][person]
            video_seed = int(rng.integers(2**63))
            steps = rng.normal(0, MOTION_SIGMA, (FRAMES_PER_VIDEO, 2))
            steps[0] = 0.0
            path = np.cumsum(steps, axis=0)  # small random-walk motion of one face
            identity = f"{dataset}-id{person:04d}" + (
                f";{dataset}-id{donor:04d}" if generator.startswith("swap") else ""
            )
            for frame in range(FRAMES_PER_VIDEO):
                noise_seed = int(rng.integers(2**63))
                motion = (float(path[frame, 0]), float(path[frame, 1]))
                relative = f"{dataset}/{generator}/{video}_{frame}.png"
                other = None if generator == "real" else people[dataset][donor]
                frames.append((out / relative, generator, dataset, who, other, video_seed, noise_seed, motion))
                rows.append(
                    {
                        "path": relative,
                        "label": 0 if generator == "real" else 1,
                        "split": split,
                        "forgery_type": forgery,
                        "generator": generator,
                        "source_dataset": dataset,
                        "video_id": video,
                        "identity": identity,
                        "frame": frame,
                    }
                )
    workers = _workers(len(frames), workers)
    if workers == 1:
        for frame in frames:
            _draw_frame(frame)
    else:  # spawned (not forked: the caller may hold threads, e.g. train.py with torch imported)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in pool.map(_draw_frame, frames, chunksize=max(1, min(64, len(frames) // (4 * workers)))):
                pass
    csv_path = out / "demo.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write the seeded, GenFace-like synthetic demo dataset.")
    parser.add_argument("out", help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--identities", type=int, default=120, help="real identities (one 4-frame video each) per source dataset"
    )
    parser.add_argument(
        "--fakes-per-generator", type=int, default=180, help="fake images per generator (both source datasets together)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="processes drawing the frames (default: the cores, up to 8, for 1,000 images or more)",
    )
    return parser


def main(argv=None) -> Path:
    args = get_args_parser().parse_args(argv)
    start = time.perf_counter()
    csv_path = make_demo(
        args.out,
        seed=args.seed,
        identities=args.identities,
        fakes_per_generator=args.fakes_per_generator,
        workers=args.workers,
    )
    with open(csv_path) as handle:
        count = sum(1 for _ in handle) - 1
    print(f"wrote {count} images and {csv_path} in {time.perf_counter() - start:.1f}s")
    return csv_path


if __name__ == "__main__":
    sys.exit(run(main))
