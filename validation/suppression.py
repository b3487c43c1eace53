"""Protections applied to the training data before any generator sees it.

A generator can only leak what it was shown. Two kinds of values single people out and are
removed from the train split first (both on by default):

* Rare categories: a value held by fewer than ``rare_k`` train rows (plus a little seeded
  per-category noise) is replaced by one pooled token, so no generator can reproduce it. In a
  column of non-string values (int codes) a string token would change the Arrow type: there the
  rare values become null where the column has nulls, else its most frequent value that is not
  rare (see :func:`_non_string_pool`).
* Numeric extremes: values beyond noisy inner quantiles (about the 0.5% / 99.5% levels) are
  clipped to those quantiles, so the largest income or the oldest patient is never modelled.
  Datetimes are clipped whatever their form (``datetime64``, ``date`` objects, text), and keep it.

pandas ``category`` columns keep their dtype: the categories absent from the split and the pooled
ones leave the dtype, the token joins it. A column a protection cannot handle is listed, with the
reason, in ``summary["skipped"]``.

The noise only ever *raises* the rare threshold, so every category with fewer than ``rare_k``
rows is always pooled (the gate's rare-record check uses the same ``k``); it hides exactly where
the cut was made. Clip levels are jittered for the same reason. The clip bounds are order
statistics of the train split at those levels (real values at inner quantiles, held by many
rows), and at least ``min_tail_rows`` rows always lie beyond a bound that clips anything.

The summary never names a pooled value: it may be published with the release.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from validation.columns import DatetimeForm, datetime_ticks, utc_format
from validation.profile import category_counts
from validation.schema import ColumnKind, ColumnSchema, TableSchema


class SuppressionConfig(BaseModel):
    """What the protections do, with their documented defaults."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="apply the protections at all")
    pool_rare_categories: bool = True
    rare_k: int = Field(5, ge=1, description="categories with fewer train rows than this are pooled")
    rare_k_noise: int = Field(
        2, ge=0, description="each category's threshold is rare_k + a seeded integer in [0, noise]"
    )
    rare_token: str = Field("__rare__", description="the value pooled categories become")
    clip_numeric: bool = True
    clip_quantile: float = Field(
        0.005, ge=0, lt=0.5, description="inner quantile of each tail that values are clipped to"
    )
    clip_jitter: float = Field(
        0.5, ge=0, lt=1, description="the quantile level is multiplied by 1 + U(-jitter, +jitter)"
    )
    min_tail_rows: int = Field(
        3, ge=1, description="at least this many rows lie beyond a bound (small tables)"
    )


def _string_valued(s: pd.Series) -> bool:
    non_null = s.dropna()
    return len(non_null) > 0 and pd.api.types.infer_dtype(non_null.to_numpy(dtype=object), skipna=True) == "string"


