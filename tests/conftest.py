"""Test session set-up: a fresh Prefect home, no analytics, no network, one Prefect test server."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports Prefect: a fresh home per session, no analytics, a patient start-up.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="synthpipe-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("PREFECT_API_URL", None)

import pytest


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect API (SQLite) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def weather_csv(tmp_path_factory) -> Path:
    """A 3000-row weather CSV (see :func:`tests.tables.weather_csv`), one per test module."""
    from tests.tables import weather_csv as write_weather_csv

    return write_weather_csv(tmp_path_factory.mktemp("src"), rows=3000)
