"""Reading sources: formats, sniffing, and one clear error per bad input."""
from __future__ import annotations

import hashlib
import os
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.sources import SourceSpec, demo_path, read_source
from tests.tables import real_table
from validation.errors import InputError


def _read(path, **kw):
    return read_source(SourceSpec(str(path), **kw))


def test_demo_tables_are_real_and_local():
    table = read_source(SourceSpec("demo:weather"))
    assert table.num_rows == 26115 and "time_hour" in table.column_names
    assert demo_path("planes").exists()
    with pytest.raises(InputError, match="weather"):
        read_source(SourceSpec("demo:nope"))


def test_csv_delimiter_and_header_sniffing(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b;c\n" + "".join(f"{i};x{i % 3};{i / 7:.3f}\n" for i in range(60)))
    table = _read(semi)
    assert table.column_names == ["a", "b", "c"] and table.num_rows == 60
    headless = tmp_path / "headless.csv"
    headless.write_text("".join(f"{i},{i * 2.5},z\n" for i in range(60)))
    table = _read(headless)
    assert table.column_names == ["col_1", "col_2", "col_3"] and table.num_rows == 60


def test_parquet_file_and_folder(tmp_path):
    df, _ = real_table("planes")
    pq.write_table(pa.Table.from_pandas(df.iloc[:1000], preserve_index=False), tmp_path / "a.parquet")
    (tmp_path / "parts").mkdir()
    pq.write_table(pa.Table.from_pandas(df.iloc[:1000], preserve_index=False), tmp_path / "parts" / "p1.parquet")
    pq.write_table(pa.Table.from_pandas(df.iloc[1000:], preserve_index=False), tmp_path / "parts" / "p2.parquet")
    assert _read(tmp_path / "a.parquet").num_rows == 1000
    assert _read(tmp_path / "parts").num_rows == len(df)


def test_sql_query_on_sqlite_leaves_the_database_untouched(tmp_path):
    db = tmp_path / "real.db"
    df, _ = real_table("planes")
    with sqlite3.connect(db) as conn:
        df.to_sql("planes", conn, index=False)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    table = _read(f"sqlite:///{db}", query="SELECT * FROM planes WHERE seats > 100")
    assert table.num_rows == int((df["seats"] > 100).sum())
    with pytest.raises(InputError, match="failed"):
        _read(f"sqlite:///{db}", query="DELETE FROM planes")
    with pytest.raises(InputError, match="no such table"):
        _read(f"sqlite:///{db}", query="SELECT * FROM nothing_here")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with pytest.raises(InputError, match="needs a query"):
        _read(f"sqlite:///{db}")
    with pytest.raises(InputError, match="not found"):
        _read(f"sqlite:///{tmp_path / 'missing.db'}", query="SELECT 1")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n", "is empty"),
        ("header.csv", b"a,b,c\n", "header but no rows"),
        ("latin.csv", "name,city\n" .encode() + "Zoë,Köln\n".encode("latin-1") * 60, "not valid utf-8"),
        ("corrupt.parquet", b"PAR1 this is not parquet at all", "not a readable Parquet"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        _read(path)


def test_truncated_parquet_and_missing_file(tmp_path):
    df, _ = real_table("planes")
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), good)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="Parquet"):
        _read(cut)
    with pytest.raises(InputError, match="not found"):
        _read(tmp_path / "nope.csv")


def test_latin1_reads_when_the_encoding_is_given(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,city\n".encode() + "Zoë,Köln\n".encode("latin-1") * 60)
    table = _read(path, encoding="latin-1")
    assert table.column("city")[0].as_py() == "Köln"


def test_csv_errors_never_quote_the_data(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("name,ssn\n" + "Ann Lee,123-45-6789\n" * 60 + "Jane Doe,987-65-4321,extra\n")
    with pytest.raises(InputError) as info:
        _read(path)
    assert "Jane" not in str(info.value) and "987-65" not in str(info.value)


def test_multibyte_character_at_the_sniffing_boundary_is_fine(tmp_path):
    row = "мир,1\n"  # Cyrillic: two bytes per letter
    body = "word,n\n" + row * 20000
    raw = body.encode("utf-8")
    assert len(raw) > 65536
    path = tmp_path / "cyrillic.csv"
    path.write_bytes(raw)
    assert _read(path).num_rows == 20000


def test_hive_partitioned_folder_keeps_partition_columns(tmp_path):
    df, _ = real_table("planes")
    for engines, part in df.groupby("engines"):
        folder = tmp_path / "ds" / f"engines={engines}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(part.drop(columns="engines"), preserve_index=False), folder / "part.parquet")
    (tmp_path / "ds" / "_temporary").mkdir()
    (tmp_path / "ds" / "_temporary" / "junk.parquet").write_bytes(b"not parquet")
    table = _read(tmp_path / "ds")
    assert table.num_rows == len(df) and "engines" in table.column_names


def test_sql_with_mixed_types_reads_as_text(tmp_path):
    db = tmp_path / "mixed.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v, n INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1 if i % 2 else "a", i) for i in range(80)])
    table = _read(f"sqlite:///{db}", query="SELECT * FROM t")
    assert table.num_rows == 80 and pa.types.is_string(table.schema.field("v").type)


def test_folder_source_reads_only_its_parquet_files(tmp_path):
    df, _ = real_table("planes")
    folder = tmp_path / "pq"
    (folder / "sub").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(df.iloc[:1000], preserve_index=False), folder / "part0.parquet")
    pq.write_table(pa.Table.from_pandas(df.iloc[1000:1500], preserve_index=False), folder / "sub" / "part1.PARQUET")
    # what a run (or a person) leaves beside the data: none of it is part of the table
    (folder / "report.html").write_text("<html>not data</html>")
    (folder / "LATEST").write_text("20240101T000000Z-abcdef\n")
    (folder / "_SUCCESS").write_bytes(b"")
    for hidden in (folder / ".work" / "x", folder / "_temporary" / "0"):
        hidden.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(df.iloc[:10], preserve_index=False), hidden / "copy.parquet")
    pq.write_table(pa.Table.from_pandas(df.iloc[:10], preserve_index=False), folder / ".hidden.parquet")
    assert _read(folder).num_rows == 1500


