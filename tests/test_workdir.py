"""The run's working folder (copies of the real data): owner-only, swept after killed runs, never
written inside a folder source."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.storage import RUN_LOCK, claim_run_folder, sweep_stale_runs, write_frame, write_text
from validation.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run_id(n: int) -> str:
    return f"20240101T0000{n:02d}Z-abc{n:03x}"


def test_run_folder_and_its_files_are_owner_only(tmp_path):
    root = tmp_path / "out" / ".work"
    run = claim_run_folder(str(root), _run_id(1))
    try:
        folder = Path(run.uri)
        write_frame(pd.DataFrame({"ssn": ["123-45-6789"]}), str(folder / "source.parquet"))
        write_text("<html>real values</html>", str(folder / "candidates" / "vae" / "report.html"))
        assert _mode(root) == 0o700 and _mode(folder) == 0o700
        assert _mode(folder / "source.parquet") == 0o600
        assert _mode(folder / "candidates" / "vae") == 0o700 and _mode(folder / "candidates" / "vae" / "report.html") == 0o600
    finally:
        run.release()


def test_an_existing_world_readable_work_root_becomes_owner_only(tmp_path):
    root = tmp_path / ".work"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    claim_run_folder(str(root), _run_id(1)).release()
    assert _mode(root) == 0o700


def test_release_deletes_the_folder_and_a_held_one_is_never_swept(tmp_path):
    root = tmp_path / ".work"
    done = claim_run_folder(str(root), _run_id(1))
    write_frame(pd.DataFrame({"x": [1]}), f"{done.uri}/train.parquet")
    done.release()
    assert not Path(done.uri).exists() and [p.name for p in root.iterdir()] == []
    live = claim_run_folder(str(root), _run_id(2))
    try:
        other = claim_run_folder(str(root), _run_id(3))
        assert Path(live.uri).exists() and Path(other.uri).exists()
        assert sweep_stale_runs(root) == []
        other.release()
    finally:
        live.release()


def test_sweep_touches_only_run_folders(tmp_path):
    root = tmp_path / ".work"
    root.mkdir()
    keep = [root / "notes", root / "mine.parquet", root / _run_id(1)]  # not a run id; a file; unlocked but recent
    keep[0].mkdir()
    keep[1].write_bytes(b"x")
    keep[2].mkdir()
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (root / _run_id(2)).symlink_to(elsewhere)
    claiming = root / f".{_run_id(4)}.claim"  # being created by another run right now
    claiming.mkdir()
    keep.append(claiming)
    old = root / _run_id(3)  # left by a version without locks, untouched for two days
    old.mkdir()
    (old / "source.parquet").write_bytes(b"real")
    old_claim = root / f".{_run_id(5)}.claim"  # a run killed while creating its folder
    old_claim.mkdir()
    two_days_ago = time.time() - 2 * 86400
    for folder in (old, old_claim):
        os.utime(folder, (two_days_ago, two_days_ago))
    assert sorted(sweep_stale_runs(root)) == sorted([_run_id(3), old_claim.name])
    assert all(p.exists() for p in keep) and elsewhere.exists() and (root / _run_id(2)).is_symlink()


_HOLDER = """
import sys, time
from tasks.storage import claim_run_folder, write_frame
import pandas as pd
run = claim_run_folder(sys.argv[1], sys.argv[2])
write_frame(pd.DataFrame({"ssn": ["123-45-6789"] * 3}), run.uri + "/source.parquet")
print("ready", flush=True)
time.sleep(120)
"""


def _holder(root: Path, run_id: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root), run_id], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_killed_run_is_swept_by_the_next_and_a_live_one_is_kept(tmp_path):
    root = tmp_path / ".work"
    killed, live = _holder(root, _run_id(1)), _holder(root, _run_id(2))
    try:
        killed.send_signal(signal.SIGKILL)  # no finally, no cleanup: only the lock dies with it
        killed.wait(timeout=30)
        assert (root / _run_id(1) / "source.parquet").exists()
        run = claim_run_folder(str(root), _run_id(3))
        run.release()
        assert not (root / _run_id(1)).exists(), "a killed run's copy of the real data is swept"
        assert (root / _run_id(2) / "source.parquet").exists(), "a live run's folder is never swept"
    finally:
        for proc in (killed, live):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def test_concurrent_claims_never_sweep_each_other(tmp_path):
    root = tmp_path / ".work"
    lost = []

    def one_run(n: int) -> None:
        run = claim_run_folder(str(root), _run_id(n))
        try:
            for _ in range(20):
                if not (Path(run.uri) / RUN_LOCK).exists():
                    lost.append(n)
                time.sleep(0.005)
        finally:
            run.release()

    threads = [threading.Thread(target=one_run, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lost == []


def test_object_store_work_roots_are_left_to_the_run(tmp_path):
    run = claim_run_folder("s3://bucket/work", _run_id(1))
    assert run.uri == f"s3://bucket/work/{_run_id(1)}"
    run.release()


# ------------------------------------------------------------------------------ folder sources
@pytest.fixture
def parquet_folder(tmp_path) -> Path:
    from tests.tables import real_table

    folder = tmp_path / "pqdir"
    folder.mkdir()
    df, _ = real_table("planes", rows=300)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / "part0.parquet")
    return folder


@pytest.mark.parametrize(
    "where, inside",
    [
        (dict(out="{src}"), "out"),
        (dict(out="{src}/releases"), "out"),
        (dict(out="releases"), "out"),  # relative to the current folder, the source
        (dict(out="{tmp}/out", work_root="{src}/work"), "work_root"),
        (dict(out="{tmp}/out", model_store="file://{src}/.models"), "model_store"),
    ],
)
def test_outputs_inside_a_folder_source_are_refused(parquet_folder, tmp_path, monkeypatch, where, inside):
    from flows.synthesize import SynthesizeParams, check_params

    monkeypatch.chdir(parquet_folder)
    fields = {k: v.format(src=parquet_folder, tmp=tmp_path) for k, v in where.items()}
    with pytest.raises(InputError, match=f"^{inside} .* lies inside the source folder"):
        check_params(SynthesizeParams(source=".", **fields))
    assert sorted(p.name for p in parquet_folder.iterdir()) == ["part0.parquet"], "nothing is written"


def test_outputs_beside_a_source_are_fine(parquet_folder, tmp_path):
    from flows.synthesize import check_locations

    check_locations(str(parquet_folder), str(tmp_path / "out"), "s3://bucket/work", str(tmp_path / "models"))
    check_locations(str(parquet_folder / "part0.parquet"), str(parquet_folder / "releases"))  # a file source
    check_locations("demo:planes", str(parquet_folder))
    check_locations(str(parquet_folder), str(tmp_path / "pqdir-out"))  # a sibling whose name starts alike


def test_flow_sweeps_a_killed_run_and_refuses_unsafe_parameters(prefect_server, parquet_folder, tmp_path):
    """The flow end to end: a killed run's folder (lock free) is swept at the next run's start;
    a password in ``source`` and an ``out`` inside a folder source fail before anything is written."""
    from flows.synthesize import SynthesizeParams, synthesize

    out = tmp_path / "out"
    killed = _holder(out / ".work", _run_id(1))
    killed.send_signal(signal.SIGKILL)  # its lock dies with it; its copy of the data stays
    killed.wait(timeout=30)
    assert (out / ".work" / _run_id(1) / "source.parquet").exists()
    result = synthesize(SynthesizeParams(source=str(parquet_folder), out=str(out), rows=200, seed=1))
    assert Path(result.release_path).exists()
    assert [p.name for p in (out / ".work").iterdir() if not p.name.startswith(".")] == []
    assert _mode(out / ".work") == 0o700

    with pytest.raises(InputError, match="holds a password"):
        synthesize(SynthesizeParams(source="postgresql://alice:S3cretPW@host/db", query="SELECT 1", out=str(tmp_path / "pw")))
    with pytest.raises(InputError, match="lies inside the source folder"):
        synthesize(SynthesizeParams(source=str(parquet_folder), out=str(parquet_folder / "releases")))
    assert not (tmp_path / "pw").exists()
    assert sorted(p.name for p in parquet_folder.iterdir()) == ["part0.parquet"]
