"""Protections around the generator: what it may see, and how unmodeled columns are refilled.

Keys are regenerated (fresh unique ids in the same shape, never a real one), PII and free text are
replaced by Faker values of the same kind (never a real value), dropped columns disappear. None
of those columns reaches a generator: :func:`training_view` keeps only modeled columns, and
:func:`fill_protected` creates the rest for the synthetic table.
"""
from __future__ import annotations

import math
import string
from bisect import bisect_left, bisect_right
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa

from validation.errors import InputError
from validation.privacy import normalized_text, normalized_value_set
from validation.schema import ColumnKind, ColumnSchema, PIIType, Protection, TableSchema


def training_view(table: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """The only columns a generator may learn from (a copy: the source is never modified)."""
    return table[[c.name for c in schema.modeled_columns]].copy()


# the form values are compared in, as the gate compares them
normalized = normalized_text


def real_values(table: pd.DataFrame, schema: TableSchema) -> dict[str, set]:
    """Normalized values of key, PII and text columns that must never appear in a synthetic table."""
    out = {}
    for col in schema.columns:
        if col.fill is not None and col.name in table:
            out[col.name] = normalized_value_set([table[col.name]])  # the gate's own rule
    return out


def fill_protected(
    sampled: pd.DataFrame, schema: TableSchema, seed: int, avoid: dict[str, set] | None = None
) -> pd.DataFrame:
    """Add the unmodeled released columns to ``sampled`` and return them in source order."""
    avoid = avoid or {}
    n = len(sampled)
    rng = np.random.default_rng(seed)
    arrow_types = {f.name: f.type for f in schema.arrow_schema()}
    out = {}
    for i, col in enumerate(schema.released_columns):
        if col.name in sampled.columns and col.modeled:
            out[col.name] = sampled[col.name].array  # keeps tz-aware and category dtypes
            continue
        col_rng = np.random.default_rng([seed, i])
        arrow_type = arrow_types.get(col.name, pa.string())
        unfilled = col.is_all_null or col.fill is None
        if unfilled:
            # all-null, or a modeled column the generator did not return: nulls, never a guess
            values = np.full(n, None, dtype=object)
        elif _is_number(arrow_type):
            values = fresh_numbers(col, n, col_rng, avoid.get(col.name, set()), arrow_type)
        elif col.fill == Protection.REGENERATE:
            values = regenerate_keys(col, n, col_rng, avoid.get(col.name, set()))
        else:
            values = fake_values(col, n, int(col_rng.integers(2**31)), avoid.get(col.name, set()))
        if 0 < col.null_rate < 1 and not unfilled:
            values = np.asarray(values, dtype=object)
            values[rng.random(n) < col.null_rate] = None
        out[col.name] = values
    return pd.DataFrame(out, index=range(n))


def _is_number(arrow_type: pa.DataType) -> bool:
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type)


def fresh_numbers(col: ColumnSchema, n: int, rng: np.random.Generator, avoid: set, arrow_type: pa.DataType) -> np.ndarray:
    """``n`` unique whole numbers with as many digits as the real ones and their sign, none equal
    to a real value, within what the column's Arrow type can hold (numeric keys and numeric PII).

    The free values (those no real value takes) of each candidate range are counted, not sampled
    blindly: when the real digit width has too few, wider widths are tried, then the type's
    non-negative (or non-positive) values, then its whole range, negatives included. Values are
    drawn without replacement among the free ones (no retry loop). :class:`InputError` when the
    type cannot hold ``n`` values that avoid every real one.
    """
    type_min, type_max = _whole_number_bounds(arrow_type)
    taken = sorted(v for v in map(_as_int, avoid) if v is not None and type_min <= v <= type_max)
    bounds = [b for b in (col.min, col.max) if isinstance(b, (int, float)) and math.isfinite(b)]
    digits = max((len(str(int(abs(b)))) for b in bounds), default=6)
    positive = not bounds or max(bounds) >= 0
    negative = bool(bounds) and min(bounds) < 0
    for intervals in _candidate_ranges(digits, positive, negative, type_min, type_max):
        pieces = [_free_values(lo, hi, taken[bisect_left(taken, lo) : bisect_right(taken, hi)])
                  for lo, hi in intervals]
        free = sum(count for _, count, _ in pieces)
        if free >= n:
            return _as_array([_nth_free(pieces, i) for i in _distinct_indices(free, n, rng)])
    raise InputError(
        f"column {col.name!r}: its type {arrow_type} cannot hold {n} fresh unique values "
        f"that differ from every real value; widen the column's type or drop the column"
    )


def _whole_number_bounds(arrow_type: pa.DataType) -> tuple[int, int]:
    """The smallest and largest whole numbers the Arrow type holds exactly."""
    if pa.types.is_integer(arrow_type):
        info = np.iinfo(arrow_type.to_pandas_dtype())
        return int(info.min), int(info.max)
    if pa.types.is_decimal(arrow_type):
        top = 10 ** (arrow_type.precision - arrow_type.scale) - 1
        return -top, top
    # floats hold every whole number up to 2**(mantissa bits + 1) exactly
    top = 2**11 if pa.types.is_float16(arrow_type) else 2**24 if pa.types.is_float32(arrow_type) else 2**53
    return -top, top


