"""Shared column preparation for the fidelity and privacy metrics.

The gate compares three tables (real train split, holdout, synthetic) that may have been read
by different readers (CSV vs Parquet) or written by another tool, so the same value can arrive
as ``int64`` in one table and ``float64`` or a string in another. Every metric therefore works
on one canonical form, computed once here:

* numeric and datetime columns become ``float64`` arrays (datetimes as seconds since the
  epoch, see :func:`datetime_seconds`), ``NaN`` for nulls;
* categorical and boolean columns become integer codes shared by all three tables (the same
  code means the same value everywhere), with nulls as their own level.

Only columns the generator models (``ColumnSchema.modeled``) and that all three tables have
are prepared; keys, PII and free text are checked separately by :mod:`validation.privacy`.
"""
from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from validation.errors import InputError
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
    """A numeric or datetime column as float64 (datetimes in epoch seconds), NaN for nulls."""
    if col.kind == ColumnKind.DATETIME:
        return datetime_values(s, col)
    if pd.api.types.is_bool_dtype(s):
        s = s.astype("float64")
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def datetime_values(s: pd.Series, col: ColumnSchema) -> np.ndarray:
    """Seconds since the epoch as float64 (:func:`datetime_seconds` with the profile's format)."""
    return datetime_seconds(s, col.datetime_format)


def category_labels(s: pd.Series, kind: ColumnKind | None = None) -> np.ndarray:
    """Values as strings in an object array, ``None`` for nulls, so that ``1``, ``1.0`` (from a
    CSV column with nulls) and ``"1"`` are the same category, as are ``True`` and ``"True"``.
    For a ``BOOLEAN`` column, see :func:`boolean_labels`."""
    out = np.empty(len(s), dtype=object)
    mask = s.isna().to_numpy()
    values = s.to_numpy(dtype=object)
    for i in np.flatnonzero(~mask):
        out[i] = _label(values[i])
    return boolean_labels(out) if kind == ColumnKind.BOOLEAN else out


def _label(v: object) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    return str(v)


_BOOLEAN_SPELLINGS = {"true": "True", "1": "True", "false": "False", "0": "False"}


def boolean_labels(labels: np.ndarray) -> np.ndarray:
    """Labels of a boolean column with every spelling of a truth value made ``"True"`` or
    ``"False"``: a copy written as 1/0, 1.0/0.0, "1"/"0" or "true"/"FALSE" is the same row as the
    original (otherwise a table rewritten as 0/1 hides its exact copies from the privacy checks).
    Other labels and ``None`` are kept."""
    lowered = pd.Series(labels, dtype=object).str.lower()
    out = lowered.map(_BOOLEAN_SPELLINGS).to_numpy(dtype=object)
    other = pd.isna(out)
    out[other] = labels[other]
    return out


