"""Scale benchmark: wall time and peak memory of every command on a synthetic GenFace-shaped dataset of N rows.

    python benchmarks/scale.py --rows 10000 --out scale-10k.json            # every stage
    python benchmarks/scale.py --rows 1000000 --stages validate,train_start --out scale-1m.json
    python benchmarks/scale.py --rows 100000 --videos 10 --out scale-100k-videos.json   # 10 frames per video
    python benchmarks/scale.py --table scale-10k.json scale-100k.json scale-1m.json    # markdown for docs/scale.md

The dataset: N tiny images (``--image-size`` px PNG, a few distinct byte blobs written under N names) in a tree
``<forgery_type>/<generator>/<identity>/<row>.png`` (12 generators over EFS, AM and FS, about 20% reals under
``real/real/``), its split CSV (identities on one side of train/val/test) and a GenFace-like predictions.csv of
its test rows. Each stage runs the user's own command in a subprocess (imports and CSV reading count); a thread
samples the resident memory of the command's whole process tree (loader workers included) from /proc every 50 ms.
See docs/scale.md for what each stage runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.measure import MB, Measured, git_commit, machine, run_command, worker_memory_mb  # noqa: E402
from benchmarks.synthetic import (  # noqa: E402
    DEFAULT_GENERATORS,
    SPLIT_NAMES,
    TREE_PATTERN,
    Synthetic,
    generator_names,
    image_blobs,
    runs_columns,
    runs_folds,
    synthesise,
    write_csv,
    write_images,
)
from common.atomic import write_text_atomic  # noqa: E402

STAGES = (
    "validate",
    "validate-images",
    "build_index",
    "cache",
    "loader",
    "train_start",
    "test",
    "predictions",
    "runs",
    "runs_reporting",
    "predict",
)
TINY_CONFIG = "cael_demo"  # the demo's small CAEL (64 px): start-up and data costs dominate, as intended here
TINY_RUN = ["--set", "train.epochs=1", "--set", "train.max-steps-per-epoch=1", "--set", "train.log-every=1"]
FIRST_STEP_LINE = re.compile(r"epoch 1 step 1/")
RUNS_TRAIN_ROWS = 2400  # the fold runs train on a small CSV (their training is setup, not measured)
TINY_TRAIN_ROWS = 2400  # the checkpoint that test and predict use: rows spread over the whole dataset (setup)
PREDICT_MAX_CROPS = 10_000


def loader_epoch(csv_path: str, *, workers: int, image_size: int, batch_size: int) -> dict:
    """One training epoch of the loader, built as engine/training/data_setup.py's build_data builds it (intra, balanced,
    hflip): images/s and each worker's resident memory after the first batch and after the last."""
    from data.csv_dataset import SplitDataset
    from data.loader import build_loader
    from data.protocols import require, resolve
    from data.schema import load_table

    table = load_table(csv_path)
    train_rows = require(resolve("intra", table), "train", table)
    dataset = SplitDataset(table, train_rows, size=image_size, augment=[{"name": "hflip", "p": 0.5}])
    loader = build_loader(dataset, batch_size=batch_size, train=True, workers=workers, balanced=True)
    batches = iter(loader)
    started = time.perf_counter()
    next(batches)
    first_batch_s = time.perf_counter() - started
    at_start = worker_memory_mb(os.getpid())
    images = batch_size
    for batch in batches:
        images += len(batch["label"])
    seconds = time.perf_counter() - started
    at_end = worker_memory_mb(os.getpid())
    growth = {pid: round(at_end[pid] - at_start[pid], 1) for pid in at_start if pid in at_end}
    return {
        "workers": workers,
        "train_rows": int(len(train_rows)),
        "images": images,
        "image_size": image_size,
        "batch_size": batch_size,
        "first_batch_s": round(first_batch_s, 3),
        "images_per_s": round(images / seconds, 1) if seconds > 0 else None,
        "worker_rss_start_mb": list(at_start.values()),
        "worker_rss_end_mb": [at_end[pid] for pid in at_start if pid in at_end],
        "worker_rss_growth_mb": list(growth.values()),
        "max_worker_growth_mb": max(growth.values()) if growth else None,
    }


