"""The shared tabular encoder: a profiled table <-> a float32 matrix, reversibly and in bulk.

Layout of the encoded matrix, column by column in schema order (see :class:`Span`):

* numeric columns (integer, float, datetime): one continuous dim holding a quantile-to-normal
  score. The fit stores up to ``n_quantiles`` empirical quantiles; encoding interpolates the
  value's CDF position on them (ties map to the middle of their CDF step, as scikit-learn's
  QuantileTransformer does) and applies the normal inverse CDF; decoding runs the same piecewise
  linear map backwards. Everything is a handful of NumPy calls per column, no per-row Python,
  which is what makes this much faster than SDV's Bayesian-GMM transformer. Decoding clamps to
  the fitted range (min/max respected), snaps low-cardinality columns (at most ``max_support``
  distinct values) to the observed support, otherwise rounds integers and decimals and snaps
  datetimes to their resolution (e.g. whole hours).
* a nullable numeric/datetime column also gets a 2-wide categorical span ``[present, null]``; the
  numeric dim is 0 (the median score) where the value is null.
* categorical and boolean columns: one one-hot block. At most ``max_categories`` slots: the most
  frequent values keep a slot each, the rest share one "pooled" slot, and nulls get their own slot.
  Categories a pandas category column declares but never uses take no slot. Decoding takes the
  argmax; a pooled slot is decoded by a seeded draw among the pooled values seen at least
  ``pool_min_count`` times, in proportion to their counts, or among the kept values when no pooled
  value is that frequent, so a 50,000-value column cannot leak its singletons through the pool.
  (A value with a slot of its own is emitted as itself; in the pipeline, rare values are pooled
  into ``__rare__`` before any generator sees them.) Only the ``pool_size`` most frequent pooled
  values are kept, so memory stays bounded.

Decoding returns the modeled columns with exactly the dtypes the fit table had.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from validation.columns import (
    TICKS_PER_SECOND,
    DatetimeForm,
    clip_to_integer_dtype,
    datetime_ticks,
    decimal_places as _decimals,
    require_finite,
    ticks_to_datetime_like,
)
from validation.columns import dtype_name as _dtype_name
from validation.errors import InputError
from validation.schema import ColumnKind, ColumnSchema, TableSchema

_NUMERIC_KINDS = (ColumnKind.INTEGER, ColumnKind.FLOAT, ColumnKind.DATETIME)
_CATEGORICAL_KINDS = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
_U_EPS = 1e-6  # CDF positions are clipped to [eps, 1-eps] so normal scores stay within +-4.75
# Datetime resolutions tried, coarsest first, in nanoseconds.
_DATETIME_STEPS_NS = [86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1]
_NS_PER_SECOND = 10**9


@dataclass(frozen=True)
class Span:
    """Where one source column lives in the encoded matrix."""

    column: str  # source column name
    kind: Literal["numeric", "categorical"]  # numeric: continuous dims; categorical: a one-hot block
    start: int
    end: int  # slice [start:end) of the encoded matrix

    @property
    def width(self) -> int:
        return self.end - self.start


# --------------------------------------------------------------------------------------------
# dtype bookkeeping: what the fit table had, so decoding can give it back exactly
# --------------------------------------------------------------------------------------------
def _null_token(s: pd.Series) -> str:
    """Which null object an object column used (None from Arrow, NaN from read_csv)."""
    nulls = s[s.isna()]
    if nulls.empty:
        return "nan"
    v = nulls.iloc[0]
    if v is None:
        return "none"
    if v is pd.NA:
        return "na"
    if v is pd.NaT:
        return "nat"
    return "nan"


_NULLS = {"none": None, "nan": np.nan, "na": pd.NA, "nat": pd.NaT}


def _json_scalar(v: Any) -> Any:
    """Category values as JSON scalars (numpy scalars become Python ones)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (str, bool, int, float)):
        return v
    return str(v)


