"""Errors a user can act on. The CLI prints their message on one line and exits non-zero."""
from __future__ import annotations

import os


class SynthpipeError(Exception):
    """An expected failure with a message that tells the user what to do."""

    exit_code: int = 2


class InputError(SynthpipeError):
    """The source table, schema file or a parameter is unusable."""


class ConfigError(SynthpipeError):
    """A configuration value is invalid (unknown generator, bad device, ...)."""


class DeviceUnavailableError(SynthpipeError):
    """A CUDA device was requested but none is available."""


class OutputError(SynthpipeError):
    """The output location cannot be written."""


class GateFailedError(SynthpipeError):
    """The synthetic table failed a hard check of the gate; the run was quarantined."""

    exit_code = 1


INTERNAL_ERROR = 3
"""Exit code of an unexpected error (a bug or a broken environment): never 1 (gate failed) or 2
(bad input), so a scheduler does not read a crash as a quarantined run or a bad source."""
DEBUG_ENV = "SYNTHPIPE_DEBUG"


def debug_enabled() -> bool:
    """Whether SYNTHPIPE_DEBUG asks for the traceback of an unexpected error."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def internal_error_line(exc: BaseException) -> str:
    """One line naming an unexpected error and how to see its traceback."""
    message = " ".join(str(exc).split())  # one line, whatever the message holds
    return (f"internal error: {type(exc).__name__}{': ' + message if message else ''} "
            f"(set {DEBUG_ENV}=1 for the traceback)")