# ------------------------------------------------------------------------------------------------ the stages
@dataclass
class Bench:
    """What the stages share: the dataset, the work folder, the subprocess environment and the tiny run."""

    data: Synthetic
    workdir: Path
    environment: dict[str, str]
    timeout: float
    loader_workers: int
    image_size: int
    checkpoint: Path | None = None
    setup: dict = field(default_factory=dict)  # commands run only to prepare a stage (not its figures)

    def run(self, *arguments: str, stop_at: re.Pattern | None = None) -> Measured:
        return run_command(
            [sys.executable, *arguments], timeout=self.timeout, environment=self.environment, stop_at=stop_at
        )

    def train_command(self, csv_path: Path, out: Path, *extra: str) -> list[str]:
        return ["train.py", "--config", TINY_CONFIG, "--csv", str(csv_path), "--out", str(out), *TINY_RUN, *extra]

    def tiny_checkpoint(self) -> Path:
        """best.pt of a tiny intra run on TINY_TRAIN_ROWS rows spread over the dataset (setup: at a million rows, a
        run on the whole CSV would validate 100,000 images with the model before the stages that need it)."""
        if self.checkpoint is None:
            rows = np.unique(np.linspace(0, self.data.rows - 1, min(self.data.rows, TINY_TRAIN_ROWS)).astype(int))
            train_csv = self.data.root / "tiny-train.csv"  # beside the images: a CSV's paths are relative to its folder
            write_csv(train_csv, self.data.columns, rows)
            measured = self.run(*self.train_command(train_csv, self.workdir / "run-tiny"))
            self.setup["tiny_run"] = measured.record | {"rows": len(rows)}
            self.checkpoint = self.workdir / "run-tiny" / "best.pt"
        if not self.checkpoint.is_file():
            raise RuntimeError(f"the tiny training run wrote no {self.checkpoint}: see train_start / setup")
        return self.checkpoint


def stage_validate(bench: Bench) -> tuple[Measured, dict]:
    return bench.run("-m", "data.validate", str(bench.data.csv)), {"rows": bench.data.rows}


def stage_validate_images(bench: Bench) -> tuple[Measured, dict]:
    return bench.run("-m", "data.validate", str(bench.data.csv), "--check-images"), {"rows": bench.data.rows}


def stage_build_index(bench: Bench) -> tuple[Measured, dict]:
    out = bench.workdir / "index.csv"
    measured = bench.run(
        "-m",
        "data.build_index",
        str(bench.data.root),
        "--pattern",
        TREE_PATTERN,
        "--out",
        str(out),
        "--split-ratios",
        "0.8,0.1,0.1",
        "--group-by",
        "identity",
    )
    indexed = _count_rows(out)
    return measured, {"rows": bench.data.rows, "files": bench.data.rows, "indexed_rows": indexed}


def stage_cache(bench: Bench) -> tuple[Measured, dict]:
    out = bench.workdir / "cache"
    measured = bench.run(
        "tools/cache.py",
        str(bench.data.csv),
        "--size",
        str(bench.image_size),
        "--out",
        str(out),
        "--workers",
        str(bench.loader_workers),
    )
    container = out / f"images_{bench.image_size}.u8"
    size = container.stat().st_size if container.is_file() else None
    shutil.rmtree(out, ignore_errors=True)  # a million images at the model's size would not fit twice
    return measured, {"rows": bench.data.rows, "size": bench.image_size, "cache_mb": size and round(size / MB, 1)}


def stage_loader(bench: Bench) -> tuple[Measured, dict]:
    measured = bench.run(
        str(Path(__file__).resolve()),
        "--loader-epoch",
        str(bench.data.csv),
        "--loader-workers",
        str(bench.loader_workers),
        "--image-size",
        str(bench.image_size),
    )
    found = re.search(r"^LOADER (\{.*\})$", measured.text("stdout"), re.MULTILINE)
    extra = json.loads(found.group(1)) if found else {}
    return measured, {"rows": extra.get("train_rows", bench.data.count("train")), **extra}


