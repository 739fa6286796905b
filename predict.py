"""Is this image or video fake? Score new inputs with a trained detector.

    python predict.py --checkpoint checkpoint/RUN/best.pt photo.jpg clips/ video.mp4 --out predictions/
    python predict.py --checkpoint exported/cael-demo crops/ --no-detect       # images that are already face crops
    python predict.py --checkpoint owner/cael-genface photo.jpg                 # a model folder on the hub

Faces are detected and cropped with the settings the checkpoint was trained with (stored in it), videos sampled as
in training. A frame's score is its most-fake face, a video's the mean of its frames. Writes inputs.csv, frames.csv,
faces.csv and predictions.json into --out and prints a summary; unreadable inputs are listed, the rest scored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.cli import add_scoring_arguments, run, sigterm_interrupts
from common.errors import UsageError


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Score images and videos with a trained face-forgery detector.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or videos")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="RUN/best.pt, a model folder (python -m model.export) or a hub id owner/name",
    )
    parser.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    parser.add_argument(
        "--no-detect", action="store_true", help="the images are face crops already: score them as they are"
    )
    add_scoring_arguments(parser, "autocast precision (default: bf16 on CUDA)")
    parser.add_argument(
        "--calibration",
        help="a calibration.json written by test.py --calibrate, used instead of the map stored in the checkpoint",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def checkpoint_identity(checkpoint: str) -> dict:
    """What tells one checkpoint from another for resuming: a file's path, size and modification time; a model
    folder's files likewise; a hub id as it is."""
    path = Path(checkpoint)
    if not path.exists():
        return {"id": checkpoint}
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    return {"path": str(path.resolve()), "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


class NothingScored(Exception):
    """Inside the writer: no input was scored, so nothing is written (predict.py raises the user's error after)."""


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {args.batch_size}.")
    if args.no_detect and args.detector:
        raise UsageError("--detector has no effect with --no-detect: drop one of them.")
    import dataclasses
    import time

    from data.trained_on import inputs_caveat
    from engine.device import resolve_precision
    from engine.distributed import DistInfo, device_for
    from engine.inference.forward import score_crops
    from engine.inference.inputs import (
        InputError,
        collect_inputs,
        detector_beside,
        extraction_settings,
        iter_face_crops,
    )
    from engine.inference.outputs import PredictionWriter, ProgressJournal, console_summary
    from engine.inference.summaries import iter_summaries, score_reading
    from model.hub import load_detector

    pretrained = load_detector(args.checkpoint)
    reading, reading_notes = score_reading(pretrained.calibration, args.checkpoint, args.calibration)
    try:
        device = device_for(DistInfo(), args.device)
    except RuntimeError as error:
        raise UsageError(
            f"--device {args.device} cannot be used here: give cpu, or cuda / cuda:N on a machine with CUDA."
        ) from error
    precision = resolve_precision(args.precision, device)
    items = collect_inputs(args.inputs)
    settings = detector = None
    notes = [pretrained.threshold_note, *reading_notes]
    if not args.no_detect:
        settings, stored = extraction_settings(pretrained.face_extraction)
        if args.detector:
            settings = dataclasses.replace(settings, detector=args.detector)
        if not stored:
            notes.append(
                f"{args.checkpoint} stores no face-extraction settings: using the defaults ({settings.to_dict()})"
            )
        detector = detector_beside(settings, device)
    model = pretrained.model.to(device)
    started = time.time()
    out = Path(args.out)
    out_existed = out.exists()
    # a run stopped half-way and started again with the same checkpoint and settings reuses what it wrote
    key = {
        "checkpoint": checkpoint_identity(args.checkpoint),
        "detect": not args.no_detect,
        "face_extraction": settings.to_dict() if settings is not None else None,
        "image_size": pretrained.image_size,
        "precision": precision,
        "calibration": checkpoint_identity(args.calibration) if args.calibration else None,
    }
    journal = ProgressJournal(out, key)
    done = journal.load()
    if journal.note:
        notes.append(journal.note)
    # each input's entry in the journal (None: to score), looked up once; nothing to look up on a fresh run
    offsets = [done.get(str(item.path)) for item in items] if done else [None] * len(items)
    to_score = [item for item, offset in zip(items, offsets) if offset is None] if done else items
    reused = len(items) - len(to_score)
    if reused:
        print(
            f"resuming: {reused} of {len(items)} inputs were scored by a stopped run of the same checkpoint and "
            f"settings ({journal.path}); scoring the other {len(to_score)}",
            flush=True,
        )
    crops = iter_face_crops(
        to_score,
        image_size=pretrained.image_size,
        detect=not args.no_detect,
        settings=settings,
        detector=detector,
        progress=not args.quiet,
    )
    results = score_crops(model, crops, device, precision=precision, batch_size=args.batch_size)
    scored = iter_summaries(
        to_score, results, threshold=pretrained.threshold, class_names=pretrained.class_names, **reading
    )
    # input by input: scored, summarised and written as the crops come, so memory does not grow with the inputs;
    # stopped (Ctrl-C, SIGTERM), the outputs being written are removed, any previous ones are left as they were, and
    # the journal keeps every input written so far for the next run
    try:
        with sigterm_interrupts(), journal, PredictionWriter(out) as writer:
            for offset in offsets:
                if offset is not None:
                    entry = journal.entry_at(offset)
                else:
                    entry = next(scored)
                    journal.append(entry)
                writer.add(entry)
            tally = writer.tally
            if tally.scored == 0:  # no outputs (and no folder, unless it was there): the error says why
                raise NothingScored
            header = {
                "checkpoint": str(args.checkpoint),
                "threshold": pretrained.threshold,
                "calibration": pretrained.calibration,
                "calibration_file": args.calibration,
                "reading": reading_notes,
                "detect": not args.no_detect,
                "face_extraction": settings.to_dict() if settings is not None else None,
                "image_size": pretrained.image_size,
                "device": str(device),
                "precision": precision,
                "aggregation": "frame: most-fake face; video: mean of frame scores",
                "seconds": round(time.time() - started, 3),
                "scored": tally.scored,
                "unscored": tally.unscored,
                "resumed": reused,  # inputs whose entries came from a stopped run (the same checkpoint and settings)
            }
            trained_on = pretrained.metadata.get("trained_on")
            header["trained_on"] = trained_on  # None: the checkpoint predates the record
            header["caveat"] = inputs_caveat(trained_on, [item.path for item in items])
            paths = writer.finish(header)
    except KeyboardInterrupt:
        print(f"stopped: the inputs scored so far are kept in {journal.path}; the same command continues", flush=True)
        raise
    except NothingScored:
        journal.remove()
        if not out_existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        reasons = "; ".join(f"{entry['input']}: {entry['status']}" for entry in tally.unscored_head[:3])
        more = f" (and {tally.inputs - 3} more)" if tally.inputs > 3 else ""
        raise InputError(
            f"none of the {tally.inputs} inputs could be scored ({reasons}{more}): check the paths and formats; "
            f"nothing was written to {out}."
        ) from None
    journal.remove()
    for note in notes:
        print(note)
    if header["caveat"]:
        print(f"caveat: {header['caveat']}")
    print(console_summary(tally, pretrained.threshold))
    print(
        f"\n{tally.scored} of {tally.inputs} inputs scored ({tally.faces} faces) in {header['seconds']:.1f} s; "
        f"written to {paths['json'].parent}"
    )
    # every input's entry is in predictions.json ("inputs"); the first ones are kept here for callers
    return {"head": tally.head, "inputs": tally.inputs, "paths": paths, **header}


if __name__ == "__main__":
    sys.exit(run(main))
