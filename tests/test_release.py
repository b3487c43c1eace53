"""Release folders: atomic, checksummed, never overwritten; LATEST moves only on a pass."""
from __future__ import annotations

import json
import pyarrow.parquet as pq
import pytest

from tasks.release import ensure_writable, latest_release, sha256_file, to_release_arrow, write_release
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
    assert not [p for p in (tmp_path / "planes").iterdir() if p.name.startswith(".")], "no temp files left"


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
