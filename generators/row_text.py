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
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Iterable

import numpy as np
import pandas as pd

from validation.columns import DatetimeForm, datetime_ticks, dtype_name, require_finite, ticks_to_datetime_like
from validation.errors import InputError
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
# Fraction digits a float column may be widened to for values its decimals round to 0: each
# digit is one more character the decoder spells (and model position a row may need).
_MAX_DECIMALS = 30
_SIGNIFICANT_DIGITS = 10  # of an unrounded float column's median magnitude, as the profile's former 10 places
_TINY_DIGITS = 6  # significant digits kept for the smallest value of such a column


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
        if is_missing(value):
            return None
        if self.kind == "categorical":
            idx = self._category_index().get(_category_key(value))
            return None if idx is None else self.texts[idx]
        if self.kind == "number":
            return self._number_text(value)
        return self._datetime_text(value)

    def column_texts(self, values: pd.Series) -> list[str | None]:
        """Vectorized :meth:`to_text` for a whole column (None where missing or not encodable)."""
        if self.kind == "categorical":
            index = self._category_index()
            return [None if is_missing(v) else (None if (i := index.get(_category_key(v))) is None else self.texts[i])
                    for v in values.tolist()]
        if self.kind == "number":
            # Python scalars, not a float array: int64 values above 2**53 must stay exact
            numeric = pd.to_numeric(values, errors="coerce")
            missing, present = numeric.isna().tolist(), numeric.tolist()
            # exact unit arithmetic once per distinct value, as build_codec does
            texts = {v: self._number_text(v) for v in dict.fromkeys(v for v, m in zip(present, missing) if not m)}
            return [None if m else texts[v] for v, m in zip(present, missing)]
        stamps = to_utc_naive(values, self.value_type, self.datetime_format).dt.floor(_FLOOR[self.resolution])
        texts = pd.Series(datetime_texts(stamps.to_numpy(), self.resolution), index=stamps.index)
        ok = stamps.notna() & (texts >= self.min_text) & (texts <= self.max_text)
        return [t if k else None for t, k in zip(texts.tolist(), ok.tolist())]

    def _category_index(self) -> dict:
        cached = getattr(self, "_index_cache", None)
        if cached is None:
            cached = {_category_key(v): i for i, v in enumerate(self.categories)}
            self._index_cache = cached
        return cached

    def _number_text(self, value: Any) -> str | None:
        units = value_units(value, self.decimals)
        if units is None or not self.low <= units <= self.high:
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
            if self.integer:
                return int(text)  # exact: the unit bounds are exact, no float may round it
            value = float(text)  # canonical text: the nearest float
            # Clip against the float bounds: the bounds in units are exact, but the schema's
            # float min/max may sit one ulp inside the rounded text (10.357019999999999).
            if self.min_value is not None:
                value = max(value, self.min_value)
            if self.max_value is not None:
                value = min(value, self.max_value)
            return value
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
    dtype = dtype_name(values.dtype)  # "string[pyarrow]", not "string": the storage comes back too
    has_null = bool(values.isna().any())
    # A missing value is valid only when the schema allows it; it is learnable only when the
    # training rows have some.
    allow_null = bool(column.nullable and has_null)
    if column.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        # seen values only: a pandas category column's unused categories (count 0) keep their place
        # in the dtype, but are never sampled
        categories = column.seen_category_values
        if not categories:  # a schema without categories: use the training values
            categories = [v.item() if hasattr(v, "item") else v for v in pd.unique(values.dropna())]
        own = [_jsonable(v) for v in values.cat.categories] if isinstance(values.dtype, pd.CategoricalDtype) else None
        return ValueCodec(name=column.name, kind="categorical", dtype=dtype, allow_null=allow_null,
                          categories=list(categories), texts=unique_texts(categories), dtype_categories=own)
    if column.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT):
        integer = column.kind == ColumnKind.INTEGER
        numeric = pd.to_numeric(values, errors="coerce")
        require_finite(numeric.to_numpy(dtype=float, na_value=np.nan), column.name)
        present = numeric.dropna().tolist()  # Python ints stay exact, unlike a float array
        lo = float(column.min) if column.min is not None else float(numeric.min())
        hi = float(column.max) if column.max is not None else float(numeric.max())
        if integer:
            decimals = 0
            low, high = _integer_bound(column.min, present, up=True), _integer_bound(column.max, present, up=False)
        else:
            decimals, low, high = _float_grid(column, present, lo, hi)
        codec = ValueCodec(name=column.name, kind="number", dtype=dtype, allow_null=allow_null,
                           decimals=decimals, integer=integer, low=low, high=high, min_value=lo, max_value=hi)
        units = {value_units(v, decimals) for v in set(present)}  # equal values, equal units: once each
        seen = sorted(u for u in units if u is not None and codec.low <= u <= codec.high)
        if 0 < len(seen) <= discrete_max_values:
            codec.discrete = True
            codec.texts = [units_to_text(u, decimals) for u in seen]
        return codec
    if column.kind == ColumnKind.DATETIME:
        value_type = _datetime_value_type(values)
        stamps = to_utc_naive(values, value_type, column.datetime_format).dropna()
        resolution = "D" if value_type == "date" else detect_resolution(stamps)
        lo_ts = _bound_to_utc_naive(column.min, stamps.min())
        hi_ts = _bound_to_utc_naive(column.max, stamps.max())
        lo_text, hi_text = datetime_texts(
            np.array([lo_ts.ceil(_FLOOR[resolution]).to_datetime64(), hi_ts.floor(_FLOOR[resolution]).to_datetime64()]),
            resolution)
        tz = getattr(values.dtype, "tz", None)
        tz = str(tz) if tz is not None else (_object_tz(values) if value_type == "datetime64" else None)
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


