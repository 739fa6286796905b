"""Train CAEL (or any registered detector) on GenFace-style CSV splits.

python train.py                                   # the demo: synthetic data, small CAEL (continues it if interrupted)
python train.py --config cael --csv splits.csv --protocol cross-generator --fold StyleGAN2
torchrun --nproc_per_node=4 train.py --config cael --csv splits.csv
python train.py --resume checkpoint/RUN           # continue an interrupted run exactly
python train.py --resume checkpoint/RUN --csv /new/place/splits.csv   # ... whose data moved (same rows and labels)
python train.py --csv splits.csv --out checkpoint/RUN --resume auto   # continue RUN if it has a last.pt, else start
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from common.config import REPO_ROOT
from common.errors import UsageError
from engine.config import load_config

DEMO_CONFIG = "cael_demo"
AUTO = "auto"  # --resume auto
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
        "--resume",
        metavar="RUN|auto",
        help="continue the run in this folder (or its last.pt) exactly where it stopped (with --csv / --data-root: the "
        "new place of its data, checked against the rows it recorded); 'auto' (with --out): continue --out when it "
        "holds a last.pt, else start it there (rerun the same command line after a preemption)",
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
    if args.resume == AUTO:
        return _resolve_auto(args)
    if args.resume:
        from engine.training.resume import config_file_edits, refuse_other_overrides, resumed_config

        if args.config or args.protocol or args.fold:
            raise UsageError(
                "--resume continues a run with its own config: drop --config/--protocol/--fold (data that moved: "
                "--csv NEW and --data-root ROOT; a longer run: --set train.epochs=N)."
            )
        refuse_other_overrides(args.overrides)
        checkpoint, run_dir = _load_resume(args.resume)
        changes = {**config_file_edits(checkpoint, run_dir), **_data_arguments(args)}
        return resumed_config(checkpoint, changes, args.overrides), run_dir, checkpoint, None
    return _resolve_new(args)


def _data_arguments(args) -> dict:
    """--csv and --data-root as config values (absolute paths)."""
    given = {}
    if args.csv:
        given["data.csv"] = str(_csv_file(Path(args.csv)).resolve())
    if args.data_root:
        given["data.root"] = str(Path(args.data_root).resolve())
    return given


def _load_resume(path) -> tuple[dict, Path]:
    from engine.training.trainer import load_resume

    return load_resume(path)


def _resolve_auto(args) -> tuple[dict, Path | None, dict | None, str | None]:
    """``--resume auto``: the run in --out when it holds a last.pt (with the same config but for its data's place and
    train.epochs), else a new run there."""
    from engine.training.resume import MAY_CHANGE, changed_keys, config_file_edits, describe, resumed_config, value_at

    if not args.out:
        raise UsageError(
            "--resume auto needs --out RUN: the default run folder is named after the start time, so a rerun would "
            "never find it."
        )
    config, run_dir, _, name = _resolve_new(args)
    if not (run_dir / "last.pt").is_file():
        _say(f"--resume auto: {run_dir} holds no last.pt: starting a new run there")
        return config, run_dir, None, name
    checkpoint, run_dir = _load_resume(run_dir)
    config_file_edits(checkpoint, run_dir)  # an edit it would not take is an error, never ignored
    # no extraction record beside a moved CSV: the run's own stands (its rows are checked by their fingerprint)
    unrecorded = ("data.face-extraction",) if config["data"]["face-extraction"] is None else ()
    changed = changed_keys(checkpoint["config"], config, ignore=(*MAY_CHANGE, *unrecorded))
    if changed:
        raise UsageError(
            f"--resume auto: {run_dir} holds a run with another config ({describe(changed)}): rerun its own "
            "command line, or choose another --out."
        )
    _say(f"--resume auto: {run_dir} holds a run (last.pt at step {checkpoint['step']}): continuing it")
    changes = {key: value_at(config, key) for key in MAY_CHANGE}
    return resumed_config(checkpoint, changes), run_dir, checkpoint, name


def _say(text: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank resolves the run; one says so
        print(text, flush=True)


def _resolve_new(args) -> tuple[dict, Path | None, dict | None, str | None]:
    from engine.config import apply_overrides

    data_args = [args.csv, args.data_root, args.protocol, args.fold]
    demo = args.config is None and not any(data_args)
    name = DEMO_CONFIG if demo else (args.config or "cael")
    given = {**_data_arguments(args), "data.protocol": args.protocol, "data.fold": args.fold}
    config = load_config(name, {key: value for key, value in given.items() if value})
    apply_overrides(config, args.overrides)
    if not config["data"]["csv"]:
        raise UsageError(f"no training data: pass --csv SPLITS.csv (config {name} sets no data.csv).")
    _ensure_demo_data(config["data"]["csv"])
    if not args.csv and not demo:
        print(f"no --csv given: training on data.csv of config {name}: {config['data']['csv']}", flush=True)
    if config["data"]["face-extraction"] is None:
        from data.faces import extraction_settings_for

        config["data"]["face-extraction"] = extraction_settings_for(config["data"]["csv"], config["data"]["root"])
    return config, Path(args.out).resolve() if args.out else None, None, name


def _csv_file(path: Path) -> Path:
    """``--csv``: the file itself, or the one CSV inside a folder (said once); several or none: one clear error."""
    if not path.is_dir():
        return path
    from data.schema import csv_in_folder

    found = csv_in_folder(path)
    _say(f"--csv {path} is a folder: training on {found}, the one CSV inside it")
    return found


def _interrupted_demo_run(config: dict, run_dir: Path | None) -> tuple[dict, Path | None, dict | None]:
    """The no-argument demo continues its latest run when that run stopped before its end (Ctrl-C, SIGTERM) with the
    same config, and says so: (its config, folder, last.pt); otherwise (``config``, ``run_dir``, None), saying how to
    continue an interrupted run of another config."""
    from engine.training.resume import changed_keys, config_file_edits, describe, resumed_config

    runs = sorted((REPO_ROOT / "checkpoint").glob("demo-*/last.pt"), key=lambda path: path.stat().st_mtime)
    if not runs:
        return config, run_dir, None
    checkpoint, latest = _load_resume(runs[-1])
    state, epochs = checkpoint["state"], checkpoint["config"]["train"]["epochs"]
    if state["finished"] or (checkpoint["epoch"] >= epochs and not state["step_in_epoch"]):
        return config, run_dir, None
    where = f"stopped at step {checkpoint['step']}, {checkpoint['epoch']} of {epochs} epochs done"
    changed = changed_keys(checkpoint["config"], config)
    if changed:
        _say(
            f"note: the demo run {latest} was interrupted ({where}) with another config ({describe(changed)}): "
            f"continue it with  python train.py --resume {latest}; starting a new demo run"
        )
        return config, run_dir, None
    _say(
        f"continuing the interrupted demo run {latest} ({where}); to start a new demo run instead: python train.py "
        "--out checkpoint/demo-NEW"
    )
    return resumed_config(checkpoint, config_file_edits(checkpoint, latest)), latest, checkpoint


def _complete_run(checkpoint: dict, config: dict, run_dir: Path) -> dict | None:
    """The summary of a run that has nothing left to train (said in one line), or None when it has."""
    state, done, epochs = checkpoint["state"], checkpoint["epoch"], config["train"]["epochs"]
    extended = epochs != checkpoint["config"]["train"]["epochs"]
    if state["step_in_epoch"] or (done < epochs and (extended or not state["finished"])):
        return None
    how = "stopped early (train.patience)" if done < epochs else f"trained {done} of train.epochs {epochs}"
    select, best = config["train"]["select-metric"], state["best_value"]
    best_text = "" if best is None else f", best validation {select.upper()} {best:.4f} at epoch {state['best_epoch']}"
    _say(
        f"{run_dir} is complete: it {how} (step {checkpoint['step']}{best_text}); nothing to train. To train longer: "
        f"python train.py --resume {run_dir} --set train.epochs=N"
    )
    history = state.get("history") or []
    return {
        "run_dir": str(run_dir),
        "select_metric": select,
        "best_value": best,
        "best_epoch": state["best_epoch"],
        "last": history[-1] if history else None,
        "complete": True,
    }


def _train_every_fold(args, argv) -> dict:
    """``--fold all``: one run per fold of the protocol, each in its own folder under one parent."""
    import time

    from data.protocols import folds, load_protocol
    from data.schema import load_table

    if args.resume and args.resume != AUTO:
        raise UsageError(
            "--fold all runs one training per fold: to continue them, rerun the same command line with --resume auto."
        )
    args.fold = None
    config, _, _, name = _resolve_new(args)
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
    import numpy as np

    from common.checkpoint import cleanup_partial_writes
    from data.schema import check_images_under_root
    from engine.config import save_config
    from engine.distributed import cleanup, init_distributed
    from engine.logs import setup_logging
    from engine.training.data_setup import build_data, select_rows
    from engine.training.resume import check_data_present, check_same_data
    from engine.training.run import RunLock, StartGuard, default_run_name, prepare_run_dir, record_data_fingerprint
    from engine.training.trainer import Trainer

    config, run_dir, resume, name = _resolve(args)
    demo = args.config is None and not any([args.csv, args.data_root, args.protocol, args.fold])
    if demo and resume is None and run_dir is None:  # the README's python train.py, once more
        config, run_dir, resume = _interrupted_demo_run(config, run_dir)
    if resume is not None:
        complete = _complete_run(resume, config, run_dir)
        if complete is not None:
            return complete
        check_data_present(config, run_dir)
    # the CSV, the protocol and the images' place are checked before anything is written
    rows = select_rows(config)
    check_images_under_root(rows.table, np.concatenate([rows.train, rows.val]))
    moved = check_same_data(resume, rows.fingerprint(), config, run_dir) if resume is not None else ""
    if moved:
        _say(moved)
    dist = init_distributed()
    lock, guard = None, None
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
            guard = StartGuard(run_dir)  # what a start that fails wrote is removed (once the lock is ours)
            lock = RunLock(run_dir).acquire()  # before anything is written: a second train.py stops here
            guard.arm()
        if resume is None and (run_dir / "last.pt").exists():
            raise UsageError(
                f"{run_dir} already holds a run: continue it with --resume {run_dir} (or --resume auto), or choose "
                "another --out."
            )
        if dist.is_main:
            if resume is None:
                prepare_run_dir(run_dir, config)
            else:
                save_config(config, run_dir / "config.yaml")  # what the run continues with (a moved CSV, epochs)
            record_data_fingerprint(run_dir, rows.fingerprint())
            removed = cleanup_partial_writes(run_dir)
        setup_logging(run_dir, dist.is_main)
        if dist.is_main and removed:
            logging.getLogger("cael").info(
                f"removed {len(removed)} partial checkpoint write(s) left by an interrupted run"
            )
        trainer = Trainer(config, run_dir, dist, data=build_data(config, dist, rows), resume=resume)
        if guard is not None:
            guard.started()
        summary = trainer.fit()
    finally:
        cleanup()
        if guard is not None:
            guard.remove_if_not_started()
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
