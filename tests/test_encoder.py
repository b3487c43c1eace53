"""The shared tabular encoder: exact round trips on real tables, edge tables, the cardinality cap."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from generators.base import ProgressEvent
from generators.encoder import Span, TabularEncoder
from generators.training import seeded, shuffled_batches, train_epochs
from tests.tables import nycflights_dir, real_table
from validation.profile import profile_table
from validation.errors import InputError
from validation.schema import ColumnKind


def _roundtrip(df: pd.DataFrame, schema, **options) -> tuple[TabularEncoder, np.ndarray, pd.DataFrame]:
    enc = TabularEncoder(**options).fit(df, schema)
    matrix = enc.transform(df)
    return enc, matrix, enc.inverse_transform(matrix)


def _assert_spans_tile(enc: TabularEncoder) -> None:
    pos = 0
    for span in enc.spans:
        assert span.start == pos and span.end > span.start
        pos = span.end
    assert pos == enc.width


@pytest.mark.parametrize("name", ["planes", "weather"])
def test_roundtrip_is_exact_on_real_tables(name: str) -> None:
    df, schema = real_table(name, rows=4000 if name == "weather" else None)
    enc, matrix, out = _roundtrip(df, schema)
    modeled = [c.name for c in schema.modeled_columns]
    assert enc.columns == modeled
    assert matrix.dtype == np.float32 and matrix.shape == (len(df), enc.width)
    assert np.isfinite(matrix).all()
    _assert_spans_tile(enc)
    # same dtypes (incl. datetime64[s, UTC]), same nulls, same values, bit for bit
    pd.testing.assert_frame_equal(out, df[modeled].reset_index(drop=True), check_exact=True)


def test_roundtrip_exact_with_pandas_csv_dtypes() -> None:
    """read_csv gives datetimes as strings and int columns with nulls as float64."""
    df = pd.read_csv(nycflights_dir() / "weather.csv", nrows=3000)
    schema = profile_table(df, "weather")
    assert schema.column("time_hour").kind == ColumnKind.DATETIME
    assert schema.column("wind_dir").kind == ColumnKind.FLOAT and df["wind_dir"].isna().any()
    _, _, out = _roundtrip(df, schema)
    pd.testing.assert_frame_equal(out, df[out.columns.tolist()], check_exact=True)
    assert out["time_hour"].iloc[0] == "2013-01-01T06:00:00Z"


def test_roundtrip_exact_with_extension_dtypes() -> None:
    """Nullable Int64, string[pyarrow], category, nullable boolean, naive datetimes, dates."""
    planes, _ = real_table("planes", rows=600)
    df = pd.DataFrame({
        "year": planes["year"].astype("Int64"),
        "manufacturer": planes["manufacturer"].astype("string[pyarrow]"),
        "engine": planes["engine"].astype("category"),
        "turbo": planes["engine"].map({"Turbo-fan": True, "Turbo-jet": False}).astype("boolean"),
        "many_seats": planes["seats"] > 150,
        "built": pd.to_datetime(planes["year"].astype("Int64").astype(str).replace("<NA>", None), format="%Y"),
    })
    df["built_date"] = df["built"].dt.date.astype(object).where(df["built"].notna(), None)
    schema = profile_table(df, "planes_ext")
    enc, _, out = _roundtrip(df, schema)
    assert enc.columns == list(df.columns)
    pd.testing.assert_frame_equal(out, df, check_exact=True)


def test_decoding_any_matrix_respects_the_schema() -> None:
    df, schema = real_table("weather", rows=3000)
    enc = TabularEncoder().fit(df, schema)
    noise = np.random.default_rng(1).normal(0, 3, size=(2000, enc.width)).astype(np.float32)
    out = enc.inverse_transform(noise)
    for col in schema.modeled_columns:
        real, synth = df[col.name], out[col.name]
        assert synth.dtype == real.dtype
        if col.kind == ColumnKind.CATEGORICAL:
            assert set(synth.dropna()) <= set(real.dropna())
        elif col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT, ColumnKind.DATETIME):
            assert synth.min() >= real.min() and synth.max() <= real.max()
        if col.kind == ColumnKind.INTEGER:
            assert np.all(synth.dropna() == np.round(synth.dropna()))
        if col.kind == ColumnKind.FLOAT and col.decimals is not None:
            v = synth.dropna().to_numpy()
            assert np.allclose(v, np.round(v, col.decimals), rtol=0, atol=1e-9)
        if not real.isna().any():
            assert not synth.isna().any()
    # hourly timestamps stay on the hour
    assert (out["time_hour"].dt.minute == 0).all() and (out["time_hour"].dt.second == 0).all()


def test_null_indicator_is_a_two_wide_categorical_span() -> None:
    df, schema = real_table("planes")
    enc = TabularEncoder().fit(df, schema)
    speed = [s for s in enc.spans if s.column == "speed"]
    assert [s.kind for s in speed] == ["numeric", "categorical"]
    assert speed[1].width == 2
    matrix = enc.transform(df)
    block = matrix[:, speed[1].start:speed[1].end]
    assert np.array_equal(block.sum(axis=1), np.ones(len(df), np.float32))
    assert block[:, 1].sum() == df["speed"].isna().sum()
    assert isinstance(speed[0], Span) and speed[0].column == "speed"


@pytest.mark.parametrize(
    "columns",
    [
        ["temp", "humid", "precip", "wind_dir"],  # only numeric, with nulls
        ["origin"],  # single categorical column
        ["pressure"],  # single numeric column with nulls
        ["year", "origin"],  # a constant column
        ["wind_gust", "hour"],  # mostly null (about 80%)
        ["time_hour"],  # only a tz-aware datetime
    ],
)
def test_edge_tables_roundtrip(columns: list[str]) -> None:
    df, _ = real_table("weather", rows=1500)
    df = df[columns]
    schema = profile_table(df, "edge")
    enc, matrix, out = _roundtrip(df, schema)
    _assert_spans_tile(enc)
    pd.testing.assert_frame_equal(out, df.reset_index(drop=True), check_exact=True)


def test_only_categorical_and_nearly_all_null() -> None:
    planes, schema = real_table("planes")
    df = planes[["type", "manufacturer", "engine"]]
    _, _, out = _roundtrip(df, profile_table(df, "cats"))
    pd.testing.assert_frame_equal(out, df, check_exact=True)
    # speed is 99.3% null in planes; keep its 23 values among 400 rows
    df = planes.loc[planes["speed"].notna() | (planes.index < 400), ["speed", "engines"]].reset_index(drop=True)
    assert 0.9 < df["speed"].isna().mean() < 1
    _, matrix, out = _roundtrip(df, profile_table(df, "sparse"))
    pd.testing.assert_frame_equal(out, df, check_exact=True)
    # a train split that holds no value at all of a modeled column still encodes and decodes
    df = planes[["speed", "engines"]].iloc[:40].copy()
    df = df[df["speed"].isna()]
    schema = profile_table(planes[["speed", "engines"]], "full")
    enc, matrix, out = _roundtrip(df, schema)
    assert out["speed"].isna().all() and out["speed"].dtype == np.float64


def test_cardinality_cap_bounds_width_and_decodes_pooled_values() -> None:
    rng = np.random.default_rng(0)
    n = 120_000
    # 50,000 distinct values, Zipf-like frequencies: a few frequent, a long tail of singletons
    ids = np.minimum(rng.zipf(1.3, size=n), 10**9) % 50_000
    ids[:50_000] = np.arange(50_000)  # every value at least once
    df = pd.DataFrame({"code": pd.Series([f"c{i}" for i in ids], dtype=object), "x": rng.normal(size=n)})
    schema = profile_table(df, "wide")
    assert schema.column("code").kind == ColumnKind.CATEGORICAL
    enc = TabularEncoder(max_categories=200).fit(df, schema)
    assert enc.width == 200 + 1
    counts = df["code"].value_counts()
    cfg, _ = enc.state()
    code_cfg = cfg["columns"][0]
    assert code_cfg["values"] == counts.index[:199].tolist()
    assert min(code_cfg["pool_counts"]) >= 2  # singletons are never emitted from the pool
    matrix = enc.transform(df)
    out = enc.inverse_transform(matrix, seed=3)
    frequent = df["code"].isin(code_cfg["values"])
    assert (out["code"][frequent] == df["code"][frequent]).all()
    pooled_out = out["code"][~frequent]
    assert pooled_out.isin(set(code_cfg["pool_values"])).all()
    assert pooled_out.nunique() > 100  # drawn across the pool, not one fixed value
    assert out["code"].equals(enc.inverse_transform(matrix, seed=3)["code"])  # seeded
    assert not out["code"].equals(enc.inverse_transform(matrix, seed=4)["code"])


def test_state_roundtrip_through_json() -> None:
    df, schema = real_table("weather", rows=2000)
    enc = TabularEncoder(max_categories=5).fit(df, schema)
    config, arrays = enc.state()
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    again = TabularEncoder.from_state(json.loads(json.dumps(config)), arrays)
    assert again.spans == enc.spans and again.width == enc.width
    matrix = enc.transform(df)
    assert np.array_equal(again.transform(df), matrix)
    pd.testing.assert_frame_equal(again.inverse_transform(matrix, seed=1), enc.inverse_transform(matrix, seed=1))


def test_transform_of_unseen_rows() -> None:
    """Holdout rows: values outside the fitted range clamp, unseen categories pool."""
    df, schema = real_table("planes")
    enc = TabularEncoder().fit(df.iloc[:1000], schema)
    matrix = enc.transform(df.iloc[1000:])
    assert np.isfinite(matrix).all() and np.abs(matrix).max() < 5


def test_seeded_blocks_reproduce_and_restore_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    with seeded(7):
        a = torch.randn(5)
        perm_a = torch.cat(list(shuffled_batches(10, 4, torch.device("cpu"))))
    after = torch.rand(1)
    assert torch.equal(before, after)  # the caller's RNG stream is untouched
    with seeded(7):
        b = torch.randn(5)
        perm_b = torch.cat(list(shuffled_batches(10, 4, torch.device("cpu"))))
    assert torch.equal(a, b) and torch.equal(perm_a, perm_b)
    assert sorted(perm_a.tolist()) == list(range(10))


def test_train_epochs_reports_each_epoch() -> None:
    events: list[ProgressEvent] = []
    calls = []

    def step(batch: int) -> dict[str, torch.Tensor]:
        calls.append(batch)
        return {"loss": torch.tensor(float(batch))}

    history = train_epochs(3, lambda: [1, 3], step, events.append)
    assert [e.step for e in events] == [1, 2, 3] and all(e.total == 3 and e.stage == "fit" for e in events)
    assert history == [{"loss": 2.0}] * 3 and events[-1].metrics == {"loss": 2.0}
    assert len(calls) == 6


# --------------------------------------------------------------------------------------------
# datetimes in every stored form, year-9999 sentinels included (validation.columns helpers)
# --------------------------------------------------------------------------------------------
def _dated_table() -> pd.DataFrame:
    import datetime as dt

    days = pd.Series(pd.date_range("2020-01-01", periods=500, freq="D"))
    ends = (days + pd.Timedelta(hours=6)).astype("datetime64[us]")
    ends.iloc[:5] = pd.Timestamp("9999-12-31")  # "no end date" sentinels, beyond datetime64[ns]
    ends.iloc[5] = pd.NaT
    text = days.dt.strftime("%d/%m/%Y").astype(object)
    text.iloc[7] = "31/12/9999"
    text.iloc[8] = None
    born = [d.date() for d in days]
    born[9] = dt.date(9999, 12, 31)
    born[10] = None
    return pd.DataFrame({
        "ends": ends,
        "utc": (days + pd.Timedelta(minutes=30)).dt.tz_localize("UTC").astype("datetime64[s, UTC]"),
        "text": text,
        "born": pd.Series(born, dtype=object),
    })


def test_datetime_helpers_roundtrip_every_form_and_sentinel() -> None:
    from validation.columns import datetime_seconds, datetime_ticks, seconds_to_datetime_like, ticks_to_datetime_like

    df = _dated_table()
    sentinel = 253_402_214_400.0  # 9999-12-31 in seconds since the epoch
    formats = {"text": "%d/%m/%Y"}
    for name, s in df.items():
        fmt = formats.get(name)
        seconds = datetime_seconds(s, fmt)
        assert seconds.dtype == np.float64
        assert np.array_equal(np.isnan(seconds), s.isna().to_numpy()), name
        back = seconds_to_datetime_like(seconds, s, fmt)
        pd.testing.assert_series_equal(back, s, check_names=False, check_exact=True)
        ticks, null, unit = datetime_ticks(s, fmt)
        pd.testing.assert_series_equal(ticks_to_datetime_like(ticks, null, unit, s, fmt), s, check_names=False)
        if name != "utc":
            assert np.nanmax(seconds) == sentinel, name  # no wrap-around, no NaT
    # tz-aware values count from the epoch in UTC
    assert datetime_seconds(df["utc"])[0] == pd.Timestamp("2020-01-01T00:30Z").timestamp()
    assert datetime_seconds(df["text"], "%d/%m/%Y")[1] == pd.Timestamp("2020-01-02").timestamp()


def test_encoder_roundtrips_year_9999_sentinels_in_every_form() -> None:
    df = _dated_table()
    # profile without the text/date sentinels (the profile's own parsing is not under test here)
    plain = df.assign(text=df["text"].replace("31/12/9999", "01/01/2021"),
                      born=df["born"].where(df["born"] != df["born"].iloc[9], df["born"].iloc[0]))
    schema = profile_table(plain, "dated")
    assert all(schema.column(c).kind == ColumnKind.DATETIME for c in df.columns)
    _, matrix, out = _roundtrip(df, schema)
    assert np.isfinite(matrix).all()
    pd.testing.assert_frame_equal(out, df, check_exact=True)
    # decoding anything stays inside the fitted range, in the source form
    enc = TabularEncoder().fit(df, schema)
    noise = np.random.default_rng(0).normal(0, 3, size=(300, enc.width)).astype(np.float32)
    synth = enc.inverse_transform(noise)
    assert synth["ends"].dtype == df["ends"].dtype and synth["ends"].max() <= pd.Timestamp("9999-12-31")
    assert synth["born"].dropna().map(type).eq(type(df["born"].iloc[0])).all()
    assert pd.to_datetime(synth["text"].dropna().str.replace("9999", "2200"), format="%d/%m/%Y").notna().all()


def _decode_extremes(enc: TabularEncoder, df: pd.DataFrame, score: float) -> pd.DataFrame:
    """Decode ``df`` with every numeric dim set to ``score`` (far past the fitted range)."""
    matrix = enc.transform(df)
    for span in enc.spans:
        if span.kind == "numeric":
            matrix[:, span.start] = score
    return enc.inverse_transform(matrix)


def test_unused_categories_of_a_category_dtype_take_no_slot_and_keep_the_dtype() -> None:
    rng = np.random.default_rng(0)
    declared = [f"store {i}" for i in range(1500)]  # a column filtered from a larger table
    dtype = pd.CategoricalDtype(declared, ordered=True)
    df = pd.DataFrame({"store": pd.Series(rng.choice(declared[:20], 400)).astype(dtype), "x": rng.normal(size=400)})
    enc, _, out = _roundtrip(df, profile_table(df, "t"), max_categories=10)
    assert out["store"].dtype == dtype  # categories and order kept
    pd.testing.assert_series_equal(out["store"][out["store"].isin(enc.state()[0]["columns"][0]["values"])],
                                   df["store"][out["store"].isin(enc.state()[0]["columns"][0]["values"])])
    assert set(out["store"].astype(object)) <= set(declared[:20])  # never an unused category


def test_pooled_slot_never_emits_a_value_rarer_than_pool_min_count() -> None:
    df = pd.DataFrame({"town": [f"Town {i}" for i in range(300)] + ["Big"] * 50 + ["Mid"] * 20,
                       "x": np.arange(370.0)})
    enc = TabularEncoder(max_categories=3).fit(df, profile_table(df, "t"))
    cfg = enc.state()[0]["columns"][0]
    assert cfg["values"] == ["Big", "Mid"] and cfg["pool_values"] == ["Big", "Mid"]
    out = enc.inverse_transform(enc.transform(df), seed=1)
    assert set(out["town"]) == {"Big", "Mid"}  # the 300 singletons went to the pool and stay there


def test_decoded_values_stay_in_range_after_rounding_and_in_the_integer_dtype() -> None:
    rng = np.random.default_rng(0)
    ratio = rng.integers(1, 3, 3000) / 3 * rng.integers(1, 2000, 3000) / 1999.0  # more than 10 decimals
    big = rng.integers(0, 1000, 3000).astype(np.int64)
    big[0] = np.iinfo(np.int64).max  # float64(2**63 - 1) is 2**63, which an int64 cast wraps
    df = pd.DataFrame({"ratio": ratio, "big": big})
    enc = TabularEncoder().fit(df, profile_table(df, "t"))
    top = _decode_extremes(enc, df, 10.0)
    assert top["ratio"].max() <= ratio.max() and top["big"].min() > 0 and top["big"].dtype == np.int64
    assert _decode_extremes(enc, df, -10.0)["ratio"].min() >= ratio.min()


def test_datetime_column_empty_in_the_training_rows_decodes_to_nulls() -> None:
    t = pd.Series(pd.NaT, index=range(50), dtype="datetime64[s, UTC]")
    t[49] = pd.Timestamp("2020-01-01", tz="UTC")
    full = pd.DataFrame({"x": np.arange(50.0), "t": t})
    schema = profile_table(full, "full")  # the flow profiles the whole table, then trains on a split
    enc = TabularEncoder().fit(full.iloc[:-1], schema)
    out = enc.inverse_transform(enc.transform(full.iloc[:-1]))
    assert out["t"].isna().all() and out["t"].dtype == t.dtype


def test_infinite_values_are_refused_with_one_clear_message() -> None:
    x = np.arange(50.0)
    x[3] = np.inf
    df = pd.DataFrame({"x": x, "y": np.arange(50)})
    with pytest.raises(InputError, match=r"column 'x' holds 1 infinite value"):
        TabularEncoder().fit(df, profile_table(df, "t"))


def test_iso_text_timestamps_roundtrip_exactly_in_their_detected_format() -> None:
    """Fractions of seconds, Z and literal offsets, with 9999 sentinels: written back as read.

    No sentinel next to microseconds: 8,000 years of microseconds exceed float64's 2**53, so the
    encoder cannot keep both (as for a datetime64[us] column; not a matter of the format)."""
    from tests.test_profile import ISO_STAMPS, iso_stamp_table

    df = iso_stamp_table(sentinels=False)
    schema = profile_table(df, "stamps")
    assert all(schema.column(c).kind == ColumnKind.DATETIME for c in ISO_STAMPS)
    enc, _, out = _roundtrip(df, schema)
    pd.testing.assert_frame_equal(out, df, check_exact=True)
    # decoding anything writes the same layout (same width, same literal ending)
    synth = enc.inverse_transform(np.random.default_rng(0).normal(0, 3, size=(200, enc.width)).astype(np.float32))
    for name in ISO_STAMPS:
        assert synth[name].str.len().eq(len(df[name].iloc[1])).all(), name
        assert synth[name].str[-3:].isin(set(df[name].str[-3:])).all(), name


def test_local_times_with_changing_offsets_roundtrip_as_the_same_instants_in_utc() -> None:
    """Text local times across daylight saving come back as text holding the same instants,
    written in UTC in the source's offset style, and sampled rows keep that style."""
    local = pd.Series(pd.date_range("2021-01-01", periods=300, freq="7h", tz="Europe/Berlin"))
    df = pd.DataFrame({"colon": [t.isoformat() for t in local],
                       "hours": local.dt.strftime("%Y-%m-%d %H:%M:%S%z").str[:-2],
                       "x": np.arange(300.0)})
    schema = profile_table(df, "stamps")
    enc, _, out = _roundtrip(df, schema)
    for name in ("colon", "hours"):
        assert out[name].dtype == df[name].dtype
        assert (pd.to_datetime(out[name], utc=True) == pd.to_datetime(df[name], utc=True)).all(), name
    assert out["colon"][0] == "2020-12-31T23:00:00+00:00" and out["hours"][0] == "2020-12-31 23:00:00+00"
    synth = enc.inverse_transform(np.random.default_rng(0).normal(0, 3, size=(200, enc.width)).astype(np.float32))
    assert synth["colon"].str.endswith("+00:00").all() and synth["hours"].str.endswith(":00+00").all()


