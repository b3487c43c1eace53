"""Pre-training protections on the column forms real sources give: pandas categories, date
objects, text dates, year-9999 sentinels; and the protected schema the release publishes."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from validation.profile import profile_table
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
