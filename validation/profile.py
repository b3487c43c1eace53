"""Profile a real table into a :class:`TableSchema`: column kinds, nulls, ranges, categories, PII.

Detection uses column names and content. Everything it decides can be overridden by the user
with a schema file (``TableSchema.apply_overrides``).
"""
from __future__ import annotations

import datetime as dt
import re
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa

from validation.columns import (
    MILLISECONDS,
    OFFSET_COLON,
    OFFSET_HOURS,
    UNPADDED_DAY,
    UNPADDED_MONTH,
    datetime_ticks,
    decimal_places,
    format_datetimes,
    numeric_values,
    reading_format,
    require_finite,
    utc_format,
)
from validation.errors import InputError
from validation.person_names import looks_like_person_names
from validation.schema import CategoryCount, ColumnKind, ColumnSchema, PIIType, Protection, TableSchema, default_protection

MIN_ROWS = 50
"""Fewer real rows than this cannot be split, modelled and checked meaningfully."""

_SAMPLE = 2000  # values inspected for content-based detection

# Tested in this order: the loose PHONE pattern last, since national ids (123-45-6789), IPv4
# addresses and spaced card numbers all match it too.
_PII_PATTERNS: dict[PIIType, re.Pattern] = {
    PIIType.EMAIL: re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$"),
    PIIType.NATIONAL_ID: re.compile(r"^\d{3}-\d{2}-\d{4}$"),
    PIIType.IP_ADDRESS: re.compile(r"^(\d{1,3}\.){3}\d{1,3}$"),
    PIIType.CREDIT_CARD: re.compile(r"^(\d{4}[ -]?){3}\d{1,4}$"),
    PIIType.PHONE: re.compile(r"^\+?[\d\s().-]{7,20}$"),
}
_PII_NAMES: list[tuple[re.Pattern, PIIType]] = [
    (re.compile(r"e[-_]?mail"), PIIType.EMAIL),
    (re.compile(r"phone|mobile|(^|_)tel(ephone)?($|_)|(^|_)fax($|_)"), PIIType.PHONE),
    (re.compile(r"ssn|social_?security|national_?id|passport|tax_?id|nino"), PIIType.NATIONAL_ID),
    (re.compile(r"^(first|last|full|middle|given|family|sur)_?name$|^name$|^(customer|patient|person|employee|user)_?name$"), PIIType.PERSON_NAME),
    # IP before ADDRESS: "ip_address" names an IP, not a street; a MAC address is neither
    (re.compile(r"(^|_)ip(_?addr(ess)?)?$"), PIIType.IP_ADDRESS),
    (re.compile(r"(?<!mac)(?<!mac_)address|street|zip_?code|postcode"), PIIType.ADDRESS),
    (re.compile(r"card_?(number|no)|credit_?card|iban"), PIIType.CREDIT_CARD),
]
# Names of key columns, tested on the lower-cased name with spaces, hyphens and dots as "_" and
# camelCase split ("userId", "customerID" -> "user_id", "customer_id"): a whole word "id", "ident",
# "identifier", "uuid" or "guid" (or "key" as the last word) at either end; never a prefix of a
# longer word ("identified_count", "idle", "paid" and "keyboard" are no keys). _KEY_NAME also takes
# "number"/"no" endings (invoice_no), for text columns only: a numeric "number" is usually a count.
_ID_WORDS = r"id|ident|identifier|uuid|guid"
_STRICT_KEY_NAME = re.compile(rf"(^|_)({_ID_WORDS}|key)$|^({_ID_WORDS})(_|$)", re.I)
_KEY_NAME = re.compile(rf"{_STRICT_KEY_NAME.pattern}|_?(number|no)$", re.I)


def profile_table(df: pd.DataFrame, name: str, arrow_schema: pa.Schema | None = None) -> TableSchema:
    """Profile ``df`` (the real table). ``arrow_schema`` is the source's, when known."""
    if arrow_schema is None:
        df = coerce_mixed_columns(df)
        arrow_schema = pa.Schema.from_pandas(df, preserve_index=False)
    columns = []
    for col in df.columns:
        arrow_type = arrow_schema.field(col).type
        columns.append(_profile_column(_numeric_view(df[col], arrow_type), arrow_type))
    return TableSchema(
        name=name,
        n_rows=len(df),
        columns=columns,
        arrow_schema_b64=TableSchema.encode_arrow(arrow_schema.remove_metadata()),
    )


