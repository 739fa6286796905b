"""DF40 (Yan et al., NeurIPS 2024 Datasets and Benchmarks, "DF40: Toward Next-Generation Deepfake Detection"):
40 forgery methods, 31 of them made in the FF++ and Celeb-DF domains, read from its published split files.

DF40's splits are DeepfakeBench dataset JSONs (YZY-stack/DF40, its "JSON files for recording image paths"; read by
its DeepfakeBench_DF40/training/dataset/abstract_dataset.py): one file per method and domain, ``<method>_ff.json`` and
``<method>_cdf.json`` for the 31 methods of the FF++ and Celeb-DF domains, ``<method>.json`` for the 9 of their own
domain (DeepFaceLab, HeyGen, MidJourney, WhichisReal, CollabDiff, e4e, StarGAN, StarGANv2, StyleCLIP), each
``{name: {<method>_Fake | <method>_Real: {train | test: {video: {"label", "frames": [paths]}}}}}``; the real videos
of the two domains come from DeepfakeBench's ``FaceForensics++.json`` (``FF-real``, at ``--compression``) and
``Celeb-DF-v2.json`` (its real labels). ``--metadata-root`` is that JSON folder, ROOT the folder the frame paths are
relative to. Files named otherwise (``FSAll_ff.json`` and the like: unions of the per-method files) are left out.

Rows: ``generator`` is DF40's test-set name (``simswap_ff``, ``simswap_cdf``, ``deepfacelab``), ``forgery_type`` its
type (FS, FR, EFS, FE), ``source_dataset`` the domain whose reals score it (``FF++``, ``Celeb-DF-v2``, or
``DF40-<method>``), and ``df40_set`` the group of DF40's protocols (``FS_ff``, ``FR_cdf``, ``unknown``). DF40 trains in
the FF++ domain only: the training videos of the Celeb-DF domain and of the 9 methods of their own domain are dropped
(and said so), so that the folds of a protocol are the FF++-domain methods (cross-generator: DF40's one-vs-all) or
types (``data/protocols/df40.yaml``: its protocols 1 to 3). A method without validation videos gets
``--val-fraction`` of its training videos (whole videos, seeded), as the reals get FF++'s official val split.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

from common.errors import UsageError

from ..build_index import assign_splits
from .base import BuildOptions, DatasetError, register_builder
from .deepfakebench import deduplicate_splits, deepfakebench_rows

# DF40's methods (its README table) as its JSON and folder names write them -> (type, domain: "ff+cdf" or "own").
DF40_METHODS = {
    **{m: ("FS", "ff+cdf") for m in ("fsgan", "faceswap", "simswap", "inswap", "blendface", "uniface", "mobileswap")},
    **{m: ("FS", "ff+cdf") for m in ("e4s", "facedancer")},
    "deepfacelab": ("FS", "own"),
    **{m: ("FR", "ff+cdf") for m in ("fomm", "facevid2vid", "wav2lip", "MRAA", "one_shot_free", "pirender", "tpsm")},
    **{m: ("FR", "ff+cdf") for m in ("lia", "danet", "sadtalker", "mcnet", "hyperreenact")},
    "heygen": ("FR", "own"),
    **{m: ("EFS", "ff+cdf") for m in ("VQGAN", "StyleGAN2", "StyleGAN3", "StyleGANXL", "sd2.1", "ddim", "rddm")},
    **{m: ("EFS", "ff+cdf") for m in ("PixArt", "DiT", "SiT")},
    **{m: ("EFS", "own") for m in ("MidJourney", "whichisreal")},
    **{m: ("FE", "own") for m in ("CollabDiff", "e4e", "stargan", "starganv2", "styleclip")},
}
# Other spellings of DF40's own files and folders (whichfaceisreal/, pixart_Fake, mraa_Fake, ...), case-insensitive.
DF40_ALIASES = {**{m.lower(): m for m in DF40_METHODS}, "whichfaceisreal": "whichisreal", "ddpm": "ddim"}
DOMAIN_SOURCE = {"ff": "FF++", "cdf": "Celeb-DF-v2"}
# DeepfakeBench's JSONs of the two domains' real videos: file stem -> its top-level key.
REAL_JSONS = {"FaceForensics++": "FF++", "Celeb-DF-v2": "Celeb-DF-v2"}
SET_NAME = re.compile(r"^(?P<method>.+?)(?:_(?P<domain>ff|cdf))?$")


def df40_set(name: str) -> tuple[str, str | None] | None:
    """A JSON file stem -> (DF40 method, domain ff / cdf, or None for a method of its own domain); None: not DF40's."""
    match = SET_NAME.match(name)
    method = DF40_ALIASES.get(match["method"].lower()) if match else None
    if method is None:
        return None
    own = DF40_METHODS[method][1] == "own"
    if own != (match["domain"] is None):
        return None
    return method, match["domain"]


