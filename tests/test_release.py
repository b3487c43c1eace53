"""Release folders: atomic, checksummed, never overwritten; LATEST moves only on a pass."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tasks.release import LATEST_LOCK, ensure_writable, latest_release, sha256_file, to_release_arrow, write_release
from tasks.releases_index import list_releases
from tests.tables import real_table
from validation.errors import OutputError
from validation.protect import fill_protected, training_view


def _synthetic():
    df, schema = real_table("planes", rows=400)
    rows = training_view(df, schema).sample(400, replace=True, random_state=1).reset_index(drop=True)
    return fill_protected(rows, schema, seed=1), schema


def test_release_matches_source_schema_and_checksums(tmp_path):
    synthetic, schema = _synthetic()
    table = to_release_arrow(synthetic, schema)
    assert table.schema == schema.arrow_schema()
    path = write_release(tmp_path, "planes", table, {"source": {"fingerprint": "x"}}, {"report.json": "{}"}, passed=True)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["rows"] == 400 and manifest["verdict"] == "pass"
    for rel, digest in manifest["files"].items():
        assert sha256_file(path / rel) == digest
    back = pq.read_table(path / "data")
    assert back.schema.remove_metadata() == schema.arrow_schema() and back.num_rows == 400
    assert latest_release(tmp_path / "planes") == path
    leftovers = [p for p in (tmp_path / "planes").iterdir() if p.name.startswith(".") and p.name != LATEST_LOCK]
    assert not leftovers, "no temp files left"


def test_failing_run_is_quarantined_and_latest_stays(tmp_path):
    synthetic, schema = _synthetic()
    table = to_release_arrow(synthetic, schema)
    good = write_release(tmp_path, "planes", table, {}, {}, passed=True)
    bad = write_release(tmp_path, "planes", table, {}, {}, passed=False)
    assert bad.parent.name == "quarantine"
    assert latest_release(tmp_path / "planes") == good
    again = write_release(tmp_path, "planes", table, {}, {}, passed=True)
    assert again != good and good.exists(), "a second run never overwrites the first"
    with pytest.raises(OutputError, match="already exists"):
        write_release(tmp_path, "planes", table, {}, {}, passed=True, release_id=again.name)


def test_crash_mid_write_leaves_nothing(tmp_path):
    synthetic, schema = _synthetic()
    table = to_release_arrow(synthetic, schema)


    with pytest.raises(TypeError):
        write_release(tmp_path, "planes", table, {}, {"report.json": object()}, passed=True)  # type: ignore[dict-item]
    assert not any((tmp_path / "planes").iterdir())
    assert latest_release(tmp_path / "planes") is None


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="not writable"):
        ensure_writable(blocker / "out")


def test_latest_never_moves_back_to_an_older_release(tmp_path):
    """Two runs at once: the one started later (newer id) publishes first, the older one last."""
    synthetic, schema = _synthetic()
    table = to_release_arrow(synthetic, schema)
    newer = write_release(tmp_path, "planes", table, {}, {}, passed=True, release_id="20260102T000000Z-000000")
    older = write_release(tmp_path, "planes", table, {}, {}, passed=True, release_id="20260101T000000Z-ffffff")
    assert latest_release(tmp_path / "planes") == newer
    # the older release is still complete and listed, just not LATEST
    manifest = json.loads((older / "manifest.json").read_text())
    assert manifest["release_id"] == older.name and manifest["verdict"] == "pass"
    assert all(sha256_file(older / rel) == digest for rel, digest in manifest["files"].items())
    listed = {r.release_id: r.latest for r in list_releases(tmp_path)}
    assert listed == {older.name: False, newer.name: True}
    # a newer one still takes it
    newest = write_release(tmp_path, "planes", table, {}, {}, passed=True, release_id="20260103T000000Z-000000")
    assert latest_release(tmp_path / "planes") == newest


def test_latest_is_moved_under_the_dataset_lock(tmp_path, monkeypatch):
    """The check "is LATEST older?" and the move happen while holding the dataset's lock file."""
    import fcntl

    from tasks import release

    synthetic, schema = _synthetic()
    table = to_release_arrow(synthetic, schema)
    held = []

    def checking_move(dataset_dir, release_id):
        with open(dataset_dir / LATEST_LOCK, "a") as probe:
            with pytest.raises(BlockingIOError):  # another holder: this run
                fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(release_id)
        real_move(dataset_dir, release_id)

    real_move = release.move_latest
    monkeypatch.setattr(release, "move_latest", checking_move)
    path = write_release(tmp_path, "planes", table, {}, {}, passed=True)
    assert held == [path.name] and latest_release(tmp_path / "planes") == path


def test_release_text_files_are_utf8_whatever_the_locale(tmp_path):
    """On a host with LC_ALL=C (ASCII locale), non-ASCII report text is still written, as UTF-8."""
    script = textwrap.dedent(
        """
        import locale, sys
        import pyarrow as pa
        from tasks.release import write_release
        assert locale.getpreferredencoding(False).lower() in ("ansi_x3.4-1968", "ascii"), locale.getpreferredencoding(False)
        table = pa.table({"city": ["K\\u00f6ln"]})
        files = {"report.html": "<p>Z\\u00f6e \\u2264 0.53</p>", "report.json": '{"title": "M\\u00fcnchen"}'}
        print(write_release(sys.argv[1], "cities", table, {"note": "\\u00e9t\\u00e9"}, files, passed=True))
        """
    )
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    release = Path(proc.stdout.strip())
    assert (release / "report.html").read_bytes().decode("utf-8") == "<p>Z\u00f6e \u2264 0.53</p>"
    assert json.loads((release / "report.json").read_bytes().decode("utf-8")) == {"title": "M\u00fcnchen"}
    assert json.loads((release / "manifest.json").read_bytes().decode("utf-8"))["note"] == "\u00e9t\u00e9"


def test_a_killed_write_is_swept_once_stale_and_a_fresh_one_is_left(tmp_path):
    import time

    import pyarrow as pa

    from tasks.release import STALE_WRITE_SECONDS

    stale = tmp_path / "t" / ".tmp-20200101T000000Z-aaaaaa"
    fresh = tmp_path / "t" / ".tmp-20990101T000000Z-bbbbbb"  # another run writing now
    for folder in (stale, fresh):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "part-00000.parquet").write_bytes(b"half")
    old = time.time() - STALE_WRITE_SECONDS - 60
    os.utime(stale, (old, old))
    write_release(tmp_path, "t", pa.table({"x": [1, 2]}), {}, {}, passed=True)
    assert not stale.exists() and fresh.exists()