def coerce_mixed_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Columns whose values mix types (e.g. 1 and "a") become text; other columns are untouched."""
    mixed = []
    for name in df.columns:
        if df[name].dtype == object:
            try:
                pa.array(df[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                mixed.append(name)
    if not mixed:
        return df
    out = df.copy()
    for name in mixed:
        out[name] = df[name].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return out


def decimals_as_float(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A decimal column as float64, each value the nearest float.

    Through its exact decimal text: Arrow's direct decimal-to-float cast is off by one float step
    for about one value in eight (825511154.55 becomes 825511154.5500001). Profiling and the data
    that is split, modelled and gated (``tasks.storage.arrow_to_frame``) both convert here, so the
    schema's ranges are the data's.
    """
    return values.cast(pa.string()).cast(pa.float64())


def _numeric_view(s: pd.Series, arrow_type: pa.DataType) -> pd.Series:
    """Decimal columns (Python Decimal objects in pandas) are profiled as floats."""
    if pa.types.is_decimal(arrow_type) and s.dtype == object:
        floats = decimals_as_float(pa.array(s, type=arrow_type)).to_numpy(zero_copy_only=False)
        return pd.Series(floats, index=s.index, name=s.name)
    return s


_UNSUPPORTED = (pa.types.is_time, pa.types.is_duration, pa.types.is_binary, pa.types.is_large_binary,
                pa.types.is_fixed_size_binary, pa.types.is_nested, pa.types.is_interval)


def _profile_column(s: pd.Series, arrow_type: pa.DataType) -> ColumnSchema:
    n = len(s)
    non_null = s.dropna()
    null_rate = float(1 - len(non_null) / n) if n else 0.0
    unsupported = any(test(arrow_type) for test in _UNSUPPORTED)
    # lists and structs arrive as arrays and dicts, which cannot be hashed, and bytes need not be
    # text: count their reprs
    n_unique = int((non_null.map(repr) if unsupported else non_null).nunique())
    base = dict(
        name=str(s.name),
        arrow_type=str(arrow_type),
        nullable=null_rate > 0,
        null_rate=round(null_rate, 6),
        n_unique=n_unique,
    )
    if unsupported:
        # No family models times of day, durations, bytes or nested values: leave them out of
        # the release rather than guess (a schema file can still say otherwise).
        return ColumnSchema(kind=ColumnKind.TEXT, protection=Protection.DROP, **base)
    kind, extra = _detect_kind(s, non_null, arrow_type, n_unique)
    return ColumnSchema(kind=kind, protection=default_protection(kind), **base, **extra)


def _key_words(name: str) -> str:
    """``name`` as the key-name patterns read it: camelCase split at a lower-case letter followed
    by "Id"/"ID" (or "Uuid", "UUID", ...), spaces, hyphens and dots as "_", lower case."""
    name = re.sub(r"(?<=[a-z0-9])(?=(?:Id|ID|Uuid|UUID|Guid|GUID)$)", "_", name)
    return re.sub(r"[\s.\-]+", "_", name).lower()


def _detect_kind(
    s: pd.Series, non_null: pd.Series, arrow_type: pa.DataType, n_unique: int
) -> tuple[ColumnKind, dict]:
    name = str(s.name).lower()
    key_name = _key_words(str(s.name))
    if len(non_null) == 0:
        return _kind_from_arrow(arrow_type), {}
    if pa.types.is_boolean(arrow_type) or pd.api.types.is_bool_dtype(non_null):
        return ColumnKind.BOOLEAN, {"categories": category_counts(non_null)}
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type) or pd.api.types.is_datetime64_any_dtype(non_null):
        return ColumnKind.DATETIME, _datetime_range(non_null)
    unique_ratio = n_unique / len(non_null)
    pii = _pii_by_name(name)
    if pii is not None:  # by name first: a phone or national-id column may hold plain numbers
        return ColumnKind.PII, {"pii_type": pii} | (numeric_range(non_null) if pd.api.types.is_numeric_dtype(non_null) else {})
    if pa.types.is_decimal(arrow_type):
        return ColumnKind.FLOAT, numeric_range(non_null) | {"decimals": arrow_type.scale}
    if pd.api.types.is_numeric_dtype(non_null):
        if _STRICT_KEY_NAME.search(key_name) and unique_ratio == 1.0 and len(non_null) >= 20:
            return ColumnKind.KEY, numeric_range(non_null)
        if pa.types.is_integer(arrow_type) or pd.api.types.is_integer_dtype(non_null):
            return ColumnKind.INTEGER, numeric_range(non_null)
        return ColumnKind.FLOAT, numeric_range(non_null) | {"decimals": _decimals(non_null)}
    values = non_null.astype(str)
    sample = values.sample(min(len(values), _SAMPLE), random_state=0) if len(values) > _SAMPLE else values
    # Dates before content-based PII: "2020-01-05" also looks like a phone number.
    fmt = _datetime_format(sample)
    if fmt is not None:
        return ColumnKind.DATETIME, _datetime_range(values, fmt) | {"datetime_format": fmt}
    pii = _pii_by_content(sample)
    if pii is not None:
        return ColumnKind.PII, {"pii_type": pii}
    if looks_like_person_names(sample):  # real names under a neutral header ("person", "owner")
        return ColumnKind.PII, {"pii_type": PIIType.PERSON_NAME}
    no_spaces = not sample.str.contains(r"\s").any()
    if unique_ratio == 1.0 and len(non_null) >= 20 and no_spaces and (
        _KEY_NAME.search(key_name) or sample.str.len().max() <= 40
    ):
        return ColumnKind.KEY, {"key_pattern": _key_pattern(sample)}
    mean_len = float(sample.str.len().mean())
    if mean_len > 30 and unique_ratio > 0.5:
        return ColumnKind.TEXT, {}
    return ColumnKind.CATEGORICAL, {"categories": category_counts(non_null)}


