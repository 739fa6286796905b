"""The throughput part of ``benchmarks/run_gpu.sh``: released hyper-parameters at 224 px, model alone and end to end.

    python benchmarks/gpu_suite.py OUT_DIR [--dry]

Runs ``tools/benchmark.py`` in one process for each setting (train and inference, batch sizes up to 256, eager and
compiled, CUDA graphs for inference) and end to end from 224 px JPEG face crops through the loader and through
the image cache (``tools/cache.py``); writes one JSON per setting plus ``gpu-summary.json`` and a profile of the
training step. ``--dry`` runs the same steps tiny on the CPU, to check the script before spending GPU time.
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


def jpeg_demo(out: Path, size: int) -> Path:
    """The demo data re-encoded as ``size`` px JPEG face crops (quality 95), with its CSV."""
    from PIL import Image

    from data.make_demo import make_demo

    source = ROOT / "data" / "demo_data"
    if not (source / "demo.csv").exists():
        make_demo(source)
    rows = list(csv.DictReader(open(source / "demo.csv")))
    for row in rows:
        target = out / row["path"].replace(".png", ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(source / row["path"]).convert("RGB").resize((size, size), Image.BICUBIC).save(target, quality=95)
        row["path"] = str(target.relative_to(out))
    with open(out / "demo.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out / "demo.csv"


def settings(dry: bool, jpeg_csv: Path, cache_csv: Path | None) -> list[tuple[str, list[str]]]:
    if dry:  # the same code paths, tiny, on the CPU
        base = ["--config", "cael_demo", "--warmup", "1", "--steps", "2", "--device", "cpu"]
        return [
            ("train-fp32-b8", [*base, "--mode", "train", "--batch", "8"]),
            (
                "train-bf16-cl-b8-compile",
                [*base, "--mode", "train", "--batch", "8", "--precision", "bf16", "--channels-last", "--compile"],
            ),
            ("infer-bf16-cl-b8", [*base, "--mode", "infer", "--batch", "8", "--precision", "bf16", "--channels-last"]),
            (
                "train-bf16-cl-b8-e2e",
                [
                    *base,
                    "--mode",
                    "train",
                    "--batch",
                    "8",
                    "--precision",
                    "bf16",
                    "--channels-last",
                    "--source",
                    str(jpeg_csv),
                    "--workers",
                    "0",
                    "--set",
                    "model.image-size=64",
                ],
            ),
        ]
    base = ["--config", "cael_released", "--warmup", "5", "--steps", "20"]
    fast = ["--precision", "bf16", "--channels-last"]
    runs = [
        ("train-fp32-b32", [*base, "--mode", "train", "--batch", "32"]),
        ("train-bf16-cl-b128", [*base, "--mode", "train", "--batch", "128", *fast]),
        ("train-bf16-cl-b256", [*base, "--mode", "train", "--batch", "256", *fast]),
        ("train-bf16-cl-b256-compile", [*base, "--mode", "train", "--batch", "256", *fast, "--compile"]),
        ("infer-bf16-cl-b256", [*base, "--mode", "infer", "--batch", "256", *fast]),
        ("infer-bf16-cl-b256-compile", [*base, "--mode", "infer", "--batch", "256", *fast, "--compile"]),
        (
            "infer-bf16-cl-b256-cudagraphs",
            [*base, "--mode", "infer", "--batch", "256", *fast, "--compile", "reduce-overhead"],
        ),
        (
            "train-bf16-cl-b256-e2e-jpeg",
            [*base, "--mode", "train", "--batch", "256", *fast, "--source", str(jpeg_csv), "--workers", "14"],
        ),
    ]
    if cache_csv is not None:
        runs.append(
            (
                "train-bf16-cl-b256-e2e-cache",
                [*base, "--mode", "train", "--batch", "256", *fast, "--source", str(cache_csv), "--workers", "14"],
            )
        )
    return runs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--dry", action="store_true", help="tiny settings on the CPU (checks the script)")
    parser.add_argument("--only", help="comma-separated setting names to run (default: all)")
    args = parser.parse_args(argv)
    import torch
    import torch._dynamo

    from tools import benchmark, cache

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = 64 if args.dry else 224
    started = time.perf_counter()
    jpeg_csv = jpeg_demo(Path(os.environ.get("TMPDIR", "/tmp")) / f"demo-jpeg{size}", size)
    cache_csv = None
    try:
        cache_csv = cache.main(
            [str(jpeg_csv), "--size", str(size), "--out", str(jpeg_csv.parent.parent / f"demo-cache{size}")]
        )
    except Exception:  # the throughput numbers still matter without the cache: record why it failed
        (out / "cache-error.txt").write_text(traceback.format_exc())
    print(f"data prepared in {time.perf_counter() - started:.0f}s", flush=True)
    summary = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "results": {},
        "errors": {},
    }
    wanted = set(args.only.split(",")) if args.only else None
    for name, setting in settings(args.dry, jpeg_csv, cache_csv):
        if wanted and name not in wanted:
            continue
        torch._dynamo.reset()
        extra = (
            ["--profile", str(out / f"profile-{name}.txt")]
            if name in ("train-bf16-cl-b256", "train-bf16-cl-b8-compile")
            else []
        )
        began = time.perf_counter()
        try:
            result = benchmark.main([*setting, *extra, "--out", str(out / f"gpu-{name}.json")])
        except Exception:  # one failing setting must not cost the others: its traceback is kept in the summary
            summary["errors"][name] = traceback.format_exc()[-3000:]
            print(f"{name}: FAILED\n{summary['errors'][name]}", flush=True)
            continue
        keep = {
            k: result.get(k)
            for k in (
                "model_only",
                "end_to_end",
                "end_to_end_fraction_of_model_only",
                "peak_device_memory_gb",
                "compiled",
                "profile",
            )
        }
        summary["results"][name] = {**keep, "wall_s": time.perf_counter() - began}
        print(
            f"{name}: {result['model_only']['images_per_s']:.0f} img/s model alone"
            + (f", {result['end_to_end']['images_per_s']:.0f} img/s end to end" if "end_to_end" in result else ""),
            flush=True,
        )
        (out / "gpu-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "gpu-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
