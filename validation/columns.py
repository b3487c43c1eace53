"""Shared column preparation for the fidelity and privacy metrics.

The gate compares three tables (real train split, holdout, synthetic) that may have been read
by different readers (CSV vs Parquet) or written by another tool, so the same value can arrive
as ``int64`` in one table and ``float64`` or a string in another. Every metric therefore works
on one canonical form, computed once here:

* numeric and datetime columns become ``float64`` arrays (datetimes as epoch nanoseconds),
  ``NaN`` for nulls;
* categorical and boolean columns become integer codes shared by all three tables (the same
  code means the same value everywhere), with nulls as their own level.

Only columns the generator models (``ColumnSchema.modeled``) and that all three tables have
are prepared; keys, PII and free text are checked separately by :mod:`validation.privacy`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from validation.schema import ColumnKind, ColumnSchema, TableSchema

ROLES = ("train", "holdout", "synthetic")
NUMERIC_KINDS = (ColumnKind.INTEGER, ColumnKind.FLOAT, ColumnKind.DATETIME)
CATEGORICAL_KINDS = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)


@dataclass
class PreparedTables:
    """Canonical arrays of the modeled columns of the three tables.

    ``num[role]`` is an ``(n_rows, len(num_cols))`` float64 array with ``NaN`` for nulls.
    ``cat[role]`` is an ``(n_rows, len(cat_cols))`` int64 array of codes shared across roles;
    ``cat_levels[j]`` lists the value of each code of column ``j`` (``None`` is the null level).
    """

    num_cols: list[str]
    cat_cols: list[str]
    num: dict[str, np.ndarray]
    cat: dict[str, np.ndarray]
    cat_levels: list[list[object]]
    kinds: dict[str, ColumnKind] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return self.num_cols + self.cat_cols

    def n_rows(self, role: str) -> int:
        return int(self.num[role].shape[0])

    def cat_counts(self, role: str, j: int) -> np.ndarray:
        """Row count of every level of categorical column ``j`` in ``role``."""
        return np.bincount(self.cat[role][:, j], minlength=len(self.cat_levels[j]))

    def capped_codes(self, j: int, max_levels: int) -> tuple[dict[str, np.ndarray], list[object]]:
        """Codes of categorical column ``j`` with at most ``max_levels`` levels per role.

        The most frequent levels *of the train split* are kept, the null level is always kept
        (missingness is information), and every other value (rare train values, values the train
        split never had, e.g. a generator's rare-category token) shares one ``"(other)"`` level.
        Capping keeps one-hot matrices and contingency tables small and statistically stable.
        """
        levels = self.cat_levels[j]
        n_levels = len(levels)
        if n_levels <= max_levels:
            return {r: self.cat[r][:, j] for r in self.cat}, list(levels)
        counts = self.cat_counts("train", j)
        null_code = _null_code(levels)
        order = np.argsort(-counts, kind="stable")
        n_keep = max(max_levels - 1 - (null_code is not None), 1)  # room for null and "(other)"
        keep = [int(c) for c in order if c != null_code][:n_keep]
        if null_code is not None:
            keep.append(null_code)
        mapping = np.full(n_levels, len(keep), dtype=np.int64)  # default: "(other)"
        mapping[keep] = np.arange(len(keep))
        new_levels = [levels[c] for c in keep] + ["(other)"]
        return {r: mapping[self.cat[r][:, j]] for r in self.cat}, new_levels


def _null_code(levels: list[object]) -> int | None:
    for i, v in enumerate(levels):
        if v is None:
            return i
    return None


def common_modeled_columns(schema: TableSchema, tables: dict[str, pd.DataFrame]) -> list[ColumnSchema]:
    """Modeled columns of the schema present in every table, in schema order."""
    return [
        c for c in schema.modeled_columns if all(c.name in t.columns for t in tables.values())
    ]


def numeric_values(s: pd.Series, col: ColumnSchema) -> np.ndarray:
    """A numeric or datetime column as float64 (datetimes in epoch ns), NaN for nulls."""
    if col.kind == ColumnKind.DATETIME:
        return datetime_values(s, col)
    if pd.api.types.is_bool_dtype(s):
        s = s.astype("float64")
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def datetime_values(s: pd.Series, col: ColumnSchema) -> np.ndarray:
    """Epoch nanoseconds as float64. Strings are parsed with the profile's format when known."""
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = s
    else:
        fmt = col.datetime_format
        utc = bool(fmt and (fmt.endswith("Z") or "%z" in fmt))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = pd.to_datetime(s, format=fmt, errors="coerce", utc=utc)
            if fmt and ts.isna().sum() > s.isna().sum():
                # another tool may have written ISO strings in a different layout
                ts = pd.to_datetime(s, format="mixed", errors="coerce", utc=utc)
    if getattr(ts.dtype, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    ns = ts.astype("datetime64[ns]").to_numpy().astype("int64").astype("float64")
    ns[ts.isna().to_numpy()] = np.nan
    return ns


def category_labels(s: pd.Series) -> np.ndarray:
    """Values as strings in an object array, ``None`` for nulls, so that ``1``, ``1.0`` (from a
    CSV column with nulls) and ``"1"`` are the same category, as are ``True`` and ``"True"``."""
    out = np.empty(len(s), dtype=object)
    mask = s.isna().to_numpy()
    values = s.to_numpy(dtype=object)
    for i in np.flatnonzero(~mask):
        out[i] = _label(values[i])
    return out


def _label(v: object) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    return str(v)


def _fast_labels(s: pd.Series) -> np.ndarray:
    """Like :func:`category_labels` but vectorized when the values are all strings already
    (by far the most common case); other columns take the per-value path."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
        values = s.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            out = values.copy()
            out[pd.isna(values)] = None
            return out
    return category_labels(s)


def prepare_tables(tables: dict[str, pd.DataFrame], schema: TableSchema) -> PreparedTables:
    """Canonical arrays of the modeled columns common to ``tables`` (keys: ``ROLES``)."""
    cols = common_modeled_columns(schema, tables)
    num_cols = [c for c in cols if c.kind in NUMERIC_KINDS]
    cat_cols = [c for c in cols if c.kind in CATEGORICAL_KINDS]
    num: dict[str, np.ndarray] = {}
    for role, df in tables.items():
        arrays = [numeric_values(df[c.name], c) for c in num_cols]
        num[role] = np.column_stack(arrays) if arrays else np.empty((len(df), 0))
    cat: dict[str, np.ndarray] = {r: np.empty((len(df), len(cat_cols)), dtype=np.int64) for r, df in tables.items()}
    levels: list[list[object]] = []
    roles = list(tables)
    for j, c in enumerate(cat_cols):
        labels = [_fast_labels(tables[r][c.name]) for r in roles]
        joined = np.concatenate(labels)
        null = pd.isna(joined)
        codes, uniques = pd.factorize(joined, use_na_sentinel=True)
        col_levels = list(uniques)
        if null.any():
            codes = np.where(codes < 0, len(col_levels), codes)
            col_levels.append(None)
        start = 0
        for r, lab in zip(roles, labels):
            cat[r][:, j] = codes[start : start + len(lab)]
            start += len(lab)
        levels.append(col_levels)
    return PreparedTables(
        num_cols=[c.name for c in num_cols],
        cat_cols=[c.name for c in cat_cols],
        num=num,
        cat=cat,
        cat_levels=levels,
        kinds={c.name: c.kind for c in cols},
    )


def row_keys(prep: PreparedTables, role: str, num_idx: list[int] | None = None, cat_idx: list[int] | None = None) -> np.ndarray:
    """One uint64 hash per row over the chosen canonical columns (nulls hash equal).

    Because codes are shared across roles and numerics are float64 everywhere, equal hashes
    mean equal values regardless of how each table was read.
    """
    num_idx = list(range(len(prep.num_cols))) if num_idx is None else num_idx
    cat_idx = list(range(len(prep.cat_cols))) if cat_idx is None else cat_idx
    parts = {}
    for i in num_idx:
        v = prep.num[role][:, i]
        # -0.0 and negative NaN have other bit patterns than 0.0 and NaN: normalize first
        parts[f"n{i}"] = np.where(np.isnan(v), np.nan, v + 0.0)
    for j in cat_idx:
        parts[f"c{j}"] = prep.cat[role][:, j]
    if not parts:
        return np.zeros(prep.n_rows(role), dtype=np.uint64)
    frame = pd.DataFrame(parts)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()