def test_decimals_fallback_mirrors_the_profile() -> None:
    from generators.encoder import _decimals
    from validation.profile import _decimals as profile_decimals

    rng = np.random.default_rng(0)
    for values in (np.round(rng.uniform(0, 0.0009, 500), 6), rng.integers(0, 100, 500) / 10 + 0.2,
                   (rng.integers(0, 10**4, 500) / 100).astype(np.float32).astype(np.float64), rng.normal(size=500)):
        assert _decimals(values) == profile_decimals(pd.Series(values))
    assert _decimals(np.round(rng.uniform(0, 0.0009, 500), 6)) == 6


def test_magnitudes_below_ten_decimals_are_not_rounded_onto_one_value() -> None:
    from validation.columns import decimal_places

    rng = np.random.default_rng(0)
    assert decimal_places(np.array([0.25, 1.5, 2.125])) == 3
    assert decimal_places(np.array([0.1 + 0.2, 2.5])) == 1  # float noise is no digit
    assert decimal_places(rng.normal(size=100)) is None  # full-precision doubles: not rounded
    assert decimal_places(rng.uniform(1, 9, 100) * 1e-12) is None  # 10 places would make every value 0
    assert decimal_places(np.array([1.234567e-7, 2.5e-3])) is None  # 10 places would cut 1.234567e-7
    df = pd.DataFrame({"p": rng.uniform(1, 9, 3000) * 1e-12})  # > 1000 values: decoded by rounding
    enc, matrix, back = _roundtrip(df, profile_table(df, "t"))
    assert back["p"].nunique() == 3000
    sampled = enc.inverse_transform(np.random.default_rng(1).normal(size=(500, matrix.shape[1])))
    assert sampled["p"].nunique() > 400 and sampled["p"].between(df["p"].min(), df["p"].max()).all()
