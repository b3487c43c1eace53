"""End to end against a real Prefect server: CPU and GPU work pools, deployments, workers.

Everything runs as separate processes with their own environment (a fresh SQLite
PREFECT_HOME, a free port), exactly as an operator would start them with the scripts in
``deployments/``; nothing here uses the session's in-process test server. The GPU pool is a
process pool on this (GPU-less) machine: what is tested is *placement* — the training child runs
on the ``gpu`` pool's worker — with ``device=cpu`` in the request so it can train here.
Server, workers and any flow-run processes they started are stopped at the end, also on failure.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
SOURCE = "demo:weather"
DATASET = "weather"
ROWS = 4000  # sampled rows: keeps the gate quick on two cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux /proc): flow runs start in their own sessions,
    so killing a worker's process group alone would leave a running flow behind."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Stack:
    """A running server with its work pools, deployments and workers."""

    api: str
    env: dict[str, str]
    logs: Path
    out: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen(
            args, cwd=REPO, env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole at the end
        )
        self.procs.append(proc)
        return proc

    def run(self, args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            victims = _descendants(proc.pid) if Path("/proc").is_dir() else []
            for pid in victims:  # flow runs first, so their worker sees them end
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        """The end of every process log, for assertion messages."""
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # REST helpers: plain HTTP, so this process never touches its own Prefect settings
    def request(self, method: str, path: str, body: dict | None = None):
        """One API call, retried like Prefect's own client does when SQLite is briefly locked (503)."""
        for attempt in range(8):
            try:
                r = httpx.request(method, f"{self.api}{path}", json=body, timeout=30)
                if r.status_code not in (502, 503, 504):
                    r.raise_for_status()
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(min(0.5 * 2**attempt, 5))
        raise AssertionError(f"{method} {path}: the API kept failing\n{self.tail()}")

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body: dict):
        return self.request("POST", path, body)

    def deployment(self, name: str) -> dict:
        return self.get(f"/deployments/name/{name}")

    def flow_runs(self, deployment_id: str) -> list[dict]:
        return self.post("/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}})

    def run_deployment(self, name: str, params: dict, timeout: float = 420) -> dict:
        """Create a run of deployment ``name`` (as the UI's Run button does) and wait for its end."""
        dep = self.deployment(name)
        # the idempotency key makes a retried create (after a 503) return the same run
        key = f"e2e-{time.time_ns()}"
        run = self.post(f"/deployments/{dep['id']}/create_flow_run", {"parameters": {"params": params}, "idempotency_key": key})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/flow_runs/{run['id']}")
            if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return run
            time.sleep(1)
        raise AssertionError(f"run of {name} still {run['state']['type']} after {timeout} s\n{self.tail()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "logs").mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(root / "prefect-home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",  # pick runs up promptly (default: every 10 s)
        PREFECT_WORKER_HEARTBEAT_SECONDS="5",
        SYNTHPIPE_HOME=str(REPO),  # the deployments' pull step (enter_checkout) changes into it
        SYNTHPIPE_GPU_COUNT="2",  # deploy.sh sets the train-generator limit from it
        PREFECT=PREFECT,  # the scripts' prefect executable: this interpreter's
        GX_ANALYTICS_ENABLED="false",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    s = Stack(api=env["PREFECT_API_URL"], env=env, logs=root / "logs", out=root / "out")
    try:
        s.start("server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"])
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{s.api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or s.procs[0].poll() is not None:
                raise AssertionError(f"prefect server did not become healthy\n{s.tail()}")
            time.sleep(0.5)
        for script in ("create-pools.sh", "deploy.sh"):
            done = s.run([str(REPO / "deployments" / script)])
            assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        s.start("worker-cpu", [str(REPO / "deployments" / "cpu-worker.sh")])
        # the GPU-host script insists on nvidia-smi and CUDA; here the same process worker is
        # started by hand on the gpu pool, which is what that script runs once per GPU
        s.start("worker-gpu", [PREFECT, "--no-prompt", "worker", "start", "--pool", "gpu", "--type", "process",
                               "--name", "gpu-e2e-0", "--limit", "1"], {"SYNTHPIPE_WORKER_GPU": "0"})
        deadline = time.monotonic() + 90
        for pool in ("cpu", "gpu"):
            while not s.post(f"/work_pools/{pool}/workers/filter", {}):
                if time.monotonic() > deadline:
                    raise AssertionError(f"no worker registered on pool {pool}\n{s.tail()}")
                time.sleep(0.5)
        yield s
    finally:
        s.stop()


def _synthpipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "synthpipe"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_deployments_are_registered_as_designed(stack):
    synth = stack.deployment("synthesize/synthesize")
    train = stack.deployment("train-generator/train-generator")
    assert synth["work_pool_name"] == "cpu" and train["work_pool_name"] == "gpu"
    # nightly refresh present but switched off
    (schedule,) = synth["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["active"] is False
    assert synth["parameters"]["params"]["training"] == "deployment"
    # one training per GPU: the limit came from SYNTHPIPE_GPU_COUNT through deploy.sh
    assert train["global_concurrency_limit"]["limit"] == 2
    assert train["job_variables"]["env"] == {"SYNTHPIPE_DEVICE": "cuda", "CUDA_VISIBLE_DEVICES": "0"}
    # no clone or download: workers change into their own checkout
    assert train["pull_steps"] == synth["pull_steps"] == [{"flows.placement.enter_checkout": {}}]


def test_synthesize_deployment_trains_on_the_gpu_pool_and_publishes_a_verified_release(stack):
    params = {"source": SOURCE, "out": str(stack.out), "rows": ROWS, "device": "cpu", "training": "deployment", "seed": 3}
    parent = stack.run_deployment("synthesize/synthesize", params)
    assert parent["state"]["type"] == "COMPLETED", f"{parent['state']}\n{stack.tail()}"
    assert parent["work_pool_name"] == "cpu"

    train_dep = stack.deployment("train-generator/train-generator")
    (child,) = stack.flow_runs(train_dep["id"])
    assert child["work_pool_name"] == "gpu" and child["state"]["type"] == "COMPLETED"
    # the child is linked to the parent as a subflow
    link = stack.get(f"/task_runs/{child['parent_task_run_id']}")
    assert link["flow_run_id"] == parent["id"]

    dataset = stack.out / DATASET
    release = dataset / (dataset / "LATEST").read_text().strip()
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["prefect_flow_run_id"] == parent["id"]
    assert manifest["training"]["placement"] == "deployment"
    assert manifest["training"]["work_pool"] == "gpu" and manifest["training"]["flow_run_id"] == child["id"]
    assert manifest["training"]["trained_on"]["device"] == "cpu", "the request's explicit device wins over the pool's cuda"
    assert manifest["rows"] == ROWS

    verified = _synthpipe("verify", str(release), env=stack.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert manifest["source"]["fingerprint"] in verified.stdout
    listing = _synthpipe("releases", str(stack.out), env=stack.env)
    assert listing.returncode == 0 and release.name in listing.stdout and "LATEST" in listing.stdout

    # real data is gone after the run; the trained model stays in the (sensitive) model store
    assert not any((stack.out / ".work").iterdir())
    assert [p.name.split("-")[0] for p in (stack.out / ".models").iterdir()] == ["copula"]


def test_a_failing_training_child_fails_the_parent_with_its_reason(stack):
    before = stack.flow_runs(stack.deployment("train-generator/train-generator")["id"])
    latest = (stack.out / DATASET / "LATEST").read_text() if (stack.out / DATASET / "LATEST").exists() else None
    params = {"source": SOURCE, "out": str(stack.out), "rows": ROWS, "device": "cpu", "training": "deployment",
              "generator_options": {"no_such_option": 1}}
    parent = stack.run_deployment("synthesize/synthesize", params)
    assert parent["state"]["type"] == "FAILED", f"{parent['state']}\n{stack.tail()}"
    message = parent["state"]["message"]
    # the parent names the child, its pool, and the child's own exception and reason
    assert "TrainingFailedError" in message and "work pool 'gpu'" in message, message
    assert "ConfigError" in message and "no_such_option" in message, message

    after = stack.flow_runs(stack.deployment("train-generator/train-generator")["id"])
    (child,) = [r for r in after if r["id"] not in {b["id"] for b in before}]
    assert child["work_pool_name"] == "gpu" and child["state"]["type"] == "FAILED"
    assert not any((stack.out / ".work").iterdir()), "a failed run leaves no copy of the real data"
    if latest is not None:
        assert (stack.out / DATASET / "LATEST").read_text() == latest
