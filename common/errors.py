"""User-facing errors: one base class, caught once per entry point (``common.cli.run``).

A ``UserError`` is something the user can fix; its message is one sentence naming the file, row or key and what
to do. Entry points print it as ``error: <sentence>`` and exit with its ``exit_code`` (2: usage, 1: failure).
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a bad config or a failed run that the user can act on (exit status 1)."""

    exit_code = 1

    def __str__(self) -> str:  # the sentence itself, also for subclasses of KeyError (which would quote it)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UsageError(UserError):
    """A command line that cannot be run as given (exit status 2, like argparse's own errors)."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A config file, config key or override that cannot be used; the message names the file or key."""


class UnknownKeyError(ConfigError, KeyError):
    """A config key or name that does not exist (a KeyError too); the message suggests the closest one."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the command needs is not there; the message names it and what to give instead."""
