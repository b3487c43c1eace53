"""Gaussian copula baseline: the model inside SDV's GaussianCopulaSynthesizer.

SDV's synthesizer persists only through cloudpickle, and loading a pickle can run code. So this
family fits the same ``copulas.GaussianMultivariate`` (beta marginals, SDV's default) on a small
preprocessing of its own — SDV-style: categories as frequency intervals of [0, 1], nulls as an
indicator column — and saves everything as JSON.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from generators.base import Generator, GeneratorConfig, ProgressCallback, ProgressEvent, no_progress
from validation.columns import (
    DatetimeForm,
    clip_to_integer_dtype,
    dtype_name,
    numeric_values,
    require_finite,
    seconds_to_datetime_like,
)
from validation.schema import ColumnKind, TableSchema

_NULL = "__null__"  # how models saved before nulls were positional marked them


class CopulaConfig(GeneratorConfig):
    """Gaussian copula options."""

    distribution: Literal["beta", "gaussian_kde", "truncated_gaussian", "uniform", "gaussian"] = Field(
        "beta", description="marginal family of every modeled column")
    enforce_min_max: bool = Field(True, description="clip sampled numerics to the real range")


_DISTRIBUTIONS = {
    "beta": "copulas.univariate.BetaUnivariate",
    "gaussian_kde": "copulas.univariate.GaussianKDE",
    "truncated_gaussian": "copulas.univariate.TruncatedGaussian",
    "uniform": "copulas.univariate.UniformUnivariate",
    "gaussian": "copulas.univariate.GaussianUnivariate",
}


class CopulaGenerator(Generator):
    """Fast CPU baseline: Gaussian copula over SDV-style encoded columns."""

    family = "copula"
    config_class = CopulaConfig

    def __init__(self, config: CopulaConfig | None = None) -> None:
        super().__init__(config)
        self._plan: list[dict] = []  # one entry per modeled column: how it is encoded
        self._model_dict: dict | None = None
        self._model = None
        self._dtypes: dict[str, str] = {}

    # -------------------------------------------------------------------------------- fit
    def fit(self, table: pd.DataFrame, schema: TableSchema, progress: ProgressCallback = no_progress) -> "CopulaGenerator":
        from copulas.multivariate import GaussianMultivariate

        self.schema = schema
        cols = [c for c in schema.modeled_columns if c.name in table.columns]
        rng = np.random.default_rng(self.config.seed)
        encoded: dict[str, np.ndarray] = {}
        self._plan = []
        self._dtypes = {c.name: dtype_name(table[c.name].dtype) for c in cols}
        for i, col in enumerate(cols):
            s = table[col.name]
            # the model's own column names: positional, so no source name (``x#null``) can collide
            entry: dict = {"name": col.name, "kind": col.kind.value, "column": f"c{i}"}
            if isinstance(s.dtype, pd.CategoricalDtype):
                # a pandas category column comes back with its own categories, in order
                entry["dtype_categories"] = [_jsonable(v) for v in s.cat.categories]
                entry["dtype_ordered"] = bool(s.cat.ordered)
            if col.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
                # nulls are one more category, by position: no value of the column can stand for them
                null = s.isna().to_numpy()
                present = s[~null].astype(object)
                counts = present.value_counts(sort=True)
                cats, weights = [_jsonable(v) for v in counts.index], counts.to_numpy(dtype=float)
                codes = pd.Categorical(present, categories=counts.index).codes.astype(np.int64)
                null_index = None
                if null.any():  # placed by its frequency, as SDV's UniformEncoder orders categories
                    null_index = int(np.searchsorted(-weights, -float(null.sum()), side="right"))
                    cats.insert(null_index, None)
                    weights = np.insert(weights, null_index, float(null.sum()))
                    codes += codes >= null_index
                codes_all = np.full(len(s), null_index or 0, dtype=np.int64)
                codes_all[~null] = codes
                probs = weights / weights.sum()
                edges = np.concatenate([[0.0], np.cumsum(probs)])
                edges[-1] = 1.0
                entry.update(categories=cats, edges=edges.tolist(), null_index=null_index)
                if len(cats) > 1:
                    lo, hi = edges[codes_all], edges[codes_all + 1]
                    # SDV's UniformEncoder: a uniform draw inside the category's interval
                    encoded[entry["column"]] = lo + (hi - lo) * rng.uniform(0.0, 1.0, len(s))
            else:
                numeric = numeric_values(s, col)
                null = np.isnan(numeric)
                require_finite(numeric, col.name)
                entry["null_rate"] = float(null.mean())
                finite = numeric[~null]
                entry["min"], entry["max"] = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
                entry["decimals"] = col.decimals
                entry["datetime_format"] = col.datetime_format
                if col.kind == ColumnKind.DATETIME:
                    entry["datetime_form"] = DatetimeForm.of(s).to_json()
                    entry["step_seconds"] = _datetime_step(finite - entry["min"])
                if len(finite) and finite.min() != finite.max():
                    # rescaled to [0, 1], the beta's own support: its fit fails on magnitudes such
                    # as 1e-300 or 1e300. (The fitted model is not scale-free in practice: [-1, 1]
                    # scored 0.05 lower on planes, [0, 1] as raw values there and 0.02 higher on
                    # weather.) A range past the float maximum is halved instead.
                    lo, hi = entry["min"], entry["max"]
                    entry["shift"], entry["scale"] = (lo, hi - lo) if np.isfinite(hi - lo) else (lo / 2 + hi / 2, hi / 2 - lo / 2)
                    # nulls at the mean, as SDV fills them (their flag column says which they are),
                    # taken after scaling: the mean of values near the float maximum overflows
                    z = (numeric - entry["shift"]) / entry["scale"]
                    z[null] = z[~null].mean()
                    encoded[entry["column"]] = z
                    entry["modeled"] = True
                if 0 < entry["null_rate"] < 1:
                    # Like a two-category column: null -> U(0, p), present -> U(p, 1), so the
                    # marginal is uniform and decoding is a threshold at p.
                    p = entry["null_rate"]
                    u = rng.uniform(0.0, 1.0, len(null))
                    encoded[f"{entry['column']}#null"] = np.where(null, u * p, p + u * (1 - p))
            self._plan.append(entry)
        progress(ProgressEvent("fit", 0, 1))
        frame = pd.DataFrame(encoded)
        self._model_dict = None
        self._model = None
        if frame.shape[1]:
            model = GaussianMultivariate(distribution=_DISTRIBUTIONS[self.config.distribution])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(frame)
            self._model = model
            self._model_dict = model.to_dict()
        progress(ProgressEvent("fit", 1, 1))
        return self

    # -------------------------------------------------------------------------------- sample
    def sample(self, n: int, seed: int = 0, progress: ProgressCallback = no_progress) -> pd.DataFrame:
        if self.schema is None:
            raise RuntimeError("fit or load the generator before sampling")
        raw = pd.DataFrame(index=range(n))
        if self._model is not None and n:
            self._model.set_random_state(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = self._model.sample(n).reset_index(drop=True)
        out = {}
        for entry in self._plan:
            name = entry["name"]
            # models saved before the positional names modeled the columns under their own names
            column = entry.get("column", name)
            null_column = f"{column}#null"
            if "categories" in entry:
                cats = entry["categories"]
                if column in raw:
                    u = np.clip(raw[column].to_numpy(), 0.0, 1.0 - 1e-12)
                    idx = np.searchsorted(np.asarray(entry["edges"]), u, side="right") - 1
                    idx = np.clip(idx, 0, len(cats) - 1)
                else:
                    idx = np.zeros(n, dtype=int)
                values = np.asarray(cats, dtype=object)[idx]
                if entry.get("null_index") is not None:
                    values[idx == entry["null_index"]] = None
                elif "null_index" not in entry:  # models saved before nulls were positional
                    values[values == _NULL] = None
                out[name] = values
            else:
                if entry.get("modeled") and column in raw:
                    x = raw[column].to_numpy(dtype=float) * entry.get("scale", 1.0) + entry.get("shift", 0.0)
                else:
                    x = np.full(n, entry["min"], dtype=float)
                if self.config.enforce_min_max:
                    x = np.clip(x, entry["min"], entry["max"])
                if entry["kind"] == ColumnKind.INTEGER.value:
                    x = np.round(x)
                elif entry.get("decimals") is not None:
                    x = np.round(x, entry["decimals"])
                elif entry.get("step_seconds"):
                    # the source's resolution (whole hours, days, ...): a multiple of it from the minimum
                    step = entry["step_seconds"]
                    x = entry["min"] + np.rint((x - entry["min"]) / step) * step
                if self.config.enforce_min_max:
                    # again after rounding: a maximum with more digits than ``decimals`` (an
                    # overridden schema, or a float32 maximum) would otherwise be rounded past
                    x = np.clip(x, entry["min"], entry["max"])
                if null_column in raw:
                    x[raw[null_column].to_numpy() < entry["null_rate"]] = np.nan
                elif entry["null_rate"] >= 1.0:
                    x[:] = np.nan
                out[name] = x
        progress(ProgressEvent("sample", n, n))
        return _restore_dtypes(pd.DataFrame(out), self._plan, self._dtypes)

    def runtime(self) -> dict[str, str | int]:
        """:meth:`Generator.runtime` plus the version of ``copulas``, which fits the marginals."""
        from importlib.metadata import version

        return {**super().runtime(), "copulas": version("copulas")}

    # -------------------------------------------------------------------------------- persist
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self._write_meta(directory)
        state = {"plan": self._plan, "dtypes": self._dtypes, "model": self._model_dict}
        (directory / "copula.json").write_text(json.dumps(state, default=_jsonable))

    @classmethod
    def load(cls, directory: Path) -> "CopulaGenerator":
        from copulas.multivariate import GaussianMultivariate

        config, schema, _ = cls._read_meta(Path(directory))
        gen = cls(config)
        gen.schema = schema
        state = json.loads((Path(directory) / "copula.json").read_text())
        gen._plan, gen._dtypes, gen._model_dict = state["plan"], state["dtypes"], state["model"]
        gen._model = GaussianMultivariate.from_dict(gen._model_dict) if gen._model_dict else None
        return gen


def _datetime_form(entry: dict, dtype: str) -> DatetimeForm:
    if "datetime_form" in entry:
        return DatetimeForm.from_json(entry["datetime_form"])
    # models saved before the form was recorded
    if dtype.startswith("datetime64"):
        return DatetimeForm("datetime64", dtype)
    if entry.get("datetime_format"):
        return DatetimeForm("text", dtype)
    return DatetimeForm("datetime64", "datetime64[ns]")


# resolutions a datetime column is snapped back to, coarsest first (seconds)
_STEPS_SECONDS = (86_400.0, 3_600.0, 60.0, 1.0)


def _datetime_step(offsets: np.ndarray) -> float | None:
    """The coarsest of whole days, hours, minutes or seconds that every offset from the minimum is a
    multiple of; None for finer data (left as sampled). Offsets are float seconds, so "a multiple"
    allows a microsecond of float error."""
    for step in _STEPS_SECONDS:
        if len(offsets) and np.all(np.abs(offsets / step - np.rint(offsets / step)) * step < 1e-6):
            return step
    return None


def _restore_dtypes(frame: pd.DataFrame, plan: list[dict], dtypes: dict[str, str]) -> pd.DataFrame:
    """Give every column the dtype (and, for datetimes, the form) it had in the training table."""
    for entry in plan:
        name, dtype = entry["name"], dtypes[entry["name"]]
        col = frame[name]
        if entry["kind"] == ColumnKind.DATETIME.value:
            form = _datetime_form(entry, dtype)
            restored = seconds_to_datetime_like(col.to_numpy(dtype=float), form, entry.get("datetime_format"))
            restored.index = frame.index
            frame[name] = restored
        elif dtype == "category":
            values = col.astype(object).where(col.notna(), None)
            if "dtype_categories" in entry:
                frame[name] = pd.Categorical(values, categories=entry["dtype_categories"],
                                             ordered=entry.get("dtype_ordered", False))
            else:
                frame[name] = values.astype("category")
        elif dtype == "object":
            frame[name] = col.astype(object)
        elif dtype.startswith("string"):
            frame[name] = col.astype(object).where(col.notna(), None).astype(dtype)
        elif dtype == "bool":
            frame[name] = col.astype(object).map(lambda v: bool(v) if v is not None else None)
            if frame[name].notna().all():
                frame[name] = frame[name].astype(bool)
        elif dtype.startswith("int") and col.isna().any():
            frame[name] = col.astype(float)
        elif entry["kind"] == ColumnKind.INTEGER.value:
            frame[name] = pd.Series(clip_to_integer_dtype(col.to_numpy(), dtype), index=frame.index).astype(dtype)
        else:
            frame[name] = col.astype(dtype)
    return frame


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    return v
