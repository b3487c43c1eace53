"""Schema expectations and canonical labels: types and ranges the range checks alone let through.

* A boolean column written as 1/0 (or "true"/"0") is the same column: its copied rows still
  hash equal to the training rows, and the schema check refuses non-boolean values (the
  in-set check alone accepts 1 and 0, since 1 == True).
* An integer column must hold whole numbers, whatever its storage (int64, float64 with NaN for
  nulls, Int64); a datetime column must stay inside the profiled range, whatever its form.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from validation.columns import category_labels, prepare_tables, row_keys
from validation.expectations import run_expectations
from validation.gate import run_gate
from validation.profile import profile_table
from validation.schema import ColumnKind
from validation.split import split_train_holdout


def failing(ge: dict) -> set[tuple[str, str]]:
    """(expectation type, column) of every failed expectation."""
    out = set()
    for r in ge["results"]:
        if not r["success"]:
            cfg = r["expectation_config"]
            out.add((cfg["type"], cfg["kwargs"].get("column", "table")))
    return out


def people(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": np.round(rng.lognormal(10, 1, n), 2),
        "city": rng.choice(["A", "B", "C", "D"], n),
        "smoker": rng.choice([True, False], n),
    })


# ------------------------------------------------------------------------------------------------
# Bug 2: booleans written as 0/1
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelled", [
    [1, 0, 1],
    [1.0, 0.0, np.nan],
    ["1", "0", None],
    ["true", "FALSE", "True"],
    [np.True_, np.False_, None],
])
def test_boolean_spellings_share_the_codes_of_true_and_false(spelled):
    df = pd.DataFrame({"flag": [True, False, True]})
    schema = profile_table(df, "t")
    assert schema.column("flag").kind == ColumnKind.BOOLEAN
    other = pd.DataFrame({"flag": pd.Series(spelled, dtype=object if isinstance(spelled[0], str) else None)})
    prep = prepare_tables({"train": df, "holdout": df, "synthetic": other}, schema)
    levels = prep.cat_levels[0]
    assert set(levels) - {None} == {"True", "False"}
    codes = prep.cat["synthetic"][:, 0]
    expected = ["True", "False", "True" if spelled[2] in (1, "True") else None]
    assert [levels[c] for c in codes] == expected


def test_boolean_labels_only_for_boolean_columns():
    """A categorical column keeps "1" and "true" apart: only a boolean column folds spellings."""
    s = pd.Series(["1", "true", "TRUE", "yes", None], dtype=object)
    assert list(category_labels(s)) == ["1", "true", "TRUE", "yes", None]
    assert list(category_labels(s, ColumnKind.BOOLEAN)) == ["True", "True", "True", "yes", None]


def test_copied_rows_with_a_boolean_written_as_0_1_still_match():
    df = people(1000)
    schema = profile_table(df, "t")
    train, holdout = split_train_holdout(df, 0.2, 0)
    fresh = people(400, seed=9)
    copies = train.sample(40, random_state=1)
    synthetic = pd.concat([fresh, copies], ignore_index=True)
    as_ints = synthetic.assign(smoker=synthetic["smoker"].astype("int64"))
    tables = {"train": train, "holdout": holdout}
    keys_bool = row_keys(prepare_tables(tables | {"synthetic": synthetic}, schema), "synthetic")
    keys_int = row_keys(prepare_tables(tables | {"synthetic": as_ints}, schema), "synthetic")
    np.testing.assert_array_equal(keys_bool, keys_int)
    r_bool = run_gate(train, holdout, synthetic, schema)
    r_int = run_gate(train, holdout, as_ints, schema)
    assert r_bool.metrics["identical_match_share"] > 0
    assert r_int.metrics["identical_match_share"] == r_bool.metrics["identical_match_share"]
    assert "identical_match_share" in {c.name for c in r_int.failures}


@pytest.mark.parametrize("values", [
    pd.Series([1, 0, 1, 0]),
    pd.Series([1.0, 0.0, np.nan, 1.0]),
    pd.Series([True, 1, False, 0], dtype=object),
    pd.Series(["True", "False", "True", "False"], dtype=object),
])
def test_boolean_column_refuses_values_that_are_not_booleans(values):
    df = pd.DataFrame({"flag": [True, False, None, True] * 20}, dtype=object)
    schema = profile_table(df, "t")
    assert schema.column("flag").arrow_type == "bool"
    ge = run_expectations(pd.DataFrame({"flag": values}), schema)
    assert ("expect_column_values_to_be_in_type_list", "flag") in failing(ge)


@pytest.mark.parametrize("values", [
    pd.Series([True, False, True, True]),
    pd.Series([True, None, False, True], dtype=object),
    pd.Series([np.True_, None, np.False_, np.True_], dtype=object),
    pd.Series([True, None, False, True], dtype="boolean"),
])
def test_boolean_column_accepts_booleans_in_every_storage(values):
    df = pd.DataFrame({"flag": [True, False, None, True] * 20}, dtype=object)
    schema = profile_table(df, "t")
    ge = run_expectations(pd.DataFrame({"flag": values}), schema)
    assert ge["success"], failing(ge)


def test_column_declared_boolean_over_integers_keeps_its_values():
    """A schema file may call a 0/1 integer column boolean: its release holds 0 and 1."""
    df = pd.DataFrame({"flag": [0, 1, 1, 0] * 20})
    schema = profile_table(df, "t")
    col = schema.column("flag").model_copy(update={"kind": ColumnKind.BOOLEAN})
    schema = schema.model_copy(update={"columns": [col]})
    assert run_expectations(df, schema)["success"]


# ------------------------------------------------------------------------------------------------
# Bug 10: integer columns with fractions, datetimes outside the real range
# ------------------------------------------------------------------------------------------------
def test_integer_column_refuses_fractional_values():
    df = people()
    schema = profile_table(df, "t")
    bad = df.assign(age=np.minimum(df["age"] + 0.5, schema.column("age").max))
    assert ("expect_column_values_to_be_integral", "age") in failing(run_expectations(bad, schema))
    one = df.assign(age=df["age"].astype("float64"))
    one.loc[3, "age"] = 40.25
    ge = run_expectations(one, schema)
    assert ("expect_column_values_to_be_integral", "age") in failing(ge)
    assert [r["result"]["unexpected_count"] for r in ge["results"] if not r["success"]] == [1]


@pytest.mark.parametrize("storage", ["int64", "float64 with nulls", "Int64", "object"])
def test_integer_column_of_whole_numbers_passes_in_every_storage(storage):
    df = pd.DataFrame({"n": pd.array([None, 5, 7, 3] * 20, dtype="Int64")})
    # an int64 source with nulls: Arrow -> pandas gives float64, the profile knows int64
    schema = profile_table(df.astype("float64"), "t", pa.Table.from_pandas(df, preserve_index=False).schema)
    assert schema.column("n").kind == ColumnKind.INTEGER
    values = {
        "int64": pd.Series([5, 5, 7, 3]),
        "float64 with nulls": pd.Series([5.0, np.nan, 7.0, 3.0]),
        "Int64": pd.Series([5, None, 7, 3], dtype="Int64"),
        "object": pd.Series([5, None, 7.0, 3], dtype=object),
    }[storage]
    ge = run_expectations(pd.DataFrame({"n": values}), schema)
    assert ge["success"], failing(ge)


def test_float_column_of_whole_numbers_passes():
    df = pd.DataFrame({"x": [1.5, 2.25, 3.0, 4.0] * 20})
    schema = profile_table(df, "t")
    assert schema.column("x").kind == ColumnKind.FLOAT
    ge = run_expectations(pd.DataFrame({"x": [2.0, 3.0, 4.0]}), schema)
    assert ge["success"], failing(ge)


def test_the_review_repro_fails_on_both_counts():
    """The reviewer's table: x.5 ages and one datetime in 2262 passed the gate."""
    df = people()
    df["when"] = pd.date_range("2020-01-01", periods=600, freq="h")
    schema = profile_table(df, "t")
    train, holdout = split_train_holdout(df, 0.2, 0)
    syn = people(400, seed=9)
    syn["when"] = pd.date_range("2020-01-01", periods=400, freq="90min")
    inc = schema.column("income")
    syn = syn[(syn.income >= inc.min) & (syn.income <= inc.max)].reset_index(drop=True)
    assert run_gate(train, holdout, syn, schema).passed
    bad = syn.assign(age=np.minimum(syn.age + 0.5, schema.column("age").max))
    bad.loc[0, "when"] = pd.Timestamp("2262-01-01")
    result = run_gate(train, holdout, bad, schema)
    names = {c.name for c in result.failures}
    assert {"column_values_to_be_integral [age]", "column_values_to_be_between [when]"} <= names


