"""Pre-training protections on the column forms real sources give: pandas categories, date
objects, text dates, year-9999 sentinels; and the protected schema the release publishes."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from validation.expectations import build_suite, run_expectations
from validation.profile import profile_table
from validation.schema import ColumnKind
from validation.suppression import SuppressionConfig, suppress, suppressed_schema

RARE = "liechtenstein"  # one row in the train split
HOLDOUT_ONLY = "san marino"  # one row, in the holdout only


def _table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "rome", "oslo"], n).astype(object)
    city[0] = RARE
    city[-1] = HOLDOUT_ONLY
    days = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")
    stamps = pd.Series(days + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")).astype("datetime64[us]")
    stamps.iloc[1] = pd.Timestamp("9999-12-31")  # a "no end date" sentinel, beyond datetime64[ns]
    income = np.round(rng.lognormal(10, 1, n), 2)
    income[-1] = 1e9  # a holdout-only outlier
    return pd.DataFrame(
        {
            "city": city,
            "city_cat": pd.Categorical(city),
            "income": income,
            "ends": stamps,
            "born": [d.date() for d in days],  # Arrow date32 reads as datetime.date objects
            "seen": days.strftime("%d/%m/%Y"),  # text dates, day first
        }
    )


@pytest.fixture(scope="module")
def split():
    df = _table()
    schema = profile_table(df, "t")  # the raw profile of the whole table, both splits
    train = df.iloc[:-1].reset_index(drop=True)  # the last row is the holdout's
    return df, schema, train


def test_category_dtype_is_pooled_without_naming_the_rare_value(split):
    _, schema, train = split
    out, summary = suppress(train, schema, seed=0)
    assert isinstance(out["city_cat"].dtype, pd.CategoricalDtype)
    assert "__rare__" in out["city_cat"].cat.categories
    # neither the pooled value nor the value absent from this split stays in the dtype
    assert RARE not in out["city_cat"].cat.categories
    assert HOLDOUT_ONLY not in out["city_cat"].cat.categories
    assert (out["city_cat"].astype(object) == out["city"]).all()
    info = summary["rare_categories"]["city_cat"]
    assert info == summary["rare_categories"]["city"]  # unused categories are not counted
    assert info["categories_pooled"] == 1 and info["rows_pooled"] == 1


def test_one_row_category_appears_nowhere_in_the_protected_schema(split):
    df, schema, train = split
    assert RARE in schema.column("city").category_values  # the raw profile names it
    assert HOLDOUT_ONLY in schema.column("city_cat").category_values
    out, summary = suppress(train, schema, seed=0)
    protected = suppressed_schema(schema, summary, out)
    for name in ("city", "city_cat"):
        values = protected.column(name).category_values
        assert RARE not in values and HOLDOUT_ONLY not in values
        assert "__rare__" in values
        counts = {c.value: c.count for c in protected.column(name).categories}
        assert counts == out[name].value_counts().to_dict()
    assert RARE not in protected.model_dump_json() and HOLDOUT_ONLY not in protected.model_dump_json()


def test_categories_are_rebuilt_even_without_pooling(split):
    _, schema, train = split
    out, summary = suppress(train, schema, SuppressionConfig(pool_rare_categories=False), seed=0)
    protected = suppressed_schema(schema, summary, out)
    # the generator never saw the holdout-only value: the published list must not name it
    assert HOLDOUT_ONLY not in protected.column("city").category_values


def test_ranges_come_from_the_protected_train_split(split):
    df, schema, train = split
    assert schema.column("income").max == 1e9  # the holdout-only outlier
    out, summary = suppress(train, schema, seed=0)
    protected = suppressed_schema(schema, summary, out)
    assert protected.column("income").max < train["income"].max() < 1e9
    assert protected.column("income").max >= out["income"].max()
    assert protected.column("income").min <= out["income"].min()


def test_datetimes_are_clipped_in_every_form_and_keep_it(split):
    _, schema, train = split
    out, summary = suppress(train, schema, seed=0)
    assert summary["skipped"] == {}
    # datetime64[us] with a 9999-12-31 sentinel: clipped without overflow, same dtype
    assert out["ends"].dtype == train["ends"].dtype
    assert out["ends"].max() < pd.Timestamp("2024-01-01")
    assert out["ends"].max() in set(train["ends"])  # an order statistic, a real value
    # date objects stay date objects
    assert all(type(v) is dt.date for v in out["born"])
    assert min(out["born"]) > min(train["born"]) and max(out["born"]) < max(train["born"])
    # text keeps its day-first format
    parsed = pd.to_datetime(out["seen"], format="%d/%m/%Y")
    real = pd.to_datetime(train["seen"], format="%d/%m/%Y")
    assert parsed.min() > real.min() and parsed.max() < real.max()
    assert set(out["seen"]) <= set(train["seen"])
    for name in ("ends", "born", "seen"):
        info = summary["clipped"][name]
        assert info["rows_low"] >= 3 and info["rows_high"] >= 3
        pd.Timestamp(info["low"]), pd.Timestamp(info["high"])  # ISO text
    protected = suppressed_schema(schema, summary, out)
    assert protected.column("seen").max == summary["clipped"]["seen"]["high"]
    assert pd.Timestamp(protected.column("ends").max) < pd.Timestamp("2024-01-01")


def test_columns_that_cannot_be_clipped_are_recorded():
    n = 400
    df = pd.DataFrame({"when": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d")})
    schema = profile_table(df, "t")
    df.loc[5, "when"] = "not a date"
    out, summary = suppress(df, schema, seed=0)
    assert "when" in summary["skipped"] and "do not parse" in summary["skipped"]["when"]
    assert out.loc[5, "when"] == "not a date"
    assert "when" in summary["clipped"]  # the readable values are still clipped


def _int_codes(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Three frequent int codes and three rare ones, one row each."""
    codes = np.random.default_rng(seed).choice([10, 20, 30], n)
    rare = [4711, 4712, 4713]
    codes[[5, 50, 500]] = rare
    return codes, rare


