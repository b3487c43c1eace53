"""GReaT-style row text: each modeled column as ``"name is value"``, fields joined by ``", "``.

A :class:`ValueCodec` per column turns a cell into the text the language model sees and back.
Text forms are canonical so that the constrained decoder (:mod:`generators.constrained_decoding`)
can describe every valid value exactly:

* categorical / boolean: ``str(value)``, made unique and non-empty;
* numbers: plain decimal notation, at most ``decimals`` fraction digits, no trailing zeros, no
  exponent, no ``-0`` (``"1012"``, ``"39.02"``, ``"-9.94"``);
* datetimes: fixed width, truncated to the resolution the data has (``"2013-01-01 06"`` for
  hourly data), in UTC wall time for tz-aware columns so no DST gap or fold can make a sampled
  value invalid.

The codecs hold only JSON-able fields: they are rebuilt from the saved generator config.
"""
from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd

from validation.columns import DatetimeForm, datetime_ticks, require_finite, ticks_to_datetime_like
from validation.schema import ColumnKind, ColumnSchema

NULL_TEXT = "None"  # how a missing value reads in row text (the decoder uses a dedicated token)

# Datetime layouts by resolution; lexicographic order equals time order for each of them.
DATETIME_LAYOUTS: dict[str, str] = {
    "D": "%Y-%m-%d",
    "h": "%Y-%m-%d %H",
    "m": "%Y-%m-%d %H:%M",
    "s": "%Y-%m-%d %H:%M:%S",
}
_FLOAT_DECIMALS_DEFAULT = 6  # when the schema does not say how many decimals floats carry


@dataclass
class ValueCodec:
    """How one column's cells become text and come back, plus what is valid for the column."""

    name: str
    kind: str  # "categorical", "number" or "datetime"
    dtype: str  # the source pandas dtype, restored on output
    allow_null: bool = False
    # categorical
    categories: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    dtype_categories: list[Any] | None = None  # a pandas "category" column's own categories, in order
    # number
    discrete: bool = False  # few distinct values: spelled by the value tokenizer, limited to ``texts``
    decimals: int = 0
    integer: bool = False
    low: int = 0  # min and max in units of 10**-decimals
    high: int = 0
    min_value: float | None = None
    max_value: float | None = None
    # datetime
    resolution: str = "s"
    min_text: str = ""
    max_text: str = ""
    value_type: str = "datetime64"  # datetime64 | string | date
    tz: str | None = None
    datetime_format: str | None = None

    # ------------------------------------------------------------------------------- JSON
    def to_json(self) -> dict:
        out = asdict(self)
        out["categories"] = [_jsonable(v) for v in self.categories]
        if self.dtype_categories is not None:
            out["dtype_categories"] = [_jsonable(v) for v in self.dtype_categories]
        return out

    @classmethod
    def from_json(cls, data: dict) -> "ValueCodec":
        return cls(**data)

    # ----------------------------------------------------------------------------- encode
    def to_text(self, value: Any) -> str | None:
        """The text of one cell; None for a missing cell or a value outside the column's rules."""
        if _is_missing(value):
            return None
        if self.kind == "categorical":
            idx = self._category_index().get(_category_key(value))
            return None if idx is None else self.texts[idx]
        if self.kind == "number":
            return self._number_text(float(value))
        return self._datetime_text(value)

    def column_texts(self, values: pd.Series) -> list[str | None]:
        """Vectorized :meth:`to_text` for a whole column (None where missing or not encodable)."""
        if self.kind == "categorical":
            index = self._category_index()
            return [None if _is_missing(v) else (None if (i := index.get(_category_key(v))) is None else self.texts[i])
                    for v in values.tolist()]
        if self.kind == "number":
            arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            return [None if math.isnan(v) else self._number_text(v) for v in arr]
        stamps = to_utc_naive(values, self.value_type, self.datetime_format).dt.floor(_FLOOR[self.resolution])
        texts = stamps.dt.strftime(DATETIME_LAYOUTS[self.resolution])
        ok = stamps.notna() & (texts >= self.min_text) & (texts <= self.max_text)
        return [t if k else None for t, k in zip(texts.tolist(), ok.tolist())]

    def _category_index(self) -> dict:
        cached = getattr(self, "_index_cache", None)
        if cached is None:
            cached = {_category_key(v): i for i, v in enumerate(self.categories)}
            self._index_cache = cached
        return cached

    def _number_text(self, value: float) -> str | None:
        if not math.isfinite(value):
            return None
        units = round(value * 10**self.decimals)
        if not self.low <= units <= self.high:
            return None
        text = units_to_text(units, self.decimals)
        if self.discrete and text not in self.text_index():
            return None
        return text

    def text_index(self) -> dict[str, int]:
        """Position of each whole-value text in ``texts``."""
        cached = getattr(self, "_texts_cache", None)
        if cached is None:
            cached = {t: i for i, t in enumerate(self.texts)}
            self._texts_cache = cached
        return cached

    def _datetime_text(self, value: Any) -> str | None:
        return self.column_texts(pd.Series([value], dtype=object))[0]

    # ----------------------------------------------------------------------------- decode
    def from_text(self, text: str | None) -> Any:
        """The Python value of one cell's text (None for missing)."""
        if text is None:
            return None
        if self.kind == "categorical":
            return self.categories[self.text_index()[text]]
        if self.kind == "number":
            value = float(text)  # canonical text: exact for integers, nearest float otherwise
            # Clip against the float bounds: the bounds in units are exact, but the schema's
            # float min/max may sit one ulp inside the rounded text (10.357019999999999).
            if self.min_value is not None:
                value = max(value, self.min_value)
            if self.max_value is not None:
                value = min(value, self.max_value)
            return int(round(value)) if self.integer else value
        return dt.datetime.strptime(text, DATETIME_LAYOUTS[self.resolution])

    def to_series(self, texts: list[str | None], index: pd.Index | None = None) -> pd.Series:
        """Decoded cells as a Series with the source column's dtype."""
        values = [self.from_text(t) for t in texts]
        return restore_dtype(values, self, index)


