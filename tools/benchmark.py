"""Measure training / inference throughput and peak memory of a detector, model alone or end to end from files.

    python tools/benchmark.py --config cael_released --batch 256 --precision bf16 --channels-last --compile --mode train
    python tools/benchmark.py --config cael --batch 128 --precision bf16 --source data/demo_data/demo.csv --mode train

Images/s is the batch size over the median time of the timed iterations (after warm-up, with device
synchronisation). ``--source synthetic`` feeds uint8 images already on the device (the model alone); a CSV feeds
the real loader (decode, resize, augment, pinned transfer) and, for comparison, also measures the model alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from common.errors import UsageError  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.device import autocast, compile_model, to_device  # noqa: E402
from engine.training.optim import build_optimizer  # noqa: E402
from loss_folder import build_loss  # noqa: E402
from model import build_model, without_downloads  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(config: dict, args, device: torch.device):
    model = build_model(without_downloads(config["model"])).to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    compiled = False
    runner = model
    if args.compile:
        runner = compile_model(model, args.compile)
        compiled = True
    optimizer = build_optimizer(model, config["optim"], device) if args.mode == "train" else None
    criterion = build_loss({"name": "ce"}).to(device)
    return model, runner, optimizer, criterion, compiled


def make_step(model, runner, optimizer, criterion, args, device):
    scaler = torch.amp.GradScaler("cuda") if args.precision == "fp16" else None

    def train_step(images, labels):
        with autocast(device, args.precision):
            loss = criterion(runner(images), {"label": labels})
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.inference_mode()
    def infer_step(images, labels):
        with autocast(device, args.precision):
            runner(images)

    if args.mode == "train":
        model.train()
        return train_step
    model.eval()
    return infer_step


def time_iterations(step, batches, device, warmup: int, steps: int, warmup_times: list | None = None) -> list[float]:
    """Seconds per iteration for ``steps`` iterations after ``warmup`` ones; each ends with a device sync.
    The warm-up iterations' seconds go into ``warmup_times`` when given (the first holds compilation)."""
    times = []
    for index in range(warmup + steps):
        images, labels = next(batches)
        _sync(device)
        started = time.perf_counter()
        step(images, labels)
        _sync(device)
        seconds = time.perf_counter() - started
        if index >= warmup:
            times.append(seconds)
        elif warmup_times is not None:
            warmup_times.append(seconds)
    return times


def compile_report(warmup_times: list[float]) -> dict:
    """What torch.compile did: seconds of the first (compiling) iteration, graphs made and graph breaks (each break
    or failed compilation falls back to eager for that part, so a compiled number with breaks is partly eager)."""
    from torch._dynamo.utils import counters

    return {
        "first_iteration_s": warmup_times[0] if warmup_times else None,
        "unique_graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "graph_break_reasons": sorted(counters["graph_break"])[:10],
    }


def synthetic_batches(batch: int, size: int, device: torch.device, channels_last: bool):
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 2, (batch,), device=device)
    while True:
        yield images, labels


def loader_batches(csv_path: str, config: dict, args, device: torch.device):
    """Batches from the real loader, moved to the device as training does; cycles over epochs."""
    import numpy as np

    from data.csv_dataset import SplitDataset
    from data.loader import build_loader
    from data.schema import load_table

    table = load_table(csv_path, args.data_root)
    rows = np.flatnonzero(table.labels >= 0)
    augment = config["data"]["augment"] if args.mode == "train" else None
    dataset = SplitDataset(table, rows, size=config["model"]["image-size"], augment=augment)
    loader = build_loader(dataset, batch_size=args.batch, train=True, seed=0, workers=args.workers)
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            yield to_device(batch["image"], device, args.channels_last), batch["label"].to(device, non_blocking=True)
        epoch += 1


