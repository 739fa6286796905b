"""The demo's numbers, written to a committed result file that the docs quote (and a slow test re-checks).

    python benchmarks/demo_results.py [--out benchmarks/demo-cpu/results.json] [--no-onnx] [--threads 2]

Runs the README's demo as a user does, `python train.py` (synthetic data, `cael_demo`, seed 0) then
`python test.py` on that run, on the CPU, and optionally `python -m model.export RUN/best.pt OUT --onnx`; writes
the best validation AUC, the test AUC (with its bootstrap interval and the video AUC) and the ONNX parity into one
JSON file, atomically. The demo is deterministic on a CPU for a given number of threads (recorded in the file).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "demo-cpu" / "results.json"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the result file (JSON), written atomically")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and its parity check")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the numbers depend on it)")
    return parser


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout (an unpacked archive): the file says so
    return done.stdout.strip()


def run_demo(work: Path, *, onnx: bool = True) -> dict:
    """Train and test the demo inside ``work`` on the CPU; returns the numbers the docs quote."""
    import test as test_script
    import train as train_script

    run_dir = work / "demo-run"
    summary = train_script.main(["--out", str(run_dir), "--set", "train.device=cpu"])
    evaluation = test_script.main(
        ["--checkpoint", str(run_dir / "best.pt"), "--out", str(work / "eval"), "--device", "cpu", "--quiet"]
    )
    overall = evaluation["groups"]["overall"]["clean"]
    numbers = {
        "val_auc": summary["best_value"],
        "best_epoch": summary["best_epoch"],
        "test_auc_percent": 100 * overall["auc"],
        "test_auc_ci95_percent": [100 * bound for bound in overall["auc_ci95"]],
        "test_video_auc_percent": 100 * overall["video_auc"],
        "onnx_max_difference": None,
    }
    if onnx:
        from model.export import export_folder

        exported = export_folder(run_dir / "best.pt", work / "exported", onnx=True)
        numbers["onnx_max_difference"] = exported["onnx_max_difference"]
    return numbers


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    import torch

    from common.atomic import write_text_atomic

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="cael-demo-results-") as work:
        numbers = run_demo(Path(work), onnx=not args.no_onnx)
    result = {
        "what": "the README demo on the CPU: python train.py, then python test.py on that run",
        "written_by": "python benchmarks/demo_results.py",
        "config": "cael_demo",
        "seed": 0,
        **numbers,
        "torch": torch.__version__,
        "torch_threads": args.threads,
        "python": platform.python_version(),
        "commit": _git_commit(),
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
