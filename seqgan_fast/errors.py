"""The package's exception types, in one place: each message is one line meant for the user
(the command line prints it as ``seqgan-fast: error: ...`` and exits with status 2).
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A bad preset name, override key or value; the message is meant for the user."""


class DataError(ValueError):
    """Bad input data; the message names the file (and line where there is one)."""


class CheckpointError(RuntimeError):
    """No usable checkpoint (missing, incomplete or unreadable); the message names the path."""


class NonFiniteCheckpointError(CheckpointError):
    """A state with NaN or inf tensors was about to be saved (and was not)."""


class RunLockedError(RuntimeError):
    """Another live process holds the run folder; the message is one line for the user."""


class DistributedError(RuntimeError):
    """A rank lost its peers (one died or hung) or the ranks disagree; one line for the user.
    ``echo=False``: another rank reports the same cause (the CLI prints it there only)."""

    def __init__(self, message: str, echo: bool = True) -> None:
        super().__init__(message)
        self.echo = echo


class CLIError(Exception):
    """A usage error; the message is printed as one line."""


class NonFiniteError(RuntimeError):
    """A NaN or inf in a loss, gradient or weight (train/guard.py); one line for the user."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by the command line's handler (as Python raises
    KeyboardInterrupt for SIGINT), so that temporary files are removed on the way out. A
    BaseException: no ``except Exception`` may swallow it."""
