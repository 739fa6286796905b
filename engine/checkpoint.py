"""Checkpoint I/O for the engine: the project's one reader and writer (``common.checkpoint``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from common.checkpoint import CheckpointError, cleanup_partial_writes, read_checkpoint, save_checkpoint

__all__ = ["CheckpointError", "cleanup_partial_writes", "load_checkpoint", "read_checkpoint", "save_checkpoint"]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one of our checkpoints (a dict with a ``model`` state dict)."""
    checkpoint = read_checkpoint(path, map_location)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint of this project (a dict with a 'model' state dict).")
    return checkpoint
