"""Errors a user can act on. The CLI prints their message on one line and exits non-zero."""
from __future__ import annotations

import os

import yaml


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
    message = one_line(exc)  # one line, whatever the message holds
    return (f"internal error: {type(exc).__name__}{': ' + message if message else ''} "
            f"(set {DEBUG_ENV}=1 for the traceback)")


def one_line(text: object) -> str:
    """``text`` with every run of whitespace, newlines included, as one space."""
    return " ".join(str(text).split())


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where (its own message spans lines, with a
    copy of the offending line and a caret under it)."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return one_line(exc)
    at = lambda mark: f"line {mark.line + 1}, column {mark.column + 1}"  # noqa: E731
    out = one_line(exc.problem or "") or "malformed"
    if exc.problem_mark is not None:
        out += f" at {at(exc.problem_mark)}"
    if exc.context:
        out += f" ({one_line(exc.context)}" + (f" from {at(exc.context_mark)})" if exc.context_mark is not None else ")")
    return out
