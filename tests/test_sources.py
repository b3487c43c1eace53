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


def test_sql_on_sqlite_can_only_read_even_with_odd_file_names(tmp_path):
    """mode=ro guards the file itself; ATTACH and VACUUM INTO wrote other files, and a '#' in the
    file name ended the URI's path, dropping mode=ro (a 'sales' file was created and written)."""
    db = tmp_path / "sales#2024.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"x{i % 7}") for i in range(200)])
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    url = f"sqlite:///{db}"
    assert _read(url, query="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) "
                            "SELECT t.* FROM t JOIN c ON t.a = c.x").num_rows == 3
    for query in (f"VACUUM INTO '{tmp_path / 'copy.db'}'", f"ATTACH DATABASE '{tmp_path / 'other.db'}' AS e",
                  "PRAGMA user_version = 7", "PRAGMA table_info(t)"):
        with pytest.raises(InputError, match="failed: .*(not authorized|authorization denied).*a query may only read"):
            _read(url, query=query)
    with pytest.raises(InputError, match="failed"):  # mode=ro, whatever the authorizer says
        _read(url, query="CREATE TABLE pwned (a)")
    assert sorted(p.name for p in tmp_path.iterdir()) == [db.name]  # no 'sales', copy or attached file
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


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


# ------------------------------------------------------------------ inputs found by a fuzz run
def _one_line_error(path, match, **kw):
    with pytest.raises(InputError, match=match) as info:
        _read(path, **kw)
    assert len(str(info.value).splitlines()) == 1
    return str(info.value)


def _airports(rows: int) -> list[str]:
    return [f"A{i:04d},Airfield number {i},{30 + (i % 170) / 7:.6f},{-120 + (i % 90) / 3:.6f}" for i in range(rows)]


def test_invalid_bytes_past_the_sniffed_head_are_an_encoding_error(tmp_path):
    lines = ["iata,name,latitude,longitude", *_airports(3000)]
    lines[-5] = "SEL,Aéroport de Saint-Élie,4.82,-53.20"
    assert len("\n".join(lines[:-5]).encode()) > 65536  # the first bad byte lies past the checked head
    latin = tmp_path / "airports_latin1.csv"
    latin.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    before = sorted(os.listdir(tmp_path))
    message = _one_line_error(latin, r"not valid utf-8 \(column 'name'\); pass --encoding")
    assert "Saint" not in message
    assert sorted(os.listdir(tmp_path)) == before  # refused at read time: nothing written
    table = _read(latin, encoding="latin-1")
    assert table.column_names == ["iata", "name", "latitude", "longitude"]
    assert table.column("name")[2995].as_py() == "Aéroport de Saint-Élie"
    # the same late accented row in UTF-8 is text like any other
    utf8 = tmp_path / "airports_utf8.csv"
    utf8.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    table = _read(utf8)
    assert pa.types.is_string(table.schema.field("name").type) and table.num_rows == 3000
    assert table.column("name")[2995].as_py() == "Aéroport de Saint-Élie"


def test_numeric_header_cells_of_a_pivot_are_a_header(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    temps = rng.normal(15, 6, size=(366, 4)).round(1)
    pivot = tmp_path / "pivot_years.csv"
    pivot.write_text("doy,2012,2013,2014,2015\n" + "".join(
        f"{d + 1}," + ",".join(f"{t:.1f}" for t in temps[d]) + "\n" for d in range(366)))
    table = _read(pivot)
    assert table.column_names == ["doy", "2012", "2013", "2014", "2015"] and table.num_rows == 366
    assert pa.types.is_integer(table.schema.field("doy").type) and table.column("doy")[0].as_py() == 1
    assert table.column("2015")[365].as_py() == pytest.approx(temps[365, 3])
    # what stays headerless: all numbers, all text, and a first row whose only word is a null spelling
    for name, text in [
        ("numbers.csv", "".join(f"{i},{i * 2.5},{i % 7}\n" for i in range(60))),
        ("words.csv", "".join(f"Ann{i % 4},Lee{i % 3},Street {i}\n" for i in range(60))),
        ("first_na.csv", "NA,1.5,x\n" + "".join(f"{i},{i / 4},y{i}\n" for i in range(60))),
        ("mixed.csv", "".join(f"Cesar{i},{18 + i % 50}.0,Westlake,{-118.27 + i / 1000:.4f}\n" for i in range(60))),
    ]:
        path = tmp_path / name
        path.write_text(text)
        table = _read(path)
        assert table.column_names[0] == "col_1" and table.num_rows == 61 - (name != "first_na.csv"), name
    # a pandas index column (empty first header cell) is still a header
    indexed = tmp_path / "indexed.csv"
    indexed.write_text(",id,value\n" + "".join(f"{i},{100 + i},{i / 3:.3f}\n" for i in range(60)))
    assert _read(indexed).column_names == ["", "id", "value"]


def test_duplicate_column_names_are_one_input_error(tmp_path):
    csv_path = tmp_path / "dupcols.csv"
    csv_path.write_text("date,temp,temp,weather\n" + "".join(
        f"2012-01-{1 + i % 28:02d},{10 + i % 5}.5,{2 + i % 3}.0,rain\n" for i in range(300)))
    _one_line_error(csv_path, r"source .*dupcols.csv has duplicate column names: temp; give every column its own name")
    # synthpipe check reads its files with read_table_file: its gate names the table's role instead
    from tasks.sources import read_table_file

    assert read_table_file(csv_path).column_names == ["date", "temp", "temp", "weather"]
    parquet = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(range(60)), pa.array(range(60)), pa.array(["x"] * 60)],
                                        names=["a", "a", "b"]), parquet)
    _one_line_error(parquet, r"dup.parquet has duplicate column names: a; give every column its own name")
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.Table.from_arrays([pa.array(range(60)), pa.array(range(60))], names=["a", "a"]),
                   folder / "p.parquet")
    _one_line_error(folder, "p.parquet has duplicate column names: a")