def _method_rows(root: Path, path: Path, method: str, domain: str | None) -> list[dict]:
    rows, _ = deepfakebench_rows(root, path, val_fraction=0.0)
    forgery_type = DF40_METHODS[method][0]
    generator = f"{method}_{domain}" if domain else method
    source = DOMAIN_SOURCE[domain] if domain else f"DF40-{method}"
    for row in rows:
        row["source_dataset"] = source
        if row["label"] == 1:
            row.update(generator=generator, forgery_type=forgery_type)
            row["df40_set"] = f"{forgery_type}_{domain}" if domain else "unknown"
        else:
            row.update(generator="real", forgery_type="real", df40_set="")
    return rows


def _real_rows(root: Path, path: Path, source: str, compression: str) -> list[dict]:
    rows, _ = deepfakebench_rows(root, path, val_fraction=0.0, compression=compression)
    reals = [row for row in rows if row["label"] == 0]
    for row in reals:
        row.update(source_dataset=source, generator="real", forgery_type="real", df40_set="")
    return reals


def _draw_val(rows: list[dict], val_fraction: float, seed: int) -> list[str]:
    """A generator with training videos and no validation video gets ``val_fraction`` of them (whole videos)."""
    by_generator: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_generator[(row["source_dataset"], row["generator"])].append(row)
    drawn = []
    for (source, generator), members in sorted(by_generator.items()):
        splits = {row["split"] for row in members}
        if "train" not in splits or "val" in splits or val_fraction <= 0:
            continue
        videos: dict[str, list[dict]] = defaultdict(list)
        for row in members:
            if row["split"] == "train":
                videos[row["video_id"]].append(row)
        groups = [{"video": key, "generator": generator, "label": rows_[0]["label"]} for key, rows_ in videos.items()]
        assign_splits(groups, (1.0 - val_fraction, val_fraction, 0.0), "video", seed)
        for group in groups:
            for row in videos[group["video"]]:
                row["split"] = group["split"]
        drawn.append(generator)
    return drawn


@register_builder("df40")
def build_df40(root: Path, options: BuildOptions) -> tuple[list[dict], list[str]]:
    folder = options.metadata_root
    if options.json_path is not None:
        raise UsageError("df40 reads every DF40 JSON of --metadata-root (DF40's dataset_json folder): drop --json.")
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder: pass --metadata-root DF40's dataset_json folder.")
    rows, notes, found, ignored = [], [], [], []
    for path in sorted(folder.glob("*.json")):
        if path.stem in REAL_JSONS:
            rows += _real_rows(root, path, REAL_JSONS[path.stem], options.compression)
            found.append(path.stem)
            continue
        parsed = df40_set(path.stem)
        if parsed is None:
            ignored.append(path.name)
            continue
        rows += _method_rows(root, path, *parsed)
        found.append(path.stem)
    methods = [name for name in found if name not in REAL_JSONS]
    if not methods:
        raise DatasetError(
            f"{folder} holds no DF40 JSON (<method>_ff.json, <method>_cdf.json or <method>.json, e.g. "
            "simswap_ff.json): pass --metadata-root DF40's dataset_json folder."
        )
    for stem in REAL_JSONS:
        if stem not in found:
            notes.append(f"{folder / (stem + '.json')} is missing: the {REAL_JSONS[stem]} domain has no real videos")
    if ignored:
        notes.append(f"left out {len(ignored)} JSON file(s) that are not one DF40 method: {', '.join(ignored[:6])}")
    test_only = [r for r in rows if r["split"] != "test" and r["source_dataset"] != "FF++"]
    if test_only:
        dropped = Counter(r["generator"] if r["label"] == 1 else f"real ({r['source_dataset']})" for r in test_only)
        rows = [r for r in rows if r["split"] == "test" or r["source_dataset"] == "FF++"]
        notes.append(
            f"DF40 trains in the FF++ domain only: left out {len(test_only)} train/val frame(s) of other domains "
            f"({', '.join(sorted(dropped)[:6])}{' ...' if len(dropped) > 6 else ''})"
        )
    rows, dedup_notes = deduplicate_splits(rows, folder, 0.0, options.seed)
    notes += dedup_notes
    drawn = _draw_val(rows, options.val_fraction, options.seed)
    if drawn:
        notes.append(
            f"{len(drawn)} method(s) had no validation videos: {options.val_fraction:.0%} of their training videos "
            f"became val (seed {options.seed})"
        )
    bad = sorted({r["generator"] for r in rows if r["label"] == 0 and r["generator"] != "real"})
    if bad:
        raise DatasetError(f"{folder}: real rows named {bad[0]}: check the JSON labels.")
    notes.append(f"read {len(methods)} DF40 method file(s) of 71 (31 methods x 2 domains + 9)")
    return rows, notes


__all__ = ["DF40_METHODS", "build_df40", "df40_set"]
