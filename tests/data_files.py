"""Small files for the data-layer tests: split CSVs, text files and images, written under tmp_path."""

import csv

import numpy as np
from PIL import Image

COLUMNS = ["path", "label", "split", "forgery_type", "generator", "source_dataset", "video_id"]


def write_text(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_csv(path, rows, columns=COLUMNS):
    """Rows are dicts (missing keys written empty) or sequences in column order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns] if isinstance(row, dict) else row)
    return path


def write_image(path, value=0, size=(8, 8), fmt=None, **save_options):
    """An RGB image with a little structure (a ramp plus ``value``), so resizing and augmenting change it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    ramp = (np.arange(w * h * 3).reshape(h, w, 3) * 7 + value) % 256
    Image.fromarray(ramp.astype(np.uint8)).save(path, format=fmt, **save_options)
    return path