def stage_train_start(bench: Bench) -> tuple[Measured, dict]:
    out = bench.workdir / "run-intra"
    # at a million rows the validation after the first step would score 100,000 images with the model: not what this
    # stage measures, so train.py is stopped (SIGTERM: it saves and exits) once its first step is logged
    measured = bench.run(*bench.train_command(bench.data.csv, out), stop_at=FIRST_STEP_LINE)
    first_step = measured.first(FIRST_STEP_LINE)
    data_ready = measured.first(re.compile(r"^data: "))
    if first_step is not None and measured.record.get("stopped_at_s") is not None:
        measured.record["exit_code_when_stopped"] = measured.record["exit_code"]
        measured.record["exit_code"] = 0  # it reached its first step, which is what this stage measures
    extra = {
        "rows": bench.data.rows,
        "first_step_s": round(first_step, 3) if first_step is not None else None,
        "data_ready_s": round(data_ready, 3) if data_ready is not None else None,
        "note": "first_step_s: start to the first step's line; wall_s: to the end of the step, when train.py was "
        "stopped",
    }
    return measured, extra


def stage_test(bench: Bench) -> tuple[Measured, dict]:
    out = bench.workdir / "test-intra"
    checkpoint = str(bench.tiny_checkpoint())
    measured = bench.run(
        "test.py", "--checkpoint", checkpoint, "--csv", str(bench.data.csv), "--out", str(out), "--quiet"
    )
    extra = {"rows": bench.data.count("test")}
    predictions = out / "predictions.csv"
    if measured.record["exit_code"] == 0 and predictions.is_file():
        reporting = bench.run("test.py", "--predictions", str(predictions), "--protocol", "intra")
        extra["reporting"] = reporting.record
        if reporting.record["exit_code"] == 0:
            extra["reporting_s"] = reporting.record["wall_s"]
            extra["scoring_s"] = round(measured.record["wall_s"] - reporting.record["wall_s"], 3)
        extra["note"] = "reporting_s: test.py --predictions on this run's predictions.csv; scoring_s: the rest"
    return measured, extra


def stage_predictions(bench: Bench) -> tuple[Measured, dict]:
    measured = bench.run(
        "test.py",
        "--predictions",
        str(bench.data.predictions),
        "--protocol",
        "intra",
        "--out",
        str(bench.workdir / "predictions-intra"),
    )
    return measured, {"rows": bench.data.count("test")}


@dataclass
class FoldRuns:
    """The six cross-generator fold runs and the ``test.py --runs`` command line over them."""

    runs: Path
    csv: Path
    test_rows: int
    command: list[str]


def fold_runs(bench: Bench, out_name: str) -> FoldRuns:
    """Train the six fold runs once (tiny runs on the first rows: setup, not measured) and test on N/5 rows."""
    columns = runs_columns(bench.data.columns, seed=1)
    runs = bench.workdir / "runs-xgen"
    runs_csv = bench.data.root / "runs.csv"  # beside the images: a CSV's paths are relative to its folder
    if "runs_training" not in bench.setup:
        write_csv(runs_csv, columns)
        train_csv = bench.data.root / "runs-train.csv"
        write_csv(train_csv, columns, np.arange(min(bench.data.rows, RUNS_TRAIN_ROWS)))
        setup = bench.setup.setdefault("runs_training", [])
        for fold in runs_folds(bench.data.generators):
            command = bench.train_command(train_csv, runs / fold, "--protocol", "cross-generator", "--fold", fold)
            setup.append(bench.run(*command).record)
    test_rows = int(np.count_nonzero(columns["split"] == "test"))
    command = ["test.py", "--runs", str(runs), "--protocol", "cross-generator", "--csv", str(runs_csv)]
    command += ["--out", str(bench.workdir / out_name), "--quiet"]
    return FoldRuns(runs, runs_csv, test_rows, command)


def stage_runs(bench: Bench) -> tuple[Measured, dict]:
    """test.py --runs over six cross-generator folds, twice: the first run scores every fold's checkpoint on its test
    rows, the second rereads those scores (scores.npz); the folds' tiny training is setup."""
    folds = fold_runs(bench, "runs-eval")
    command, test_rows = folds.command, folds.test_rows
    measured = bench.run(*command)
    extra = {
        "rows": test_rows * len(runs_folds(bench.data.generators)),
        "folds": len(runs_folds(bench.data.generators)),
        "test_rows_per_fold": test_rows,
    }
    if measured.record["exit_code"] == 0:
        # the same command again: every fold's scores.npz matches, so this is the matrix without the model
        reporting = bench.run(*command)
        extra["reporting"] = reporting.record
        if reporting.record["exit_code"] == 0:
            extra["reporting_s"] = reporting.record["wall_s"]
            extra["scoring_s"] = round(measured.record["wall_s"] - reporting.record["wall_s"], 3)
        extra["note"] = (
            "wall_s: the first run (every fold's checkpoint scores its test rows, then the matrix); reporting_s: the "
            "same command again, which rereads each fold's scores.npz (no model); scoring_s: the difference"
        )
    return measured, extra