def _as_categorical(schema, name: str):
    """``schema`` with column ``name`` made categorical (as a user's schema file can)."""
    columns = [c.model_copy(update={"kind": ColumnKind.CATEGORICAL}) if c.name == name else c for c in schema.columns]
    return schema.model_copy(update={"columns": columns})


def test_rare_int_categories_are_pooled_into_a_frequent_value_of_their_type():
    codes, rare = _int_codes()
    df = pd.DataFrame({"diag": pd.Categorical(codes), "code": codes})  # a category over ints; plain ints
    schema = _as_categorical(profile_table(df, "t"), "code")
    assert schema.column("diag").kind == ColumnKind.CATEGORICAL and not schema.column("diag").nullable
    out, summary = suppress(df, schema, seed=0)
    assert summary["skipped"] == {}
    for name in ("diag", "code"):
        assert not out[name].isin(rare).any() and out[name].notna().all()
        info = summary["rare_categories"][name]
        assert info == {"token": None, "pooled_into": "most frequent value", "categories_pooled": 3, "rows_pooled": 3}
        # the Arrow type is kept: int values, no string token
        assert pa.Array.from_pandas(out[name]).type == pa.Array.from_pandas(df[name]).type
    assert out["code"].dtype == np.int64
    assert set(out["diag"].cat.categories) == {10, 20, 30}
    # the pooled rows joined the most frequent code
    top = pd.Series(codes).value_counts().index[0]
    assert (out["code"] == top).sum() == (codes == top).sum() + 3
    protected = suppressed_schema(schema, summary, out)
    for name in ("diag", "code"):
        col = protected.column(name)
        assert set(col.category_values) == {10, 20, 30} and not col.nullable
        assert min(c.count for c in col.categories) >= summary["config"]["rare_k"]
    assert run_expectations(out, protected)["success"]  # also opens the GE context build_suite needs
    # nor does the published expectation suite name a rare code
    value_sets = [e.value_set for e in build_suite(protected).expectations if getattr(e, "value_set", None)]
    assert len(value_sets) == 2 and not {v for s in value_sets for v in s} & set(rare)


def test_rare_int_categories_become_null_where_the_column_has_nulls():
    codes, rare = _int_codes()
    with_nulls = pd.Series(codes, dtype="Int64").mask(np.arange(len(codes)) % 10 == 1)
    df = pd.DataFrame({"diag": pd.Categorical(with_nulls.astype(object).where(with_nulls.notna(), None))})
    df["code"] = with_nulls
    schema = _as_categorical(profile_table(df, "t"), "code")
    assert schema.column("code").nullable and schema.column("code").null_rate == pytest.approx(0.1)
    out, summary = suppress(df, schema, seed=0)
    protected = suppressed_schema(schema, summary, out)
    for name in ("diag", "code"):
        assert not out[name].isin(rare).any()
        assert out[name].isna().sum() == df[name].isna().sum() + 3  # null names nobody
        assert summary["rare_categories"][name]["pooled_into"] == "null"
        assert pa.Array.from_pandas(out[name]).type == pa.Array.from_pandas(df[name]).type
        col = protected.column(name)
        assert set(col.category_values) == {10, 20, 30} and col.nullable
        assert col.null_rate == pytest.approx(out[name].isna().mean())


def test_int_column_whose_every_value_is_rare_is_released_null():
    n = 400
    df = pd.DataFrame({"zip": np.repeat(np.arange(10_000, 10_000 + n // 2), 2), "v": np.arange(n, dtype=float)})
    schema = _as_categorical(profile_table(df, "t"), "zip")
    out, summary = suppress(df, schema, seed=0)
    # no frequent value to pool into, no null in the source: null all the same, keeping int64
    assert out["zip"].isna().all() and pa.Array.from_pandas(out["zip"]).type == pa.int64()
    assert summary["rare_categories"]["zip"]["pooled_into"] == "null"
    col = suppressed_schema(schema, summary, out).column("zip")
    assert col.categories == [] and col.nullable and col.is_all_null and not col.modeled


def test_date_values_in_a_categorical_column_are_an_input_error_naming_it(split):
    """Date objects cannot be category values (the schema file's check refuses such an override
    first); were they to reach the protected schema, one clear line, not a pydantic error."""
    from validation.errors import InputError

    _, schema, train = split
    schema = _as_categorical(schema, "born")
    out, summary = suppress(train, schema, SuppressionConfig(pool_rare_categories=False), seed=0)
    with pytest.raises(InputError, match=r"column 'born' holds date values, which cannot be categories") as info:
        suppressed_schema(schema, summary, out)
    assert "\n" not in str(info.value)
