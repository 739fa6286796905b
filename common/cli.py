"""The entry-point runner: ``sys.exit(run(main))`` turns user errors into one line and an exit status.

- ``UserError``: ``error: <sentence>`` on stderr, exit status 1 (``UsageError``: 2).
- Ctrl-C: ``interrupted`` and exit status 130 (a training run saves a resumable checkpoint first); inside
  ``sigterm_interrupts()``, SIGTERM (a scheduler, ``kill``) too, so that half-written outputs are cleaned up.
- A full disk: one sentence naming the file, exit status 1.
- ``--debug`` on the command line (or ``CAEL_DEBUG=1``) shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .errors import UserError

DEBUG_FLAG = "--debug"


def debug_requested(argv: Sequence[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get("CAEL_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def user_message(error: BaseException) -> str:
    """The error's sentence; a DataLoader worker's re-raised error loses the worker traceback it carries."""
    text = str(error).strip() or type(error).__name__
    if "Original Traceback" in text:  # torch re-raises worker errors with the worker's traceback in the message
        last = [line for line in text.splitlines() if line.strip()][-1]
        prefix, sep, rest = last.partition(": ")
        text = rest if sep and all(part.isidentifier() for part in prefix.split(".")) else last
    return text


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block, as Ctrl-C does, so ``with`` blocks clean up (temporary
    files of atomic writes); outside the main thread, where no handler can be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)`` (``--debug`` removed) and return the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [token for token in argv if token != DEBUG_FLAG]
    try:
        result = main(argv)
    except UserError as error:
        if debug:
            raise
        print(f"error: {user_message(error)}", file=sys.stderr, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    except OSError as error:
        if debug or error.errno != errno.ENOSPC:
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(
            f"error: the disk is full{where}: free some space and run the command again.", file=sys.stderr, flush=True
        )
        return 1
    if isinstance(result, int) and not isinstance(result, bool):  # a main that returns its own exit status
        return result
    return 0 if result is None or result else 1


def add_scoring_arguments(parser: argparse.ArgumentParser, precision_help: str) -> None:
    """The options that say how faces are found and scored, the same in predict.py and the web page (tools/app.py)."""
    parser.add_argument(
        "--detector", help="face detector to use instead of the checkpoint's (a name registered in data.extract_faces)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="faces per forward pass (default 64)")
    parser.add_argument("--device", default="auto", help="cuda, cuda:1, cpu (default: CUDA when present)")
    parser.add_argument(
        "--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto", help=precision_help
    )
