"""Cache a split CSV's images, decoded and resized once, in one memory-mapped uint8 file; write a CSV pointing at it.

    python tools/cache.py splits.csv --size 224 --out /fast/disk/genface-224 [--root DIR] [--workers 16]
    python train.py --config cael --csv /fast/disk/genface-224/splits.csv ...

For large sets of large images (GenFace's are high-resolution) decoding dominates loading; the cache holds exactly
the pixels that decoding and resizing at load time gives (the same ``load_image``), so results do not change.
The new CSV keeps every column; ``path`` becomes ``images_<size>.u8#<index>`` and ``source_path`` keeps the original.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from common.atomic import atomic_output, write_text_atomic  # noqa: E402
from common.errors import UserError  # noqa: E402
from data.decoding import ImageDecodeError  # noqa: E402
from data.images import load_image  # noqa: E402
from data.loader import default_workers  # noqa: E402
from data.schema import load_table  # noqa: E402

CHUNK = 256


def _decode_chunk(task):
    paths, size = task
    images, errors = [], []
    for path in paths:
        try:
            images.append(load_image(path, size).permute(1, 2, 0).numpy())
        except ImageDecodeError as error:
            images.append(None)
            errors.append(str(error))
    return images, errors


def build_cache(csv_path, out_dir, *, size: int, root=None, workers=None, skip_bad: bool = False) -> Path:
    """Write ``out_dir/images_<size>.u8`` (+ ``.json``) and ``out_dir/<csv name>``; return the new CSV's path."""
    table = load_table(csv_path, root)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    container = out_dir / f"images_{size}.u8"
    paths = table.resolved_paths()
    array = np.lib.format.open_memmap(
        str(container) + ".tmp.npy", mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3)
    )
    tasks = [(paths[i : i + CHUNK], size) for i in range(0, len(paths), CHUNK)]
    kept = np.ones(len(paths), dtype=bool)
    all_errors = []
    workers = default_workers() + 1 if workers is None else workers
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for chunk_index, (images, errors) in enumerate(pool.map(_decode_chunk, tasks)):
            for offset, image in enumerate(images):
                row = chunk_index * CHUNK + offset
                if image is None:
                    kept[row] = False
                else:
                    array[row] = image
            all_errors += errors
    if all_errors and not skip_bad:
        Path(str(container) + ".tmp.npy").unlink()
        shown = "; ".join(all_errors[:5])
        raise UserError(
            f"{len(all_errors)} image(s) could not be decoded ({shown}): fix them, or pass --skip-bad to leave their "
            "rows out."
        )
    # Compact the kept rows into the final raw container (no header: memory-mapped by shape from the .json).
    rows = np.flatnonzero(kept)
    try:
        with atomic_output(container, "wb") as stream:
            for start in range(0, len(rows), CHUNK):
                stream.write(np.ascontiguousarray(array[rows[start : start + CHUNK]]).tobytes())
    finally:
        del array
        Path(str(container) + ".tmp.npy").unlink()
    write_text_atomic(
        out_dir / f"{container.name}.json",
        json.dumps({"count": int(len(rows)), "size": size, "source_csv": str(Path(csv_path).resolve())}) + "\n",
    )
    new_csv = out_dir / Path(csv_path).name
    columns = table.column_names
    with atomic_output(new_csv, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns + (["source_path"] if "source_path" not in columns else []))
        for index, row in enumerate(rows):
            values = [table.columns[c][row] for c in columns]
            values[columns.index("path")] = f"{container.name}#{index}"
            writer.writerow(values + ([paths[row]] if "source_path" not in columns else []))
    seconds = time.perf_counter() - started
    print(
        f"cached {len(rows)} images at {size}px in {container} ({container.stat().st_size / 1e9:.2f} GB, "
        f"{seconds:.0f}s); CSV: {new_csv}"
    )
    if all_errors:
        print(f"left out {len(all_errors)} unreadable image(s), e.g. {all_errors[0]}")
    return new_csv


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Cache resized images of a split CSV in one memory-mapped file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("csv")
    parser.add_argument("--size", type=int, required=True, help="the model's image-size")
    parser.add_argument("--out", required=True, help="folder for the cache and its CSV")
    parser.add_argument(
        "--data-root", "--root", dest="root", help="folder the CSV's paths are relative to (default: the CSV's folder)"
    )
    parser.add_argument("--workers", type=int, help="decoding processes (default: the cores)")
    parser.add_argument("--skip-bad", action="store_true", help="leave out rows whose image cannot be decoded")
    return parser


def main(argv=None) -> Path:
    args = get_args_parser().parse_args(argv)
    return build_cache(args.csv, args.out, size=args.size, root=args.root, workers=args.workers, skip_bad=args.skip_bad)


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
