"""Train a set of detectors (the CAEL ablations, the baselines, or named configs) on one protocol, one folder each.

    python -m tools.train_set ablations --csv splits.csv --protocol intra --out checkpoint/ablations
    python -m tools.train_set baselines --csv splits.csv --protocol cross-generator --fold all --out checkpoint/xgen
    python -m tools.train_set deepfakebench --csv ffpp.csv --out checkpoint/dfb   # DeepfakeBench's recipes
    python -m tools.train_set cael xception univfd --csv splits.csv --out checkpoint/mine --set train.epochs=10
    python -m tools.train_set all --demo --out checkpoint/demo-compare      # ablations + baselines, tiny, demo data
    python test.py --runs checkpoint/ablations                               # then: one comparison table

Each config trains through ``train.py`` (same data, protocol, selection rule and metrics) into OUT/<config>
(OUT/<config>/<fold> with ``--fold all``); running the command again continues unfinished runs (``--resume``) and
leaves finished ones alone. ``--demo`` trains on the synthetic demo data at 64 px with every detector shrunk (CAEL
and its ablations take cael_demo.yaml's widths, the baselines random weights and DEMO_TRAINING's recipe), to check
the harness, not to rank.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from common.cli import run
from common.config import REPO_ROOT, resolve_config_path
from common.errors import ConfigError, UsageError
from engine.config import load_config
from model.registry import model_defaults

ABLATIONS = [
    "cael",
    "cael_no_edge",
    "cael_no_aeca",
    "cael_aeca_concat",
    "cael_no_cross_attention",
    "cael_fine_only",
    "cael_coarse_only",
    "cael_edge_scharr",
    "cael_edge_prewitt",
    "cael_edge_laplacian",
]
# Foundation-model detectors: a large pretrained ViT, frozen but for a small adapted part (GenD, LoRA, Effort).
FOUNDATION = ["clip_ln", "dinov2_ln", "clip_lora", "effort"]
# DF40's one-vs-all matrix (its protocol 4: --protocol cross-generator --fold all on the CSV of data.datasets df40):
# DF40's own detector (DeepfakeBench's Xception), GenD's (clip_ln) and Effort's (effort, whose paper reports DF40 sets).
DF40 = ["xception_deepfakebench", "clip_ln", "effort"]
BASELINES = [
    "xception",
    "efficientnet_b4",
    "cnndet",
    "univfd",
    "cross_efficient_vit",
    "efficientnet_sobel",
    *FOUNDATION,
]
# The detectors DeepfakeBench also has, with its input size, normalisation, head and training recipe: rows to put
# beside its leaderboard (model/configs/*_deepfakebench.yaml name the reference files).
DEEPFAKEBENCH = ["xception_deepfakebench", "efficientnet_b4_deepfakebench", "cnndet_deepfakebench"]
SETS = {
    "ablations": ABLATIONS,
    "baselines": BASELINES,
    "all": ABLATIONS + BASELINES,
    "deepfakebench": DEEPFAKEBENCH,
    "foundation": FOUNDATION,
    "df40": DF40,
}

DEMO_CONFIG = "cael_demo"
DEMO_CSV = REPO_ROOT / "data" / "demo_data" / "demo.csv"
# Detectors built on CAEL's code take cael_demo.yaml's sizes plus their own switches.
CAEL_FAMILY = ("cael", "cross_efficient_vit")
# The demo recipe of the baselines: cael_demo.yaml's data and training settings (intra, balanced, batch 32, hflip
# only, 2 epochs), with two changes for full-width networks from random weights, chosen on the demo's validation
# AUC (the demo checks the harness; it does not rank detectors):
# - lr 3e-4, not 1e-3: at 1e-3 their training loss stays above log 2 for the epoch;
# - precise BN on 512 training images before each validation: after 44 steps the running statistics still describe
#   the first steps' weights, and evaluation mode scores at chance (Xception: 0.49 with them, 0.71 recomputed).
# hflip only for every baseline, cnndet included: the demo's traces are camera noise and resampling, which the
# harness's (and CNNDetection's) blur, JPEG and resized crops wash out in 64 px images.
DEMO_TRAINING = [
    "data.protocol=intra",
    "data.balanced=true",
    "data.augment=[{name: hflip, p: 0.5}]",
    "train.epochs=2",
    "train.batch-size=32",
    "train.log-every=10",
    "train.precise-bn=512",
    "optim.lr=3.0e-4",
    "schedule.warmup-epochs=0.25",
]
# Per-baseline additions to DEMO_TRAINING. univfd: only a linear probe trains, on a frozen random encoder whose
# features carry the demo's traces weakly and at unequal scales: a higher lr, and (DEMO_MODEL) features standardised
# by a batch norm without affine before the probe (probe-norm, MAE's linear-probe recipe). One epoch of the probe at
# lr 1e-2 (simulated on cached features, 3 encoder and 3 probe seeds): 0.50-0.64 without the batch norm, 0.57-0.64
# with it.
# The foundation detectors (clip_ln, dinov2_ln, clip_lora, effort) adapt a frozen random ViT whose pooled feature
# carries the demo's traces weakly (a converged logistic regression on it: 0.62-0.67): a batch norm without affine on
# that feature (DEMO_MODEL's feature-norm), lr 3e-2 for the head with layer-wise decay 0.1 for the adapted encoder
# parts (lr 3e-3 and 3e-4: their updates move a random encoder's features faster than the head can follow), and no
# flip (a random ViT's position embeddings make a flipped face another feature). Chosen on the demo's validation AUC.
FOUNDATION_DEMO = ["optim.lr=3.0e-2", "optim.layer-decay=0.1", "data.augment=[]"]
DEMO_RECIPES = {"univfd": ["optim.lr=1.0e-2"], **{name: FOUNDATION_DEMO for name in FOUNDATION}}
# Baseline model keys for the 64 px demo: random weights; univfd gets a small random CLIP (a ViT-L/14 would not
# train in minutes on a CPU): 4 px patches (the demo's traces are pixel-level), width 128, a 256-value embedding
# (a converged logistic regression on it reaches 0.60-0.70, on the former 8 px, 64-wide, 32-value one 0.54-0.67).
# The foundation detectors' demo encoder: a small random ViT (4 px patches, width 128, two blocks), as univfd's.
DEMO_VIT = {
    "feature-norm": "batchnorm",
    "backbone-image-size": 64,
    "patch-size": 4,
    "vision-width": 128,
    "vision-layers": 2,
    "vision-heads": 2,
    "vision-mlp-dim": 128,
}
DEMO_MODEL = {
    "default": {"pretrained": False, "pretrained-file": None, "image-size": 64},
    "univfd": {
        "clip-image-size": 64,
        "patch-size": 4,
        "vision-width": 128,
        "vision-layers": 2,
        "vision-heads": 2,
        "vision-mlp-dim": 128,
        "projection-dim": 256,
        "probe-norm": "batchnorm",
    },
    **{name: dict(DEMO_VIT) for name in FOUNDATION},
}


def expand(names: list[str]) -> list[str]:
    """Set names -> config names, in order, each once; an unknown config is a usage error naming it."""
    configs: list[str] = []
    for name in names:
        for config in SETS.get(name, [name]):
            try:
                resolve_config_path(config)
            except ConfigError as error:
                raise UsageError(f"{error} Sets: {', '.join(SETS)}.") from error
            if config not in configs:
                configs.append(config)
    return configs


def _as_override(key: str, value: Any) -> str:
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def cael_switches(config_name: str) -> dict[str, Any]:
    """The model keys in which a config of CAEL's family differs from cael.yaml (its name and ablation switches); a
    key CAEL lacks (e.g. cross_efficient_vit's original-input) only where the config sets it off its default."""
    offline = ["model.pretrained=false"]
    own, cael = load_config(config_name, offline)["model"], load_config("cael", offline)["model"]
    defaults = model_defaults(own["name"])
    return {
        key: value
        for key, value in own.items()
        if value != cael.get(key) and (key in cael or value != defaults.get(key))
    }


def demo_arguments(config_name: str, demo_csv: Path) -> list[str]:
    """train.py arguments that train ``config_name`` shrunk to the demo."""
    model = load_config(config_name, ["model.pretrained=false"])["model"]
    if model["name"] in CAEL_FAMILY:
        sets = [_as_override(f"model.{key}", value) for key, value in cael_switches(config_name).items()]
        return ["--config", DEMO_CONFIG, "--csv", str(demo_csv), *[f"--set={s}" for s in sets]]
    shrink = {**DEMO_MODEL["default"], **DEMO_MODEL.get(model["name"], {})}
    sets = DEMO_TRAINING + DEMO_RECIPES.get(model["name"], [])
    sets += [_as_override(f"model.{key}", value) for key, value in shrink.items()]
    return ["--config", config_name, "--csv", str(demo_csv), *[f"--set={s}" for s in sets]]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train several detectors on one protocol, one folder each.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("configs", nargs="+", help=f"sets ({', '.join(SETS)}) and/or config names or files")
    parser.add_argument("--out", required=True, help="parent folder: one run folder per config")
    parser.add_argument("--csv", help="split CSV (every config trains on it); with --demo: another demo CSV")
    parser.add_argument("--data-root", help="folder the CSV's paths are relative to")
    parser.add_argument("--protocol", help="protocol (default: each config's, intra)")
    parser.add_argument("--fold", help="fold of the protocol; 'all': one run per fold, in OUT/<config>/<fold>")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value for every config (repeatable)",
    )
    parser.add_argument("--demo", action="store_true", help="the demo data, every detector shrunk to 64 px")
    parser.add_argument("--dry-run", action="store_true", help="print the train.py command of each config only")
    return parser


