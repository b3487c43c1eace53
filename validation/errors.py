"""Errors a user can act on. The CLI prints their message on one line and exits non-zero."""
from __future__ import annotations


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