def suppress(
    train: pd.DataFrame, schema: TableSchema, config: SuppressionConfig | None = None, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The protected copy of ``train`` and a publishable summary of what was changed.

    ``train`` is not modified. The same seed, table and config give the same output. Columns a
    protection applies to but cannot handle are listed in ``summary["skipped"]`` with the reason.
    """
    config = config or SuppressionConfig()
    out = train.copy()
    summary: dict[str, Any] = {
        "config": config.model_dump(mode="json"),
        "rare_categories": {},
        "clipped": {},
        "skipped": {},
    }
    if not config.enabled or len(train) == 0:
        return out, summary
    rng = np.random.default_rng(seed)
    for col in schema.columns:
        if col.name not in out.columns or not col.modeled:
            continue
        s = out[col.name]
        if col.kind == ColumnKind.CATEGORICAL and config.pool_rare_categories:
            if isinstance(s.dtype, pd.CategoricalDtype):
                # a pandas category column (e.g. from Parquet written from pandas) lists every
                # category of the whole table in its dtype, also values absent from this split
                s = s.cat.remove_unused_categories()
                out[col.name] = s
            counts = s.value_counts(dropna=True)
            thresholds = config.rare_k + rng.integers(0, config.rare_k_noise + 1, len(counts))
            is_rare = counts.to_numpy() < thresholds
            rare = counts.index[is_rare]
            if len(rare):
                mask = s.isin(rare)
                if _string_valued(s):
                    token, into = config.rare_token, "token"
                else:
                    # a string token would change the Arrow type of an int (or float, ...) column
                    token, into = _non_string_pool(col, counts.index[~is_rare])
                    if token is None:
                        s = _holding_nulls(s)
                if isinstance(s.dtype, pd.CategoricalDtype):
                    if token is not None and token not in s.cat.categories:
                        s = s.cat.add_categories([token])
                    pooled = s.where(~mask, token).cat.remove_categories(list(rare))
                else:
                    pooled = s.where(~mask) if token is None else s.where(~mask, token)
                out[col.name] = pooled
                summary["rare_categories"][col.name] = {
                    "token": config.rare_token if into == "token" else None,
                    "pooled_into": into,
                    "categories_pooled": int(len(rare)),
                    "rows_pooled": int(mask.sum()),
                }
        elif col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT, ColumnKind.DATETIME) and config.clip_numeric:
            clipped = _clip(s, col, config, rng)
            if isinstance(clipped, str):
                summary["skipped"][col.name] = clipped
            elif clipped is not None:
                out[col.name], info = clipped
                summary["clipped"][col.name] = info
                reason = _unparsed_reason(info.get("rows_unparsed", 0))
                if reason:
                    summary["skipped"][col.name] = reason
    return out, summary


def _non_string_pool(col: ColumnSchema, frequent: pd.Index) -> tuple[Any, str]:
    """What the rare values of a non-string categorical column become, and its summary name.

    Null where the real column has nulls (null already names nobody, and claims no value for the
    pooled rows); else the most frequent value that is not rare (``frequent``, most frequent
    first: a value of the column's own type, held by many rows); else, every value being rare,
    null too (:func:`suppressed_schema` then marks the column nullable). The value is never
    named in the summary.
    """
    if col.nullable or not len(frequent):
        return None, "null"
    return frequent[0], "most frequent value"


def _holding_nulls(s: pd.Series) -> pd.Series:
    """``s`` in a dtype that holds nulls with the same Arrow type (numpy int64 -> Int64, ...)."""
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu":
        return s.astype(f"{'U' if s.dtype.kind == 'u' else ''}Int{8 * s.dtype.itemsize}")
    if isinstance(s.dtype, np.dtype) and s.dtype.kind == "b":
        return s.astype("boolean")
    return s


def _datetime_tz(s: pd.Series, col: ColumnSchema) -> Any:
    """The time zone ISO bounds of a datetime column are written in (None: naive)."""
    tz = getattr(s.dtype, "tz", None)
    if tz is not None:
        return tz
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        form = DatetimeForm.of(s)
        if (form.kind == "text" and utc_format(col.datetime_format)) or form.tz:
            return "UTC"
    return None


def _iso(tick: int, unit: str, tz: Any) -> str:
    """ISO text of one datetime tick (as the profile writes ``min``/``max``), any year 1..9999."""
    ts = pd.Timestamp(np.datetime64(int(tick), unit))
    if tz is not None:
        ts = ts.tz_localize("UTC").tz_convert(tz)
    return ts.isoformat()


def _unparsed_reason(n: int) -> str | None:
    """The ``skipped`` reason for ``n`` datetime values that do not parse (None when none)."""
    return f"{n} datetime values do not parse and are left as they are" if n else None


def _clip(s: pd.Series, col: ColumnSchema, config: SuppressionConfig, rng: np.random.Generator):
    """Clip ``s`` to noisy inner quantiles: ``(clipped, info)``, None when nothing is clipped, or
    the reason (a string) when the column cannot be clipped.

    Datetimes in any form (``datetime64`` of any unit and tz, ``date`` objects, text in the
    profile's format) are compared as exact ticks (:func:`validation.columns.datetime_ticks`);
    values beyond a bound are replaced by the bound *as the column stores it* (the order
    statistic's own cell), so the column keeps its dtype and text format.
    """
    kind = col.kind
    if kind == ColumnKind.DATETIME:
        try:
            values, null, unit = datetime_ticks(s, col.datetime_format)
        except (TypeError, ValueError) as exc:
            return f"datetime values could not be read: {type(exc).__name__}"
        unparsed = int((null & s.notna().to_numpy()).sum())
    else:
        unparsed = 0
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            return f"clipping needs a numeric column, not {s.dtype}"
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        null = np.isnan(values)
    finite = np.sort(values[~null])
    n = len(finite)
    if n == 0:
        return _unparsed_reason(unparsed)
    floor = config.min_tail_rows / n
    lo_level = max(config.clip_quantile * (1 + rng.uniform(-config.clip_jitter, config.clip_jitter)), floor)
    hi_level = max(config.clip_quantile * (1 + rng.uniform(-config.clip_jitter, config.clip_jitter)), floor)
    if lo_level >= 0.5 or hi_level >= 0.5:
        return _unparsed_reason(unparsed)  # too few rows to clip anything meaningful
    # order statistics (real values), never interpolated ones
    lo = finite[int(np.floor(lo_level * n))]
    hi = finite[min(int(np.ceil((1 - hi_level) * n)) - 1, n - 1)]
    low_mask = ~null & (values < lo)
    high_mask = ~null & (values > hi)
    n_low, n_high = int(low_mask.sum()), int(high_mask.sum())
    if n_low == 0 and n_high == 0:
        return _unparsed_reason(unparsed)
    if kind == ColumnKind.DATETIME:
        # the bound cells themselves: same dtype, unit, tz, date object or text format
        lo_cell = s.iloc[int(np.flatnonzero(~null & (values == lo))[0])]
        hi_cell = s.iloc[int(np.flatnonzero(~null & (values == hi))[0])]
        new = s.mask(pd.Series(low_mask, index=s.index), lo_cell).mask(pd.Series(high_mask, index=s.index), hi_cell)
        if new.dtype != s.dtype:
            new = new.astype(s.dtype)
        tz = _datetime_tz(s, col)
        info = {"low": _iso(lo, unit, tz), "high": _iso(hi, unit, tz)}
    else:
        new = s.clip(lower=lo, upper=hi).astype(s.dtype)
        as_py = (lambda v: int(v)) if pd.api.types.is_integer_dtype(s) else (lambda v: float(v))
        info = {"low": as_py(lo), "high": as_py(hi)}
    info.update({"rows_low": n_low, "rows_high": n_high})
    if unparsed:
        info["rows_unparsed"] = unparsed
    return new, info


def _range(s: pd.Series, col: ColumnSchema) -> tuple[Any, Any] | None:
    """min and max of ``s`` in the schema's field types (floats, or ISO text for datetimes)."""
    if col.kind == ColumnKind.DATETIME:
        try:
            ticks, null, unit = datetime_ticks(s, col.datetime_format)
        except (TypeError, ValueError):
            return None
        present = ticks[~null]
        if not len(present):
            return None
        tz = _datetime_tz(s, col)
        return _iso(present.min(), unit, tz), _iso(present.max(), unit, tz)
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return None
    values = s.to_numpy(dtype="float64", na_value=np.nan)
    values = values[~np.isnan(values)]  # also NaN held apart from NA (nullable Float64)
    if not len(values):
        return None
    return float(values.min()), float(values.max())


def suppressed_schema(schema: TableSchema, summary: dict[str, Any], protected_train: pd.DataFrame) -> TableSchema:
    """The schema the release must follow after :func:`suppress`, built from what the generator saw.

    The raw profile describes the whole source table: its category lists name every value of
    every split (rare ones included) and its ranges reach the real extremes. So the category
    list (values and counts) of every modeled categorical or boolean column is rebuilt from
    ``protected_train`` (the output of :func:`suppress`: pooled values are gone, the pooled token
    is there; a column whose rare values became null is marked nullable, with the null rate of
    ``protected_train``). When clipping ran, the range of every modeled numeric or datetime
    column is rebuilt from ``protected_train`` too: the clip bounds where it clipped, else the
    train split's own extremes (the raw profile's may be a holdout-only outlier). Publish this
    schema, not the raw profile, and run the gate's schema expectations against it too, since a
    generator trained on the protected split produces the token and stays inside the clip bounds.
    """
    if len(protected_train) == 0:
        return schema
    config = summary.get("config", {})
    clipping_ran = bool(config.get("enabled", True) and config.get("clip_numeric", True))
    columns = []
    for col in schema.columns:
        update: dict[str, Any] = {}
        present = col.modeled and col.name in protected_train.columns
        if present and col.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            # as the profile lists them, less the unused categories (count 0) of a pandas category
            # column; filtered after counting: remove_unused_categories() reorders equal counts
            update["categories"] = [c for c in category_counts(protected_train[col.name]) if c.count != 0]
            update["n_unique"] = len(update["categories"])
            if summary.get("rare_categories", {}).get(col.name, {}).get("pooled_into") == "null":
                # rare non-string values became null: the release may hold more nulls than the
                # source (all of them when every value was rare: the column is then not modeled)
                null_rate = round(float(protected_train[col.name].isna().mean()), 6)
                update.update(nullable=True, null_rate=null_rate)
        clip = summary.get("clipped", {}).get(col.name)
        numeric = col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT, ColumnKind.DATETIME)
        bounds = _range(protected_train[col.name], col) if present and numeric and (clipping_ran or clip) else None
        if bounds is None and clip is not None:
            bounds = clip["low"], clip["high"]
        if bounds is not None:
            low, high = bounds
            if col.kind == ColumnKind.FLOAT and col.decimals is not None:
                # generators round floats to the profile's decimals: widen the bounds to that
                # precision so a rounded bound value (28.7695 for 28.769499999999997) is inside
                scale = 10.0 ** col.decimals
                low, high = math.floor(low * scale) / scale, math.ceil(high * scale) / scale
            # keep the schema's field types: floats for numbers, ISO text for datetimes
            update["min"] = low if isinstance(low, str) else float(low)
            update["max"] = high if isinstance(high, str) else float(high)
        columns.append(col.model_copy(update=update) if update else col)
    return schema.model_copy(update={"columns": columns})
