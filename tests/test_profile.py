"""Profiling: kinds, nulls, ranges, PII and keys detected on real and realistic tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.tables import real_table
from validation.errors import InputError
from validation.profile import profile_table
from validation.schema import ColumnKind, PIIType, Protection


def test_weather_kinds_nulls_and_ranges():
    df, schema = real_table("weather")
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds["origin"] == ColumnKind.CATEGORICAL
    assert kinds["time_hour"] == ColumnKind.DATETIME
    assert kinds["temp"] == ColumnKind.FLOAT and kinds["month"] == ColumnKind.INTEGER
    gust = schema.column("wind_gust")
    assert gust.null_rate == pytest.approx(df["wind_gust"].isna().mean(), abs=1e-6)
    assert gust.nullable and not schema.column("origin").nullable
    assert schema.column("month").min == 1 and schema.column("month").max == 12
    assert {c.value for c in schema.column("origin").categories} == {"EWR", "JFK", "LGA"}
    assert schema.column("temp").decimals == 2
    assert schema.arrow_schema().field("time_hour").type.tz == "UTC"


def test_planes_tailnum_is_a_key_with_its_shape():
    _, schema = real_table("planes")
    tail = schema.column("tailnum")
    assert tail.kind == ColumnKind.KEY and tail.protection == Protection.REGENERATE
    assert tail.key_pattern == "\\N999AA"  # most tail numbers: N, three digits, two letters
    assert not tail.modeled and "tailnum" not in [c.name for c in schema.modeled_columns]


def test_pii_detected_by_name_and_content():
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame(
        {
            "contact": [f"user{i}@example.org" for i in range(n)],
            "phone": [f"+1 555 {i:04d}" for i in range(n)],
            "first_name": rng.choice(["Ann", "Bob", "Cy"], n),
            "ssn_col": [f"{i % 900 + 100}-12-{i:04d}" for i in range(n)],
            "amount": rng.normal(size=n),
        }
    )
    schema = profile_table(df, "people")
    assert schema.column("contact").pii_type == PIIType.EMAIL
    assert schema.column("phone").pii_type == PIIType.PHONE
    assert schema.column("first_name").pii_type == PIIType.PERSON_NAME
    assert schema.column("ssn_col").pii_type == PIIType.NATIONAL_ID
    assert all(schema.column(c).protection == Protection.FAKE for c in ("contact", "phone", "first_name", "ssn_col"))
    assert schema.column("amount").kind == ColumnKind.FLOAT


def test_all_null_constant_and_mixed_columns_do_not_crash():
    n = 100
    df = pd.DataFrame(
        {
            "empty": [None] * n,
            "const": [7] * n,
            "mixed": [1, "a", 2.5, None] * (n // 4),
            "x": np.arange(n, dtype=float) / 3,
        }
    )
    schema = profile_table(df, "edge")
    assert schema.column("empty").is_all_null and not schema.column("empty").modeled
    assert schema.column("const").is_constant
    assert schema.column("mixed").kind == ColumnKind.CATEGORICAL


def test_schema_yaml_round_trip_and_overrides(tmp_path):
    _, schema = real_table("planes")
    path = tmp_path / "schema.yaml"
    schema.to_yaml(path)
    text = path.read_text()
    text = text.replace("name: manufacturer\n  kind: categorical", "name: manufacturer\n  kind: pii")
    path.write_text(text + "")
    override = tmp_path / "override.yaml"
    override.write_text("columns:\n- name: model\n  protection: drop\n- name: manufacturer\n  kind: text\n")
    updated = schema.apply_overrides(override)
    assert updated.column("model").protection == Protection.DROP
    assert "model" not in [c.name for c in updated.released_columns]
    assert updated.column("manufacturer").kind == ColumnKind.TEXT and not updated.column("manufacturer").modeled
    assert updated.arrow_schema().names == [c.name for c in updated.released_columns]


def test_override_of_an_unknown_column_is_a_clear_error(tmp_path):
    _, schema = real_table("planes")
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n- name: nope\n  kind: text\n")
    with pytest.raises(InputError, match="nope"):
        schema.apply_overrides(bad)
    wrong_kind = tmp_path / "kind.yaml"
    wrong_kind.write_text("columns:\n- name: year\n  kind: colour\n")
    with pytest.raises(InputError, match="year"):
        schema.apply_overrides(wrong_kind)


def test_iso_dates_are_datetimes_not_phone_numbers():
    days = pd.date_range("2020-01-01", periods=120, freq="D").strftime("%Y-%m-%d")
    schema = profile_table(pd.DataFrame({"visit": days, "v": range(120)}), "visits")
    col = schema.column("visit")
    assert col.kind == ColumnKind.DATETIME and col.datetime_format == "%Y-%m-%d" and col.pii_type is None


def test_numeric_pii_by_name_decimals_and_unsupported_types():
    import decimal

    import pyarrow as pa

    n = 120
    table = pa.table(
        {
            "phone": pa.array([2125550000 + i for i in range(n)], pa.int64()),
            "amount": pa.array([decimal.Decimal(f"{i}.25") for i in range(n)], pa.decimal128(10, 2)),
            "at": pa.array([i * 60 for i in range(n)], pa.time32("s")),
            "hotel": pa.array(["Ritz", "Savoy"] * (n // 2)),
        }
    )
    schema = profile_table(table.to_pandas(), "t", table.schema)
    assert schema.column("phone").kind == ColumnKind.PII and not schema.column("phone").modeled
    amount = schema.column("amount")
    assert amount.kind == ColumnKind.FLOAT and amount.decimals == 2 and amount.max == 119.25
    assert schema.column("at").protection == Protection.DROP
    assert schema.column("hotel").kind == ColumnKind.CATEGORICAL, "'hotel' is not a telephone"


def test_overriding_the_kind_brings_that_kinds_protection(tmp_path):
    _, schema = real_table("planes")
    path = tmp_path / "o.yaml"
    path.write_text("columns:\n- name: manufacturer\n  kind: pii\n  pii_type: person_name\n")
    col = schema.apply_overrides(path).column("manufacturer")
    assert col.protection == Protection.FAKE and col.fill == Protection.FAKE and not col.modeled


def test_sentinel_dates_are_profiled_exactly():
    import datetime as dt

    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(99)] + [dt.date(9999, 12, 31)]
    stamps = pd.Series(pd.to_datetime(["2021-05-01"] * 99 + ["2021-05-02"]).as_unit("us")).dt.tz_localize("UTC")
    schema = profile_table(pd.DataFrame({"d": dates, "t": stamps}), "sentinels")
    assert schema.column("d").kind == ColumnKind.DATETIME and schema.column("d").max == "9999-12-31T00:00:00"
    assert schema.column("t").min == "2021-05-01T00:00:00+00:00"


def test_decimals_become_the_nearest_float_in_the_profile_and_the_data():
    """Arrow's direct decimal-to-float cast gives 825511154.5500001 for 825511154.55; the profile's
    range and the frame every step reads must both hold the nearest float, the same one."""
    import decimal

    import pyarrow as pa

    from tasks.storage import arrow_to_frame

    values = [decimal.Decimal("825511154.55"), decimal.Decimal("-3.10"), None] * 40
    table = pa.table({"amount": pa.array(values, pa.decimal128(12, 2))})
    frame = arrow_to_frame(table)
    assert frame["amount"].max() == 825511154.55 and frame["amount"].isna().sum() == 40
    amount = profile_table(table.to_pandas(), "t", table.schema).column("amount")
    assert (amount.min, amount.max) == (frame["amount"].min(), frame["amount"].max())
