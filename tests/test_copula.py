"""The copula baseline: dtypes, ranges, seeds, and JSON-only persistence."""
from __future__ import annotations

import pandas as pd
import pytest

from generators.copula import CopulaGenerator
from generators.registry import load_generator, make_generator
from tests.tables import real_table
from validation.errors import ConfigError
from validation.protect import training_view


@pytest.fixture(scope="module")
def weather():
    df, schema = real_table("weather", rows=3000)
    return training_view(df, schema), schema


def _fit(df: pd.DataFrame, **options) -> CopulaGenerator:
    from validation.profile import profile_table

    return make_generator("copula", options).fit(df, profile_table(df, "t"))


def test_sample_has_source_dtypes_ranges_and_nulls(weather):
    train, schema = weather
    gen = CopulaGenerator().fit(train, schema)
    out = gen.sample(2000, seed=1)
    assert list(out.columns) == list(train.columns)
    for col in train.columns:
        assert out[col].dtype == train[col].dtype, col
    assert set(out["origin"]) <= set(train["origin"])
    assert out["temp"].between(train["temp"].min(), train["temp"].max()).all()
    assert out["wind_gust"].isna().mean() == pytest.approx(train["wind_gust"].isna().mean(), abs=0.05)
    assert (out["month"] == out["month"].round()).all()


def test_seeded_and_save_load_identical(weather, tmp_path):
    train, schema = weather
    gen = make_generator("copula", seed=3).fit(train, schema)
    a, b = gen.sample(500, seed=7), gen.sample(500, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not gen.sample(500, seed=8).equals(a)
    gen.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["copula.json", "generator.json"]
    pd.testing.assert_frame_equal(load_generator(tmp_path / "m").sample(500, seed=7), a)


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="copula, vae, gan, diffusion, llm"):
        make_generator("bayesnet")
    with pytest.raises(ConfigError, match="invalid options"):
        make_generator("copula", {"distribution": 3, "nope": 1})


def test_dates_as_text_and_as_dates_keep_their_form():
    import datetime as dt

    import numpy as np

    from validation.profile import profile_table

    n = 300
    days = pd.date_range("2021-03-01", periods=n, freq="D")
    ends = pd.Series(days).astype("datetime64[us]")
    ends.iloc[0] = pd.Timestamp("9999-12-31")  # an open-end sentinel beyond datetime64[ns]
    df = pd.DataFrame(
        {
            "as_text": days.strftime("%d/%m/%Y"),
            "as_date": [d.date() for d in days],
            "as_utc": pd.Series(days).dt.tz_localize("UTC"),
            "ends": ends,
            "city": pd.Categorical(np.resize(["oslo", "rome", "paris"], n), categories=["rome", "oslo", "paris", "nice"]),
            "v": np.arange(n, dtype=float),
        }
    )
    schema = profile_table(df, "dates")
    out = CopulaGenerator().fit(df, schema).sample(200, seed=0)
    for col in df.columns:
        assert out[col].dtype == df[col].dtype, col
    parsed = pd.to_datetime(out["as_text"], format="%d/%m/%Y")
    assert parsed.between(days.min(), days.max()).all()
    # pd.Timestamp subclasses datetime.date: check the exact type
    assert all(type(v) is dt.date for v in out["as_date"])
    assert out["as_date"].map(lambda d: days.min().date() <= d <= days.max().date()).all()
    assert str(out["as_utc"].dtype) == "datetime64[ns, UTC]"
    assert out["ends"].between(ends.min(), ends.max()).all()
    # the category column keeps its own categories, in their order
    assert list(out["city"].cat.categories) == ["rome", "oslo", "paris", "nice"]
    assert set(out["city"].dropna()) <= {"oslo", "rome", "paris"}


def test_datetimes_keep_the_source_resolution(weather):
    train, schema = weather
    out = CopulaGenerator().fit(train, schema).sample(500, seed=0)
    stamps = out["time_hour"]
    assert ((stamps.dt.minute == 0) & (stamps.dt.second == 0)).all()  # hourly observations
    assert stamps.between(train["time_hour"].min(), train["time_hour"].max()).all()