def _as_int(value: str) -> int | None:
    """The whole number a normalized real value names (None for any other text)."""
    try:
        return int(value)
    except ValueError:
        return None


def _candidate_ranges(digits: int, positive: bool, negative: bool, type_min: int, type_max: int):
    """Ranges to draw fresh numbers from, most like the real values first: the real digit width
    and sign, wider widths, the type's values of that sign, the type's whole range. Each is a
    list of closed intervals within the type."""
    widest = len(str(max(-type_min, type_max)))
    for width in range(min(digits, widest), widest + 1):
        low, high = (10 ** (width - 1) if width > 1 else 0), 10**width - 1
        intervals = ([(low, high)] if positive else []) + ([(-high, -low)] if negative else [])
        clipped = [(max(lo, type_min), min(hi, type_max)) for lo, hi in intervals]
        yield [(lo, hi) for lo, hi in clipped if lo <= hi]
    if positive and not negative:
        yield [(0, type_max)]
    elif negative and not positive:
        yield [(type_min, 0)]
    yield [(type_min, type_max)]


def _distinct_indices(size: int, n: int, rng: np.random.Generator) -> list[int]:
    """``n`` distinct seeded indices in ``range(size)``, in random order (Python ints: ``size``
    may exceed int64, as the whole range of a 64-bit type does)."""
    if n == 0:
        return []
    cap = min(size, 2**62)
    picked = rng.choice(cap, size=n, replace=False).tolist()
    # spread over the whole range: i * size // cap is one-to-one when size >= cap
    return picked if cap == size else [i * size // cap for i in picked]


def _free_values(lo: int, hi: int, taken: list[int]) -> tuple[int, int, list[int]]:
    """The values of ``[lo, hi]`` that no ``taken`` (sorted, inside) holds, as ``(lo, count,
    gaps)``: the j-th taken value has ``gaps[j]`` free values below it."""
    return lo, hi - lo + 1 - len(taken), [t - lo - j for j, t in enumerate(taken)]


def _nth_free(pieces: list[tuple[int, int, list[int]]], index: int) -> int:
    """The ``index``-th free value (0-based, in order) of the :func:`_free_values` pieces."""
    for lo, count, gaps in pieces:
        if index < count:
            return lo + index + bisect_right(gaps, index)
        index -= count
    raise IndexError(index)


def _as_array(values: list[int]) -> np.ndarray:
    """int64 values, uint64 past int64's top (a uint64 column), ``Decimal`` objects past both (a
    wide decimal column: Arrow reads them as decimals, not as an overflowing int)."""
    if not values or (min(values) >= -(2**63) and max(values) < 2**63):
        return np.asarray(values, dtype=np.int64)
    if min(values) >= 0 and max(values) < 2**64:
        return np.asarray(values, dtype=np.uint64)
    return np.asarray([Decimal(v) for v in values], dtype=object)


def regenerate_keys(col: ColumnSchema, n: int, rng: np.random.Generator, avoid: set) -> np.ndarray:
    """``n`` unique text ids shaped like the real ones, none equal to a real id."""
    tokens = parse_key_pattern(col.key_pattern or "AAAA9999")
    pools = {"A": np.array(list(string.ascii_uppercase)), "a": np.array(list(string.ascii_lowercase)), "9": np.array(list(string.digits))}
    capacity = float(np.prod([len(pools[t]) for t in tokens if t in pools] or [1]))
    if capacity < 4 * (n + len(avoid)):
        # Too few ids of this shape for fresh unique values: widen with digits rather than repeat.
        tokens += ["9"] * max(1, int(np.ceil(np.log10(4 * (n + len(avoid)) / capacity))))
    chosen_s: dict[str, None] = {}
    while len(chosen_s) < n:
        m = 2 * (n - len(chosen_s)) + 10
        parts = [rng.choice(pools[t], size=m) if t in pools else np.full(m, t[-1]) for t in tokens]
        for value in ("".join(p) for p in zip(*parts)):
            if normalized(value) not in avoid:
                chosen_s[value] = None
    return np.asarray(list(chosen_s)[:n], dtype=object)


def parse_key_pattern(pattern: str) -> list[str]:
    """Tokens of a key shape: "A", "a", "9" are wildcards, "\\x" is the literal x."""
    tokens, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append("\\" + pattern[i + 1])
            i += 2
        else:
            tokens.append(pattern[i] if pattern[i] in "Aa9" else "\\" + pattern[i])
            i += 1
    return tokens


_FAKER_METHOD = {
    PIIType.EMAIL: "email",
    PIIType.PHONE: "phone_number",
    PIIType.PERSON_NAME: "name",
    PIIType.NATIONAL_ID: "ssn",
    PIIType.ADDRESS: "street_address",
    PIIType.IP_ADDRESS: "ipv4",
    PIIType.CREDIT_CARD: "credit_card_number",
}


def fake_values(col: ColumnSchema, n: int, seed: int, avoid: set) -> np.ndarray:
    """Faker values of the column's kind, seeded, never equal to a real value."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    if col.kind == ColumnKind.TEXT or col.pii_type is None:
        make = lambda: fake.sentence(nb_words=8)  # noqa: E731
    else:
        make = getattr(fake, _FAKER_METHOD[col.pii_type])
    out = []
    while len(out) < n:
        value = make()
        if normalized(value) not in avoid:
            out.append(value)
    return np.asarray(out, dtype=object)