def profile_steps(step, batches, device: torch.device, out: str, steps: int = 3, rows: int = 30) -> dict:
    """torch.profiler over a few steps (after the timed ones): the kernels that take the time, as a table file."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(steps):
            images, labels = next(batches)
            step(images, labels)
        _sync(device)
    sort_key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = profiler.key_averages()
    table = averages.table(sort_by=sort_key, row_limit=rows, max_name_column_width=70)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(table + "\n")
    events = [e for e in averages if e.device_type.name == "CUDA"] if device.type == "cuda" else []
    kernel_us = sum(e.self_device_time_total for e in events)
    return {
        "table": str(out),
        "steps": steps,
        "device_kernel_ms_per_step": kernel_us / 1000 / steps if events else None,
        "device_kernels_per_step": sum(e.count for e in events) / steps if events else None,
    }


def summarize(times: list[float], batch: int) -> dict:
    median = statistics.median(times)
    ordered = sorted(times)
    return {
        "images_per_s": batch / median,
        "median_ms": 1000 * median,
        "p10_ms": 1000 * ordered[len(ordered) // 10],
        "p90_ms": 1000 * ordered[(9 * len(ordered)) // 10],
        "iterations": len(times),
    }


def measure(args) -> dict:
    config = load_config(args.config, args.overrides)
    device = torch.device(args.device) if args.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA device.")
    # as train.py runs it: the config's train.cudnn-benchmark / train.cudnn-attention, unless a switch says otherwise
    cudnn_benchmark = config["train"]["cudnn-benchmark"] if args.cudnn_benchmark is None else args.cudnn_benchmark
    cudnn_attention = config["train"]["cudnn-attention"] if args.cudnn_attention is None else args.cudnn_attention
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
    torch.backends.cuda.enable_cudnn_sdp(bool(cudnn_attention))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model, runner, optimizer, criterion, compiled = build(config, args, device)
    step = make_step(model, runner, optimizer, criterion, args, device)
    size = config["model"]["image-size"]
    result = {
        "config": str(args.config),
        "overrides": args.overrides,
        "mode": args.mode,
        "batch": args.batch,
        "precision": args.precision,
        "channels_last": args.channels_last,
        "cudnn_benchmark": bool(cudnn_benchmark),
        "cudnn_attention": bool(cudnn_attention),
        "compile": args.compile or False,
        "compiled": compiled,
        "image_size": size,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warmup_times: list[float] = []
    times = time_iterations(
        step,
        synthetic_batches(args.batch, size, device, args.channels_last),
        device,
        args.warmup,
        args.steps,
        warmup_times,
    )
    result["model_only"] = summarize(times, args.batch)
    result["warmup_s"] = warmup_times
    if compiled:
        result["compilation"] = compile_report(warmup_times)
    if args.source != "synthetic":
        result["source"] = args.source
        result["workers"] = args.workers
        times = time_iterations(
            step, loader_batches(args.source, config, args, device), device, args.warmup, args.steps
        )
        result["end_to_end"] = summarize(times, args.batch)
        result["end_to_end_fraction_of_model_only"] = (
            result["end_to_end"]["images_per_s"] / result["model_only"]["images_per_s"]
        )
    if device.type == "cuda":
        result["peak_device_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    if args.profile:
        result["profile"] = profile_steps(
            step, synthetic_batches(args.batch, size, device, args.channels_last), device, args.profile
        )
    result["peak_host_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return result


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Throughput and memory of a detector config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--config", default="cael_released", help="config file or bundled name")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        help="torch.compile, optionally with a mode (max-autotune, reduce-overhead)",
    )
    parser.add_argument("--mode", choices=["train", "infer"], default="train")
    parser.add_argument("--source", default="synthetic", help="synthetic, or a split CSV for end-to-end loading")
    parser.add_argument("--data-root", help="root of the CSV's paths")
    parser.add_argument("--workers", default="auto", help="loader processes for --source CSV")
    parser.add_argument(
        "--cudnn-benchmark",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cuDNN's autotuning on or off (default: the config's train.cudnn-benchmark, off): its first-step cost",
    )
    parser.add_argument(
        "--cudnn-attention",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="attention through cuDNN or the other SDPA kernels (default: the config's train.cudnn-attention, off)",
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    parser.add_argument("--out", help="write the result as JSON here")
    parser.add_argument(
        "--profile", metavar="TXT", help="also profile 3 steps (torch.profiler) and write the kernel table here"
    )
    return parser


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    if isinstance(args.workers, str) and args.workers.isdigit():
        args.workers = int(args.workers)
    result = measure(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