def _fast_labels(s: pd.Series, kind: ColumnKind | None = None) -> np.ndarray:
    """Like :func:`category_labels` but vectorized when the values are all strings already
    (by far the most common case); other columns take the per-value path."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
        values = s.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            out = values.copy()
            out[pd.isna(values)] = None
            return boolean_labels(out) if kind == ColumnKind.BOOLEAN else out
    return category_labels(s, kind)


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
        labels = [_fast_labels(tables[r][c.name], c.kind) for r in roles]
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


# ------------------------------------------------------------------------------------------------
# Datetimes <-> numbers: the one conversion every module uses
# ------------------------------------------------------------------------------------------------
# A datetime column arrives in one of four forms: ``datetime64`` (naive or tz-aware, unit s, ms,
# us or ns), Python ``datetime.date`` objects (Arrow ``date32``), text in a strftime format, or an
# object column of Python datetimes / Timestamps. Each value becomes an exact int64 count of
# *ticks* since the Unix epoch in UTC wall time: in the column's own unit for ``datetime64`` (its
# storage, so 9999-12-31 in ``datetime64[us]`` never overflows), in microseconds otherwise (the
# resolution of Python datetimes; year 1..9999 fits). Nothing is ever routed through
# ``datetime64[ns]``, whose range ends in 2262.

TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_TEXT_DEFAULT_FORMAT = "%Y-%m-%dT%H:%M:%S"
# Our code for three fractional digits (milliseconds, as JavaScript and Java write timestamps),
# which strftime lacks: ``%f`` always writes six. Read as ``%f``; written as ``%f`` cut to three.
MILLISECONDS = "%3f"
# Our codes for a UTC offset written with a colon (+05:00) or in hours alone (+05, as PostgreSQL
# writes it; GNU date's ``%:::z``), which Python 3.11's strftime lacks (its ``%z`` writes +0500).
# Both are read as ``%z``; written as ``%z`` reshaped. Only UTC is written in them (see
# ``validation.profile``), so an hours-only offset never loses its minutes.
OFFSET_COLON = "%:z"
OFFSET_HOURS = "%:::z"
# Our codes for a day or month without zero padding ("Jan 1 2000", "1.3.2021"; glibc's spelling,
# which Python's strptime lacks). Read as ``%d``/``%m`` (which take one or two digits).
UNPADDED_DAY = "%-d"
UNPADDED_MONTH = "%-m"
# code -> (what strftime writes, with a marker to find it afterwards; the pattern; its rewrite).
# Markers, not NUL: C's strftime stops at a NUL.
_REWRITTEN = {
    MILLISECONDS: ("%f\x1f", r"(\d{3})\d{3}\x1f", r"\1"),  # the fraction cut to milliseconds
    OFFSET_COLON: ("%z\x1e", r"([+-]\d\d)(\d\d)\x1e", r"\1:\2"),
    OFFSET_HOURS: ("%z\x1d", r"([+-]\d\d)\d\d\x1d", r"\1"),
    UNPADDED_DAY: ("%d\x1c", r"(?<!\d)0?(\d+)\x1c", r"\1"),
    UNPADDED_MONTH: ("%m\x1b", r"(?<!\d)0?(\d+)\x1b", r"\1"),
}


def reading_format(fmt: str | None) -> str | None:
    """``fmt`` as strptime and pandas read it (``%f`` reads one to six digits, ``%z`` an offset
    with or without a colon; pandas also reads hours alone)."""
    if not fmt:
        return fmt
    for code, (written, _, _) in _REWRITTEN.items():
        fmt = fmt.replace(code, written[:-1])  # what strftime writes, without the marker
    return fmt


def format_datetimes(stamps: pd.Series, fmt: str) -> pd.Series:
    """``stamps.dt.strftime(fmt)``, also for our codes :data:`MILLISECONDS` (the fraction truncated
    to milliseconds: data read in that format holds whole milliseconds), :data:`OFFSET_COLON`,
    :data:`OFFSET_HOURS`, :data:`UNPADDED_DAY` and :data:`UNPADDED_MONTH`."""
    codes = [code for code in _REWRITTEN if code in fmt]
    for code in codes:
        fmt = fmt.replace(code, _REWRITTEN[code][0])
    written = stamps.dt.strftime(fmt)
    for code in codes:
        written = written.str.replace(_REWRITTEN[code][1], _REWRITTEN[code][2], regex=True)
    return written


_NAT = np.iinfo(np.int64).min
_EPOCH = dt.datetime(1970, 1, 1)


def dtype_name(dtype: Any) -> str:
    """A string that ``pandas.api.types.pandas_dtype`` turns back into ``dtype``."""
    if isinstance(dtype, pd.StringDtype):
        return f"string[{dtype.storage}]"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    return str(dtype)


def decimal_places(values: np.ndarray) -> int | None:
    """Decimal places needed to write the values, judged on the first 10,000; None when more
    than 10 would be needed: such values are not rounded at all.

    The tolerance is relative to each value's magnitude, so p-values below 0.001 keep their
    digits: rounding to ``d`` places may move a value by a few float steps (float noise such as
    0.1 + 0.2 is no digit), and values that are all float32 numbers (a float32 source) must read
    back as the same float32. A column of full-precision doubles needs more than 10 places:
    rounding it to 10 (the former cap) collapsed magnitudes below about 1e-10 onto 0, and cut
    the significant digits of values such as 1.234567e-7, so it is left unrounded (None). The
    profile and the encoder both use this rule.
    """
    arr = np.asarray(values, dtype=np.float64)[:10_000]
    with np.errstate(over="ignore"):
        single = arr.astype(np.float32)
    is_single = np.array_equal(single, arr)
    for d in range(11):
        rounded = np.round(arr, d)
        if is_single:
            if np.array_equal(rounded.astype(np.float32), single):
                return d
        elif np.all(np.abs(arr - rounded) <= 4 * np.spacing(np.abs(arr))):
            return d
    return None


def require_finite(values: np.ndarray, column: str) -> None:
    """Raise an :class:`InputError` when a numeric column holds inf or -inf (NaN is a null)."""
    infinite = int(np.isinf(values).sum())
    if infinite:
        raise InputError(
            f"column {column!r} holds {infinite} infinite value(s) (inf or -inf), which no generator can "
            "model: replace them in the source (with nulls or finite numbers), or drop the column in the "
            "schema file"
        )


def clip_to_integer_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` clipped to the float64 values that an integer ``dtype`` holds (unchanged for any other
    dtype): ``float(2**63 - 1)`` is 2**63, which an int64 cast wraps round to the minimum."""
    try:
        target = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return x
    target = getattr(target, "numpy_dtype", target)  # the nullable Int64 & co.
    if not isinstance(target, np.dtype) or target.kind not in "iu":
        return x
    info = np.iinfo(target)
    lo, hi = float(info.min), float(info.max)
    if hi > info.max:  # Python compares an int and a float exactly
        hi = float(np.nextafter(hi, 0.0))
    return np.clip(x, lo, hi)