def _kind_from_arrow(arrow_type: pa.DataType) -> ColumnKind:
    if pa.types.is_integer(arrow_type):
        return ColumnKind.INTEGER
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return ColumnKind.FLOAT
    if pa.types.is_boolean(arrow_type):
        return ColumnKind.BOOLEAN
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return ColumnKind.DATETIME
    return ColumnKind.CATEGORICAL


def _datetime_range(values: pd.Series, fmt: str | None = None) -> dict:
    """ISO min and max, exact for any unit and for sentinels such as 9999-12-31."""
    ticks, null, unit = datetime_ticks(values, fmt)
    ticks = ticks[~null]
    if not len(ticks):
        return {}
    aware = isinstance(values.dtype, pd.DatetimeTZDtype) or utc_format(fmt)
    suffix = "+00:00" if aware else ""
    iso = lambda t: np.datetime_as_string(np.datetime64(int(t), unit), unit="s") + suffix  # noqa: E731
    return {"min": iso(ticks.min()), "max": iso(ticks.max())}


def require_finite_numbers(df: pd.DataFrame, schema: TableSchema) -> None:
    """Raise an :class:`InputError` for the first modeled integer or float column holding inf or
    -inf: before the split, so a run stops before any work is written."""
    for col in schema.modeled_columns:
        if col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT) and col.name in df.columns:
            require_finite(numeric_values(df[col.name], col), col.name)


def numeric_range(values: pd.Series | np.ndarray) -> dict:
    """``min`` and ``max`` of the (null-free) values as floats."""
    return {"min": float(values.min()), "max": float(values.max())}


def _decimals(values: pd.Series) -> int | None:
    """:func:`validation.columns.decimal_places` of a column. inf and -inf (an input error, raised
    by :func:`require_finite_numbers` once the schema file is applied) warn nothing here."""
    with np.errstate(invalid="ignore", over="ignore"):
        return decimal_places(values.to_numpy(dtype=float))


def category_counts(values: pd.Series) -> list[CategoryCount]:
    """Value frequencies, most frequent first (nulls left out); a pandas ``category`` column
    lists its unused categories too, with count 0."""
    counts = values.value_counts(sort=True)
    out = []
    for v, c in counts.items():
        v = v.item() if hasattr(v, "item") else v
        if not isinstance(v, (str, int, float, bool)):  # dates, times, bytes: no category values
            raise InputError(
                f"column {values.name!r} holds {type(v).__name__} values, which cannot be categories "
                "(text, numbers or booleans): give it kind datetime, or protection drop, in the schema file"
            )
        out.append(CategoryCount(value=v, count=int(c)))
    return out


def _pii_by_name(name: str) -> PIIType | None:
    for pattern, kind in _PII_NAMES:
        if pattern.search(name):
            return kind
    return None


def _pii_by_content(sample: pd.Series) -> PIIType | None:
    for kind, pattern in _PII_PATTERNS.items():
        if kind == PIIType.PHONE and sample.str.fullmatch(r"\d+").mean() > 0.5:
            continue  # plain integers stored as text are not phone numbers
        if sample.str.fullmatch(pattern).mean() >= 0.9:
            return kind
    return None