def test_parquet_folder_unifies_the_files_schemas(tmp_path):
    df, _ = real_table("weather", rows=600)
    df = df[["origin", "temp", "humid", "wind_speed", "precip"]].reset_index(drop=True)
    old, new = df.iloc[:250], df.iloc[250:]
    evolve = tmp_path / "evolve"
    evolve.mkdir()
    # the older file (first by name) lacks a column the newer one added
    pq.write_table(pa.Table.from_pandas(old.drop(columns="wind_speed"), preserve_index=False), evolve / "part-2012.parquet")
    pq.write_table(pa.Table.from_pandas(new, preserve_index=False), evolve / "part-2014.parquet")
    table = _read(evolve)
    assert table.column_names == ["origin", "temp", "humid", "wind_speed", "precip"] and table.num_rows == 600
    assert table.column("wind_speed").null_count == 250 + int(new["wind_speed"].isna().sum())
    assert table.column("temp").to_pylist() == pytest.approx(df["temp"].tolist(), nan_ok=True)
    # whole numbers in one file, decimals in the next: both read, as doubles, whatever the order
    promote = tmp_path / "promote"
    promote.mkdir()
    pq.write_table(pa.table({"n": pa.array(range(50), pa.int64()), "w": ["a"] * 50}), promote / "a.parquet")
    pq.write_table(pa.table({"n": pa.array([0.5] * 50), "w": ["b"] * 50}), promote / "b.parquet")
    table = _read(promote)
    assert pa.types.is_float64(table.schema.field("n").type) and table.column("n").to_pylist()[:3] == [0, 1, 2]
    # text in one file, numbers in another: one line naming the column and the files
    pq.write_table(pa.table({"n": ["x"] * 50, "w": ["c"] * 50}), promote / "c.parquet")
    message = _one_line_error(promote, r"column 'n' has types that cannot be combined")
    assert "a.parquet" in message and "c.parquet" in message and "string" in message


