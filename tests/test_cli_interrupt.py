"""Ctrl-C during ``synthpipe run``, as a terminal sends it: SIGINT to the whole foreground
process group, with the CLI on Prefect's temporary local server (no ``PREFECT_API_URL``); and
SIGTERM to the group, as `kill` or a scheduler sends it.

The server must survive the signal, so the run is recorded as crashed at once; before, it died
with the CLI's group and the CLI spent about four minutes retrying before exiting 3 with a
connection error.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _servers_with_home(home: str) -> list[int]:
    """Pids of live processes started with this Prefect home in their environment (Linux)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if f"PREFECT_HOME={home}".encode() in environ.split(b"\0"):
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the server through /proc (Linux)")
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])  # Ctrl-C; `kill`, a scheduler
def test_an_interrupt_during_training_aborts_at_once_and_leaves_nothing(tmp_path, sig, code):
    home = str(tmp_path / "prefect-home")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=home, SYNTHPIPE_DEBUG="")
    cli = [sys.executable, "-c", "from flows.cli import main; main()"]
    proc = subprocess.Popen(
        [*cli, "run", "demo:planes", "--generator", "gan", "--epochs", "100000", "--out", str(out)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, like a shell job
    )
    try:
        deadline = time.monotonic() + 240  # a cold server start takes 20-40 s here
        while not list(out.glob(".work/*/train_model_view.parquet")):  # the split is written: training starts
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.5)
        time.sleep(2)
        os.killpg(proc.pid, sig)
        signalled = time.monotonic()
        _, err = proc.communicate(timeout=120)
        waited = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        leaked = _servers_with_home(home)  # in a session of its own: the group kill misses it
        for pid in leaked:
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == code, err
    if sig == signal.SIGINT:
        assert err.strip().splitlines()[-1] == "aborted", err
    assert "internal error" not in err and "Traceback" not in err
    assert waited < 60, f"the CLI took {waited:.0f} s to exit after {sig.name}"
    assert not out.exists()  # the run created it; nothing was published or left in its work folder
    assert not leaked  # the temporary server was stopped with the CLI
