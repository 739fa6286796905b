"""Parameter counts and forward cost of a detector config.

python -m model.summary model/configs/cael.yaml [--set model.cg-patch-size=8]
python -m model.summary xception                 # any bundled config by name
python -m model.summary --all                    # one line per bundled config (the cost table of docs/baselines.md)
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from common.cli import run
from common.config import MODEL_CONFIG_DIR, parse_override, set_value
from common.errors import ConfigError, UsageError

from .registry import build_model, check_model_config, model_config_from_file, without_downloads


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def forward_flops(model: torch.nn.Module, image_size: int) -> int:
    """FLOPs (multiply + add counted separately) of one eval-mode forward of one image."""
    images = torch.randint(0, 256, (1, 3, image_size, image_size), dtype=torch.uint8)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    model.train(was_training)
    return counter.get_total_flops()


def parameters_with_gradient(model: torch.nn.Module, image_size: int) -> int:
    """How many parameter values receive a gradient from the classification logits (one backward pass)."""
    images = torch.randint(0, 256, (2, 3, image_size, image_size), dtype=torch.uint8)
    was_training = model.training
    model.eval()  # no dropout, BN on running statistics: the graph is the same, the count deterministic
    model.zero_grad(set_to_none=True)
    output = model(images)
    logits = output["logits"] if isinstance(output, dict) else output
    logits.sum().backward()
    count = sum(p.numel() for p in model.parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return count


def summarize(model: torch.nn.Module, image_size: int) -> dict:
    total, trainable = count_parameters(model)
    parts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    return {
        "parameters": total,
        "trainable_parameters": trainable,
        "parameters_with_gradient": parameters_with_gradient(model, image_size),
        "parts": {name: count for name, count in parts.items() if count},
        "gflops_per_image": forward_flops(model, image_size) / 1e9,
    }


def summarize_model_config(model_config: dict) -> dict:
    """``summarize`` of the detector a model config describes, built with random weights (no download)."""
    model = build_model(without_downloads(model_config))
    return summarize(model, model_config["image-size"])


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Print a detector's parameter count and forward GFLOPs per image.")
    parser.add_argument("config", nargs="?", help="config file, or a bundled name (cael, xception, cael_no_edge, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--all", action="store_true", help="one line per bundled config in model/configs")
    return parser


def _summary_line(name: str, model_config: dict, summary: dict) -> str:
    size = model_config["image-size"]
    return (
        f"| {name} | {model_config['name']} | {size} | {summary['parameters'] / 1e6:.2f} | "
        f"{summary['parameters_with_gradient'] / 1e6:.3f} | {summary['gflops_per_image']:.2f} |"
    )


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    if args.all == bool(args.config):
        raise UsageError("give one config (a file or a bundled name such as xception), or --all.")
    # Counting needs no ImageNet weights: never download here.
    offline = ["model.pretrained=false", "model.pretrained-file=null"]

    def load_config(path, overrides):  # the model section only: the model package does not need the engine
        config = {"model": model_config_from_file(path)}
        for key, value in map(parse_override, overrides):
            if not key.startswith("model."):
                raise UsageError(f"--set {key}: model.summary takes model.* keys only.")
            set_value(config, key, value)
        check_model_config(config["model"])
        return config

    if args.all:
        print("| config | detector | px | parameters (M) | trained (M) | GFLOPs / image |")
        print("| --- | --- | --- | --- | --- | --- |")
        summaries = {}
        for path in sorted(MODEL_CONFIG_DIR.glob("*.yaml")):
            config = load_config(path, [*offline, *args.overrides])
            summaries[path.stem] = summarize_model_config(config["model"])
            print(_summary_line(path.stem, config["model"], summaries[path.stem]), flush=True)
        return summaries
    try:
        config = load_config(args.config, [*offline, *args.overrides])
    except ConfigError as error:
        raise UsageError(str(error)) from error
    summary = summarize_model_config(config["model"])
    print(f"{config['model'].get('name', 'cael')} ({args.config})")
    print(f"  parameters, total:     {summary['parameters']:,}")
    print(f"  parameters, trainable: {summary['trainable_parameters']:,}")
    print(f"  parameters that receive a gradient: {summary['parameters_with_gradient']:,}")
    for name, count in summary["parts"].items():
        print(f"    {name:<20} {count:,}")
    size = config["model"]["image-size"]
    print(
        f"  forward: {summary['gflops_per_image']:.2f} GFLOPs per {size}x{size} image "
        f"({summary['gflops_per_image'] / 2:.2f} GMAC)"
    )
    return summary


if __name__ == "__main__":
    sys.exit(run(main))
