"""Progress of long work: Prefect progress artifacts, plus in-process listeners (the CLI's bar)."""
from __future__ import annotations

import time
from typing import Callable

from generators.base import ProgressEvent

Listener = Callable[[str, ProgressEvent], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def notify(label: str, event: ProgressEvent) -> None:
    for listener in list(_listeners):
        listener(label, event)


class ArtifactProgress:
    """A ProgressCallback that keeps a Prefect progress artifact up to date (throttled)."""

    def __init__(self, label: str, min_interval: float = 1.0) -> None:
        self.label = label
        self.min_interval = min_interval
        self._artifact_id = None
        self._last = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        notify(self.label, event)
        now = time.monotonic()
        done = event.step >= event.total
        if not done and now - self._last < self.min_interval:
            return
        self._last = now
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in event.metrics.items())
        description = f"{self.label} {event.stage}: {event.step}/{event.total} {metrics}".strip()
        try:
            from prefect.artifacts import create_progress_artifact, update_progress_artifact

            if self._artifact_id is None:
                self._artifact_id = create_progress_artifact(progress=100 * event.fraction, description=description)
            else:
                update_progress_artifact(self._artifact_id, progress=100 * event.fraction, description=description)
        except Exception:  # outside a run context, or the API is briefly unreachable: progress is best-effort
            pass
