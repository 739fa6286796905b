"""What predict.py costs beside the model, as the inputs grow: listing a folder of N files, then summarising and
writing the outputs of N scored inputs (inputs.csv, frames.csv, faces.csv, predictions.json, and the progress journal
that lets a stopped run continue) and the console table.

    python benchmarks/predict_outputs.py --inputs 100000 --out predict-outputs-100k.json
    python benchmarks/predict_outputs.py --inputs 1000000 --frames 1 --out predict-outputs-1m.json
    python benchmarks/predict_outputs.py --inputs 10000 --frames 32 --out predict-outputs-10k-videos.json

The model is left out on purpose (the scale benchmark's ``predict`` stage measures it): each input gets ``--frames``
frames of one face with a seeded random score, fed through ``engine.inference.summaries.iter_summaries``,
``PredictionWriter`` and ``ProgressJournal`` exactly as ``predict.py`` feeds the scored faces. ``peak_rss_mb`` is the
process's resident peak after each phase (``getrusage``), ``baseline_rss_mb`` the peak after the imports (torch among
them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.measure import MB, git_commit, machine  # noqa: E402
from common.atomic import write_text_atomic  # noqa: E402
from engine.inference.forward import FaceResult  # noqa: E402
from engine.inference.inputs import FaceCrop, collect_inputs  # noqa: E402
from engine.inference.outputs import PredictionWriter, ProgressJournal, console_summary  # noqa: E402
from engine.inference.summaries import iter_summaries  # noqa: E402

FILES_PER_FOLDER = 1000


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kB


def write_tree(root: Path, count: int) -> None:
    """``count`` empty .png files, ``FILES_PER_FOLDER`` a folder (listing reads names, not pixels)."""
    for start in range(0, count, FILES_PER_FOLDER):
        folder = root / f"f{start // FILES_PER_FOLDER:05d}"
        folder.mkdir(parents=True)
        for i in range(start, min(count, start + FILES_PER_FOLDER)):
            (folder / f"{i:07d}.png").touch()


def scored_faces(count: int, frames: int, seed: int):
    """FaceResults as score_crops yields them: input by input, ``frames`` frames of one face each."""
    rng = np.random.default_rng(seed)
    empty = torch.zeros(0, dtype=torch.uint8)
    for index in range(count):
        for frame, score in enumerate(rng.random(frames)):
            yield FaceResult(FaceCrop(index, frame, 0, (0.0, 0.0, 1.0, 1.0), 0.99, empty), float(score), {})


def measure(inputs: int, frames: int, seed: int, workdir: Path) -> dict:
    result = {"inputs": inputs, "frames_per_input": frames, "baseline_rss_mb": peak_rss_mb()}
    tree = workdir / "inputs"
    started = time.perf_counter()
    write_tree(tree, inputs)
    result["tree_written_s"] = round(time.perf_counter() - started, 2)
    os.sync()

    started = time.perf_counter()
    items = collect_inputs([tree])
    result["collect_inputs"] = {"wall_s": round(time.perf_counter() - started, 2), "peak_rss_mb": peak_rss_mb()}
    if len(items) != inputs:
        raise SystemExit(f"collect_inputs found {len(items)} inputs under {tree}, not {inputs}")

    out = workdir / "out"
    started = time.perf_counter()
    journal = ProgressJournal(out, {"benchmark": "predict_outputs"})
    with journal, PredictionWriter(out) as writer:
        for entry in iter_summaries(items, scored_faces(inputs, frames, seed), threshold=0.5, class_names={}):
            journal.append(entry)
            writer.add(entry)
        paths = writer.finish({"benchmark": "predict_outputs", "inputs": inputs})
    journal_mb = round(journal.path.stat().st_size / MB, 1)
    journal.remove()
    result["summarise_and_write"] = {
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": peak_rss_mb(),
        "files_mb": {name: round(path.stat().st_size / MB, 1) for name, path in paths.items()}
        | {"progress_journal": journal_mb},
    }
    started = time.perf_counter()
    text = console_summary(writer.tally, 0.5)
    result["console"] = {"wall_s": round(time.perf_counter() - started, 3), "lines": len(text.splitlines())}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="image files listed and inputs written")
    parser.add_argument("--frames", type=int, default=1, help="frames (one face each) per input: 1 for images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="folder for the files (default: a new one under /tmp, removed at the end)")
    parser.add_argument("--out", help="JSON to write (atomically); default: print it")
    args = parser.parse_args(argv)
    if args.inputs < 1 or args.frames < 1:
        raise SystemExit("--inputs and --frames must be at least 1.")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cael-predict-outputs-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"--workdir {workdir} is not empty: give a new or empty folder.")
    commit = git_commit()
    try:
        measured = measure(args.inputs, args.frames, args.seed, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record = {
        "benchmark": "predict_outputs",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit,
        "machine": machine(),
        **measured,
    }
    text = json.dumps(record, indent=2) + "\n"
    if args.out:
        write_text_atomic(args.out, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