def stage_runs_reporting(bench: Bench) -> tuple[Measured, dict]:
    """test.py --runs over the six folds where every fold's scores.npz is already there (written in setup from
    synthetic scores, under the key test.py computes): the matrix at any size without the model's scoring."""
    import test as test_script
    from engine.evaluation.evaluate import plan_evaluation
    from engine.evaluation.score_cache import save_scores

    folds = fold_runs(bench, "runs-reporting")
    started = time.perf_counter()
    arguments = test_script.get_args_parser().parse_args(folds.command[1:])
    overrides = test_script._overrides(arguments)
    rng = np.random.default_rng(2)
    for fold in runs_folds(bench.data.generators):
        plan = plan_evaluation(folds.runs / fold / "best.pt", overrides, Path(arguments.out) / fold, [])
        labels = plan.table.labels
        scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0.0, 1.0)  # separable, not perfectly: AUC about 0.86
        status = np.where(np.isin(np.arange(len(labels)), plan.to_score), "scored", "").astype(object)
        save_scores(plan.out_dir, plan.key, plan.to_score, {"clean": scores}, {}, status)
    bench.setup["runs_reporting_scores_s"] = round(time.perf_counter() - started, 3)
    measured = bench.run(*folds.command)
    reused = [
        json.loads(path.read_text()).get("scores_reused") for path in sorted(Path(arguments.out).glob("*/metrics.json"))
    ]
    extra = {
        "rows": folds.test_rows * len(runs_folds(bench.data.generators)),
        "folds": len(runs_folds(bench.data.generators)),
        "test_rows_per_fold": folds.test_rows,
        "folds_with_reused_scores": sum(bool(r) for r in reused),
        "note": "each fold's scores.npz written in setup (synthetic scores): wall_s is the matrix without the model",
    }
    return measured, extra


def stage_predict(bench: Bench) -> tuple[Measured, dict]:
    crops = min(bench.data.rows, PREDICT_MAX_CROPS)
    folder = bench.workdir / "crops"
    names = np.char.add(np.arange(crops).astype(str), ".png")
    write_images(folder, names, bench.data.columns["label"][:crops], image_blobs(bench.image_size, "PNG", 1))
    measured = bench.run(
        "predict.py",
        "--checkpoint",
        str(bench.tiny_checkpoint()),
        str(folder),
        "--no-detect",
        "--out",
        str(bench.workdir / "predict-out"),
        "--quiet",
    )
    return measured, {"rows": crops, "crops": crops}


def _count_rows(csv_path: Path) -> int | None:
    if not csv_path.is_file():
        return None
    with open(csv_path, "rb") as handle:
        return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1)


STAGE_FUNCTIONS: dict[str, Callable[[Bench], tuple[Measured, dict]]] = {
    "validate": stage_validate,
    "validate-images": stage_validate_images,
    "build_index": stage_build_index,
    "cache": stage_cache,
    "loader": stage_loader,
    "train_start": stage_train_start,
    "test": stage_test,
    "predictions": stage_predictions,
    "runs": stage_runs,
    "runs_reporting": stage_runs_reporting,
    "predict": stage_predict,
}


# Stages whose command can run again on the same files with the same result (the others train, or time a first run)
REPEATABLE = ("validate", "validate-images", "build_index", "cache", "predictions", "runs_reporting")


