"""The project's log: one ``cael`` logger, on the console of rank 0 and in a run's ``train.log``."""

from __future__ import annotations

import logging
from pathlib import Path


def setup_logging(run_dir: Path | None, is_main: bool) -> None:
    """Console (rank 0) and ``train.log`` in the run folder."""
    logger = logging.getLogger("cael")
    logger.handlers.clear()
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if run_dir is not None and is_main:
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
