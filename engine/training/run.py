"""Run folders: naming, the resolved config, the code version and the library versions of every run."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from common.atomic import write_text_atomic
from common.config import REPO_ROOT
from common.errors import UserError
from engine.config import save_config

LIBRARIES = ("torch", "torchvision", "timm", "transformers", "numpy", "scikit-learn", "pillow", "einops")


def code_version() -> dict[str, Any]:
    """The git commit of this checkout and whether it has uncommitted changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict[str, Any]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": versions,
        "cuda": torch.version.cuda,
        "devices": devices,
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "code": code_version(),
    }


def default_run_name(config: dict[str, Any], config_path: str | None) -> str:
    stem = Path(config_path).stem if config_path else config["model"].get("name", "run")
    parts = [stem, config["data"]["protocol"] if isinstance(config["data"]["protocol"], str) else "custom"]
    if config["data"].get("fold"):
        parts.append(str(config["data"]["fold"]))
    parts.append(time.strftime("%Y%m%d-%H%M%S"))
    return "-".join(Path(p).stem for p in parts)


def prepare_run_dir(run_dir: Path, config: dict[str, Any]) -> None:
    """Create the folder and write config.yaml and env.json (rank 0 only)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    write_text_atomic(run_dir / "env.json", json.dumps(environment(), indent=2) + "\n")


def record_data_fingerprint(run_dir: Path, fingerprint: dict[str, Any]) -> None:
    """env.json's ``data_fingerprint``: the rows and labels the run reads (``data.fingerprint``; last.pt and best.pt
    hold the same), written when the run starts or resumes."""
    path = Path(run_dir) / "env.json"
    env = json.loads(path.read_text()) if path.is_file() else {}
    if env.get("data_fingerprint") != fingerprint:
        write_text_atomic(path, json.dumps({**env, "data_fingerprint": fingerprint}, indent=2) + "\n")


class StartGuard:
    """Removes what a start of train.py wrote into its run folder when the start fails (a bad CSV, a model that
    cannot be built): the folder itself if this start created it, else only the entries it added. Made before the
    run's lock is taken and ``armed`` once it is: a start stopped by the lock of another run touches nothing of that
    run. Once training has begun (``started``), nothing is removed: a checkpoint or the log of a failed epoch is the
    user's to keep."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.created = not self.run_dir.exists()
        self.before = set() if self.created else {entry.name for entry in self.run_dir.iterdir()}
        self.armed = self.begun = False

    def arm(self) -> None:
        self.armed = True

    def started(self) -> None:
        self.begun = True

    def remove_if_not_started(self) -> None:
        import logging
        import shutil

        if not self.armed or self.begun or not self.run_dir.is_dir():
            return
        logger = logging.getLogger("cael")
        for handler in list(logger.handlers):  # train.log is closed before its folder goes
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == self.run_dir:
                handler.close()
                logger.removeHandler(handler)
        added = [self.run_dir] if self.created else [e for e in self.run_dir.iterdir() if e.name not in self.before]
        for entry in added:
            try:
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)
            except OSError as error:  # the start's own error is the one to report; this one is said beside it
                logger.warning(f"{entry} was written by the failed start and could not be removed: {error}")


class RunLock:
    """An exclusive lock on a run folder (``.lock``, ``flock``): two train.py never write into one run at once.

    The operating system releases it when the process ends, however it ends (a SIGKILL included).
    """

    def __init__(self, run_dir: Path):
        self.run_dir, self.path, self.handle = Path(run_dir), Path(run_dir) / ".lock", None

    def acquire(self) -> RunLock:
        import fcntl
        import os
        import socket

        self.run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise UserError(
                f"{self.run_dir} is in use by another training run ({owner}): wait for it to end, or choose another "
                "--out."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"train.py pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            import fcntl

            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
