"""The throughput part of ``benchmarks/run_gpu.sh``: released hyper-parameters at 224 px, model alone and end to end.

    python benchmarks/gpu_suite.py OUT_DIR [--only NAME,NAME...] [--prepare] [--dry]

Runs ``tools/benchmark.py`` for each named setting (train and inference at batch 128/256, eager and compiled,
CUDA graphs for inference, end to end from 224 px JPEG face crops through the loader and through the image cache of
``tools/cache.py``); writes one JSON per setting, adds it to ``OUT_DIR/gpu-summary.json``, and profiles the
compiled training step. ``run_gpu.sh`` calls it for groups of settings, each group under its own time limit.
``--dry`` runs the same steps tiny on the CPU, to check the script before spending GPU time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def jpeg_demo(out: Path, size: int, repeat: int) -> Path:
    """The demo data re-encoded as ``size`` px JPEG face crops (quality 95), its rows listed ``repeat`` times so
    that the timed iterations stay inside one epoch (files repeat, so they sit in the page cache: the loader's
    decode, resize, augmentation and transfer are what is measured, not the disk). Reused when already there."""
    from PIL import Image

    from data.make_demo import make_demo

    if (out / "demo.csv").exists():
        return out / "demo.csv"
    source = ROOT / "data" / "demo_data"
    if not (source / "demo.csv").exists():
        make_demo(source)
    rows = list(csv.DictReader(open(source / "demo.csv")))
    for row in rows:
        target = out / row["path"].replace(".png", ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(source / row["path"]).convert("RGB").resize((size, size), Image.BICUBIC).save(target, quality=95)
        row["path"] = str(target.relative_to(out))
    partial = out / "demo.csv.partial"
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows * repeat)
    partial.replace(out / "demo.csv")
    return out / "demo.csv"


def prepare(dry: bool) -> tuple[Path, Path | None, str | None]:
    """The JPEG crops and their image cache under $TMPDIR (reused by later calls): (jpeg_csv, cache_csv, error)."""
    from tools import cache

    size, repeat = (64, 1) if dry else (224, 3)
    jpeg_csv = jpeg_demo(Path(os.environ.get("TMPDIR", "/tmp")) / f"demo-jpeg{size}x{repeat}", size, repeat)
    cache_dir = jpeg_csv.parent.parent / f"demo-cache{size}x{repeat}"
    done = cache_dir / "done.csv-path"
    if done.exists():
        return jpeg_csv, Path(done.read_text()), None
    try:
        cache_csv = cache.main([str(jpeg_csv), "--size", str(size), "--out", str(cache_dir)])
    except Exception:  # the throughput numbers still matter without the cache: the caller records why it failed
        return jpeg_csv, None, traceback.format_exc()[-3000:]
    done.write_text(str(cache_csv))
    return jpeg_csv, cache_csv, None


def settings(dry: bool, jpeg_csv: Path, cache_csv: Path | None) -> dict[str, list[str]]:
    """Every setting by name, in the order of their importance (run_gpu.sh picks groups of them by name)."""
    if dry:  # the same code paths, tiny, on the CPU; fp32: bf16 on a CPU without bf16 units is slow
        common = ["--config", "cael_demo", "--device", "cpu", "--channels-last"]
        warm, batch, small = ["--warmup", "1", "--steps", "2"], "8", ["--set", "model.image-size=64", "--workers", "0"]
        jpeg, cache, name = [*small, "--source", str(jpeg_csv)], [*small, "--source", str(cache_csv)], "fp32-cl-b8"
    else:  # released hyper-parameters at 224 px, bf16 autocast, channels-last
        common = ["--config", "cael_released", "--precision", "bf16", "--channels-last"]
        warm, batch, name = ["--warmup", "5", "--steps", "20"], "256", "bf16-cl-b256"
        jpeg, cache = ["--source", str(jpeg_csv), "--workers", "14"], ["--source", str(cache_csv), "--workers", "14"]
    compiled_warm = warm if dry else ["--warmup", "3", "--steps", "20"]

    def setting(mode: str, *extra: str, size: str = batch, warmup: list[str] = warm) -> list[str]:
        return [*common, *warmup, "--mode", mode, "--batch", size, *extra]

    runs = {
        f"train-{name}": setting("train"),
        f"infer-{name}": setting("infer"),
        f"train-{name}-e2e-jpeg": setting("train", *jpeg),
        f"infer-{name}-e2e-jpeg": setting("infer", *jpeg),
        f"train-{name}-compile": setting("train", "--compile", warmup=compiled_warm),
        f"infer-{name}-compile": setting("infer", "--compile", warmup=compiled_warm),
        f"infer-{name}-cudagraphs": setting("infer", "--compile", "reduce-overhead", warmup=compiled_warm),
        f"train-{name}-cudagraphs": setting("train", "--compile", "reduce-overhead", warmup=compiled_warm),
        # the first step's suspects (issue 33), the defaults (autotuning and cuDNN attention off) with one switched
        # back on, and channels-last off: warmup_s[0] is the first step (a fresh process for each: run_gpu.sh startup)
        f"train-{name}-bench": setting("train", "--cudnn-benchmark"),
        f"train-{name}-cudnnsdp": setting("train", "--cudnn-attention"),
        f"train-{name.replace('-cl', '')}": [x for x in setting("train") if x != "--channels-last"],
    }
    if not dry:
        runs["infer-bf16-cl-b128"] = setting("infer", size="128")
        runs["train-bf16-cl-b128"] = setting("train", size="128")
        runs["train-fp32-b32"] = ["--config", "cael_released", *warm, "--mode", "train", "--batch", "32"]
    if cache_csv is not None:
        runs[f"train-{name}-e2e-cache"] = setting("train", *cache)
    return runs


PROFILED = {"train-bf16-cl-b256-compile", "train-fp32-cl-b8-compile"}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--dry", action="store_true", help="tiny settings on the CPU (checks the script)")
    parser.add_argument("--only", help="comma-separated setting names to run, in this order (default: all)")
    parser.add_argument("--prepare", action="store_true", help="only make the JPEG crops and the cache, then stop")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    jpeg_csv, cache_csv, cache_error = prepare(args.dry)
    print(f"data ready in {time.perf_counter() - started:.0f}s: {jpeg_csv}, cache {cache_csv}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if cache_error:
        (out / "cache-error.txt").write_text(cache_error)
    if args.prepare:
        return {}
    import torch
    import torch._dynamo

    from tools import benchmark

    summary_path = out / "gpu-summary.json"  # each call adds its settings to what earlier calls wrote
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"results": {}, "errors": {}}
    summary.update(device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", torch=torch.__version__)
    every = settings(args.dry, jpeg_csv, cache_csv)
    names = args.only.split(",") if args.only else list(every)
    unknown = [name for name in names if name not in every]
    if unknown:
        raise SystemExit(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(every)}")
    for name in names:
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        extra = ["--profile", str(out / f"profile-{name}.txt")] if name in PROFILED else []
        began = time.perf_counter()
        try:
            result = benchmark.main([*every[name], *extra, "--out", str(out / f"gpu-{name}.json")])
        except Exception:  # one failing setting must not cost the others: its traceback is kept in the summary
            summary["errors"][name] = traceback.format_exc()[-3000:]
            print(f"{name}: FAILED\n{summary['errors'][name]}", flush=True)
            summary_path.write_text(json.dumps(summary, indent=2) + "\n")
            continue
        keep = ("model_only", "end_to_end", "end_to_end_fraction_of_model_only", "peak_device_memory_gb")
        summary["results"][name] = {
            **{k: result[k] for k in keep if k in result},
            **{k: result[k] for k in ("compilation", "profile") if k in result},
            "wall_s": time.perf_counter() - began,
        }
        summary["errors"].pop(name, None)
        line = f"{name}: {result['model_only']['images_per_s']:.0f} img/s model alone"
        if "end_to_end" in result:
            line += f", {result['end_to_end']['images_per_s']:.0f} img/s end to end"
        if "compilation" in result:
            compilation = result["compilation"]
            line += (
                f" (compiled in {compilation['first_iteration_s']:.0f}s, {compilation['graph_breaks']} graph breaks)"
            )
        print(line, flush=True)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