def _restore(values: np.ndarray | pd.Series, dtype_name: str, null_token: str,
             categories: list | None = None, ordered: bool = False) -> pd.Series:
    """Cast decoded values to the source dtype; object columns get their own null object."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if dtype_name == "category":
        return pd.Series(pd.Categorical(s.where(s.notna(), None), categories=categories, ordered=ordered))
    if dtype_name == "object":
        arr = s.to_numpy(dtype=object, copy=True)
        arr[pd.isna(arr)] = _NULLS[null_token]
        return pd.Series(arr, dtype=object)
    return s.astype(pd.api.types.pandas_dtype(dtype_name))


# --------------------------------------------------------------------------------------------
# column codecs
# --------------------------------------------------------------------------------------------
class _NumericCodec:
    """Integer, float and datetime columns: a quantile-normal score plus a null indicator."""

    def __init__(self, config: dict, quantiles: np.ndarray, support: np.ndarray) -> None:
        self.config = config
        self.quantiles = quantiles.astype(np.float64)
        self.support = support.astype(np.float64)
        # CDF positions of the stored quantiles: evenly spaced by construction
        self.positions = np.linspace(0.0, 1.0, len(self.quantiles)) if len(self.quantiles) > 1 else np.zeros(1)

    @property
    def name(self) -> str:
        return self.config["column"]

    @property
    def width(self) -> int:
        return 3 if self.config["nullable"] else 1

    # values <-> float64 -------------------------------------------------------------------
    # Datetimes are exact int64 ticks (validation.columns.datetime_ticks) in ``tick_unit``: the
    # column's own unit for datetime64 (so 9999-12-31 in datetime64[us] never overflows), "us"
    # for dates, text and Python datetimes. Models saved before ``tick_unit`` existed counted ns.
    _MODES = {"datetime64": "datetime64", "date": "date_object", "text": "string", "object": "object_datetime"}
    _KINDS = {mode: kind for kind, mode in _MODES.items()}

    def _tick_unit(self) -> str:
        return self.config.get("tick_unit", "ns")

    def _form(self) -> DatetimeForm:
        cfg = self.config
        kind = self._KINDS[cfg["datetime_mode"]]
        tz = cfg["tz"] if kind == "object" else None
        return DatetimeForm(kind, cfg["dtype"], tz)

    def _to_float(self, s: pd.Series) -> np.ndarray:
        """Column values as float64 (datetimes as ticks from the fitted origin), NaN = null."""
        cfg = self.config
        if cfg["kind"] != ColumnKind.DATETIME.value:
            if pd.api.types.is_bool_dtype(s.dtype) or s.dtype == object:
                s = pd.to_numeric(s, errors="coerce")
            return s.to_numpy(dtype=np.float64, na_value=np.nan)
        ticks, null, _ = datetime_ticks(s, cfg["datetime_format"], unit=self._tick_unit())
        out = (ticks - cfg.get("origin", 0)).astype(np.float64)
        out[null] = np.nan
        return out

    def _from_float(self, x: np.ndarray, null: np.ndarray) -> pd.Series:
        cfg = self.config
        if cfg["kind"] != ColumnKind.DATETIME.value:
            x = x.copy()
            x[null] = np.nan
            return _restore(x, cfg["dtype"], cfg["null_token"])
        ticks = np.where(null, 0, np.rint(x)).astype(np.int64) + cfg["origin"]
        out = ticks_to_datetime_like(ticks, null, self._tick_unit(), self._form(), cfg["datetime_format"])
        if cfg["datetime_mode"] == "datetime64":
            return out
        return _restore(out, cfg["dtype"], cfg["null_token"])

    # fit / encode / decode ------------------------------------------------------------------
    @classmethod
    def fit(cls, s: pd.Series, col: ColumnSchema, n_quantiles: int, max_support: int) -> "_NumericCodec":
        cfg: dict[str, Any] = {
            "column": str(s.name),
            "type": "numeric",
            "kind": col.kind.value,
            "dtype": _dtype_name(s.dtype),
            "null_token": _null_token(s),
            "decimals": col.decimals,
            "origin": 0,
        }
        if col.kind == ColumnKind.DATETIME:
            form = DatetimeForm.of(s)
            cfg["datetime_mode"] = cls._MODES[form.kind]
            cfg["datetime_format"] = col.datetime_format
            cfg["tz"] = form.tz
            # ticks in the column's own unit (datetime64) or microseconds (any other form)
            ticks, null, unit = datetime_ticks(s, col.datetime_format)
            cfg["tick_unit"] = unit
            offsets = ticks[~null]
            if len(offsets):
                # re-centre on the minimum so float64 keeps tick-level precision
                cfg["origin"] = int(offsets.min())
                offsets = offsets - cfg["origin"]
                per_tick = _NS_PER_SECOND // TICKS_PER_SECOND[unit]
                steps = [st // per_tick for st in _DATETIME_STEPS_NS if st % per_tick == 0]
                cfg["step"] = next(st for st in steps if not np.any(offsets % st))
            else:
                cfg["step"] = 1  # no value in this table: decoding yields nulls only
            values = (ticks - cfg["origin"]).astype(np.float64)
            values[null] = np.nan
        else:
            values = cls(cfg, np.zeros(1), np.zeros(0))._to_float(s)
        present = values[~np.isnan(values)]
        require_finite(present, cfg["column"])
        cfg["nullable"] = bool(len(present) < len(values))
        cfg["all_null"] = bool(len(present) == 0)
        if cfg["kind"] == ColumnKind.FLOAT.value and cfg["decimals"] is None and len(present):
            cfg["decimals"] = _decimals(present)
        if not len(present):
            return cls(cfg, np.zeros(1), np.zeros(0))
        nq = int(min(n_quantiles, len(present)))
        quantiles = np.quantile(present, np.linspace(0.0, 1.0, nq)) if nq > 1 else present[:1].copy()
        uniques = np.unique(present)
        support = uniques if len(uniques) <= max_support else np.zeros(0)
        return cls(cfg, quantiles, support)

    def encode(self, s: pd.Series, out: np.ndarray) -> None:
        """Write this column's dims into ``out`` (n, width)."""
        x = self._to_float(s)
        null = np.isnan(x)
        if len(self.quantiles) > 1 and self.quantiles[0] < self.quantiles[-1]:
            q, p = self.quantiles, self.positions
            xf = np.where(null, q[0], x)
            # average of forward and backward interpolation puts a tie in the middle of its step
            u = 0.5 * (np.interp(xf, q, p) - np.interp(-xf, -q[::-1], -p[::-1]))
            z = ndtri(np.clip(u, _U_EPS, 1 - _U_EPS))
        else:
            z = np.zeros_like(x)  # constant (or all-null) column: a single point
        out[:, 0] = np.where(null, 0.0, z)
        if self.config["nullable"]:
            out[:, 1] = ~null
            out[:, 2] = null

    def decode(self, block: np.ndarray) -> pd.Series:
        cfg = self.config
        n = len(block)
        if cfg["all_null"]:
            null = np.ones(n, dtype=bool)
        elif cfg["nullable"]:
            null = block[:, 2] > block[:, 1]
        else:
            null = np.zeros(n, dtype=bool)
        if len(self.quantiles) > 1 and self.quantiles[0] < self.quantiles[-1]:
            u = ndtr(block[:, 0].astype(np.float64))
            x = np.interp(u, self.positions, self.quantiles)  # clamps to [min, max]
        else:
            x = np.full(n, self.quantiles[0], dtype=np.float64)
        if len(self.support):
            x = _snap(x, self.support)
        elif cfg["kind"] == ColumnKind.INTEGER.value:
            x = np.rint(x)
        elif cfg["kind"] == ColumnKind.FLOAT.value and cfg["decimals"] is not None:
            # the range again after rounding: a maximum with more digits than ``decimals`` (an
            # overridden schema) would otherwise be rounded past
            x = np.clip(np.round(x, int(cfg["decimals"])), self.quantiles[0], self.quantiles[-1])
        elif cfg["kind"] == ColumnKind.DATETIME.value:
            step = cfg["step"]
            x = np.rint(x / step) * step
        if cfg["kind"] == ColumnKind.INTEGER.value:
            x = clip_to_integer_dtype(x, cfg["dtype"])
        return self._from_float(x, null)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"quantiles": self.quantiles, "support": self.support}