def value_units(value: Any, decimals: int) -> int | None:
    """``value`` in units of ``10**-decimals``, rounded half-even without float error (None when
    not finite): integers stay exact above 2**53, and a float's exact binary value is rounded, not
    the float product ``value * 10**decimals``."""
    if isinstance(value, (int, np.integer)):
        return int(value) * 10**decimals
    value = float(value)
    if not math.isfinite(value):
        return None
    if value.is_integer():
        return int(value) * 10**decimals
    return round(Fraction(value) * 10**decimals)


def text_units(text: str, decimals: int) -> int | None:
    """The units of a number's text at ``decimals``, exactly; None when it is no number or not on
    the grid (more fraction digits than ``decimals``)."""
    try:
        num, den = Decimal(text).as_integer_ratio()
    except (InvalidOperation, ValueError, OverflowError):  # not a number, NaN, infinity
        return None
    units, rest = divmod(num * 10**decimals, den)
    return None if rest else units


def datetime_texts(stamps: np.ndarray, resolution: str) -> np.ndarray:
    """Naive ``datetime64`` values in the layout of ``resolution`` (``"NaT"`` where missing).

    Written by numpy, which pads the year to four digits: ``strftime("%Y")`` writes year 1 as
    ``"1"`` on glibc, which breaks the fixed width (a 0001-01-01 sentinel) that the decoder and
    the text order = time order rule need.
    """
    iso = np.datetime_as_string(np.asarray(stamps, dtype="datetime64[us]"), unit=resolution)
    return np.array([t.replace("T", " ") for t in iso.tolist()], dtype=object)


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
    if dtype.startswith(("int", "uint")):
        return s.astype(dtype)  # Python ints, cast directly: float64 would round values above 2**53
    if dtype.startswith("float"):
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


def _bound_units(x: float, decimals: int, up: bool) -> int:
    """A float bound in units: the nearest grid point when ``x`` is within a float step of it
    (the float of a grid value, e.g. 10.357019999999999 for 10.35702, which must stay in range),
    else rounded inwards (up for a minimum)."""
    exact = Fraction(x) * 10**decimals
    r = round(exact)
    noise = max(Fraction(1, 10**6), Fraction(math.ulp(x)) * 10**decimals)
    if abs(exact - r) <= noise:
        return r
    return math.ceil(exact) if up else math.floor(exact)


def _integer_bound(bound: float | str | None, present: list[Any], up: bool) -> int:
    """An integer column's bound in units (= the value), exact above 2**53.

    The schema holds bounds as floats; a bound that is the float of the data's own extreme is
    taken as that extreme, exactly, so no value near 2**62 falls outside the range."""
    extreme = value_units((min if up else max)(present), 0) if present else None  # finite (require_finite)
    if extreme is not None and (bound is None or float(bound) == float(extreme)):
        return extreme
    return _bound_units(float(bound), 0, up) if bound is not None else 0