def test_rounding_and_integer_edges_stay_in_range():
    import numpy as np

    rng = np.random.default_rng(0)
    ratio = rng.integers(1, 3, 3000) / 3 * rng.integers(1, 2000, 3000) / 1999.0  # more than 10 decimals
    big = rng.integers(0, 1000, 3000).astype(np.int64)
    big[0] = np.iinfo(np.int64).max
    df = pd.DataFrame({"ratio": ratio, "big": big})
    out = _fit(df).sample(3000, seed=0)
    assert out["ratio"].between(ratio.min(), ratio.max()).all()
    assert out["big"].dtype == np.int64 and out["big"].min() >= 0


def test_infinite_values_are_refused():
    import numpy as np
    from validation.errors import InputError

    df = pd.DataFrame({"x": [1.0, 2.0, -np.inf, 4.0] * 10, "y": range(40)})
    with pytest.raises(InputError, match="infinite"):
        _fit(df)


def test_a_source_column_named_like_a_null_flag_does_not_replace_it(tmp_path):
    """The model's columns are named by position: a source column ``wind#null`` overwrote the null
    flag of ``wind``, whose nulls were then lost."""
    import numpy as np

    rng = np.random.default_rng(0)
    wind = rng.gamma(2.0, 2.0, 2000)
    df = pd.DataFrame({"wind": np.where(np.arange(2000) % 9 == 0, np.nan, wind), "wind#null": wind * 2})
    gen = _fit(df)
    gen.save(tmp_path)
    for model in (gen, CopulaGenerator.load(tmp_path)):
        out = model.sample(2000, seed=0)
        assert 0.08 < out["wind"].isna().mean() < 0.14 and out["wind#null"].notna().all()
        assert out["wind#null"].min() >= df["wind#null"].min()


def test_zero_rows_and_extreme_magnitudes(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    empty = _fit(pd.DataFrame({"x": rng.normal(size=100), "c": rng.choice(["a", "b"], 100)})).sample(0)
    assert len(empty) == 0 and empty["x"].dtype == "float64"
    near_max = pd.DataFrame({"t": np.r_[rng.uniform(-1.7, 1.7, 400) * 1e308, [np.nan] * 100]})
    out = _fit(near_max).sample(500, seed=2)  # the mean of such values overflows: nulls are filled after scaling
    assert out["t"].notna().mean() == pytest.approx(0.8, abs=0.06) and out["t"].abs().max() <= 1.7e308
    for magnitude in (1e-300, 1e-12, 1e300):  # the beta fit failed on the first and last (all nulls)
        real = pd.DataFrame({"t": rng.uniform(1, 9, 500) * magnitude})
        gen = _fit(real)
        out = gen.sample(300, seed=3)
        assert out["t"].notna().all() and out["t"].between(real["t"].min(), real["t"].max()).all()
        assert out["t"].nunique() > 250, magnitude  # 1e-12 was rounded to 10 decimals: one value
        gen.save(tmp_path / str(magnitude))
        pd.testing.assert_frame_equal(load_generator(tmp_path / str(magnitude)).sample(300, seed=3), out)


def test_a_category_spelled_like_the_null_marker_stays_a_value():
    import numpy as np

    rng = np.random.default_rng(0)
    real = pd.DataFrame({"c": rng.choice(["__null__", "A"], 400), "d": rng.choice(["x", None, "y"], 400)})
    out = _fit(real).sample(2000, seed=1)
    assert out["c"].notna().all() and set(out["c"]) == {"__null__", "A"}
    assert out["d"].isna().mean() == pytest.approx(real["d"].isna().mean(), abs=0.05)


def test_an_unknown_marginal_is_a_config_error():
    with pytest.raises(ConfigError, match="distribution"):
        make_generator("copula", {"distribution": "Beta"})


def test_nulls_of_a_numeric_column_do_not_distort_its_values():
    """Nulls are filled with the mean before the fit (as SDV does); filled with the minimum they
    moved the mean of x by 10 and erased its correlation with y."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.normal(50, 5, 2000)
    x = np.where(rng.uniform(size=2000) < 0.6, np.nan, y + rng.normal(0, 1, 2000))
    out = _fit(pd.DataFrame({"x": x, "y": y})).sample(4000, seed=1)
    present = out.dropna()
    assert present["x"].mean() == pytest.approx(np.nanmean(x), abs=1.5)
    assert present["x"].corr(present["y"]) > 0.5
    assert out["x"].isna().mean() == pytest.approx(0.6, abs=0.05)