def test_folder_source_holding_a_release_is_refused(tmp_path):
    df, _ = real_table("planes")
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.Table.from_pandas(df.iloc[:1000], preserve_index=False), folder / "part0.parquet")
    release = folder / "releases" / "pq" / "20240101T000000Z-abcdef"
    (release / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(df.iloc[:1000], preserve_index=False), release / "data" / "part-00000.parquet")
    (release / "manifest.json").write_text("{}")
    with pytest.raises(InputError, match="holds a synthpipe release"):
        _read(folder)


def test_split_password_keeps_everything_but_the_password():
    from tasks.sources import split_password

    assert split_password("postgresql://alice:S3cret%40PW@db.example:5432/sales?sslmode=require") == (
        "postgresql://alice@db.example:5432/sales?sslmode=require", "S3cret@PW")
    for location in ("postgresql://alice@host/db", "sqlite:///x.db", "data.csv", "demo:weather", "file:///a/b.parquet"):
        assert split_password(location) == (location, None)
    # drivers also take it as a query parameter
    assert split_password("postgresql://alice@db/prod?PassWord=s3cret&sslmode=require") == (
        "postgresql://alice@db/prod?sslmode=require", "s3cret")
    assert split_password("mysql+pymysql://alice@db/prod?passwd=s3cret") == ("mysql+pymysql://alice@db/prod", "s3cret")


def test_no_form_of_password_reaches_the_display_or_passes_the_check():
    from flows.synthesize import SynthesizeParams, check_params
    from tasks.sources import SourceSpec

    odbc = "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BX%7D%3BPWD%3Ds3cret"
    for location in ("postgresql://alice:s3cret@db/prod", "postgresql://alice@db/prod?pwd=s3cret", odbc):
        assert "s3cret" not in SourceSpec(location=location).display
        with pytest.raises(InputError) as info:
            check_params(SynthesizeParams(source=location, query="SELECT 1"))
        assert "s3cret" not in str(info.value)


def test_cli_detaches_the_password_into_the_environment(monkeypatch):
    from tasks.sources import PASSWORD_ENV, detach_password

    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert detach_password("postgresql://alice@host/db") == "postgresql://alice@host/db"
    assert PASSWORD_ENV not in os.environ
    assert detach_password("postgresql://alice:S3cretPW@host/db") == "postgresql://alice@host/db"
    assert os.environ[PASSWORD_ENV] == "S3cretPW"


def test_a_password_in_the_source_parameter_fails_fast():
    from flows.synthesize import SynthesizeParams, check_params

    with pytest.raises(InputError, match="SYNTHPIPE_DB_PASSWORD") as info:
        check_params(SynthesizeParams(source="postgresql://alice:S3cretPW@host/db", query="SELECT 1"))
    assert "S3cretPW" not in str(info.value) and len(str(info.value).splitlines()) == 1
    check_params(SynthesizeParams(source="postgresql://alice@host/db", query="SELECT 1"))


def test_reader_fills_the_password_from_the_environment_or_a_secret(monkeypatch):
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    import prefect.blocks.system
    from tasks.sources import PASSWORD_ENV, with_password

    monkeypatch.setenv(PASSWORD_ENV, "fromenv")
    assert with_password(make_url("postgresql://alice@host/db")).password == "fromenv"
    assert with_password(make_url("postgresql://alice:given@host/db")).password == "given"
    assert with_password(make_url("postgresql://host/db")).password is None  # no user: nothing to fill

    class FakeSecret:
        @staticmethod
        def load(name):
            assert name == "sales-db"
            return type("Loaded", (), {"get": lambda self: "fromblock"})()

    monkeypatch.setattr(prefect.blocks.system, "Secret", FakeSecret)
    assert with_password(make_url("postgresql://alice@host/db"), "sales-db").password == "fromblock"

    # read_sql connects with the filled-in URL, while the spec (and so the parameter) never held it
    seen = []

    def fake_engine(url, **kw):
        seen.append(url)
        raise sa.exc.OperationalError("connect", {}, Exception("no server here"))

    monkeypatch.setattr(sa, "create_engine", fake_engine)
    with pytest.raises(InputError, match="no server here"):
        _read("postgresql://alice@host/db", query="SELECT 1")
    with pytest.raises(InputError, match="no server here"):
        _read("postgresql://alice@host/db", query="SELECT 1", password_block="sales-db")
    assert [u.password for u in seen] == ["fromenv", "fromblock"]