# Formats profiled before the write-back check below: their values may lack zero padding that
# they are written with ("1/3/2021" is written "01/03/2021", "2020-1-5" "2020-01-05"); kept so,
# since such columns would otherwise be profiled as phone numbers or keys. The digits of
# fractions of seconds are checked for these too (see _datetime_format).
_PADDED_ON_WRITE = [
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%3f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S.%3f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    # Day-first before month-first in each layout, here and below: the first format every value
    # reads in wins, so a column whose days and months are all up to 12 is taken day-first, and
    # one value with a day above 12 in front makes it month-first.
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y/%m/%d",
]
# Every format after those must write each value back exactly as it reads: zero padding as read
# (an unpadded day or month, "Jan 1 2000" as vega's stocks.csv writes it, "1.3.2021", takes the
# codes UNPADDED_DAY/UNPADDED_MONTH, tried after the padded layout), month names in the case
# strftime writes ("Jan").
_NUMERIC_DATES = ["{d}.{m}.%Y", "{m}.{d}.%Y", "%Y.{m}.{d}", "{d}-{m}-%Y", "{m}-{d}-%Y"]
_MONTH_NAME_DATES = ["%b {d} %Y", "%b {d}, %Y", "{d} %b %Y", "%Y-%b-{d}", "{d}-%b-%Y", "%B {d} %Y", "%B {d}, %Y",
                     "{d} %B %Y"]
_DATETIME_FORMATS = _PADDED_ON_WRITE + [
    layout.format(d=d, m=m)
    for layout in _NUMERIC_DATES + _MONTH_NAME_DATES
    for d, m in (("%d", "%m"), (UNPADDED_DAY, UNPADDED_MONTH))
]
# UTC ("Z") or a UTC offset ending an ISO timestamp: stripped before the formats above are tried
_OFFSET = re.compile(r"(?:(?<=\d:\d\d)|(?<=\.\d{3})|(?<=\.\d{6}))(Z|[+-]\d\d(?::?\d\d)?)$")


def _datetime_format(sample: pd.Series) -> str | None:
    """The strftime format every value is written in, or None.

    Only formats that write the values back exactly as they read (the encoder and the release
    format the model's datetimes with it): ``%f`` writes six digits, so fractions of seconds
    count only with all six, or all three (milliseconds, :data:`MILLISECONDS`); and every value
    must be written back as read (see :func:`_parses`), but for the zero padding that the formats
    of :data:`_PADDED_ON_WRITE` add.

    An offset every value shares is kept as literal text (the times are taken as they read). Offsets
    that vary (local time across daylight saving, "-05:00" and "-04:00") are read as instants and
    written back in UTC, in the source's offset style (``%z`` for +0500, :data:`OFFSET_COLON` for
    +05:00, :data:`OFFSET_HOURS` for +05): the same instants, though no longer in the source's local
    time. Only offsets that look like one zone's (see :func:`_zone_offsets`): "08:00-12:00" and
    "13:00-17:00" are time slots, not times at offsets -12:00 and -17:00.

    Each format is tried on the first :data:`_FIRST_DISTINCT` distinct values before the whole
    sample (:func:`_parses` holds for the sample only if it holds for every value, so the format
    chosen is the same; text such as "A123" fails every format on its first value, cheaply), and
    formats that cannot read one of those values by its letters are not tried at all.
    """
    if not sample.str.contains(r"\d").all():
        return None
    suffix = ""
    offsets = sample.str.extract(_OFFSET, expand=False)
    if offsets.notna().all() and offsets.nunique() == 1:
        suffix = str(offsets.iloc[0])
        sample = sample.str[: -len(suffix)]
    elif offsets.notna().all():
        styles = ((OFFSET_COLON, r"[+-]\d\d:\d\d"), ("%z", r"[+-]\d{4}"), (OFFSET_HOURS, r"[+-]\d\d"))
        style = next((code for code, pattern in styles if offsets.str.fullmatch(pattern).all()), None)
        if style is None:  # "Z" beside offsets, or styles mixed: no one style to write them in
            return None
        times = sample.str.replace(_OFFSET, "", regex=True)
        if not _zone_offsets(offsets, times):
            return None
        suffix, sample = style, times
    fraction = next((code for code, digits in (("%f", 6), (MILLISECONDS, 3))
                     if sample.str.contains(rf":\d\d\.\d{{{digits}}}$").all()), "")
    first = pd.Series(sample.unique()[:_FIRST_DISTINCT])
    # A month name has letters; a format that starts with a number (all but "%b ..."/"%B ...") reads
    # no value that starts with a letter (pandas and strptime alike).
    unlettered = bool((~first.str.contains(_LETTER)).any())
    letter_first = bool(first.str.match(_LETTER).any())
    for fmt in _DATETIME_FORMATS:
        written = next((code for code in ("%f", MILLISECONDS) if fmt.endswith(code)), "")
        if written != fraction:
            continue
        if (unlettered and ("%b" in fmt or "%B" in fmt)) or (letter_first and not fmt.startswith(("%b", "%B"))):
            continue
        if _parses(first, fmt) and _parses(sample, fmt):
            return fmt + suffix
    return None