def train_arguments(args, config_name: str) -> list[str]:
    if args.demo:
        argv = demo_arguments(config_name, Path(args.csv or DEMO_CSV).resolve())
    else:
        argv = ["--config", config_name, "--csv", args.csv]
    for option, value in (("--data-root", args.data_root), ("--protocol", args.protocol), ("--fold", args.fold)):
        if value:
            argv += [option, value]
    return argv + [f"--set={override}" for override in args.overrides]


def main(argv=None) -> dict[str, Any]:
    args = get_args_parser().parse_args(argv)
    if not args.demo and not args.csv:
        raise UsageError("give --csv SPLITS.csv (every config trains on it), or --demo for the demo data.")
    configs = expand(args.configs)
    out = Path(args.out).resolve()
    import train

    if args.demo and not args.csv:
        train._ensure_demo_data(str(DEMO_CSV))
    results = {}
    for position, config_name in enumerate(configs, 1):
        run_dir = out / Path(config_name).stem
        argv_train = train_arguments(args, config_name) + ["--out", str(run_dir)]
        if (run_dir / "last.pt").is_file():
            argv_train = ["--resume", str(run_dir)]  # continue (or leave alone) what an earlier call started
        print(f"[{position}/{len(configs)}] {config_name}: python train.py {shlex.join(argv_train)}", flush=True)
        if not args.dry_run:
            results[config_name] = train.main(argv_train)
    protocol = f" --protocol {args.protocol}" if args.protocol else ""
    print(f"compare them with:  python test.py --runs {out}{protocol}")
    return results


if __name__ == "__main__":
    sys.exit(run(main))