def utc_format(fmt: str | None) -> bool:
    """Text written in this format carries UTC (a literal ``Z``) or an offset (``%z``)."""
    return bool(fmt and (fmt.endswith("Z") or any(code in fmt for code in ("%z", OFFSET_COLON, OFFSET_HOURS))))


@dataclass(frozen=True)
class DatetimeForm:
    """How a datetime column is stored, so that numbers can be turned back into it.

    ``kind`` is ``"datetime64"`` (``dtype`` names unit and tz), ``"date"`` (``datetime.date``
    objects), ``"text"`` (strings in a strftime format given separately) or ``"object"`` (Python
    datetimes / Timestamps; ``tz`` is ``"UTC"`` when they were tz-aware). JSON-able through
    :meth:`to_json` so that generators can persist it.
    """

    kind: str
    dtype: str = "object"
    tz: str | None = None

    @classmethod
    def of(cls, s: pd.Series) -> "DatetimeForm":
        if pd.api.types.is_datetime64_any_dtype(s.dtype) and not isinstance(s.dtype, pd.ArrowDtype):
            tz = getattr(s.dtype, "tz", None)
            return cls("datetime64", dtype_name(s.dtype), None if tz is None else str(tz))
        head = s.dropna().iloc[:100].to_numpy(dtype=object)
        if len(head) and all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in head):
            return cls("date", dtype_name(s.dtype))
        if len(head) == 0 or all(isinstance(v, str) for v in head):
            is_text = len(head) > 0 or pd.api.types.is_string_dtype(s.dtype)
            return cls("text" if is_text else "object", dtype_name(s.dtype))
        aware = any(getattr(v, "tzinfo", None) is not None for v in head)
        return cls("object", dtype_name(s.dtype), "UTC" if aware else None)

    def to_json(self) -> dict:
        return {"kind": self.kind, "dtype": self.dtype, "tz": self.tz}

    @classmethod
    def from_json(cls, data: dict) -> "DatetimeForm":
        return cls(data["kind"], data.get("dtype", "object"), data.get("tz"))