# Distinct values each format is tried on before the whole sample (see _datetime_format)
_FIRST_DISTINCT = 20
_LETTER = r"[^\W\d_]"  # a letter of any script
# Offsets of one zone's local times: few, within the offsets zones have (-12:00 to +14:00, taken
# as +-14 h), at most 2 hours apart (daylight saving), at minutes 00, 30 or 45 past the hour
_ZONE_OFFSETS = 3
_ZONE_OFFSET_MAX = 14 * 60
_ZONE_OFFSET_SPREAD = 2 * 60
_ZONE_OFFSET_MINUTES = {0, 30, 45}


def _zone_offsets(offsets: pd.Series, times: pd.Series) -> bool:
    """The changing UTC offsets ("-05:00", "-0400", "+01") of the values ``times`` (the values
    without them) are real zones' offsets: each within +-14 hours and at minutes 00, 30 or 45.

    Time slots ("08:00-12:00", "09:00-10:00") end in what reads as an offset, but never after
    seconds: for values without seconds the offsets must look like one zone's (at most
    :data:`_ZONE_OFFSETS` distinct ones, at most 2 hours apart) and change from day to day, not
    within a day (a zone changes its offset on a few days a year; slots end at several hours of
    one day). With seconds, offsets of any zones mix (events logged across the world)."""
    distinct = offsets.unique()
    minutes = []
    for offset in distinct:
        parts = re.fullmatch(r"([+-])(\d\d):?(\d\d)?", str(offset))
        if parts is None:
            return False
        sign, hours, past = parts.group(1), int(parts.group(2)), int(parts.group(3) or 0)
        if past not in _ZONE_OFFSET_MINUTES:
            return False
        minutes.append((-1 if sign == "-" else 1) * (hours * 60 + past))
    if max(map(abs, minutes)) > _ZONE_OFFSET_MAX:
        return False
    if times.str.contains(r"\d:\d\d:\d\d(?:\.\d+)?$").all():
        return True
    if len(distinct) > _ZONE_OFFSETS or max(minutes) - min(minutes) > _ZONE_OFFSET_SPREAD:
        return False
    per_day = pd.DataFrame({"day": times.str.extract(r"^(\S+?)[T ]", expand=False), "offset": offsets.to_numpy()})
    counts = per_day.dropna().groupby("day")["offset"].agg(["nunique", "size"])
    days = counts[counts["size"] > 1]
    return len(days) == 0 or bool((days["nunique"] > 1).mean() <= 0.1)


def _parses(sample: pd.Series, fmt: str) -> bool:
    """Every value reads in ``fmt`` and ``fmt`` writes it back exactly as it reads (see
    :data:`_PADDED_ON_WRITE` for the exceptions). Read with pandas first, then Python for what
    pandas cannot hold (9999-12-31 sentinels are beyond datetime64[ns]), as
    ``validation.columns.datetime_ticks``; written with ``validation.columns.format_datetimes``,
    as the encoder and the release write them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, format=reading_format(fmt), errors="coerce")
    stamps = parsed.astype("datetime64[us]")
    for v in sample[parsed.isna()].unique():
        try:
            value = dt.datetime.strptime(v, reading_format(fmt))
        except ValueError:
            return False
        stamps[sample == v] = np.datetime64(value, "us")
    if fmt in _PADDED_ON_WRITE:
        return True
    return bool((format_datetimes(stamps, fmt) == sample).all())


def _key_pattern(sample: pd.Series) -> str:
    """The most common shape of the values.

    ``A`` = any upper-case letter, ``a`` = any lower-case letter, ``9`` = any digit; a character
    letter that is the same in every value of that shape is kept literally, escaped with a
    backslash, as is punctuation.
    """
    shapes = sample.str.replace(r"[A-Z]", "A", regex=True).str.replace(r"[a-z]", "a", regex=True)
    shapes = shapes.str.replace(r"\d", "9", regex=True)
    top = str(shapes.value_counts().index[0])
    same_shape = sample[shapes == top]
    chars = np.array([list(v) for v in same_shape.head(_SAMPLE)])
    out = []
    for i, symbol in enumerate(top):
        column = chars[:, i]
        # Constant letters (a prefix like "C" or "N") stay literal; digits stay free so
        # sequential ids with leading zeros keep their full range.
        if symbol != "9" and len(same_shape) > 1 and (column == column[0]).all():
            out.append("\\" + column[0])
        elif symbol in "Aa9":
            out.append(symbol)
        else:
            out.append("\\" + symbol)
    return "".join(out)