def _float_grid(column: ColumnSchema, present: list[Any], lo: float, hi: float) -> tuple[int, int, int]:
    """``(decimals, low, high)`` of a float column.

    The schema's decimals are used; a column the profile leaves unrounded (more than 10 places)
    gets about ``_SIGNIFICANT_DIGITS`` significant digits of its median magnitude. Either is
    widened when it would round the column's smallest non-zero magnitude to 0 or leave no grid
    point between the bounds; a column that needs more than ``_MAX_DECIMALS`` digits is refused.
    """
    largest = max(abs(float(lo)), abs(float(hi)))
    if largest >= 10.0**_MAX_DECIMALS:
        # every integer digit is a token: a 1e300 float would be 301 of them, and planning its
        # constrained spelling grows faster than its length
        raise InputError(
            f"column {column.name!r} has magnitudes up to {largest:.3g}, more than the llm family spells "
            f"(at most {_MAX_DECIMALS} integer digits): rescale the column in the source (e.g. to larger "
            "units), or use another generator family")
    magnitudes = [abs(float(v)) for v in [*present, lo, hi] if float(v) != 0 and math.isfinite(float(v))]
    if column.decimals is not None:
        decimals = column.decimals
    elif magnitudes:  # full-precision doubles (the profile does not round them): ~10 significant digits
        typical = float(np.median(magnitudes))
        decimals = min(max(_SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(typical)), 0), _MAX_DECIMALS)
    else:
        decimals = _FLOAT_DECIMALS_DEFAULT
    tiny = min(magnitudes) if magnitudes else None
    # an unrounded column keeps _TINY_DIGITS significant digits of its smallest value too; a column
    # of written decimals is widened only where its decimals would round that value to 0
    short = tiny is not None and (value_units(tiny, decimals) == 0 or (
        column.decimals is None and tiny * 10.0**decimals < 10.0 ** (_TINY_DIGITS - 1)))
    if short:
        # keep a few significant digits of the smallest value, fewer when the values are short
        # decimals (1e-12, 2.5e-12); the profile's exactness rule, without its cap
        need = max(min(-math.floor(math.log10(tiny)) + _TINY_DIGITS - 1, _MAX_DECIMALS), decimals)
        arr = np.asarray(magnitudes, dtype=float)
        decimals = next((d for d in range(decimals + 1, need) if
                         np.all(np.abs(arr - np.round(arr, d)) <= 4 * np.spacing(arr))), need)
    in_range = [float(v) for v in present if lo <= float(v) <= hi]

    def bounds(d: int) -> tuple[int, int]:
        # the data's own extremes stay encodable when they round outwards (from_text clips the
        # decoded float back into [lo, hi])
        low, high = _bound_units(lo, d, up=True), _bound_units(hi, d, up=False)
        if in_range:
            first, last = value_units(min(in_range), d), value_units(max(in_range), d)
            assert first is not None and last is not None  # finite values (require_finite)
            low, high = min(low, first), max(high, last)
        return low, high

    low, high = bounds(decimals)
    while low > high and decimals < _MAX_DECIMALS:  # bounds between two grid points
        decimals += 1
        low, high = bounds(decimals)
    if low > high or (tiny is not None and value_units(tiny, decimals) == 0):
        smallest = f" (the smallest non-zero magnitude is {tiny:.3g})" if tiny is not None else ""
        raise InputError(
            f"column {column.name!r} cannot be written with at most {_MAX_DECIMALS} decimal places in the "
            f"range {lo!r}..{hi!r}{smallest}: rescale the column in the source (e.g. to smaller units), "
            "correct its min/max in the schema, or use another generator family")
    return decimals, low, high


def _object_tz(values: pd.Series) -> str | None:
    """The time zone of an object column of tz-aware datetimes: its first value's, so sampled
    values come back aware in the same zone (None for naive values, UTC for a zone pandas cannot
    name)."""
    present = values.dropna()
    tzinfo = getattr(present.iloc[0], "tzinfo", None) if len(present) else None
    if tzinfo is None:
        return None
    name = str(getattr(pd.Timestamp(present.iloc[0]), "tz", tzinfo))
    try:
        pd.Timestamp(0, tz=name)
    except (ValueError, TypeError, KeyError):
        return "UTC"  # an unnamed zone (dateutil): aware at least, like validation.columns does
    return name


def is_missing(value: Any) -> bool:
    """A missing cell: None, NaN, pd.NA or NaT (of any kind); never a list or other container."""
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


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