def _rescale(ticks: np.ndarray, null: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Ticks of unit ``src`` as ticks of unit ``dst`` (floored when coarser; overflow-checked)."""
    if src == dst:
        return ticks
    a, b = TICKS_PER_SECOND[src], TICKS_PER_SECOND[dst]
    if b < a:
        return np.floor_divide(ticks, a // b)
    factor = b // a
    present = ticks[~null]
    limit = np.iinfo(np.int64).max // factor
    if len(present) and (present.max() > limit or present.min() < -limit):
        raise pd.errors.OutOfBoundsDatetime(f"datetimes do not fit in unit {dst!r}")
    return np.where(null, 0, ticks) * factor


def _py_ticks_us(v: Any, fmt: str | None) -> int | None:
    """Microseconds since the epoch (UTC) of one value, in pure Python (any year 1..9999)."""
    try:
        if isinstance(v, str):
            text = v.strip()
            parsed = None
            if fmt:
                try:
                    parsed = dt.datetime.strptime(text, reading_format(fmt))
                except ValueError:
                    parsed = None
            v = parsed if parsed is not None else dt.datetime.fromisoformat(text)
        elif isinstance(v, np.datetime64):
            v = v.astype("datetime64[us]").astype(object)
        if isinstance(v, dt.datetime):
            offset = v.utcoffset()
            d = v.replace(tzinfo=None) - _EPOCH
            if offset is not None:
                d -= offset
        elif isinstance(v, dt.date):
            d = dt.datetime(v.year, v.month, v.day) - _EPOCH
        else:
            return None
    except (ValueError, TypeError, OverflowError):
        return None
    return (d.days * 86_400 + d.seconds) * 10**6 + d.microseconds


def datetime_ticks(s: pd.Series, fmt: str | None = None, unit: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Exact datetimes of ``s`` as ``(ticks, null, unit)``: int64 counts of ``unit`` since the
    Unix epoch in UTC wall time, and the null mask (ticks are 0 there).

    tz-aware values are converted to UTC, naive ones are taken as they read. ``fmt`` is the
    strftime format of text values (other layouts and out-of-``ns``-range text are parsed too).
    ``unit`` defaults to the column's own for ``datetime64`` and ``"us"`` otherwise; a value that
    does not parse counts as null.
    """
    if isinstance(s.dtype, pd.ArrowDtype) and pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = s.astype(object)  # Arrow-backed timestamps (rare): through Python objects
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        own = s.dt.unit
        null = s.isna().to_numpy()
        ticks = np.asarray(s.array.asi8, dtype=np.int64).copy()  # tz-aware: already UTC
        ticks[null] = 0
        return _rescale(ticks, null, own, unit or own), null, unit or own
    values = s.to_numpy(dtype=object)
    null = pd.isna(values)
    values = values.copy()
    values[null] = None
    ticks = np.zeros(len(values), dtype=np.int64)
    ok = np.zeros(len(values), dtype=bool)
    form = DatetimeForm.of(s)
    if form.kind == "date":
        try:
            ticks = np.array(values, dtype="datetime64[D]").astype("datetime64[us]").view(np.int64).copy()
            ok = ~null
        except (TypeError, ValueError):
            pass
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(pd.Series(values), format=reading_format(fmt) if form.kind == "text" else None,
                                        errors="coerce", utc=True)
            except (TypeError, ValueError):
                parsed = pd.Series(pd.NaT, index=range(len(values)), dtype="datetime64[ns, UTC]")
        ok = parsed.notna().to_numpy()
        ticks = _rescale(np.where(ok, parsed.array.asi8, 0), ~ok, parsed.dt.unit, "us")
    failed = np.flatnonzero(~null & ~ok)
    if len(failed):
        # out of datetime64[ns] range (9999-12-31 sentinels), other text layouts, mixed objects
        if form.kind == "text":
            uniques, inverse = np.unique(values[failed].astype(str), return_inverse=True)
        else:
            uniques, inverse = values[failed], np.arange(len(failed))
        found = [_py_ticks_us(u, fmt) for u in uniques]
        missing = [k for k, t in enumerate(found) if t is None]
        if missing and form.kind == "text":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                retry = pd.to_datetime(pd.Series(uniques[missing], dtype=object), format="mixed",
                                       errors="coerce", utc=True)
            for k, t in zip(missing, retry):
                if not pd.isna(t):
                    found[k] = int(t.value // 1000)
        got = np.array([t is not None for t in found], dtype=bool)[inverse]
        vals = np.array([0 if t is None else t for t in found], dtype=np.int64)[inverse]
        ticks[failed[got]] = vals[got]
        ok[failed[got]] = True
    null = ~ok
    ticks[null] = 0
    return _rescale(ticks, null, "us", unit or "us"), null, unit or "us"


def datetime_seconds(s: pd.Series, fmt: str | None = None) -> np.ndarray:
    """Datetimes as float64 seconds since the Unix epoch (UTC), ``NaN`` for nulls.

    Any form (see :class:`DatetimeForm`), any unit, any year 1..9999; see :func:`datetime_ticks`.
    """
    ticks, null, unit = datetime_ticks(s, fmt)
    per = TICKS_PER_SECOND[unit]
    whole, frac = np.divmod(ticks, per)
    out = whole.astype(np.float64) + frac.astype(np.float64) / per
    out[null] = np.nan
    return out


def ticks_to_datetime_like(
    ticks: np.ndarray, null: np.ndarray, unit: str, like: pd.Series | DatetimeForm, fmt: str | None = None
) -> pd.Series:
    """Inverse of :func:`datetime_ticks`: a Series in the form of ``like`` (a column or its
    :class:`DatetimeForm`): ``datetime64`` of the same unit and tz, ``datetime.date`` objects,
    text in ``fmt`` (UTC time when ``fmt`` carries ``Z`` or ``%z``), or Timestamps. Nulls are
    ``NaT`` in ``datetime64`` columns and ``None`` otherwise; the index is a fresh RangeIndex."""
    form = like if isinstance(like, DatetimeForm) else DatetimeForm.of(like)
    null = np.asarray(null, dtype=bool)
    ticks = np.where(null, 0, np.asarray(ticks, dtype=np.int64))
    if form.kind == "datetime64":
        dtype = pd.api.types.pandas_dtype(form.dtype)
        target = getattr(dtype, "unit", None) or np.datetime_data(dtype)[0]
        raw = _rescale(ticks, null, unit, target)
        raw = np.where(null, _NAT, raw).view(f"datetime64[{target}]")
        out = pd.Series(raw)
        tz = getattr(dtype, "tz", None)
        if tz is not None:
            out = out.dt.tz_localize("UTC").dt.tz_convert(tz)
        return out.astype(dtype)
    if form.kind == "date":
        days = np.floor_divide(ticks, TICKS_PER_SECOND[unit] * 86_400)
        values = np.where(null, _NAT, days).view("datetime64[D]").astype(object)
        values[null] = None
        out = pd.Series(values, dtype=object)
        return out if form.dtype == "object" else out.astype(pd.api.types.pandas_dtype(form.dtype))
    stamps = pd.Series(np.where(null, _NAT, _rescale(ticks, null, unit, "us")).view("datetime64[us]"))
    if form.kind == "text":
        layout = fmt or _TEXT_DEFAULT_FORMAT
        if utc_format(layout):
            stamps = stamps.dt.tz_localize("UTC")
        values = format_datetimes(stamps, layout).to_numpy(dtype=object).copy()
    else:
        if form.tz is not None:
            stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(form.tz)
        values = stamps.to_numpy(dtype=object).copy()
    values[null] = None
    out = pd.Series(values, dtype=object)
    if form.dtype not in ("object", "category"):
        out = out.astype(pd.api.types.pandas_dtype(form.dtype))
    elif form.dtype == "category":
        out = out.astype("category")
    return out


def seconds_to_datetime_like(
    values: np.ndarray, like: pd.Series | DatetimeForm, fmt: str | None = None
) -> pd.Series:
    """Inverse of :func:`datetime_seconds`: float seconds since the epoch (``NaN`` = null) back in
    the form of ``like`` (see :func:`ticks_to_datetime_like`), rounded to the nearest tick of
    the target unit (``datetime64``: its own; dates: floored to the day)."""
    form = like if isinstance(like, DatetimeForm) else DatetimeForm.of(like)
    values = np.asarray(values, dtype=np.float64)
    null = ~np.isfinite(values)
    unit = "us"
    if form.kind == "datetime64":
        dtype = pd.api.types.pandas_dtype(form.dtype)
        unit = getattr(dtype, "unit", None) or np.datetime_data(dtype)[0]
    per = TICKS_PER_SECOND[unit]
    safe = np.where(null, 0.0, values)
    whole = np.floor(safe)
    if len(whole) and np.abs(whole).max() >= np.iinfo(np.int64).max // per - 1:
        raise pd.errors.OutOfBoundsDatetime(f"seconds do not fit in unit {unit!r}")
    ticks = whole.astype(np.int64) * per + np.rint((safe - whole) * per).astype(np.int64)
    return ticks_to_datetime_like(ticks, null, unit, form, fmt)
