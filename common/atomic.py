"""Atomic file writes: a reader sees the old file or the new one, never half of one.

``atomic_output`` is the one primitive (a temporary file beside the target, fsync, then a rename); the other
helpers are spelled through it. ``atomic_folder`` is its counterpart for a folder written as a whole. A full disk
is said in one sentence naming the file (``DiskFullError``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from common.errors import UserError


class DiskFullError(UserError, OSError):
    """The disk (or quota) filled up while a file was being written; the previous file, if any, is intact."""


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the disk or quota is full.

    torch.save reports a full disk as a RuntimeError from its zip writer, with the OSError lost: its message
    ("unexpected pos", "file write failed") is recognised too.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if isinstance(error, RuntimeError) and ("unexpected pos" in text or "file write failed" in text):
            return True
        error = error.__cause__ or error.__context__
    return False


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _file_mode() -> int:
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path`` in one rename.

    ``mode`` is "w" (text, UTF-8, newlines written as given: csv writers end their own lines) or "wb". On any
    error the temporary file is removed and any previous ``path`` is left as it was; a full disk raises
    ``DiskFullError`` naming the file. The final file gets the permissions
    of any other file the process creates (the umask), not mkstemp's 0600.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_output writes with mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **({"encoding": "utf-8", "newline": ""} if mode == "w" else {})) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp_name, _file_mode())
        os.replace(tmp_name, path)
    except BaseException as error:
        try:
            Path(tmp_name).unlink(missing_ok=True)
        except OSError as cleanup:  # the original error matters more; say what was left behind
            print(f"warning: could not remove the temporary file {tmp_name}: {cleanup}", flush=True)
        if is_disk_full(error):
            kept = f"the previous {path.name} is kept" if path.exists() else f"no {path.name} was written"
            raise DiskFullError(f"the disk is full writing {path}: {kept}; free some space and run again.") from error
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_output(path, "w") as stream:
        stream.write(text)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path, "wb") as stream:
        stream.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A staging folder beside ``path`` to fill; on success it takes the place of ``path`` (replacing any previous
    folder), so the folder appears complete or not at all. On any error the staging folder is removed and ``path``
    is left as it was; a full disk raises ``DiskFullError``. Files and folders get the umask's permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        umask = _umask()  # mkdtemp and many writers create private files; the folder is meant to be shared
        for item in staging.rglob("*"):
            os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~umask)
        os.chmod(staging, 0o777 & ~umask)
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if is_disk_full(error):
            raise DiskFullError(f"the disk is full writing {path}: free some space and run again.") from error
        raise