def run_stage(name: str, bench: Bench, repeat: int = 1) -> dict:
    """One stage's record; a stage that fails (or whose setup fails) is recorded and the benchmark goes on.

    A repeatable stage runs ``repeat`` times: its record is the run of median wall time, with every run's wall time
    and peak memory beside it (file-system stages vary from run to run with what the kernel's caches hold)."""
    records = []
    for attempt in range(repeat if name in REPEATABLE else 1):
        print(f"[scale] {name} ..." + (f" (run {attempt + 1} of {repeat})" if repeat > 1 else ""), file=sys.stderr)
        try:
            measured, extra = STAGE_FUNCTIONS[name](bench)
        except Exception as error:  # noqa: BLE001 (the benchmark reports a broken stage and measures the others)
            return {"exit_code": None, "error": f"{type(error).__name__}: {error}"}
        record = {"rows": extra.pop("rows"), **measured.record, **extra}
        print(
            f"[scale] {name}: {record['wall_s']:.1f} s, {record['peak_rss_mb']:.0f} MB, exit {record['exit_code']}",
            file=sys.stderr,
            flush=True,
        )
        records.append(record)
        if record["exit_code"] != 0:
            break
    if len(records) == 1:
        return records[0]
    by_time = sorted(records, key=lambda r: r["wall_s"])
    median = by_time[(len(by_time) - 1) // 2]  # the lower median: a run that happened, not an average of two
    return {
        **(median if records[-1]["exit_code"] == 0 else records[-1]),  # a failed run is the stage's result
        "runs_wall_s": [r["wall_s"] for r in records],
        "runs_peak_rss_mb": [r["peak_rss_mb"] for r in records],
        "repeat_note": f"wall_s and the rest: the run of median wall time of {len(records)} runs in a row",
    }


# Rows of the table beside each stage's wall time / peak memory: (stage, figure, row name, unit, has a time ratio).
TABLE_FIGURES = (
    ("train_start", "first_step_s", "train_start: to the first step", "s", True),
    ("test", "scoring_s", "test: scoring", "s", True),
    ("test", "reporting_s", "test: reporting", "s", True),
    ("loader", "images_per_s", "loader: images/s", "", False),
    ("loader", "max_worker_growth_mb", "loader: worker growth over the epoch", "MB", False),
)


def render_table(results: list[dict]) -> str:
    """Markdown: one row per stage (and per figure of TABLE_FIGURES), one column per N, and the 100k -> 1M time
    ratio."""
    results = sorted(results, key=lambda r: r["rows"])
    sizes = [r["rows"] for r in results]
    by_size = {r["rows"]: r["stages"] for r in results}
    has_ratio = 100_000 in by_size and 1_000_000 in by_size
    header = ["stage", *[f"{size:,} rows" for size in sizes]] + (["1M / 100k time"] if has_ratio else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    present = [s for s in STAGES if any(s in r["stages"] for r in results)]
    rows = []
    for stage in present:
        rows.append((stage, "wall_s", stage, None, True))
        rows += [figure for figure in TABLE_FIGURES if figure[0] == stage]
    for stage, key, name, unit, ratio in rows:
        records = [by_size[size].get(stage) for size in sizes]
        cells = [name] + [_cell(record, key, unit) for record in records]
        if has_ratio:
            cells.append(_ratio(by_size[100_000].get(stage), by_size[1_000_000].get(stage), key) if ratio else "")
        lines.append("| " + " | ".join(cells) + " |")
    notes = "; ".join(f"{r['rows']:,} rows: {r['machine']['cpu']}, {r['date']}, {r['git_commit']}" for r in results)
    return "\n".join(lines) + f"\n\nStage rows: wall seconds / peak MB of the process tree. {notes}.\n"


def _cell(record: dict | None, key: str, unit: str | None) -> str:
    if record is None:
        return ""
    if record.get("exit_code") != 0:
        return f"failed (exit {record.get('exit_code')})"
    if unit is None:
        runs = record.get("runs_wall_s")
        spread = f" (median of {len(runs)}: {min(runs):.1f}-{max(runs):.1f} s)" if runs else ""
        return f"{record['wall_s']:.1f} s / {record['peak_rss_mb']:.0f} MB{spread}"
    value = record.get(key)
    return "" if value is None else f"{value:.1f}" + (f" {unit}" if unit else "")


def _ratio(small: dict | None, large: dict | None, key: str) -> str:
    values = [record.get(key) if record and record.get("exit_code") == 0 else None for record in (small, large)]
    if None in values or not values[0]:
        return ""
    ratio = values[1] / values[0]
    return f"{ratio:.1f}" + ("" if ratio < 12 else " (not linear)")


# ------------------------------------------------------------------------------------------------ the command
def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time and memory of every command on a synthetic GenFace-shaped dataset of N rows.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--rows", type=int, help="rows (images) of the synthetic dataset")
    parser.add_argument("--out", help="JSON to write (atomically); default: print it")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of: {', '.join(STAGES)}")
    parser.add_argument("--workdir", help="folder for the dataset and the runs (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (default: removed at the end)")
    parser.add_argument("--image-size", type=int, default=16, help="side of the synthetic images in px (default 16)")
    parser.add_argument("--image-format", choices=["PNG", "JPEG"], default="PNG")
    parser.add_argument("--videos", type=int, default=0, metavar="K", help="add video_id: K frames per video")
    parser.add_argument(
        "--generators",
        type=int,
        default=DEFAULT_GENERATORS,
        metavar="K",
        help=f"generators over the three forgery types (default {DEFAULT_GENERATORS}, GenFace's; more: a table of "
        "many groups)",
    )
    parser.add_argument("--loader-workers", type=int, default=2, help="loader / cache processes (default 2)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command before it is killed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help=f"run each of {', '.join(REPEATABLE)} K times in a row and keep the median run (default 1)",
    )
    parser.add_argument("--table", nargs="+", metavar="JSON", help="render these results as one markdown table")
    parser.add_argument("--loader-epoch", metavar="CSV", help=argparse.SUPPRESS)  # the loader stage's own process
    return parser


def benchmark(args) -> dict:
    unknown = [s for s in args.stages.split(",") if s and s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}: choose from {', '.join(STAGES)}.")
    chosen = [s for s in STAGES if s in args.stages.split(",")]
    generators = generator_names(args.generators)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cael-scale-"))
    if (workdir / "genface").is_dir() and any((workdir / "genface").iterdir()):
        # files of an earlier run would be indexed beside the new ones, and rewriting a million files in place is
        # slow (the file system flushes each truncated file); the folder is left as it is
        raise SystemExit(f"--workdir {workdir} already holds a dataset (genface/): give a new or empty folder.")
    workdir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    commit = git_commit()  # the code measured, before anything could change it
    try:
        data = synthesise(
            workdir,
            args.rows,
            image_size=args.image_size,
            image_format=args.image_format,
            frames_per_video=args.videos,
            seed=args.seed,
            generators=generators,
        )
        print(f"[scale] {args.rows} rows synthesised in {data.seconds:.1f} s under {workdir}", file=sys.stderr)
        bench = Bench(data, workdir, environment, args.timeout, args.loader_workers, args.image_size)
        stages = {name: run_stage(name, bench, args.repeat) for name in chosen}
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "benchmark": "scale",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit,
        "machine": machine(),
        "rows": args.rows,
        "repeat": args.repeat,
        "image_size": args.image_size,
        "image_format": args.image_format,
        "frames_per_video": args.videos or None,
        "dataset": {
            "splits": {split: data.count(split) for split in SPLIT_NAMES},
            "generators": sum(len(names) for names in data.generators.values()),
            "image_mb": round(data.bytes_on_disk / MB, 1),
            "synthesis_s": round(data.seconds, 2),
            "workdir": str(workdir) if args.keep else None,
        },
        "stages": stages,
        "setup": bench.setup,
    }


def _stop(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    if args.loader_epoch:
        figures = loader_epoch(
            args.loader_epoch, workers=args.loader_workers, image_size=args.image_size, batch_size=64
        )
        print("LOADER " + json.dumps(figures), flush=True)
        return 0
    if args.table:
        missing = [path for path in args.table if not Path(path).is_file()]
        if missing:
            raise SystemExit(f"--table: {missing[0]} does not exist: give JSON files written by this benchmark.")
        text = render_table([json.loads(Path(path).read_text()) for path in args.table])
        write_text_atomic(args.out, text) if args.out else print(text, end="")
        return 0
    if not args.rows or args.rows < 1:
        raise SystemExit("give --rows N (the synthetic dataset's size), or --table JSON... to render results.")
    if args.repeat < 1:
        raise SystemExit(f"--repeat {args.repeat}: give 1 or more runs per stage.")
    result = benchmark(args)
    text = json.dumps(result, indent=2) + "\n"
    write_text_atomic(args.out, text) if args.out else print(text, end="")
    failed = [name for name, record in result["stages"].items() if record.get("exit_code") != 0]
    if failed:
        print(f"[scale] failed: {', '.join(failed)} (see their stderr_tail in the JSON)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