def test_whitespace_delimited_csv_is_split_into_its_columns(tmp_path):
    import gzip

    import numpy as np

    rng = np.random.default_rng(1)
    rows = [(int(rng.integers(19, 80)), int(rng.integers(1, 3)), round(float(rng.normal(26, 4)), 1),
             round(float(rng.normal(94, 13)), 1), round(float(rng.normal(4.6, 0.5)), 4)) for _ in range(442)]
    # sklearn's diabetes_data_raw: single spaces, no header, gzipped
    single = tmp_path / "diabetes_raw.csv.gz"
    single.write_bytes(gzip.compress("".join(" ".join(map(str, r)) + "\n" for r in rows).encode()))
    table = _read(single)
    assert table.column_names == [f"col_{i}" for i in range(1, 6)] and table.num_rows == 442
    assert pa.types.is_integer(table.schema.field("col_1").type) and pa.types.is_floating(table.schema.field("col_3").type)
    assert table.column("col_5").to_pylist() == [r[4] for r in rows]
    # aligned columns: runs of spaces, leading spaces, a header of names
    aligned = tmp_path / "aligned.dat"
    aligned.write_text("  AGE  SEX    BMI     BP       S5\n" + "".join(
        f"{r[0]:>5}{r[1]:>5}{r[2]:>7}{r[3]:>7}{r[4]:>9}  \n" for r in rows))
    table = _read(aligned)
    assert table.column_names == ["AGE", "SEX", "BMI", "BP", "S5"] and table.num_rows == 442
    assert table.column("BP").to_pylist() == [r[3] for r in rows]
    # a blank cell past the sniffed lines would shift the row: refused, never read shifted
    blank = tmp_path / "blank.dat"
    blank.write_text("".join(f"{r[0]:>5}{r[1]:>5}{r[2]:>7}{r[3]:>7}\n" for r in rows[:100])
                     + f"{'':>5}{1:>5}{2.5:>7}{3.5:>7}\n")
    _one_line_error(blank, "not a readable CSV file")
    # quoted fields may hold spaces: refused
    quoted = tmp_path / "quoted.txt"
    quoted.write_text("".join(f'"Ann Lee" {r[0]} {r[2]}\n' for r in rows[:60]))
    _one_line_error(quoted, "whitespace-delimited and has quoted fields")
    # a one-column table of two-word values (or of timestamps) stays one column
    for name, text in [("names.csv", "".join(f"Ann Lee{i}\n" for i in range(60))),
                       ("stamps.csv", "".join(f"2013-01-01 {i % 24:02d}:00:00\n" for i in range(60)))]:
        path = tmp_path / name
        path.write_text(text)
        assert _read(path).num_columns == 1, name


def test_semicolon_csv_with_decimal_commas_reads_numbers(tmp_path):
    path = tmp_path / "airports_eu.csv"
    path.write_text("iata;name;latitude;longitude;runways\n" + "".join(
        f"A{i:03d};Field {i};{38 + i / 997:.8f};{-122 + i / 991:.7f};{1 + i % 3}\n".replace(".", ",") for i in range(80)))
    table = _read(path)
    assert pa.types.is_float64(table.schema.field("latitude").type) and pa.types.is_float64(table.schema.field("longitude").type)
    assert table.column("latitude")[5].as_py() == pytest.approx(38 + 5 / 997)
    assert pa.types.is_integer(table.schema.field("runways").type)
    # a semicolon file with decimal points is read as before
    dots = tmp_path / "dots.csv"
    dots.write_text("a;b;c\n" + "".join(f"{i};{i},{i + 1};{i / 7:.3f}\n" for i in range(60)))
    table = _read(dots)
    assert pa.types.is_floating(table.schema.field("c").type) and pa.types.is_string(table.schema.field("b").type)


def test_semicolon_csv_with_thousands_commas_stays_text(tmp_path):
    # ``2,107`` may be two thousand: a file whose comma values all have three digits after one to
    # three digits keeps its text, never read 1000 times too small
    path = tmp_path / "cities.csv"
    path.write_text("city;population;rank\n" + "".join(
        f"c{i};{1 + i % 9},{100 + 7 * i:03d};{i}\n" for i in range(60)))
    table = _read(path)
    assert table.column("population").to_pylist()[:2] == ["1,100", "2,107"]
    # one column of another shape settles the file's convention: every comma is a decimal comma
    path = tmp_path / "weights.csv"
    path.write_text("name;price;weight_kg\n" + "".join(f"n{i};{10 + i},50;1,{250 + i}\n" for i in range(60)))
    table = _read(path)
    assert table.column("price")[0].as_py() == 10.5 and table.column("weight_kg")[0].as_py() == 1.25
    path = tmp_path / "big.csv"
    path.write_text("id;value\n" + "".join(f"{i};{1234 + i},567\n" for i in range(60)))
    assert _read(path).column("value")[0].as_py() == pytest.approx(1234.567)
    # unambiguous: a fraction of another length, or ``0,`` before three digits
    for name, cell in [("two.csv", "{i},{j:02d}"), ("zero.csv", "0,{j:03d}")]:
        path = tmp_path / name
        path.write_text("id;value\n" + "".join(f"{i};" + cell.format(i=i, j=10 + i) + "\n" for i in range(60)))
        assert pa.types.is_float64(_read(path).schema.field("value").type), name
    assert _read(tmp_path / "zero.csv").column("value")[0].as_py() == pytest.approx(0.010)


