"""What ``test.py --compare`` costs as the test rows grow: two detectors' predictions.csv files of N rows each (a
GenFace-shaped test split: 12 generators over three forgery types and reals, frames in videos), compared with the
command a user runs, in a subprocess whose whole process tree is measured (wall time, peak memory).

    python benchmarks/compare_scale.py --rows 1000000 --out compare-1m.json
    python benchmarks/compare_scale.py --rows 100000 --interval bootstrap --out compare-100k-bootstrap.json

The two files hold the same rows in different orders (the rows are matched by key), 0.1% of them unscored with a
status; detector A separates the classes a little better than B, and both share a per-video effect (correlated
scores), so each group's test has something to find.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.measure import git_commit, machine, run_command  # noqa: E402
from benchmarks.synthetic import GENERATORS  # noqa: E402
from common.atomic import write_text_atomic  # noqa: E402

FRAMES_PER_VIDEO = 8
COLUMNS = ["path", "label", "score", "status", "split", "forgery_type", "generator", "source_dataset", "video_id"]


def write_predictions(path: Path, rows: int, *, strength: float, seed: int, order_seed: int) -> None:
    """``rows`` test rows of one detector: about 20% reals, the rest spread over GENERATORS' 12 generators, videos of
    FRAMES_PER_VIDEO frames sharing an effect; written in an order of their own."""
    rng = np.random.default_rng(0)  # the rows themselves: the same in every file
    videos = -(-rows // FRAMES_PER_VIDEO)
    names = [(kind, g) for kind, generators in GENERATORS.items() for g in generators]
    video_kind = rng.integers(-2, len(names), videos)  # negative: real (about 1 in 7 videos; frames weigh the same)
    video_effect = rng.normal(0, 0.7, videos)
    video = np.arange(rows) // FRAMES_PER_VIDEO
    label = (video_kind[video] >= 0).astype(int)
    noise = np.random.default_rng(seed).normal(0, 1.0, rows)
    z = strength * label + video_effect[video] + noise
    score = 1 / (1 + np.exp(-z))
    unscored = np.random.default_rng(seed + 1).random(rows) < 0.001
    order = np.random.default_rng(order_seed).permutation(rows)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in order.tolist():
            kind = video_kind[video[i]]
            forgery, generator = ("real", "real") if kind < 0 else names[kind]
            writer.writerow(
                [
                    f"{generator}/v{video[i]:07d}/{i % FRAMES_PER_VIDEO}.png",
                    label[i],
                    "" if unscored[i] else f"{score[i]:.6f}",
                    "missing-file" if unscored[i] else "scored",
                    "test",
                    forgery,
                    generator,
                    "genface",
                    f"v{video[i]:07d}",
                ]
            )


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="test rows in each predictions.csv")
    parser.add_argument("--interval", default="auto", choices=["auto", "delong", "bootstrap"])
    parser.add_argument("--work", help="folder for the files (default: a temporary one, removed)")
    parser.add_argument("--out", required=True, help="the JSON record")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="compare-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    a, b = work / "a" / "predictions.csv", work / "b" / "predictions.csv"
    for path, strength, seed, order in ((a, 1.6, 1, 2), (b, 1.4, 3, 4)):
        path.parent.mkdir(exist_ok=True)
        write_predictions(path, args.rows, strength=strength, seed=seed, order_seed=order)
    made = time.perf_counter() - started
    command = [sys.executable, "test.py", "--compare", f"A={a}", f"B={b}", "--protocol", "intra"]
    command += ["--interval", args.interval, "--out", str(work / "compare")]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    measured = run_command(command, timeout=3600, environment=environment)
    result = json.loads((work / "compare" / "compare.json").read_text()) if measured.record["exit_code"] == 0 else {}
    record = {
        "benchmark": "compare_scale",
        "rows": args.rows,
        "interval": args.interval,
        "files_made_s": round(made, 1),
        **measured.record,
        "tests": result.get("tests"),
        "compared_rows": (result.get("rows") or {}).get("compared"),
        "methods": sorted(
            {
                e["method"]
                for g in result.get("groups", {}).values()
                for s in g.values()
                for e in s["seeds"]
                if "method" in e
            }
        ),
        "commit": git_commit(),
        "machine": machine(),
    }
    write_text_atomic(Path(args.out), json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("rows", "wall_s", "peak_rss_mb", "exit_code", "tests")}))
    if not args.work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if measured.record["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
