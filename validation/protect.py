"""Protections around the generator: what it may see, and how unmodeled columns are refilled.

Keys are regenerated (fresh unique ids in the same shape, never a real one), PII and free text are
replaced by Faker values of the same kind (never a real value), dropped columns disappear. None
of those columns reaches a generator: :func:`training_view` keeps only modeled columns, and
:func:`fill_protected` creates the rest for the synthetic table.
"""
from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pyarrow as pa

from validation.privacy import normalized_value_set
from validation.schema import ColumnKind, ColumnSchema, PIIType, Protection, TableSchema


def training_view(table: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """The only columns a generator may learn from (a copy: the source is never modified)."""
    return table[[c.name for c in schema.modeled_columns]].copy()


def normalized(value: object) -> str:
    """The form values are compared in: trimmed, case-folded text (as the gate compares them)."""
    return str(value).strip().casefold()


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
    """``n`` unique whole numbers with as many digits as the real ones, none equal to a real
    value, within what the column's Arrow type can hold (numeric keys and numeric PII)."""
    if pa.types.is_integer(arrow_type):
        ceiling = int(np.iinfo(arrow_type.to_pandas_dtype()).max)
    elif pa.types.is_decimal(arrow_type):
        ceiling = 10 ** (arrow_type.precision - arrow_type.scale) - 1
    else:
        ceiling = 2**53  # floats hold every whole number up to here exactly
    digits = len(str(int(abs(float(col.max))))) if isinstance(col.max, (int, float)) else 6
    digits = max(1, min(digits, len(str(ceiling))))
    need = 4 * (n + len(avoid))
    while 9 * 10 ** (digits - 1) < need and 10**digits <= ceiling:
        digits += 1  # too few numbers of that width for fresh unique values: widen
    low, high = 10 ** (digits - 1) if digits > 1 else 0, min(10**digits, ceiling)
    if high - low < n:
        raise ValueError(f"column {col.name!r}: its type cannot hold {n} fresh unique values")
    chosen: dict[int, None] = {}
    while len(chosen) < n:
        for v in rng.integers(low, high, size=2 * (n - len(chosen)) + 10, dtype=np.int64).tolist():
            if normalized(v) not in avoid:
                chosen[v] = None
    return np.asarray(list(chosen)[:n], dtype=np.int64)


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
