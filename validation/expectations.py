"""Schema expectations: a Great Expectations suite generated from the profile, run on a table."""
from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import pandas as pd

from validation.schema import ColumnKind, TableSchema

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def build_suite(schema: TableSchema, expected_rows: int | None = None):
    """One expectation per schema fact: column order, nullability, ranges, category sets, keys."""
    import great_expectations as gx

    E = gx.expectations
    suite = gx.ExpectationSuite(name=f"{schema.name}-schema")
    released = schema.released_columns
    suite.add_expectation(E.ExpectTableColumnsToMatchOrderedList(column_list=[c.name for c in released]))
    if expected_rows is not None:
        suite.add_expectation(E.ExpectTableRowCountToEqual(value=expected_rows))
    for col in released:
        if col.is_all_null:
            suite.add_expectation(E.ExpectColumnValuesToBeNull(column=col.name))
            continue
        if not col.nullable:
            suite.add_expectation(E.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT) and col.min is not None:
            suite.add_expectation(
                E.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min, max_value=col.max)
            )
        if col.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN) and col.modeled and col.categories:
            suite.add_expectation(E.ExpectColumnValuesToBeInSet(column=col.name, value_set=col.category_values))
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
    result = batch_def.get_batch(batch_parameters={"dataframe": table}).validate(
        suite, result_format="SUMMARY"
    )
    return result.to_json_dict()
