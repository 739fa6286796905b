"""The one checkpoint reader and writer: atomic writes, tensors-only reads, one clear sentence for a bad file.

Every entry point (train.py --resume, test.py, predict.py, model.convert_released, model.export) reads through
``read_checkpoint``: a missing, truncated, foreign or hostile file is a ``CheckpointError`` naming the file,
never torch's multi-line advice to allow-list globals.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .atomic import DiskFullError, atomic_output
from .errors import UserError


class CheckpointError(UserError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


class CheckpointDiskFullError(CheckpointError, DiskFullError):
    """The disk filled up while a checkpoint was written; the previous file, if any, is intact."""


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:  # the original error matters more; say what was left behind
        print(f"warning: could not remove the temporary file {path}: {error}", flush=True)


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (``common.atomic.atomic_output``): a crash or a full disk mid-write
    leaves any previous file intact, and a full disk is one sentence naming the file (``CheckpointDiskFullError``).

    The temporary file sits beside ``path`` as ``.NAME.*.tmp`` (``cleanup_partial_writes`` removes leftovers of a
    killed writer); the final file gets the permissions of any other file the process creates (the umask).
    """
    path = Path(path)
    try:
        with atomic_output(path, "wb") as stream:
            torch.save(checkpoint, stream)
    except DiskFullError as error:
        raise CheckpointDiskFullError(str(error)) from error
    return path


def cleanup_partial_writes(folder: str | Path) -> list[Path]:
    """Remove temporary files that a killed ``save_checkpoint`` left in ``folder``; returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            _remove_quietly(tmp)
            removed.append(tmp)
    return removed


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, what: str = "checkpoint") -> Any:
    """The object saved at ``path``, loaded with ``weights_only=True`` (tensors and plain values only)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder: give the checkpoint file inside it (e.g. {path}/best.pt).")
    if not path.is_file():
        raise CheckpointError(f"no {what} at {path}: check the path.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "unsupported global" not in str(error).lower():  # not a pickle of objects: text, an image, random bytes
            raise CheckpointError(
                f"{what} {path} is truncated or not a PyTorch checkpoint: use the file written by train.py, or copy "
                "it again."
            ) from error
        raise CheckpointError(
            f"{what} {path} holds Python objects beyond tensors and plain values, which are not loaded for safety: "
            "use a checkpoint written by this project (or convert it with python -m model.convert_released)."
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(
            f"{what} {path} is truncated or not a PyTorch checkpoint: use the file written by train.py, or copy it "
            "again."
        ) from error


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """One of our run checkpoints (a dict with a ``model`` state dict), for train.py --resume and the tests."""
    checkpoint = read_checkpoint(path, map_location)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint of this project (a dict with a 'model' state dict).")
    return checkpoint