def _datetime_forms() -> dict[str, tuple[pd.Series, callable]]:
    """Real columns in every form, each with a function that writes a datetime in that form."""
    stamps = pd.date_range("2021-03-01 06:00", periods=80, freq="7h")
    return {
        "naive ns": (pd.Series(stamps), lambda d: pd.Timestamp(d)),
        "tz-aware us": (pd.Series(stamps.tz_localize("UTC").tz_convert("America/New_York")).astype(
                            "datetime64[us, America/New_York]"),
                        lambda d: pd.Timestamp(d).tz_localize("UTC").tz_convert("America/New_York")),
        "UTC seconds": (pd.Series(stamps.tz_localize("UTC")).astype("datetime64[s, UTC]"),
                        lambda d: pd.Timestamp(d).tz_localize("UTC")),
        "dates": (pd.Series([d.date() for d in stamps], dtype=object), lambda d: d.date()),
        "text": (pd.Series(stamps.strftime("%Y-%m-%d %H:%M"), dtype=object), lambda d: d.strftime("%Y-%m-%d %H:%M")),
        "text with an offset": (pd.Series(stamps.strftime("%Y-%m-%dT%H:%M:%S+02:00"), dtype=object),
                                lambda d: d.strftime("%Y-%m-%dT%H:%M:%S+02:00")),
        "iso text in UTC": (pd.Series(stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), dtype=object),
                            lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    }


