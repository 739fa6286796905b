"""The GPU's start-up, measured as a user meets it (issue "CUDA, third round"): ``python train.py`` (the demo, data
creation included) from a fresh process, how long its first step takes, whether any later step or validation is
slow, and what each suspect of the first-step stall costs, one switched off at a time.

    python benchmarks/gpu_startup.py OUT_DIR [--dry]

- ``demo``: ``python train.py --out RUN --set train.log-every=1`` after removing the demo data (so its creation
  counts), wall time from the process start; "first step after X s" from its log; every step's images/s from its
  progress lines, and each epoch's training and validation seconds from metrics.jsonl.
- ``variants``: a short run (one epoch, 20 steps) of the demo config as it is and with one suspect of the
  first-step stall switched back on or off: cuDNN's autotuning on (``train.cudnn-benchmark=true``, the default until
  this was measured), channels-last on (``train.channels-last=true``), cuDNN attention off
  (``train.cudnn-attention=false``), and CUDA's lazy module loading off (``CUDA_MODULE_LOADING=EAGER``: every kernel
  loaded at start, the first step then pays none). Each variant's first step, beside the as-is one, says what that
  switch costs.
- ``startup.json`` holds all of it; ``--dry`` runs it tiny on the CPU (to check the script, not to measure).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST_STEP = re.compile(r"first step after ([0-9.]+) s .*first batch ready after ([0-9.]+) s")
STEP_LINE = re.compile(r"epoch (\d+) step (\d+)/(\d+): .* ([0-9.]+) img/s")
GLOBAL_BATCH = re.compile(r"global batch (\d+)")
VARIANTS = {
    "as-is": ([], {}),
    "cudnn-benchmark": (["--set", "train.cudnn-benchmark=true"], {}),
    "channels-last": (["--set", "train.channels-last=true"], {}),
    "no-cudnn-attention": (["--set", "train.cudnn-attention=false"], {}),
    "eager-module-loading": ([], {"CUDA_MODULE_LOADING": "EAGER"}),
}


def run(command: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run a command in the repository, its output into ``log``; wall seconds and exit code."""
    started = time.perf_counter()
    with open(log, "w") as handle:
        try:
            code = subprocess.run(
                command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout, env=env
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    return {"command": " ".join(command), "wall_s": round(time.perf_counter() - started, 2), "exit_code": code}


def read_log(log: Path, run_dir: Path) -> dict:
    """First step, every step's images/s, each epoch's seconds, from a train.py log and its run folder."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    found = FIRST_STEP.search(text)
    steps = [(int(e), int(s), float(rate)) for e, s, _, rate in STEP_LINE.findall(text)]
    records = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    result = {
        "first_step_s": float(found.group(1)) if found else None,
        "first_batch_s": float(found.group(2)) if found else None,
        "epochs": [
            {k: r.get(k) for k in ("epoch", "epoch_seconds", "val_seconds", "train_images_per_s", "val_auc")}
            for r in records
        ],
    }
    later = [rate for epoch, step, rate in steps if (epoch, step) != (1, 1) and rate > 0]
    batch = GLOBAL_BATCH.search(text)
    if later and batch:  # a step's seconds from its images/s: the slowest later step against the median one
        seconds = [int(batch.group(1)) / rate for rate in later]
        result["median_step_s"] = round(statistics.median(seconds), 4)
        result["slowest_later_step_s"] = round(max(seconds), 4)
        result["slowest_over_median"] = round(max(seconds) / statistics.median(seconds), 2)
    return result


def write(out: Path, result: dict) -> None:
    """startup.json, replaced whole (a reader never sees half of it)."""
    partial = out / "startup.json.partial"
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.replace(out / "startup.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="output folder")
    parser.add_argument("--dry", action="store_true", help="tiny, on the CPU: checks the script")
    parser.add_argument("--only", help="comma-separated: demo, variants (default both)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    short = ["--set", "train.epochs=1", "--set", "train.max-steps-per-epoch=" + ("2" if args.dry else "20")]
    tiny = ["--set", "train.epochs=1", "--set", "train.max-steps-per-epoch=2"] if args.dry else []
    result: dict = {"dry": args.dry, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    wanted = set((args.only or "demo,variants").split(","))
    if "demo" in wanted:
        demo_data = ROOT / "data" / "demo_data"
        if not args.dry:  # a user's first run creates the data: it counts
            shutil.rmtree(demo_data, ignore_errors=True)
        run_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "startup-demo"
        shutil.rmtree(run_dir, ignore_errors=True)
        command = [python, "train.py", "--out", str(run_dir), "--set", "train.log-every=1", *tiny]
        measured = run(command, out / "startup-demo.log", timeout=600 if args.dry else 170)
        result["demo"] = {**measured, **read_log(out / "startup-demo.log", run_dir)}
        write(out, result)  # as it goes: a run cut short keeps what it measured
    if "variants" in wanted:
        result["variants"] = {}
        for name, (options, env) in VARIANTS.items():
            run_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"startup-{name}"
            shutil.rmtree(run_dir, ignore_errors=True)
            command = [python, "train.py", "--out", str(run_dir), "--set", "train.log-every=1", *short, *options]
            log = out / f"startup-{name}.log"
            measured = run(command, log, timeout=300 if args.dry else 75, env={**os.environ, **env})
            result["variants"][name] = {**measured, **read_log(log, run_dir)}
            print(f"{name}: first step after {result['variants'][name]['first_step_s']} s", flush=True)
            write(out, result)
    demo = result.get("demo") or {}
    if demo:
        print(f"demo: {demo['wall_s']} s wall, first step after {demo.get('first_step_s')} s, exit {demo['exit_code']}")
    failed = [r for r in [demo, *(result.get("variants") or {}).values()] if r and r.get("exit_code") != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
