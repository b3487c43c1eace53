"""Protections applied to the training data before any generator sees it.

A generator can only leak what it was shown. Two kinds of values single people out and are
removed from the train split first (both on by default):

* Rare categories: a value held by fewer than ``rare_k`` train rows (plus a little seeded
  per-category noise) is replaced by one pooled token, so no generator can reproduce it.
* Numeric extremes: values beyond noisy inner quantiles (about the 0.5% / 99.5% levels) are
  clipped to those quantiles, so the largest income or the oldest patient is never modelled.

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

from validation.schema import CategoryCount, ColumnKind, TableSchema


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

    ``train`` is not modified. The same seed, table and config give the same output.
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
            if not _string_valued(s):
                # pooling would put a string into a non-string column and change its Arrow type
                summary["skipped"][col.name] = "rare pooling needs string values"
                continue
            counts = s.value_counts(dropna=True)
            thresholds = config.rare_k + rng.integers(0, config.rare_k_noise + 1, len(counts))
            rare = counts.index[counts.to_numpy() < thresholds]
            if len(rare):
                mask = s.isin(rare)
                out[col.name] = s.where(~mask, config.rare_token)
                summary["rare_categories"][col.name] = {
                    "token": config.rare_token,
                    "categories_pooled": int(len(rare)),
                    "rows_pooled": int(mask.sum()),
                }
        elif col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT, ColumnKind.DATETIME) and config.clip_numeric:
            clipped = _clip(s, col.kind, config, rng)
            if clipped is not None:
                out[col.name], info = clipped
                summary["clipped"][col.name] = info
    return out, summary


def _clip(s: pd.Series, kind: ColumnKind, config: SuppressionConfig, rng: np.random.Generator):
    """Clip ``s`` to noisy inner quantiles; None when nothing is clipped."""
    if kind == ColumnKind.DATETIME:
        if not pd.api.types.is_datetime64_any_dtype(s):
            return None  # datetimes stored as text would need re-formatting; left as they are
        ts = s.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(s.dtype, "tz", None) else s
        values = ts.astype("datetime64[ns]").to_numpy().astype("int64").astype("float64")
        values[s.isna().to_numpy()] = np.nan
    else:
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            return None
        values = s.to_numpy(dtype="float64", na_value=np.nan)
    finite = np.sort(values[~np.isnan(values)])
    n = len(finite)
    if n == 0:
        return None
    floor = config.min_tail_rows / n
    lo_level = max(config.clip_quantile * (1 + rng.uniform(-config.clip_jitter, config.clip_jitter)), floor)
    hi_level = max(config.clip_quantile * (1 + rng.uniform(-config.clip_jitter, config.clip_jitter)), floor)
    if lo_level >= 0.5 or hi_level >= 0.5:
        return None  # too few rows to clip anything meaningful
    # order statistics (real values), never interpolated ones
    lo = finite[int(np.floor(lo_level * n))]
    hi = finite[min(int(np.ceil((1 - hi_level) * n)) - 1, n - 1)]
    n_low = int((finite < lo).sum())
    n_high = int((finite > hi).sum())
    if n_low == 0 and n_high == 0:
        return None
    if kind == ColumnKind.DATETIME:
        tz = getattr(s.dtype, "tz", None)
        lo_ts, hi_ts = pd.Timestamp(int(lo)), pd.Timestamp(int(hi))
        if tz is not None:
            lo_ts, hi_ts = lo_ts.tz_localize("UTC").tz_convert(tz), hi_ts.tz_localize("UTC").tz_convert(tz)
        new = s.clip(lower=lo_ts, upper=hi_ts)
        info = {"low": lo_ts.isoformat(), "high": hi_ts.isoformat()}
    else:
        new = s.clip(lower=lo, upper=hi).astype(s.dtype)
        as_py = (lambda v: int(v)) if pd.api.types.is_integer_dtype(s) else (lambda v: float(v))
        info = {"low": as_py(lo), "high": as_py(hi)}
    info.update({"rows_low": n_low, "rows_high": n_high})
    return new, info


def suppressed_schema(schema: TableSchema, summary: dict[str, Any], protected_train: pd.DataFrame) -> TableSchema:
    """The schema the release must follow after :func:`suppress`.

    Pooled categories disappear from the category lists and the pooled token appears (counts
    taken from ``protected_train``, the output of :func:`suppress`); numeric ranges shrink to
    the clip bounds. Publish this schema, not the raw profile: the raw profile lists every rare
    category by name. Run the gate's schema expectations against it too, since a generator
    trained on the protected split produces the token and stays inside the clip bounds.
    """
    columns = []
    for col in schema.columns:
        rare = summary.get("rare_categories", {}).get(col.name)
        clip = summary.get("clipped", {}).get(col.name)
        update: dict[str, Any] = {}
        if rare is not None:
            counts = protected_train[col.name].value_counts(dropna=True)
            update["categories"] = [CategoryCount(value=v, count=int(c)) for v, c in counts.items()]
            update["n_unique"] = len(update["categories"])
        if clip is not None:
            low, high = clip["low"], clip["high"]
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
