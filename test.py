"""Evaluate detectors: protocol tables (AUC, AP, EER, accuracies, CIs) for papers.

python test.py                                                # the latest finished demo run, on the demo data
python test.py --checkpoint checkpoint/RUN/best.pt           # its own protocol, fold and CSV
python test.py --checkpoint RUN/best.pt --csv other.csv --protocol cross-dataset
python test.py --runs checkpoint/xgen --protocol cross-generator   # one run per fold -> train x test matrix
python test.py --runs checkpoint/ablations          # runs of several detectors -> the comparison table
python test.py --checkpoint RUN/best.pt --perturb jpeg:70,blur:1.0,resize:0.5
python test.py --predictions RUN/eval-intra/predictions.csv --protocol intra   # tables without the model
python test.py --runs checkpoint/xgen --protocol cross-generator --level video  # video-level matrix
python test.py --predictions RUN/eval-intra/predictions.csv --protocol intra --conventions deepfakebench,univfd
python test.py --compare CAEL=runs/cael/eval-intra xception=runs/xception/eval-intra   # paired tests vs the first
python test.py --checkpoint RUN/best.pt --calibrate temperature      # fit on the protocol's validation rows
python test.py --checkpoint RUN/best.pt --min-coverage 0.99 --missing as-fake
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.cli import run
from common.config import REPO_ROOT
from common.errors import UsageError, UserError
from engine.config import load_config


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Evaluate a face-forgery detector on a protocol's test rows.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="best.pt of a run (or a checkpoint of the released CAEL code)")
    source.add_argument(
        "--runs",
        help="folder of runs: one per fold of --protocol (as train.py --fold wrote them) -> "
        "train x test matrix; or of several detectors (as tools.train_set wrote them) -> comparison table",
    )
    source.add_argument(
        "--predictions", help="a predictions.csv written by test.py: recompute the tables without the model"
    )
    source.add_argument(
        "--compare",
        nargs="+",
        metavar="[NAME=]PATH",
        help="paired tests of detectors on the same rows: predictions.csv files, evaluation folders or run folders "
        "(NAME=PATH1,PATH2: several seeds of one detector); each against the first (or --reference)",
    )
    parser.add_argument("--reference", help="--compare / --runs comparison table: the detector the others face")
    parser.add_argument(
        "--intersect",
        action="store_true",
        help="--compare: compare the rows common to every result (counted and written) instead of refusing",
    )
    parser.add_argument(
        "--calibrate",
        choices=["temperature", "platt", "isotonic"],
        help="fit this map of probabilities on held-out rows and report calibrated numbers beside the raw ones",
    )
    parser.add_argument(
        "--calibration-csv",
        help="--calibrate: the held-out rows (a predictions.csv, or a split CSV the model scores; default: the "
        "protocol's validation rows of the CSV)",
    )
    parser.add_argument(
        "--min-coverage",
        type=float,
        metavar="F",
        help="exit with status 1 (after writing the report) when fewer than F (0-1) of the test rows were scored",
    )
    parser.add_argument(
        "--on-error",
        choices=["skip", "error"],
        default="skip",
        help="a test image that is missing or cannot be decoded: skip it (default; its row is counted unscored with "
        "its status) or stop with an error",
    )
    parser.add_argument(
        "--missing",
        choices=["exclude", "as-fake", "as-real"],
        help="how unscored test rows (missing or unreadable images, videos without a face, non-finite scores) count: "
        "left out (default), or as certain fakes (score 1) or reals (score 0)",
    )
    parser.add_argument("--protocol", help="protocol (default: the checkpoint's)")
    parser.add_argument("--fold", help="fold (default: the checkpoint's)")
    parser.add_argument("--csv", help="split CSV to test on (default: the checkpoint's)")
    parser.add_argument("--data-root", help="folder the CSV's paths are relative to")
    parser.add_argument("--config", help="model config the checkpoint must match (an error if it does not)")
    parser.add_argument("--out", help="output folder (default: RUN/eval-<protocol>[-<fold>])")
    parser.add_argument(
        "--perturb",
        help="robustness columns, e.g. jpeg:70,blur:1.0,resize:0.5,noise:5 (applied at the image's native resolution)",
    )
    parser.add_argument(
        "--crop",
        choices=["resize", "pad", "center-crop"],
        help="image -> model size (default: the run's data.crop, resize)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        help="bootstrap resamples of the AUC's 95%% interval and of --compare's paired bootstrap (default 1000; "
        "0: off); videos are resampled when the CSV has them",
    )
    parser.add_argument(
        "--interval",
        choices=["auto", "bootstrap", "delong"],
        help="the AUC's 95%% interval: bootstrap, delong (DeLong's normal-theory interval; Obuchowski's over videos "
        "or identities), or auto (default: the bootstrap in groups of up to eval.bootstrap-max-rows rows, DeLong "
        "above)",
    )
    parser.add_argument(
        "--level",
        choices=["frame", "video"],
        default="frame",
        help="--runs matrices and --compare: frame-level or video-level AUC (default: frame)",
    )
    parser.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="report NaN/infinite/missing scores as left-out rows in the tables instead of stopping",
    )
    parser.add_argument(
        "--roc-log-fpr",
        action="store_true",
        help="roc.png with a log-scale false-positive-rate axis (the low-FPR region)",
    )
    parser.add_argument(
        "--conventions",
        help="also each group's numbers as a reference's code computes them, in table-<name>.md/.csv/.tex and "
        "metrics.json: deepfakebench, univfd (comma-separated; CNNDetection's are univfd's at 0.5)",
    )
    parser.add_argument("--batch-size", type=int, help="evaluation batch size")
    parser.add_argument(
        "--precision", choices=["auto", "fp32", "bf16", "fp16"], help="autocast precision (default: the run's)"
    )
    parser.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    parser.add_argument("--workers", default="auto", help="loader processes (default: auto)")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="run the model again even where OUT/scores.npz holds this checkpoint's scores of the same rows and "
        "settings (needed only after changing image files in place)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _latest_demo_checkpoint() -> Path:
    """best.pt of the latest demo run that finished (its last.pt says so; an interrupted run is left out)."""
    from common.checkpoint import read_checkpoint

    finished = []
    for best in (REPO_ROOT / "checkpoint").glob("demo-*/best.pt"):
        last = best.parent / "last.pt"
        if not last.is_file():
            continue
        checkpoint = read_checkpoint(last)
        state, epochs = checkpoint.get("state") or {}, (checkpoint.get("config") or {}).get("train", {}).get("epochs")
        if state.get("finished") or (
            epochs is not None and checkpoint.get("epoch", 0) >= epochs and not state.get("step_in_epoch")
        ):
            finished.append(best)
    if not finished:
        raise UserError(
            "no finished demo run under checkpoint/: run `python train.py` first (it trains the demo, or continues "
            "an interrupted demo run), or pass --checkpoint."
        )
    return max(finished, key=lambda best: (best.parent / "last.pt").stat().st_mtime)


def _overrides(args) -> dict:
    data, eval_, train = {"on-error": args.on_error}, {}, {}
    if args.crop:
        data["crop"] = args.crop
    if args.csv:
        data["csv"] = str(Path(args.csv).resolve())
        data["root"] = str(Path(args.data_root).resolve()) if args.data_root else None
    elif args.data_root:
        data["root"] = str(Path(args.data_root).resolve())
    if args.bootstrap is not None:
        eval_["bootstrap"] = args.bootstrap
    if args.interval:
        eval_["interval"] = args.interval
    if args.batch_size:
        eval_["batch-size"] = args.batch_size
    if args.perturb:
        eval_["perturb"] = args.perturb
    if args.allow_nonfinite:
        eval_["allow-nonfinite"] = True
    if args.roc_log_fpr:
        eval_["roc-log-fpr"] = True
    if args.precision:
        train["precision"] = args.precision
    if args.missing:
        eval_["missing"] = args.missing
    if args.conventions:
        from engine.evaluation.conventions import parse_conventions

        eval_["conventions"] = ",".join(parse_conventions(args.conventions))
    return {k: v for k, v in (("data", data), ("eval", eval_), ("train", train)) if v}


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    from data.perturb import parse_perturbations
    from engine.distributed import cleanup, device_for, init_distributed
    from engine.evaluation.comparison_table import evaluate_run_folder
    from engine.evaluation.evaluate import evaluate_checkpoint, evaluate_predictions
    from engine.logs import setup_logging

    workers = int(args.workers) if str(args.workers).isdigit() else args.workers
    perturbations = parse_perturbations(args.perturb)
    overrides = _overrides(args)
    out = Path(args.out).resolve() if args.out else None
    _check_options(args)
    calibration = {
        "calibrate": args.calibrate,
        "calibration_csv": args.calibration_csv,
        "min_coverage": args.min_coverage,
    }
    setup_logging(None, True)
    if args.compare:
        result = _compare(args, overrides, out, workers)
        print(result["console"])
        print(f"\nwritten to {result['out_dir']}")
        return result
    if args.predictions:
        if not args.protocol:
            raise UsageError(
                "--predictions needs --protocol (which test rows and groups to report, e.g. --protocol intra)."
            )
        eval_config = {**load_config(None)["eval"], **overrides.get("eval", {})}
        out = out or Path(args.predictions).resolve().parent / "recomputed"
        result = evaluate_predictions(
            args.predictions,
            protocol=args.protocol,
            eval_config=eval_config,
            out_dir=out,
            fold=args.fold,
            **calibration,
        )
        print(result["console"])
        print(f"\nwritten to {result['out_dir']}")
        return result
    dist = init_distributed()
    try:
        device = device_for(dist, args.device or "auto")
        setup_logging(None, dist.is_main)
        if args.runs:  # without --protocol: the protocol the runs were trained on
            result = evaluate_run_folder(
                args.runs,
                args.protocol,
                config_overrides=overrides,
                out_dir=out,
                perturbations=perturbations,
                device=device,
                workers=workers,
                progress=not args.quiet,
                dist=dist,
                level=args.level,
                rescore=args.rescore,
                reference=args.reference,
                **calibration,
            )
        else:
            checkpoint = Path(args.checkpoint) if args.checkpoint else _latest_demo_checkpoint()
            if not args.checkpoint and dist.is_main:
                print(f"no --checkpoint given: scoring the latest finished demo run, {checkpoint}", flush=True)
            requested = load_config(args.config) if args.config else None
            result = evaluate_checkpoint(
                checkpoint,
                config_overrides=overrides,
                out_dir=out,
                perturbations=perturbations,
                device=device,
                requested_config=requested,
                workers=workers,
                progress=not args.quiet,
                dist=dist,
                protocol=args.protocol,
                fold=args.fold,
                rescore=args.rescore,
                **calibration,
            )
    finally:
        cleanup()
    if dist.is_main:
        print(result["console"])
        print(f"\nwritten to {result['out_dir']}")
    return result


def _check_options(args) -> None:
    """Options that only mean something beside others, said before anything is loaded."""
    if args.min_coverage is not None and not 0.0 <= args.min_coverage <= 1.0:
        raise UsageError(f"--min-coverage is a share of the test rows, from 0 to 1; got {args.min_coverage}.")
    if args.calibration_csv and not args.calibrate:
        raise UsageError("--calibration-csv gives the rows --calibrate fits on: add --calibrate temperature (or platt, "
                         "isotonic).")
    if args.compare and (args.calibrate or args.min_coverage is not None or args.perturb):
        raise UsageError("--compare reads the scores of finished evaluations: evaluate with --calibrate, "
                         "--min-coverage or --perturb first, then compare.")
    if args.intersect and not args.compare:
        raise UsageError("--intersect applies to --compare only.")
    if args.reference and not (args.compare or args.runs):
        raise UsageError("--reference names the detector of --compare or --runs that the others are compared with.")


def _compare(args, overrides: dict, out: Path | None, workers) -> dict:
    """``--compare``: paired tests of the given detectors; a run folder or checkpoint is evaluated first."""
    from engine.distributed import DistInfo, device_for
    from engine.evaluation.compare import run_compare
    from engine.evaluation.evaluate import evaluate_checkpoint

    eval_config = {**load_config(None)["eval"], **overrides.get("eval", {})}

    def evaluate(checkpoint: Path) -> Path:
        payload = evaluate_checkpoint(
            checkpoint,
            config_overrides=overrides,
            out_dir=None,
            perturbations=[],
            device=device_for(DistInfo(), args.device or "auto"),
            workers=workers,
            progress=not args.quiet,
            protocol=args.protocol,
            fold=args.fold,
            rescore=args.rescore,
        )
        return Path(payload["out_dir"])

    return run_compare(
        args.compare,
        protocol=args.protocol,
        reference=args.reference,
        out_dir=out,
        evaluate=evaluate,
        fold=args.fold,
        intersect=args.intersect,
        level=args.level,
        method=args.interval or "auto",
        samples=int(eval_config["bootstrap"]),
        max_bootstrap_rows=int(eval_config["bootstrap-max-rows"]),
        video_aggregation=eval_config["video-aggregation"],
    )


if __name__ == "__main__":
    sys.exit(run(main))