def test_first_row_of_values_over_numbers_is_not_a_header(tmp_path):
    # a missing-value marker or a censored value over a numeric column is data, not a name
    numeric = "".join(f"{100001 + i},{i % 9},{i % 7},{i % 2}\n" for i in range(60))
    mixed = "".join(f"p{i + 2},{i + 1.5},{i % 4}.1\n" for i in range(60))
    for name, text in [("question.csv", "1000025,5,?,1\n" + numeric), ("censored.csv", "p1,<0.5,3.2\n" + mixed),
                       ("nd.csv", "p1,n.d.,3.2\n" + mixed)]:
        path = tmp_path / name
        path.write_text(text)
        table = _read(path)
        assert table.column_names[0] == "col_1" and table.num_rows == 61, name
    # a name over a numeric column is still a header, even when the other header cells are numbers
    pivot = tmp_path / "pivot.csv"
    pivot.write_text("doy,2012,2013\n" + "".join(f"{d},{d / 3:.1f},{d / 5:.1f}\n" for d in range(1, 61)))
    assert _read(pivot).column_names == ["doy", "2012", "2013"]


def test_parquet_folder_falls_back_to_the_first_file_schema(tmp_path):
    def folder(name, first, second):
        path = tmp_path / name
        path.mkdir()
        pq.write_table(first, path / "part-0.parquet")
        pq.write_table(second, path / "part-1.parquet")
        return path

    # a pandas category in one file, plain text in another: text
    table = _read(folder("category", pa.table({"a": pa.array(["x", "y"]).dictionary_encode(), "b": [1, 2]}),
                         pa.table({"a": ["z", "x"], "b": [3, 4]})))
    assert table.column("a").to_pylist() == ["x", "y", "z", "x"] and pa.types.is_string(table.schema.field("a").type)
    # UTC in one file, no zone in the other: read with the first file's type, as before
    table = _read(folder("zones", pa.table({"t": pa.array([1, 2], pa.timestamp("us", "UTC"))}),
                         pa.table({"t": pa.array([3, 4], pa.timestamp("us"))})))
    assert table.num_rows == 4 and table.schema.field("t").type == pa.timestamp("us", "UTC")
    # ids above 2**53 beside doubles: the ids are kept exact (int64, the first file's type)
    big = 2**60 + 1
    table = _read(folder("bigint", pa.table({"id": pa.array([big, big + 2], pa.int64())}),
                         pa.table({"id": pa.array([None, 5.0])})))
    assert table.column("id").to_pylist() == [big, big + 2, None, 5]
    # where the first file's schema would drop a column, one error names the column instead
    message = _one_line_error(
        folder("bigint_lost", pa.table({"id": pa.array([big], pa.int64())}),
               pa.table({"id": pa.array([5.0]), "extra": ["x"]})),
        r"column 'id' has types that cannot be combined")
    assert "'extra' missing from part-0.parquet" in message and "not a readable" not in message
    message = _one_line_error(
        folder("zones_lost", pa.table({"t": pa.array([1], pa.timestamp("us", "UTC"))}),
               pa.table({"t": pa.array([3], pa.timestamp("us")), "extra": [1]})),
        r"column 't' has types that cannot be combined")
    assert "'extra'" in message
    # values the first file's type cannot hold either: the column is named, not "not a readable Parquet file"
    message = _one_line_error(folder("bigint_frac", pa.table({"id": pa.array([big], pa.int64())}),
                                     pa.table({"id": pa.array([5.5])})),
                              r"column 'id' has types that cannot be combined \(int64 in part-0.parquet; double")


def test_whitespace_split_spares_one_column_of_timestamps(tmp_path):
    stamps = [f"2020-01-01 10:{i:02d}:00 +0100" for i in range(50)]
    path = tmp_path / "stamps.csv"
    path.write_text("\n".join(stamps) + "\n")
    table = _read(path)
    assert table.num_columns == 1 and table.column(0).to_pylist()[-1] == stamps[-1]
    # a time then a zone offset, without a date
    path.write_text("".join(f"10:{i:02d} -0500\n" for i in range(50)))
    assert _read(path).num_columns == 1
    # a whitespace table is still split, its lines rewritten one by one (invalid bytes: the file offset)
    table_path = tmp_path / "table.dat"
    body = "".join(f"  {i}   {i / 4:.2f}  x{i}\n" for i in range(60))
    table_path.write_text("id value label\n" + body)
    table = _read(table_path)
    assert table.column_names == ["id", "value", "label"] and table.column("value")[3].as_py() == 0.75
    table_path.write_bytes(("id value label\n" + body * 2000).encode() + b"1 2.5 caf\xe9\n")
    _one_line_error(table_path, rf"not valid utf-8 \(byte {len(('id value label' + chr(10) + body * 2000).encode()) + 9}\)")


def test_whitespace_table_with_a_date_and_a_time_column_is_split(tmp_path):
    """A date column then a time column beside others is a table (only lines that are one
    timestamp alone stay one column)."""
    path = tmp_path / "obs.txt"
    path.write_text("date time temp_c wind\n" + "".join(f"2020-01-{d:02d} 10:{d:02d} 5.{d} {d + 3}\n" for d in range(1, 29)))
    table = _read(path)
    assert table.column_names == ["date", "time", "temp_c", "wind"] and table.num_rows == 28