# ------------------------------------------------------------------------------- builders
def build_codec(column: ColumnSchema, values: pd.Series, discrete_max_values: int = 0) -> ValueCodec:
    """The codec of one modeled column from its schema and the training values.

    A numeric column with at most ``discrete_max_values`` distinct values in training (month,
    hour, a wind speed measured in whole knots) is treated as a set of values: each becomes one
    or a few tokens instead of a digit string, and sampling picks among the seen values.
    """
    dtype = str(values.dtype)
    has_null = bool(values.isna().any())
    # A missing value is valid only when the schema allows it; it is learnable only when the
    # training rows have some.
    allow_null = bool(column.nullable and has_null)
    if column.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        categories = column.category_values
        if not categories:  # a schema without categories: use the training values
            categories = [v.item() if hasattr(v, "item") else v for v in pd.unique(values.dropna())]
        own = [_jsonable(v) for v in values.cat.categories] if isinstance(values.dtype, pd.CategoricalDtype) else None
        return ValueCodec(name=column.name, kind="categorical", dtype=dtype, allow_null=allow_null,
                          categories=list(categories), texts=unique_texts(categories), dtype_categories=own)
    if column.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT):
        integer = column.kind == ColumnKind.INTEGER
        decimals = 0 if integer else min(column.decimals if column.decimals is not None else _FLOAT_DECIMALS_DEFAULT, 10)
        numeric = pd.to_numeric(values, errors="coerce")
        require_finite(numeric.to_numpy(dtype=float, na_value=np.nan), column.name)
        lo = float(column.min) if column.min is not None else float(numeric.min())
        hi = float(column.max) if column.max is not None else float(numeric.max())
        scale = 10**decimals
        codec = ValueCodec(name=column.name, kind="number", dtype=dtype, allow_null=allow_null,
                           decimals=decimals, integer=integer,
                           low=_ceil_units(lo * scale), high=_floor_units(hi * scale),
                           min_value=lo, max_value=hi)
        units = pd.Series([round(v * scale) for v in numeric.dropna().to_numpy(dtype=float) if math.isfinite(v)],
                          dtype=object).unique() if numeric.notna().any() else []
        seen = sorted(int(u) for u in units if codec.low <= u <= codec.high)
        if 0 < len(seen) <= discrete_max_values:
            codec.discrete = True
            codec.texts = [units_to_text(u, decimals) for u in seen]
        return codec
    if column.kind == ColumnKind.DATETIME:
        value_type = _datetime_value_type(values)
        stamps = to_utc_naive(values, value_type, column.datetime_format).dropna()
        resolution = "D" if value_type == "date" else detect_resolution(stamps)
        layout = DATETIME_LAYOUTS[resolution]
        lo_ts = _bound_to_utc_naive(column.min, stamps.min())
        hi_ts = _bound_to_utc_naive(column.max, stamps.max())
        lo_text = lo_ts.ceil(_FLOOR[resolution]).strftime(layout)
        hi_text = hi_ts.floor(_FLOOR[resolution]).strftime(layout)
        tz = getattr(values.dtype, "tz", None)
        tz = None if tz is None else str(tz)
        return ValueCodec(name=column.name, kind="datetime", dtype=dtype, allow_null=allow_null,
                          resolution=resolution, min_text=lo_text, max_text=hi_text,
                          value_type=value_type, tz=tz, datetime_format=column.datetime_format)
    raise ValueError(f"column {column.name!r} of kind {column.kind.value} is not modeled by the LLM")


