"""Train CAEL (or any registered detector) on GenFace-style CSV splits.

python train.py                                   # the demo: synthetic data, small CAEL, ~3 min on a CPU
python train.py --config cael --csv splits.csv --protocol cross-generator --fold StyleGAN2
torchrun --nproc_per_node=4 train.py --config cael --csv splits.csv
python train.py --resume checkpoint/RUN           # continue an interrupted run exactly
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.errors import UsageError
from engine.config import REPO_ROOT, load_config

DEMO_CONFIG = "cael_demo"
DEMO_DATA = REPO_ROOT / "data" / "demo_data"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a face-forgery detector (CAEL by default).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "--config",
        help="config file or bundled name (cael, cael_released, cael_demo); default: cael, or the demo without data "
        "arguments",
    )
    parser.add_argument("--csv", help="split CSV (sets data.csv)")
    parser.add_argument(
        "--data-root", help="folder the CSV's paths are relative to (sets data.root; default: the CSV's folder)"
    )
    parser.add_argument(
        "--protocol",
        help="intra, cross-generator, cross-forgery, cross-dataset, or a protocol YAML (sets data.protocol)",
    )
    parser.add_argument(
        "--fold",
        help="fold of the protocol, e.g. the training generator (sets data.fold); 'all': one run per fold, in "
        "--out/<fold>",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=5 (repeatable; applied last)",
    )
    parser.add_argument("--out", help="run folder (default: checkpoint/<config>-<protocol>[-<fold>]-<time>)")
    parser.add_argument(
        "--resume", metavar="RUN", help="continue the run in this folder (or its last.pt) exactly where it stopped"
    )
    return parser


def _ensure_demo_data(csv_path: str | None) -> None:
    """Write the demo data (once) when the config reads it: the no-argument run, or --config cael_demo."""
    if not csv_path or Path(csv_path).is_file() or Path(csv_path).resolve() != (DEMO_DATA / "demo.csv").resolve():
        return
    from data.make_demo import make_demo

    print(f"creating the demo dataset in {DEMO_DATA} (once)...", flush=True)
    make_demo(DEMO_DATA)


def _resolve(args) -> tuple[dict, Path | None, dict | None, str | None]:
    """(config, run folder or None, resume checkpoint or None, config name)."""
    from engine.config import apply_overrides
    from engine.trainer import load_resume

    if args.resume:
        if args.config or args.csv or args.data_root or args.protocol or args.fold:
            raise UsageError(
                "--resume continues a run with its own config: drop --config/--csv/--data-root/--protocol/--fold."
            )
        checkpoint, run_dir = load_resume(args.resume)
        config = checkpoint["config"]
        for override in args.overrides:
            if not override.strip().startswith("train.epochs="):
                raise UsageError(f"--resume: only train.epochs may change (got --set {override}).")
        if args.overrides:
            apply_overrides(config, args.overrides)
            checkpoint["state"]["finished"] = False
        return config, run_dir, checkpoint, None
    data_args = [args.csv, args.data_root, args.protocol, args.fold]
    demo = args.config is None and not any(data_args)
    name = DEMO_CONFIG if demo else (args.config or "cael")
    given = {
        "data.csv": args.csv and str(Path(args.csv).resolve()),
        "data.root": args.data_root and str(Path(args.data_root).resolve()),
        "data.protocol": args.protocol,
        "data.fold": args.fold,
    }
    config = load_config(name, {key: value for key, value in given.items() if value})
    apply_overrides(config, args.overrides)
    if not config["data"]["csv"]:
        raise UsageError(f"no training data: pass --csv SPLITS.csv (config {name} sets no data.csv).")
    _ensure_demo_data(config["data"]["csv"])
    if not args.csv and not demo:
        print(f"no --csv given: training on data.csv of config {name}: {config['data']['csv']}", flush=True)
    if config["data"]["face-extraction"] is None:
        from data.extract_faces import extraction_settings_for

        config["data"]["face-extraction"] = extraction_settings_for(config["data"]["csv"], config["data"]["root"])
    return config, Path(args.out).resolve() if args.out else None, None, name


def _train_every_fold(args, argv) -> dict:
    """``--fold all``: one run per fold of the protocol, each in its own folder under one parent."""
    import time

    from data.protocols import folds, load_protocol
    from data.schema import load_table

    args.fold = None
    config, _, _, name = _resolve(args)
    protocol = load_protocol(config["data"]["protocol"])
    names = folds(protocol, load_table(config["data"]["csv"], config["data"]["root"]))
    if not names:
        raise UsageError(f"protocol {protocol.name} has no folds: drop --fold all.")
    parent = (
        Path(args.out).resolve()
        if args.out
        else REPO_ROOT / "checkpoint" / f"{name}-{protocol.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    print(f"{protocol.name}: {len(names)} folds ({', '.join(names)}) -> {parent}/<fold>", flush=True)
    results = {}
    for fold in names:
        fold_argv = _replace_option(_replace_option(list(argv), "--fold", fold), "--out", str(parent / fold))
        results[fold] = main(fold_argv)
    print(f"all folds trained: evaluate with  python test.py --runs {parent} --protocol {protocol.name}")
    return results


def _replace_option(argv: list[str], option: str, value: str) -> list[str]:
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == option:
            skip = True
            continue
        if token.startswith(option + "="):
            continue
        out.append(token)
    return out + [option, value]


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args_parser().parse_args(argv)
    if args.fold == "all":
        return _train_every_fold(args, argv)
    from common.checkpoint import cleanup_partial_writes
    from engine.distributed import cleanup, init_distributed
    from engine.logger import setup_logging
    from engine.run import RunLock, default_run_name, prepare_run_dir
    from engine.trainer import Trainer

    config, run_dir, resume, name = _resolve(args)
    dist = init_distributed()
    lock = None
    try:
        if run_dir is None:
            run_dir = (
                REPO_ROOT
                / "checkpoint"
                / (
                    "demo-" + default_run_name(config, name).split("-", 1)[-1]
                    if name == DEMO_CONFIG
                    else default_run_name(config, name)
                )
            )
        if dist.enabled:  # every rank writes into rank 0's folder
            import torch.distributed

            shared = [str(run_dir)]
            torch.distributed.broadcast_object_list(shared, src=0)
            run_dir = Path(shared[0])
        if dist.is_main:
            lock = RunLock(run_dir).acquire()  # before anything is written: a second train.py stops here
        if resume is None and (run_dir / "last.pt").exists():
            raise UsageError(
                f"{run_dir} already holds a run: continue it with --resume {run_dir}, or choose another --out."
            )
        if dist.is_main:
            if resume is None:
                prepare_run_dir(run_dir, config)
            removed = cleanup_partial_writes(run_dir)
        setup_logging(run_dir, dist.is_main)
        if dist.is_main and removed:
            logging.getLogger("cael").info(
                f"removed {len(removed)} partial checkpoint write(s) left by an interrupted run"
            )
        summary = Trainer(config, run_dir, dist, resume=resume).fit()
    finally:
        cleanup()
        if lock is not None:
            lock.release()
    if dist.is_main:
        metric = summary["select_metric"]
        best = summary["best_value"]
        if best is None or not (run_dir / "best.pt").is_file():
            print(
                f"no best.pt: no epoch gave a validation {metric.upper()} (see {run_dir / 'train.log'}); last.pt "
                "holds the final weights"
            )
        else:
            print(
                f"best validation {metric.upper()} {best:.4f} at epoch {summary['best_epoch']}: {run_dir / 'best.pt'}"
            )
        if summary["last"] is not None and summary["last"].get("val_auc") is not None:
            print(f"validation AUC of the last epoch: {summary['last']['val_auc']:.4f}")
    return summary


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