class _CategoricalCodec:
    """Categorical and boolean columns: a capped one-hot block with pooled and null slots."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.values = list(config["values"])
        self.pool_values = list(config["pool_values"])
        counts = np.asarray(config["pool_counts"], dtype=np.float64)
        self.pool_probs = counts / counts.sum() if counts.sum() > 0 else counts
        self._slot_values = np.empty(len(self.values), dtype=object)
        self._slot_values[:] = self.values

    @property
    def name(self) -> str:
        return self.config["column"]

    @property
    def width(self) -> int:
        return len(self.values) + int(self.config["pooled"]) + int(self.config["nullable"])

    @classmethod
    def fit(cls, s: pd.Series, max_categories: int, pool_size: int, pool_min_count: int) -> "_CategoricalCodec":
        null = s.isna()
        counts = s[~null].value_counts(sort=True)
        counts = counts[counts > 0]  # a category dtype lists its unused categories with count 0
        nullable = bool(null.any())
        # slots left for values once the null slot is reserved; at least one value slot
        room = max(1, max_categories - int(nullable))
        pooled = len(counts) > room
        kept = counts.iloc[: room - 1] if pooled else counts
        rest = counts.iloc[room - 1:] if pooled else counts.iloc[:0]
        eligible = rest[rest >= pool_min_count]
        if pooled and eligible.empty:
            # no pooled value is frequent enough to emit: the pooled slot decodes to the kept values
            # (none only when max_categories leaves room for the null slot alone: then to null)
            eligible = kept
        eligible = eligible.iloc[:pool_size]
        cfg = {
            "column": str(s.name),
            "type": "categorical",
            "dtype": _dtype_name(s.dtype),
            "null_token": _null_token(s),
            "dtype_categories": [_json_scalar(c) for c in s.dtype.categories]
            if isinstance(s.dtype, pd.CategoricalDtype) else None,
            "dtype_ordered": bool(isinstance(s.dtype, pd.CategoricalDtype) and s.dtype.ordered),
            "values": [_json_scalar(v) for v in kept.index],
            "counts": [int(c) for c in kept.to_numpy()],
            "pooled": pooled,
            "pool_values": [_json_scalar(v) for v in eligible.index],
            "pool_counts": [int(c) for c in eligible.to_numpy()],
            "nullable": nullable,
        }
        return cls(cfg)

    def _codes(self, s: pd.Series) -> np.ndarray:
        """Slot of each row: value slots, then pooled, then null; -1 for a value never seen."""
        vals = s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s
        codes = pd.Categorical(vals, categories=pd.Index(self.values, dtype=object)).codes.astype(np.int64)
        null = np.asarray(s.isna())
        k = len(self.values)
        if self.config["pooled"]:
            codes[(codes < 0) & ~null] = k
        if self.config["nullable"]:
            codes[null] = k + int(self.config["pooled"])
        else:
            codes[null] = -1
        return codes

    def encode(self, s: pd.Series, out: np.ndarray) -> None:
        codes = self._codes(s)
        rows = np.nonzero(codes >= 0)[0]
        out[rows, codes[rows]] = 1.0  # unseen values (no pooled slot) stay all-zero

    def decode(self, block: np.ndarray, rng: np.random.Generator) -> pd.Series:
        cfg = self.config
        slot = block.argmax(axis=1) if block.shape[1] > 1 else np.zeros(len(block), dtype=np.int64)
        k = len(self.values)
        out = np.empty(len(block), dtype=object)
        is_value = slot < k
        out[is_value] = self._slot_values[slot[is_value]]
        if cfg["pooled"]:
            pooled_rows = np.nonzero(slot == k)[0]
            # no value frequent enough and no kept value to stand in: the rows stay None (null)
            if len(pooled_rows) and self.pool_values:
                pool = np.empty(len(self.pool_values), dtype=object)
                pool[:] = self.pool_values
                out[pooled_rows] = pool[rng.choice(len(pool), size=len(pooled_rows), p=self.pool_probs)]
        null = slot == k + int(cfg["pooled"])
        if cfg["nullable"]:
            out[null] = None
        return _restore(pd.Series(out, dtype=object), cfg["dtype"], cfg["null_token"], cfg["dtype_categories"],
                        cfg.get("dtype_ordered", False))

    def arrays(self) -> dict[str, np.ndarray]:
        return {}


def _snap(x: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Each value replaced by the nearest value of the sorted ``support``."""
    idx = np.clip(np.searchsorted(support, x), 1, len(support) - 1) if len(support) > 1 else np.zeros(len(x), int)
    if len(support) == 1:
        return np.full(len(x), support[0])
    lo, hi = support[idx - 1], support[idx]
    return np.where(np.abs(x - lo) <= np.abs(hi - x), lo, hi)


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------
class TabularEncoder:
    """Reversible transform of the modeled columns of a profiled table to a float32 matrix."""

    def __init__(
        self,
        max_categories: int = 1000,
        n_quantiles: int = 1000,
        max_support: int = 1000,
        pool_size: int = 10_000,
        pool_min_count: int = 2,
    ) -> None:
        if max_categories < 2:
            raise InputError("max_categories must be at least 2 (one value slot plus the pooled slot)")
        self.options = {
            "max_categories": int(max_categories),
            "n_quantiles": int(n_quantiles),
            "max_support": int(max_support),
            "pool_size": int(pool_size),
            "pool_min_count": int(pool_min_count),
        }
        self._codecs: list[_NumericCodec | _CategoricalCodec] = []
        self.spans: list[Span] = []
        self.width: int = 0

    @property
    def columns(self) -> list[str]:
        """The source columns this encoder encodes, in order."""
        return [c.name for c in self._codecs]

    def fit(self, table: pd.DataFrame, schema: TableSchema) -> "TabularEncoder":
        """Learn the encoding of ``schema.modeled_columns`` that are present in ``table``."""
        codecs: list[_NumericCodec | _CategoricalCodec] = []
        for col in schema.modeled_columns:
            if col.name not in table.columns:
                continue
            s = table[col.name]
            if col.kind in _NUMERIC_KINDS:
                codecs.append(_NumericCodec.fit(s, col, self.options["n_quantiles"], self.options["max_support"]))
            elif col.kind in _CATEGORICAL_KINDS:
                codecs.append(_CategoricalCodec.fit(
                    s, self.options["max_categories"], self.options["pool_size"], self.options["pool_min_count"]))
        if not codecs:
            raise InputError(f"table {schema.name!r} has no modeled columns for a generator to learn")
        self._set_codecs(codecs)
        return self

    def _set_codecs(self, codecs: list) -> None:
        self._codecs = codecs
        spans: list[Span] = []
        pos = 0
        for c in codecs:
            if isinstance(c, _NumericCodec):
                spans.append(Span(c.name, "numeric", pos, pos + 1))
                if c.config["nullable"]:
                    spans.append(Span(c.name, "categorical", pos + 1, pos + 3))
            else:
                spans.append(Span(c.name, "categorical", pos, pos + c.width))
            pos += c.width
        self.spans = spans
        self.width = pos

    def _require_fitted(self) -> None:
        if not self._codecs:
            raise RuntimeError("TabularEncoder is not fitted")

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Encode ``table`` (it must hold the fitted columns) into a float32 (n, width) matrix."""
        self._require_fitted()
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise InputError(f"table lacks the encoded columns {missing}")
        out = np.zeros((len(table), self.width), dtype=np.float32)
        pos = 0
        for codec in self._codecs:
            codec.encode(table[codec.name], out[:, pos:pos + codec.width])  # writes through the view
            pos += codec.width
        return out

    def inverse_transform(self, matrix: np.ndarray, seed: int | None = None) -> pd.DataFrame:
        """Decode a matrix back to the modeled columns with the source dtypes.

        Categorical blocks are decoded by argmax; ``seed`` seeds the draws for pooled slots (the
        same seed and matrix give the same table).
        """
        self._require_fitted()
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[1] != self.width:
            raise ValueError(f"expected a matrix of width {self.width}, got shape {matrix.shape}")
        rng = np.random.default_rng(0 if seed is None else seed)
        cols: dict[str, pd.Series] = {}
        pos = 0
        for codec in self._codecs:
            block = matrix[:, pos:pos + codec.width]
            if isinstance(codec, _NumericCodec):
                cols[codec.name] = codec.decode(block).reset_index(drop=True)
            else:
                cols[codec.name] = codec.decode(block, rng).reset_index(drop=True)
            pos += codec.width
        return pd.DataFrame(cols)

    # persistence -------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able config and named arrays (for safetensors) that rebuild this encoder."""
        self._require_fitted()
        arrays: dict[str, np.ndarray] = {}
        for i, codec in enumerate(self._codecs):
            for key, arr in codec.arrays().items():
                arrays[f"encoder.{i}.{key}"] = np.ascontiguousarray(arr, dtype=np.float64)
        config = {"options": dict(self.options), "columns": [c.config for c in self._codecs]}
        return config, arrays

    @classmethod
    def from_state(cls, config: dict, arrays: dict[str, np.ndarray]) -> "TabularEncoder":
        """Rebuild an encoder from :meth:`state`'s output."""
        enc = cls(**config["options"])
        codecs: list = []
        for i, cfg in enumerate(config["columns"]):
            if cfg["type"] == "numeric":
                codecs.append(_NumericCodec(cfg, arrays[f"encoder.{i}.quantiles"], arrays[f"encoder.{i}.support"]))
            else:
                codecs.append(_CategoricalCodec(cfg))
        enc._set_codecs(codecs)
        return enc
