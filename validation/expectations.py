"""Schema expectations: a Great Expectations suite generated from the profile, run on a table."""
from __future__ import annotations

import functools
import logging
import os
import uuid
from typing import Any

import numpy as np
import pandas as pd

from validation.columns import datetime_seconds, datetime_values
from validation.schema import ColumnKind, TableSchema

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def build_suite(schema: TableSchema, expected_rows: int | None = None):
    """One expectation per schema fact: column order, nullability, types, ranges, category sets,
    keys. Datetime ranges are in seconds since the epoch: :func:`run_expectations` validates
    datetime columns in that form (see :func:`_datetimes_as_seconds`)."""
    import great_expectations as gx

    E = gx.expectations
    suite = gx.ExpectationSuite(name=f"{schema.name}-schema")
    released = schema.released_columns
    datetime_ranges = _datetime_ranges(schema)
    suite.add_expectation(E.ExpectTableColumnsToMatchOrderedList(column_list=[c.name for c in released]))
    if expected_rows is not None:
        suite.add_expectation(E.ExpectTableRowCountToEqual(value=expected_rows))
    for col in released:
        if col.is_all_null:
            suite.add_expectation(E.ExpectColumnValuesToBeNull(column=col.name))
            continue
        if not col.nullable:
            suite.add_expectation(E.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.kind == ColumnKind.INTEGER:
            # the range check alone lets 41.5 through; integer columns with nulls arrive as
            # float64, so the check is on the values, not the dtype
            suite.add_expectation(_integral_expectation()(column=col.name))
        if col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT) and col.min is not None:
            suite.add_expectation(
                E.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min, max_value=col.max)
            )
        if col.name in datetime_ranges:
            lo, hi = datetime_ranges[col.name]
            suite.add_expectation(
                E.ExpectColumnValuesToBeBetween(
                    column=col.name, min_value=lo, max_value=hi,
                    meta={"min": col.min, "max": col.max, "values": "seconds since the epoch (UTC)"},
                )
            )
        if col.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN) and col.modeled and col.categories:
            suite.add_expectation(E.ExpectColumnValuesToBeInSet(column=col.name, value_set=col.category_values))
        if col.kind == ColumnKind.BOOLEAN and col.modeled and col.arrow_type == "bool":
            # The in-set check accepts 1 and 0 (1 == True); a boolean source column must come
            # back as booleans. Python bools and numpy bool_ (object columns with nulls), bool
            # and pandas' nullable boolean dtypes pass. A column the schema file declared boolean
            # over another source type (0/1 integers, "Y"/"N") keeps its own values.
            suite.add_expectation(
                E.ExpectColumnValuesToBeInTypeList(column=col.name, type_list=["bool", "BooleanDtype"])
            )
        if col.kind == ColumnKind.KEY:
            suite.add_expectation(E.ExpectColumnValuesToBeUnique(column=col.name))
    return suite


def run_expectations(table: pd.DataFrame, schema: TableSchema, expected_rows: int | None = None) -> dict[str, Any]:
    """Validate ``table`` against the suite; returns GE's result as a JSON-able dict."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    try:
        context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    except Exception:  # older GE versions name this differently; bars are cosmetic
        pass
    name = f"t{uuid.uuid4().hex[:8]}"
    batch_def = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(name)
    )
    suite = context.suites.add(build_suite(schema, expected_rows))
    table = _datetimes_as_seconds(table, schema)
    result = batch_def.get_batch(batch_parameters={"dataframe": table}).validate(
        suite, result_format="SUMMARY"
    )
    return result.to_json_dict()


def _datetime_ranges(schema: TableSchema) -> dict[str, tuple[float, float]]:
    """``(min, max)`` in seconds since the epoch of every range-checked datetime column.

    Those are the released, modeled ones with a profiled range (a column the schema file had
    faked or regenerated holds no datetimes to compare). The profile writes ISO text cut to
    whole seconds (naive wall time, or UTC with ``+00:00``, as
    :func:`validation.columns.datetime_ticks` reads the column), so the upper bound is one second
    later: a real maximum of 12:00:00.5 is written 12:00:00.
    """
    out = {}
    for col in schema.released_columns:
        if col.kind != ColumnKind.DATETIME or not col.modeled or col.min is None or col.max is None:
            continue
        lo, hi = (float(datetime_seconds(pd.Series([str(v)], dtype=object))[0]) for v in (col.min, col.max))
        if not (np.isnan(lo) or np.isnan(hi)):
            out[col.name] = (lo, hi + 1.0)
    return out


def _datetimes_as_seconds(table: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """``table`` with each range-checked datetime column as float seconds since the epoch.

    Great Expectations cannot compare the forms a datetime column comes in (datetime64 of any
    unit and tz, dates, text in the profiled format, years past 2262) with one bound; seconds
    compare for all of them. Nulls stay NaN; a value that reads as no datetime becomes +inf, so
    the range check reports it instead of it passing as a null.
    """
    names = [n for n in _datetime_ranges(schema) if n in table.columns]
    if not names or not table.columns.is_unique:
        return table
    out = table.copy(deep=False)
    for name in names:
        values = datetime_values(table[name], schema.column(name))
        values[np.isnan(values) & table[name].notna().to_numpy()] = np.inf
        out[name] = values
    return out


@functools.cache
def _integral_expectation():
    """``ExpectColumnValuesToBeIntegral``: every non-null value is a whole number, whatever the
    storage (int64, float64 with NaN for nulls, Int64, numbers as text). Great Expectations has
    no such check; defined on first use (and registered once) so that importing this module does
    not import Great Expectations."""
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.expectations.metrics.map_metric_provider import (
        ColumnMapMetricProvider,
        column_condition_partial,
    )

    class ColumnValuesIntegral(ColumnMapMetricProvider):
        condition_metric_name = "column_values.synthpipe_integral"

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            with np.errstate(invalid="ignore"):
                whole = np.isfinite(values) & (np.floor(values) == values)
            return pd.Series(whole, index=column.index)

    class ExpectColumnValuesToBeIntegral(ColumnMapExpectation):
        """Expect every non-null value of the column to be a whole number."""

        map_metric = "column_values.synthpipe_integral"

    return ExpectColumnValuesToBeIntegral
