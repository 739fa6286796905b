"""tools/: the image cache gives the same pixels as decoding at load time; the benchmark reports its numbers;
several processes (torchrun, CPU/gloo) score every validation row exactly once."""

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from csv_rows import write_rows

from common.atomic import DiskFullError
from common.errors import UserError
from data.decoding import ImageDecodeError
from data.images import load_image
from data.make_demo import make_demo
from data.schema import load_table
from tools import benchmark, cache

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("tools"), identities=4, fakes_per_generator=12)


def test_a_full_disk_while_caching_keeps_the_previous_cache_and_says_so(demo, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    args = [str(demo), "--size", "16", "--out", str(out), "--workers", "1"]
    cache.main(args)
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(DiskFullError, match="disk is full writing .*images_16.u8: the previous images_16.u8 is kept"):
        cache.main(args)
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no temporary file left either


def test_cache_holds_exactly_the_pixels_of_load_time_resizing(demo, tmp_path):
    cached_csv = cache.main([str(demo), "--size", "48", "--out", str(tmp_path / "cache"), "--workers", "1"])
    original, cached = load_table(demo), load_table(cached_csv)
    assert len(cached) == len(original) and cached.column("split") == original.column("split")
    assert cached.column("path")[3] == "images_48.u8#3"
    for row in range(0, len(original), 5):
        assert torch.equal(load_image(cached.resolve(row), 48), load_image(original.resolve(row), 48))
    with pytest.raises(ImageDecodeError, match="rebuild it with tools/cache.py --size 64"):
        load_image(cached.resolve(0), 64)


def test_cache_refuses_unreadable_images_unless_told_to_skip_them(demo, tmp_path):
    rows = list(csv.DictReader(open(demo)))
    (tmp_path / "bad.png").write_bytes(b"nope")
    rows[2] = {**rows[2], "path": str(tmp_path / "bad.png")}
    edited = write_rows(tmp_path / "edited.csv", rows)
    with pytest.raises(UserError, match="could not be decoded.*--skip-bad"):
        cache.main(
            [str(edited), "--size", "32", "--out", str(tmp_path / "c1"), "--root", str(demo.parent), "--workers", "1"]
        )
    cached_csv = cache.main(
        [
            str(edited),
            "--size",
            "32",
            "--out",
            str(tmp_path / "c2"),
            "--root",
            str(demo.parent),
            "--workers",
            "1",
            "--skip-bad",
        ]
    )
    assert len(load_table(cached_csv)) == len(rows) - 1


def test_benchmark_reports_model_only_and_end_to_end_numbers(demo, tmp_path):
    out = tmp_path / "bench.json"
    result = benchmark.main(
        [
            "--config",
            "cael_demo",
            "--batch",
            "4",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--channels-last",
            "--source",
            str(demo),
            "--workers",
            "0",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["model_only"]["images_per_s"] > 0 and saved["end_to_end"]["images_per_s"] > 0
    assert saved["end_to_end_fraction_of_model_only"] == pytest.approx(
        result["end_to_end"]["images_per_s"] / result["model_only"]["images_per_s"]
    )
    assert saved["mode"] == "train" and saved["channels_last"] is True and saved["parameters"] == result["parameters"]
    # cuDNN's switches as train.py sets them from the config (the demo's: autotuning off, cuDNN attention on)
    assert saved["cudnn_benchmark"] is False and saved["cudnn_attention"] is True
    # the command line a user types (it once shadowed its own measuring function and failed before measuring)
    done = subprocess.run(
        [
            sys.executable,
            "tools/benchmark.py",
            *("--config", "cael_demo", "--batch", "4", "--steps", "2", "--warmup", "1"),
            *("--mode", "infer", "--precision", "bf16", "--device", "cpu", "--out", str(tmp_path / "infer.json")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    inference = json.loads((tmp_path / "infer.json").read_text())
    assert inference["warmup_s"] and len(inference["warmup_s"]) == 1 and "compilation" not in inference
    assert inference["model_only"]["iterations"] == 2 and inference["precision"] == "bf16"


@pytest.mark.slow
def test_two_processes_score_every_validation_row_exactly_once(demo, tmp_path):
    run = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        str(ROOT / "train.py"),
        "--config",
        "cael_demo",
        "--csv",
        str(demo),
        "--out",
        str(run),
        "--set",
        "data.workers=0",
        "--set",
        "train.batch-size=4",
        "--set",
        "train.epochs=1",
        "--set",
        "train.max-steps-per-epoch=2",
    ]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    val_rows = [r for r in csv.DictReader(open(demo)) if r["split"] == "val"]
    assert record["val_n"] == len(val_rows)
    assert record["val_n_real"] == sum(r["label"] == "0" for r in val_rows)
