"""The `synthesize` flow under the session's Prefect test server, and the CLI around it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.leaky import install_copying_generator
from tests.tables import nycflights_dir
from validation.errors import GateFailedError

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def planes_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "planes.csv"
    path.write_bytes((nycflights_dir() / "planes.csv").read_bytes())
    return path


def test_flow_publishes_a_release_with_the_source_schema(prefect_server, planes_csv, tmp_path):
    from flows.synthesize import SynthesizeParams, synthesize
    from tasks.sources import read_csv

    before = planes_csv.read_bytes()
    result = synthesize(SynthesizeParams(source=str(planes_csv), out=str(tmp_path), rows=1000, seed=1))
    assert result.passed and result.rows == 1000
    release = Path(result.release_path)
    assert (tmp_path / "planes" / "LATEST").read_text().strip() == release.name
    data = pq.read_table(release / "data")
    assert data.num_rows == 1000
    assert data.schema.remove_metadata() == read_csv(planes_csv).schema
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["generator"]["family"] == "copula" and manifest["source"]["fingerprint"]
    # what besides seed, data and config decides the rows, for whoever reproduces the release
    assert {"numpy", "pandas", "scipy", "copulas"} <= set(manifest["training"]["trained_on"]["runtime"])
    assert set(manifest["files"]) >= {"report.json", "great_expectations.json", "data/part-00000.parquet"}
    synthetic = data.to_pandas()
    real = pd.read_csv(planes_csv)
    assert not set(synthetic["tailnum"]) & set(real["tailnum"]), "no real key reaches the release"
    assert set(result.step_seconds) == {"ingest", "profile", "split", "train", "sample", "validate", "publish"}
    assert planes_csv.read_bytes() == before, "the source is never modified"
    assert not (tmp_path / ".work" / release.name).exists(), "no copy of the real data is left behind"

    second = synthesize(SynthesizeParams(source=str(planes_csv), out=str(tmp_path), rows=500, seed=1))
    assert second.release_path != result.release_path and release.exists()


def test_gate_failure_quarantines_and_keeps_latest(prefect_server, weather_csv, tmp_path, monkeypatch):
    # weather rows are continuous: real rows replayed stand out against the holdout
    # (on planes, whose rows repeat each other, a copy is no more telling than the holdout)
    from flows.synthesize import SynthesizeParams, synthesize

    good = synthesize(SynthesizeParams(source=str(weather_csv), out=str(tmp_path), rows=1000))
    install_copying_generator(monkeypatch, "copula")
    with pytest.raises(GateFailedError, match="identical_match_share"):
        synthesize(SynthesizeParams(source=str(weather_csv), out=str(tmp_path), rows=1000))
    dataset = tmp_path / "weather"
    assert (dataset / "LATEST").read_text().strip() == Path(good.release_path).name
    quarantined = list((dataset / "quarantine").iterdir())
    assert len(quarantined) == 1
    report = json.loads((quarantined[0] / "report.json").read_text())
    assert report["passed"] is False


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "missing.csv"], "source not found"),
        (["run", "demo:planes", "--generator", "bayesnet"], "choose one of: copula, vae, gan, diffusion, llm, auto"),
        (["run", "demo:planes", "--epochs", "5"], "invalid options for generator 'copula'"),
        (["run", "demo:planes", "--schema", "nope.yaml"], "schema file not found"),
    ],
)
def test_cli_rejects_bad_arguments_before_any_work(tmp_path, args, message):
    proc = _cli(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = _cli("run", "demo:planes", "--out", str(blocker / "out"))
    assert proc.returncode == 2 and "not writable" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "is empty"),
        ("header.csv", b"a,b\n", "header but no rows"),
        ("few.csv", b"a,b\n" + b"1,2\n" * 10, "at least 50"),
        ("latin.csv", b"name,city\n" + "Zoë,Köln\n".encode("latin-1") * 60, "not valid utf-8"),
        ("bad.parquet", b"PAR1garbage", "not a readable Parquet"),
        ("inf.csv", b"x,y\n" + b"1.5,2\n" * 59 + b"inf,3\n", "column 'x' holds 1 infinite value"),
        # only PII: nothing for a generator to learn (a run published 0 rows)
        ("pii.csv", b"email,phone\n" + b"".join(f"u{i}@mail.org,+1-555-01{i:02d}\n".encode() for i in range(60)),
         "no column is left for a generator to model"),
    ],
)
def test_bad_sources_fail_in_the_flow_with_one_line(prefect_server, tmp_path, capsys, name, content, message):
    from flows.cli import main

    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "out"
    sys_argv = sys.argv
    sys.argv = ["synthpipe", "run", str(src), "--out", str(out)]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = sys_argv
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists(), "a refused run leaves no folder behind"


def test_cli_check_rejects_a_bad_gate_config(tmp_path):
    config = tmp_path / "gate.yaml"
    config.write_text("max_dcr_share: 0.6\nmax_dcr_shares: 1\n")
    proc = _cli("check", "--real", "a.csv", "--holdout", "b.csv", "--synthetic", "c.csv", "--config", str(config))
    assert proc.returncode == 2 and "max_dcr_shares" in proc.stderr and "Traceback" not in proc.stderr


def test_flow_on_a_table_of_every_supported_type(prefect_server, tmp_path):
    """bool, date32, tz-aware timestamps, decimals, ints with nulls, an all-null column, a
    pandas category column and a time-of-day column, from Parquet, end to end."""
    import datetime as dt
    import decimal

    import numpy as np
    import pyarrow as pa

    from flows.synthesize import SynthesizeParams, synthesize

    n = 600
    rng = np.random.default_rng(0)
    start = dt.date(2020, 1, 1)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "email": [f"user{i}@mail.example" for i in range(n)],
            "active": rng.random(n) < 0.3,
            "signup": [start + dt.timedelta(days=int(d)) for d in rng.integers(0, 900, n)],
            "seen_at": pd.to_datetime("2021-01-01", utc=True) + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
            "balance": [decimal.Decimal(f"{v:.2f}") for v in rng.gamma(2.0, 300.0, n)],
            "visits": pd.array([int(v) if v % 7 else None for v in rng.integers(0, 40, n)], dtype="Int64"),
            "unused": [None] * n,
            "tier": pd.Categorical(rng.choice(["gold", "silver", "bronze", "tin"], n, p=[0.2, 0.3, 0.496, 0.004])),
            "at": [dt.time(int(h), 0) for h in rng.integers(0, 24, n)],
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("balance"), "balance", table.column("balance").cast(pa.decimal128(12, 2)))
    table = table.set_column(table.schema.get_field_index("unused"), "unused", pa.nulls(n, pa.string()))
    source = tmp_path / "customers.parquet"
    pq.write_table(table, source)

    result = synthesize(SynthesizeParams(source=str(source), out=str(tmp_path / "out"), seed=3))
    assert result.passed, result.failures
    released = pq.read_table(Path(result.release_path) / "data")
    expected = table.schema.remove_metadata()
    expected = expected.remove(expected.get_field_index("at"))  # times of day are not modelled
    assert released.schema.remove_metadata() == expected
    out = released.to_pandas()
    assert out["unused"].isna().all()
    assert not set(out["email"]) & set(frame["email"]) and not set(out["customer_id"]) & set(frame["customer_id"])
    assert set(out["tier"].dropna()) <= {"gold", "silver", "bronze", "__rare__"}


def test_a_failed_ui_summary_does_not_fail_a_published_run(prefect_server, planes_csv, tmp_path, monkeypatch):
    import flows.synthesize as synthesize_module
    from flows.synthesize import SynthesizeParams, synthesize

    def unavailable(*args, **kwargs):
        raise RuntimeError("Prefect API unavailable")

    monkeypatch.setattr(synthesize_module, "create_markdown_artifact", unavailable)
    result = synthesize(SynthesizeParams(source=str(planes_csv), out=str(tmp_path), rows=300, seed=2))
    assert result.passed and (Path(result.release_path) / "manifest.json").is_file()