def unique_texts(values: Iterable[Any]) -> list[str]:
    """``str(value)`` per category, made non-empty and unique (the decoder needs a bijection)."""
    out: list[str] = []
    seen: set[str] = set()
    for v in values:
        text = str(v) if str(v) != "" else '""'
        base, k = text, 2
        while text in seen:
            text = f"{base} ({k})"
            k += 1
        seen.add(text)
        out.append(text)
    return out


def units_to_text(units: int, decimals: int) -> str:
    """Canonical text of ``units * 10**-decimals``: no exponent, no trailing zeros, no -0."""
    sign = "-" if units < 0 else ""
    mag = abs(units)
    if decimals == 0:
        return f"{sign}{mag}"
    whole, frac = divmod(mag, 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


def detect_resolution(stamps: pd.Series) -> str:
    """The coarsest of day / hour / minute / second that represents every value exactly."""
    if stamps.empty:
        return "s"
    if (stamps == stamps.dt.floor("D")).all():
        return "D"
    if (stamps == stamps.dt.floor("h")).all():
        return "h"
    if (stamps == stamps.dt.floor("min")).all():
        return "m"
    return "s"  # finer parts are dropped: the decoder works at whole seconds


def to_utc_naive(values: pd.Series, value_type: str, fmt: str | None) -> pd.Series:
    """Datetime cells as naive UTC-wall-time ``datetime64`` (NaT where missing), through
    :func:`validation.columns.datetime_ticks`: the column's own unit for ``datetime64`` columns,
    microseconds otherwise, so year-9999 sentinels never overflow."""
    ticks, null, unit = datetime_ticks(values, fmt if value_type == "string" else None)
    raw = np.where(null, np.iinfo(np.int64).min, ticks).view(f"datetime64[{unit}]")
    return pd.Series(raw, index=values.index)


def serialize_row(fields: list[tuple[str, str | None]]) -> str:
    """``[("origin", "JFK"), ("temp", None)]`` -> ``"origin is JFK, temp is None"``."""
    return ", ".join(f"{name} is {NULL_TEXT if text is None else text}" for name, text in fields)


def parse_row(text: str, names: list[str]) -> dict[str, str | None]:
    """Inverse of :func:`serialize_row` for known column names.

    Fields are found by their ``"name is "`` headers at the start or after ``", "``; a value that
    itself contains ``", <known name> is "`` cannot be told apart (the sampler never parses text:
    it reads values from the decoding state, so this is for inspection and tests).
    """
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    header = re.compile(rf"(?:^|, )({alternatives}) is ")
    matches = list(header.finditer(text))
    out: dict[str, str | None] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[m.end():end]
        if m.group(1) in out:
            raise ValueError(f"column {m.group(1)!r} appears twice in {text!r}")
        out[m.group(1)] = None if value == NULL_TEXT else value
    return out


def restore_dtype(values: list[Any], codec: ValueCodec, index: pd.Index | None = None) -> pd.Series:
    """Decoded Python values as a Series of the source column's pandas dtype."""
    dtype = codec.dtype
    s = pd.Series(values, index=index, dtype=object, name=codec.name)
    if codec.kind == "datetime":
        # decoded cells are naive UTC wall time; back to the column's form without datetime64[ns]
        ticks, null, unit = datetime_ticks(s)
        out = ticks_to_datetime_like(ticks, null, unit, _datetime_form(codec),
                                     codec.datetime_format or "%Y-%m-%d %H:%M:%S")
        out.index = s.index
        return out.rename(codec.name)
    if dtype == "category":
        categories = codec.dtype_categories if codec.dtype_categories is not None else codec.categories
        return pd.Series(pd.Categorical(values, categories=categories), index=index, name=codec.name)
    if dtype == "object":
        return s.where(s.notna(), None)
    if dtype.startswith(("int", "uint")) and s.isna().any():
        # a plain int dtype cannot hold nulls; the decoder allows nulls only when the training
        # column had some, and then pandas already held it as float
        dtype = "float64"
    if dtype.startswith(("float", "int", "uint")):
        return s.astype("float64").astype(dtype)
    if dtype == "bool":
        return s.astype(bool)
    return s.astype(dtype)


# ------------------------------------------------------------------------------- helpers
_FLOOR = {"D": "D", "h": "h", "m": "min", "s": "s"}


def _datetime_value_type(values: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime64"
    sample = values.dropna()
    if len(sample) and all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in sample.head(100)):
        return "date"
    if len(sample) and all(isinstance(v, (dt.datetime, pd.Timestamp)) for v in sample.head(100)):
        return "datetime64"
    return "string"


def _datetime_form(codec: ValueCodec) -> DatetimeForm:
    """The stored form of a datetime codec's column (see :class:`validation.columns.DatetimeForm`)."""
    if codec.value_type == "date":
        return DatetimeForm("date", codec.dtype)
    if codec.value_type == "string":
        return DatetimeForm("text", codec.dtype)
    if codec.dtype.startswith("datetime64"):
        return DatetimeForm("datetime64", codec.dtype)
    return DatetimeForm("object", codec.dtype, codec.tz)  # Python datetimes in an object column


def _bound_to_utc_naive(bound: Any, fallback: pd.Timestamp) -> pd.Timestamp:
    if bound is None or (isinstance(bound, float) and math.isnan(bound)):
        return pd.Timestamp(fallback)
    ticks, null, unit = datetime_ticks(pd.Series([bound], dtype=object))
    if null[0]:
        return pd.Timestamp(fallback)
    return pd.Timestamp(np.datetime64(int(ticks[0]), unit))


def _ceil_units(x: float) -> int:
    # Values sit on the decimal grid up to float noise: snap before rounding up.
    r = round(x)
    return int(r) if abs(x - r) < 1e-6 else int(math.ceil(x))


def _floor_units(x: float) -> int:
    r = round(x)
    return int(r) if abs(x - r) < 1e-6 else int(math.floor(x))


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value)) or (
            isinstance(value, np.floating) and np.isnan(value))
    except TypeError:
        return False


def _category_key(value: Any) -> Any:
    """A hashable key that matches numpy and Python scalars of the same value."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    return ("s", str(value))


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]