@pytest.mark.parametrize("form", list(_datetime_forms()))
def test_datetime_column_must_stay_in_the_real_range(form):
    real, write = _datetime_forms()[form]
    schema = profile_table(pd.DataFrame({"when": real}), "t")
    col = schema.column("when")
    assert col.kind == ColumnKind.DATETIME and col.min is not None
    ok = real.iloc[::-1].reset_index(drop=True)  # the real values, in any order: in range
    ge = run_expectations(pd.DataFrame({"when": ok}), schema)
    assert ge["success"], (failing(ge), col.min, col.max)
    for outside in (dt.datetime(2262, 1, 1), dt.datetime(1999, 1, 1), dt.datetime(2021, 4, 30)):
        bad = ok.copy()
        bad.iloc[5] = write(outside)
        ge = run_expectations(pd.DataFrame({"when": bad.astype(real.dtype)}), schema)
        assert failing(ge) == {("expect_column_values_to_be_between", "when")}, (form, outside)


def test_datetime_range_reaches_sentinels_and_fractions_and_reports_text_that_is_no_date():
    real = pd.Series(["2020-01-01T00:00:00", "2020-06-01T12:00:00", "9999-12-31T00:00:00", None] * 20, dtype=object)
    schema = profile_table(pd.DataFrame({"when": real}), "t")
    assert schema.column("when").max.startswith("9999-12-31")
    synth = pd.Series(["9999-12-31T00:00:00", "2020-01-01T00:00:00", None], dtype=object)
    assert run_expectations(pd.DataFrame({"when": synth}), schema)["success"]
    garbage = synth.copy()
    garbage.iloc[2] = "not a date"
    assert failing(run_expectations(pd.DataFrame({"when": garbage}), schema)) == {
        ("expect_column_values_to_be_between", "when")
    }
    # the profile writes whole seconds: a real maximum of 12:00:00.5 is still in range
    frac = pd.Series(pd.to_datetime(["2020-01-01 00:00:00", "2020-01-01 12:00:00.5"] * 20, format="ISO8601"))
    schema = profile_table(pd.DataFrame({"when": frac}), "t")
    assert run_expectations(pd.DataFrame({"when": frac}), schema)["success"]


def test_copula_outputs_pass_the_new_checks():
    """The pipeline's own output (booleans with and without nulls, integers with nulls,
    datetimes as tz-aware datetime64, dates and text) passes the type and range checks."""
    from generators.registry import make_generator
    from validation.protect import training_view

    rng = np.random.default_rng(0)
    n = 800
    stamps = pd.Timestamp("2021-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 3e7, n), unit="s")
    df = pd.DataFrame({
        "flag": rng.choice([True, False], n),
        "maybe": pd.Series(rng.choice([True, False], n), dtype=object).where(rng.random(n) > 0.1, None),
        "count": pd.Series(rng.integers(0, 50, n), dtype="float64").where(rng.random(n) > 0.1, np.nan),
        "age": rng.integers(18, 90, n),
        "at": stamps,
        "day": pd.Series([t.date() for t in stamps], dtype=object),
        "text": pd.Series(stamps.strftime("%Y-%m-%d %H:%M:%S"), dtype=object),
    })
    # "count" is an int64 source column with nulls, which Arrow -> pandas gives as float64
    arrow = pa.Table.from_pandas(df.assign(count=df["count"].astype("Int64")), preserve_index=False)
    schema = profile_table(df, "t", arrow.schema)
    assert {c.name: c.kind for c in schema.columns} == {
        "flag": ColumnKind.BOOLEAN, "maybe": ColumnKind.BOOLEAN, "count": ColumnKind.INTEGER,
        "age": ColumnKind.INTEGER, "at": ColumnKind.DATETIME, "day": ColumnKind.DATETIME,
        "text": ColumnKind.DATETIME,
    }
    train, _ = split_train_holdout(df, 0.2, 0)
    synthetic = make_generator("copula", seed=1).fit(training_view(train, schema), schema).sample(600, seed=2)
    ge = run_expectations(synthetic, schema)
    assert ge["success"], failing(ge)
    types = {(r["expectation_config"]["type"], r["expectation_config"]["kwargs"]["column"])
             for r in ge["results"] if "column" in r["expectation_config"]["kwargs"]}
    assert {("expect_column_values_to_be_in_type_list", "flag"), ("expect_column_values_to_be_in_type_list", "maybe"),
            ("expect_column_values_to_be_integral", "count"), ("expect_column_values_to_be_integral", "age"),
            ("expect_column_values_to_be_between", "at"), ("expect_column_values_to_be_between", "day"),
            ("expect_column_values_to_be_between", "text")} <= types