def test_parquet_folder_with_text_in_one_file_and_numbers_in_another_is_refused(tmp_path):
    """Zip codes as numbers in one file and text in another: casting to the first file's type lost
    the leading zeros, or kept the numbers as text, by file-name order."""
    import pyarrow.parquet as pq

    folder = tmp_path / "zips"
    folder.mkdir()
    pq.write_table(pa.table({"zip": pa.array([90210, 10001]), "n": [1, 2]}), folder / "a.parquet")
    pq.write_table(pa.table({"zip": pa.array(["02134", "00501"]), "n": [3, 4]}), folder / "b.parquet")
    with pytest.raises(InputError, match=r"column 'zip' has types that cannot be combined"):
        read_source(SourceSpec(str(folder)))


def test_parquet_folder_fallback_reads_an_all_null_partition_and_refuses_text_views(tmp_path):
    """An all-null column in one file is no text-vs-number mix (it was refused beside a zone
    conflict the first file's schema reads); a string_view column beside integers is."""
    import datetime as dt

    folder = tmp_path / "notes"
    folder.mkdir()
    stamp = dt.datetime(2021, 1, 1, 12)
    pq.write_table(pa.table({"t": pa.array([stamp, stamp], pa.timestamp("us", tz="UTC")), "note": ["a", "b"]}),
                   folder / "part-0.parquet")
    pq.write_table(pa.table({"t": pa.array([stamp, stamp], pa.timestamp("us")), "note": pa.array([None, None])}),
                   folder / "part-1.parquet")
    assert read_source(SourceSpec(str(folder))).num_rows == 4
    zips = tmp_path / "zips"
    zips.mkdir()
    pq.write_table(pa.table({"zip": pa.array([2134, 3000])}), zips / "a.parquet")
    pq.write_table(pa.table({"zip": pa.array(["01234", "02134"], pa.string_view())}), zips / "b.parquet")
    with pytest.raises(InputError, match="column 'zip'"):
        read_source(SourceSpec(str(zips)))


def test_whitespace_file_of_iso_timestamps_with_offsets_stays_one_column(tmp_path):
    path = tmp_path / "stamps.txt"
    path.write_text("".join(f"2020-01-{d:02d}T10:00:00 +0{d % 3}00\n" for d in range(1, 40)))
    assert _read(path).num_columns == 1


@pytest.mark.parametrize("stamps", [
    ["2020-01-01 00:00:00", "2020-01-02 00:00:00", "2020-01-03 05:00:00", "2020-01-04 00:00:00"],
    ["2020-01-01T00:00:00", "2020-01-02T00:00:00", "2020-01-03T05:00:00", "2020-01-04T00:00:00"],
    ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "2020-01-03T05:00:00Z", "2020-01-04T00:00:00Z"],
    ["01/02/2020 10:00 AM", "01/03/2020 11:00 AM", "01/04/2020 01:00 PM", "01/05/2020 02:00 PM"],
    ["01-Jan-2020", "02-Jan-2020", "03-Jan-2020", "04-Jan-2020"],
    ["Jan 01 2020,foo", "Jan 02 2020,bar", "Jan 03 2020,baz", "Jan 04 2020,qux"],
])
def test_a_headerless_file_of_one_timestamp_column_keeps_its_first_row(tmp_path, stamps):
    path = tmp_path / "stamps.csv"
    path.write_text("\n".join(stamps) + "\n")
    table = read_source(SourceSpec(str(path)))
    assert table.column_names[0] == "col_1" and table.num_rows == 4
    named = tmp_path / "named.csv"
    named.write_text("when\n2020-01-01 00:00:00\n2020-01-02 00:00:00\n")
    assert read_source(SourceSpec(str(named))).column_names == ["when"]


@pytest.mark.parametrize("header, rows", [
    ("x1,x2", ["a3,c7", "b2,d4", "e5,f1"]),
    ("Q1,Q2,name", ["B2,A1,ann", "C3,B1,bob", "A2,C2,cy"]),
    ("A1,sample", ["B7,s1", "C2,s2", "D4,s3"]),
])
def test_header_names_with_digits_stay_a_header(tmp_path, header, rows):
    path = tmp_path / "t.csv"
    path.write_text("\n".join([header, *rows * 10]) + "\n")
    table = read_source(SourceSpec(str(path)))
    assert table.column_names == header.split(",") and table.num_rows == 30
