"""Profiling: kinds, nulls, ranges, PII and keys detected on real and realistic tables."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
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


def test_text_dates_with_9999_sentinels_stay_datetimes_not_phone_numbers():
    """pandas turns 9999-12-31 into NaT: the format check retries such values with strptime."""
    days = pd.date_range("2015-01-01", periods=300, freq="D").strftime("%Y-%m-%d").tolist()
    days[::3] = ["9999-12-31"] * 100  # open-ended rows
    col = profile_table(pd.DataFrame({"valid_to": days, "v": range(300)}), "t").column("valid_to")
    assert col.kind == ColumnKind.DATETIME and col.datetime_format == "%Y-%m-%d" and col.pii_type is None
    assert (col.min, col.max) == ("2015-01-02T00:00:00", "9999-12-31T00:00:00")


ISO_STAMPS = {  # column -> (how it is written, the detected format)
    "micro": ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f"),
    "micro_z": ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S.%fZ"),
    "space_micro": ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f"),
    "offset": ("%Y-%m-%dT%H:%M:%S+02:00", "%Y-%m-%dT%H:%M:%S+02:00"),
    "space_offset": ("%Y-%m-%d %H:%M:%S+00", "%Y-%m-%d %H:%M:%S+00"),
    "micro_offset": ("%Y-%m-%dT%H:%M:%S.%f-0500", "%Y-%m-%dT%H:%M:%S.%f-0500"),
    "z": ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%SZ"),
    # milliseconds, as JavaScript and Java write them (%3f: validation.columns.MILLISECONDS)
    "milli": ("%Y-%m-%dT%H:%M:%S.%3f", "%Y-%m-%dT%H:%M:%S.%3f"),
    "milli_z": ("%Y-%m-%dT%H:%M:%S.%3fZ", "%Y-%m-%dT%H:%M:%S.%3fZ"),
    "space_milli_offset": ("%Y-%m-%d %H:%M:%S.%3f+01:00", "%Y-%m-%d %H:%M:%S.%3f+01:00"),
}


def iso_stamp_table(n: int = 300, sentinels: bool = False) -> pd.DataFrame:
    """Unique ISO timestamps in every written form of ``ISO_STAMPS``, with a 9999-12-31 sentinel
    in the whole-second columns (``sentinels=True`` puts one in every column)."""
    from validation.columns import format_datetimes

    rng = np.random.default_rng(0)
    base = pd.Series(pd.Timestamp("2021-03-01") + pd.to_timedelta(rng.integers(0, 10**13, n), unit="us"))
    out = pd.DataFrame({name: format_datetimes(base, layout).astype(object) for name, (layout, _) in ISO_STAMPS.items()})
    for name, (layout, _) in ISO_STAMPS.items():
        if sentinels or "f" not in layout:  # no fraction: see test_encoder's round trip
            out.loc[0, name] = dt.datetime(9999, 12, 31).strftime(layout.replace("%3f", "000"))
    out["x"] = rng.normal(size=n)
    return out


def test_iso_timestamps_with_fractions_and_offsets_are_datetimes_not_keys():
    schema = profile_table(iso_stamp_table(sentinels=True), "t")
    for name, (_, fmt) in ISO_STAMPS.items():
        col = schema.column(name)
        assert (col.kind, col.datetime_format, col.max[:10]) == (ColumnKind.DATETIME, fmt, "9999-12-31"), name
    assert schema.column("micro_z").max == "9999-12-31T00:00:00+00:00"
    assert schema.column("offset").min.startswith("2021-03-01T") and "+" not in schema.column("offset").min


def test_timestamps_that_no_format_writes_back_are_not_datetimes():
    """%f writes six digits: fractions of other lengths would not read back as written; "Z" beside
    offsets, or offsets in mixed styles, have no one style to be written in."""
    stamps = pd.Series(pd.date_range("2021-03-01", periods=200, freq="37min"))
    plain = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S")
    df = pd.DataFrame({
        "tenths": stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-5],
        "z_and_offsets": plain + np.where(np.arange(200) % 2, "Z", "+02:00"),
        "mixed_styles": plain + np.where(np.arange(200) % 2, "+0100", "+02:00"),
    })
    schema = profile_table(df, "t")
    assert all(schema.column(c).kind != ColumnKind.DATETIME for c in df.columns)


def test_local_times_with_changing_offsets_are_datetimes_written_in_utc():
    """Local time across daylight saving ("-05:00" in winter, "-04:00" in summer), in the three
    offset styles: read as instants, written back in UTC in the source's style."""
    from validation.columns import OFFSET_COLON, OFFSET_HOURS, datetime_seconds, format_datetimes

    local = pd.Series(pd.date_range("2021-01-01", periods=400, freq="23h", tz="America/New_York"))
    df = pd.DataFrame({
        "colon": [t.isoformat() for t in local],  # 2021-01-01T00:00:00-05:00
        "plain": local.dt.strftime("%Y-%m-%d %H:%M:%S%z"),  # -0500
        "hours": local.dt.strftime("%Y-%m-%d %H:%M:%S%z").str[:-2],  # -05, as PostgreSQL writes
    })
    schema = profile_table(df, "t")
    assert {c.name: c.datetime_format for c in schema.columns} == {
        "colon": f"%Y-%m-%dT%H:%M:%S{OFFSET_COLON}", "plain": "%Y-%m-%d %H:%M:%S%z",
        "hours": f"%Y-%m-%d %H:%M:%S{OFFSET_HOURS}"}
    assert schema.column("colon").min == "2021-01-01T05:00:00+00:00"  # the instant, in UTC
    utc = local.dt.tz_convert("UTC")
    written = {c.name: format_datetimes(utc, c.datetime_format) for c in schema.columns}
    assert (written["colon"][0], written["plain"][0], written["hours"][0]) == (
        "2021-01-01T05:00:00+00:00", "2021-01-01 05:00:00+0000", "2021-01-01 05:00:00+00")
    for c in schema.columns:  # the same instants as the source's local times
        expected = datetime_seconds(df[c.name], c.datetime_format)
        assert np.array_equal(datetime_seconds(written[c.name], c.datetime_format), expected), c.name
        assert np.array_equal(expected, utc.astype("int64").to_numpy() / 1e9), c.name


def test_time_slots_and_offsets_no_zone_has_are_not_datetimes():
    """"08:00-12:00" ends in what reads as a UTC offset: changing offsets count only within +-14 h
    at minutes 00/30/45 past, and, on values without seconds (as slots are), only when they look
    like one zone's (at most 3, at most 2 h apart) and do not all end after the time before them.
    After seconds, offsets of any zones mix (events logged across the world)."""
    from validation.profile import _datetime_format

    slots = [f"2021-03-{d:02d} {h:02d}:00-{h + 4:02d}:00" for d in range(1, 29) for h in (8, 13)]
    col = profile_table(pd.DataFrame({"slot": slots, "v": range(len(slots))}), "t").column("slot")
    assert (col.kind, col.datetime_format) == (ColumnKind.CATEGORICAL, None)  # as before offsets changed
    stamps = pd.Series(pd.date_range("2021-03-01", periods=60, freq="7h")).dt.strftime("%Y-%m-%d %H:%M:%S")
    cycle = lambda *offsets: stamps + np.resize(np.array(offsets), 60)  # noqa: E731
    for offsets in [("-12:00", "-17:00"), ("-12", "-17"),  # slots' end times: beyond -14:00
                    ("+14:00", "+15:00"),  # beyond +14:00
                    ("-05:17", "-04:17")]:  # 17 minutes past: no zone's
        assert _datetime_format(cycle(*offsets)) is None, offsets
    minutes = pd.Series(pd.date_range("2021-03-01", periods=60, freq="7h")).dt.strftime("%Y-%m-%d %H:%M")
    for offsets in [("+0900", "+1300"), ("+01:00", "+02:00", "+03:00", "+00:00")]:  # no seconds: one zone's only
        assert _datetime_format(minutes + np.resize(np.array(offsets), 60)) is None, offsets
        assert _datetime_format(cycle(*offsets)) is not None, offsets  # with seconds: zones mix
    one_hour = [f"2024-03-{d:02d} {h:02d}:00-{h + 1:02d}:00" for d in range(1, 21) for h in (9, 10, 11)]
    assert _datetime_format(pd.Series(one_hour)) is None  # offsets a zone could have, but several a day
    # a nightly job at 02:30 across the change to daylight saving: one offset a day, a datetime
    nightly = [f"2021-03-{d:02d} 02:30" + ("-05:00" if d < 14 else "-04:00") for d in range(1, 29)]
    assert _datetime_format(pd.Series(nightly)) == "%Y-%m-%d %H:%M%:z"
    # a zone's: daylight saving (one hour, Lord Howe's half hour), India and Nepal, Chatham at 45 past
    for offsets, style in [(("-05:00", "-04:00"), "%:z"), (("+1030", "+1100"), "%z"), (("+05:30", "+05:45"), "%:z"),
                           (("+12:45", "+13:45"), "%:z"), (("-12", "-11", "-10"), "%:::z"), (("+14:00", "+13:00"), "%:z")]:
        assert _datetime_format(cycle(*offsets)) == "%Y-%m-%d %H:%M:%S" + style, offsets


def test_formats_tried_on_the_first_distinct_values_first_choose_as_the_whole_sample(monkeypatch):
    """Each format is tried on the first distinct values before the whole sample, and not at all
    when their letters rule it out (a cheap way to rule out text such as "A123"): the format chosen
    is the one chosen on the whole sample alone, on every layout profiled, also when the value that
    decides comes after the first ones."""
    from validation import profile
    from validation.columns import format_datetimes

    days = pd.Series(pd.date_range("2009-12-20", periods=300, freq="D"))
    firsts = pd.Series(pd.date_range("2010-01-01", periods=12, freq="MS")).repeat(5)  # day 1: ambiguous
    unpadded = lambda s: s.str.replace(r"(?<!\d)0(\d)", r"\1", regex=True)  # noqa: E731
    local = pd.Series(pd.date_range("2021-01-01", periods=400, freq="23h", tz="America/New_York"))
    columns = {name: iso_stamp_table()[name] for name in ISO_STAMPS}
    columns |= {layout: format_datetimes(days, layout) for layout in DATE_LAYOUTS + ["%d/%m/%Y", "%Y-%m-%d %H:%M"]}
    columns |= {
        "unpadded_dotted": unpadded(days.dt.strftime("%d.%m.%Y")),
        "unpadded_stocks": unpadded(days.dt.strftime("%b %d %Y")),
        "changing_offsets": pd.Series([t.isoformat() for t in local]),
        # the value that decides is the 61st distinct one: month-first, not day-first
        "month_first_late": pd.concat([firsts, pd.Series([pd.Timestamp("2010-01-26")])]).dt.strftime("%m/%d/%Y"),
        # the value that rules the format out comes late: no datetime
        "bad_late": pd.Series(days.dt.strftime("%Y-%m-%d").tolist() + ["2021-13-45"]),
        "upper_late": pd.Series(days.dt.strftime("%b %d %Y").tolist() + ["JAN 01 2000"]),
        "text": pd.Series([f"A{i}" for i in range(300)]),
        "slots": pd.Series([f"2021-03-{d:02d} {h:02d}:00-{h + 4:02d}:00" for d in range(1, 29) for h in (8, 13)]),
        "phones": pd.Series([f"+1 212 555 {i:04d}" for i in range(300)]),
    }
    columns = {name: values.reset_index(drop=True).astype(object) for name, values in columns.items()}
    chosen = {name: profile._datetime_format(values) for name, values in columns.items()}
    monkeypatch.setattr(profile, "_FIRST_DISTINCT", 0)  # no values tried first, none ruled out by letters
    assert chosen == {name: profile._datetime_format(values) for name, values in columns.items()}
    assert chosen["month_first_late"] == "%m/%d/%Y" and chosen["%d.%m.%Y"] == "%d.%m.%Y"
    assert [chosen[c] for c in ("bad_late", "upper_late", "text", "slots", "phones")] == [None] * 5


def test_small_values_keep_their_decimals_and_float_noise_is_no_digit():
    from validation.profile import _decimals

    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "p_value": np.round(rng.uniform(0, 0.0009, 500), 6),  # all below 0.001
        "tiny": np.round(rng.uniform(0, 1e-8, 500), 10),
        "conc": np.round(rng.uniform(0, 0.05, 500), 4),
        "noisy": rng.integers(0, 100, 500) / 10 + 0.2,  # 0.1 + 0.2 style noise: still one decimal
        "single": (rng.integers(0, 10**4, 500) / 100).astype(np.float32),  # a float32 source
        "x": rng.normal(size=500),
    })
    schema = profile_table(df, "t")
    assert {c.name: c.decimals for c in schema.columns} == {
        "p_value": 6, "tiny": 10, "conc": 4, "noisy": 1, "single": 2, "x": None}  # full-precision doubles are not rounded
    assert np.array_equal(np.round(df["p_value"], schema.column("p_value").decimals), df["p_value"])
    assert _decimals(pd.Series([0.1 + 0.2, 1.15, 825511154.55])) == 2


def test_ip_and_mac_address_names_are_not_street_addresses():
    rng = np.random.default_rng(0)
    n = 100
    ips = [f"10.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 255)}" for _ in range(n)]
    macs = [":".join(f"{b:02x}" for b in rng.integers(0, 256, 6)) for _ in range(n)]
    df = pd.DataFrame({"ip_address": ips, "ip_addr": ips, "client_ip": ips, "mac_address": macs,
                       "home_address": [f"{i} Main St" for i in range(n)],
                       "email_address": [f"u{i}@x.org" for i in range(n)]})
    schema = profile_table(df, "t")
    assert {c.name: c.pii_type for c in schema.columns} == {
        "ip_address": PIIType.IP_ADDRESS, "ip_addr": PIIType.IP_ADDRESS, "client_ip": PIIType.IP_ADDRESS,
        "mac_address": None, "home_address": PIIType.ADDRESS, "email_address": PIIType.EMAIL}


def test_content_pii_tests_phone_numbers_last():
    rng = np.random.default_rng(0)
    n = 100
    df = pd.DataFrame({
        "col_a": [f"{rng.integers(100, 999)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}" for _ in range(n)],
        "col_b": [f"10.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(0, 255)}" for _ in range(n)],
        "col_c": [" ".join(str(rng.integers(1000, 9999)) for _ in range(4)) for _ in range(n)],
        "col_d": [f"+1 (555) {rng.integers(100, 999)}-{rng.integers(1000, 9999)}" for _ in range(n)],
        "col_e": [f"0{rng.integers(100, 999)} {rng.integers(100000, 999999)}" for _ in range(n)],
    })
    schema = profile_table(df, "t")
    assert {c.name: c.pii_type for c in schema.columns} == {
        "col_a": PIIType.NATIONAL_ID, "col_b": PIIType.IP_ADDRESS, "col_c": PIIType.CREDIT_CARD,
        "col_d": PIIType.PHONE, "col_e": PIIType.PHONE}


@pytest.mark.parametrize("entry, named", [
    ("- name: manufacturer\n  kind: [pii]\n", "manufacturer"),
    ("- name: [manufacturer]\n", "name"),
    ("- name: {manufacturer: 1}\n", "name"),
])
def test_malformed_schema_entries_are_input_errors_naming_file_and_column(tmp_path, entry, named):
    _, schema = real_table("planes")
    path = tmp_path / "bad.yaml"
    path.write_text("columns:\n" + entry)
    with pytest.raises(InputError, match=named) as info:
        schema.apply_overrides(path)
    assert str(path) in str(info.value)


def test_binary_list_and_struct_columns_are_dropped_not_crashed_on() -> None:
    import pyarrow as pa

    n = 60
    table = pa.table({
        "x": pa.array(range(n)),
        "raw": pa.array([bytes([200, i]) for i in range(n)]),  # not UTF-8 text
        "tags": pa.array([[i, i + 1] for i in range(n)]),
        "point": pa.array([{"a": i} for i in range(n)]),
    })
    schema = profile_table(table.to_pandas(), "t", table.schema)
    dropped = {c.name: c.n_unique for c in schema.columns if c.protection == Protection.DROP}
    assert dropped == {"raw": n, "tags": n, "point": n}


# dates in these layouts matched the loose PHONE pattern (26.01.2010, 26-01-2010) or were keys
# (2000-Jan-01): the format the profile detects for each
DATE_LAYOUTS = ["%d.%m.%Y", "%Y.%m.%d", "%d-%m-%Y", "%m-%d-%Y", "%b %d %Y", "%b %d, %Y", "%d %b %Y",
                "%Y-%b-%d", "%d-%b-%Y", "%B %d, %Y", "%d %B %Y"]


@pytest.mark.parametrize("layout", DATE_LAYOUTS)
def test_dotted_dashed_and_month_name_dates_are_datetimes_written_back_exactly(layout):
    from validation.columns import DatetimeForm, datetime_ticks, format_datetimes, ticks_to_datetime_like

    days = pd.Series(pd.date_range("2009-12-20", periods=300, freq="D"))  # days above 12, every month
    text = format_datetimes(days, layout).astype(object)
    text[0] = dt.datetime(9999, 12, 31).strftime(layout)  # an open-ended sentinel
    col = profile_table(pd.DataFrame({"when": text, "v": range(300)}), "t").column("when")
    assert (col.kind, col.datetime_format, col.pii_type) == (ColumnKind.DATETIME, layout, None)
    assert (col.min, col.max) == ("2009-12-21T00:00:00", "9999-12-31T00:00:00")
    ticks, null, unit = datetime_ticks(text, col.datetime_format)
    expected = days.astype("datetime64[us]").astype("int64").to_numpy()
    assert not null.any() and unit == "us" and np.array_equal(ticks[1:], expected[1:])
    back = ticks_to_datetime_like(ticks, null, unit, DatetimeForm.of(text), col.datetime_format)
    assert back.tolist() == text.tolist()  # the encoder and the release write them as read


@pytest.mark.parametrize("sep", ["-", ".", "/"])
def test_ambiguous_numeric_dates_are_day_first_unless_a_value_says_month_first(sep):
    """As with dd/mm/yyyy vs mm/dd/yyyy: the first format every value reads in wins, day first."""
    early = pd.Series(pd.date_range("2010-01-01", periods=12, freq="MS")).repeat(5)  # day 1: ambiguous
    day_first = early.dt.strftime(f"%d{sep}%m{sep}%Y")
    month_first = pd.concat([early, pd.Series([pd.Timestamp("2010-01-26")])]).dt.strftime(f"%m{sep}%d{sep}%Y")
    schema = profile_table(pd.DataFrame({"a": day_first.tolist() + ["01" + sep + "01" + sep + "2011"],
                                         "b": month_first.tolist()}), "t")
    assert schema.column("a").datetime_format == f"%d{sep}%m{sep}%Y"
    assert schema.column("b").datetime_format == f"%m{sep}%d{sep}%Y"


def test_dates_that_would_not_be_written_back_as_read_are_not_datetimes():
    """strptime reads any case of a month name and two-digit years with %Y, but %b writes "Jan"
    and %Y four digits: such columns would not come back as they read."""
    firsts = pd.Series(pd.date_range("2000-01-01", periods=60, freq="MS"))
    df = pd.DataFrame({
        "upper": firsts.dt.strftime("%b %d %Y").str.upper(),
        "two_digit_year": firsts.dt.strftime("%d.%m.%y"),
    })
    schema = profile_table(df, "t")
    assert all(schema.column(c).kind != ColumnKind.DATETIME for c in df.columns)
    # the layouts profiled before this check stay datetimes, written zero-padded
    unpadded = firsts.dt.year.astype(str) + "-" + firsts.dt.month.astype(str) + "-1"
    slashed = firsts.dt.month.astype(str) + "/1/" + firsts.dt.year.astype(str)
    schema = profile_table(pd.DataFrame({"iso": unpadded, "us": slashed}), "t")
    assert [schema.column(c).datetime_format for c in ("iso", "us")] == ["%Y-%m-%d", "%d/%m/%Y"]


def test_unpadded_days_and_months_are_datetimes_written_back_unpadded():
    """"Jan 1 2000" (vega's stocks.csv) and "5.11.2000": our codes for an unpadded day and month
    write every value back as it reads, padded or not ("Jan 15 2000" beside "Jan 1 2000")."""
    from validation.columns import UNPADDED_DAY, UNPADDED_MONTH, datetime_ticks, format_datetimes

    days = pd.Series(pd.date_range("2000-01-01", periods=400, freq="4D"))
    unpadded = lambda s: s.str.replace(r"(?<!\d)0(\d)", r"\1", regex=True)  # noqa: E731
    df = pd.DataFrame({
        "stocks": unpadded(days.dt.strftime("%b %d %Y")),  # Jan 1 2000, Jan 5 2000, ..., Jan 13 2000
        "dotted": unpadded(days.dt.strftime("%d.%m.%Y")),  # 1.1.2000, 5.1.2000, 13.11.2000
        "us_dashed": unpadded(days.dt.strftime("%m-%d-%Y")),  # 1-13-2000: a day above 12 second
    })
    schema = profile_table(df, "t")
    assert {c.name: c.datetime_format for c in schema.columns} == {
        "stocks": f"%b {UNPADDED_DAY} %Y", "dotted": f"{UNPADDED_DAY}.{UNPADDED_MONTH}.%Y",
        "us_dashed": f"{UNPADDED_MONTH}-{UNPADDED_DAY}-%Y"}
    for c in schema.columns:
        ticks, null, unit = datetime_ticks(df[c.name], c.datetime_format)
        assert not null.any() and (ticks == days.astype("datetime64[us]").astype("int64").to_numpy()).all()
        assert (format_datetimes(days, c.datetime_format) == df[c.name]).all(), c.name


def test_identifier_names_are_keys_and_longer_words_are_not():
    n = 100
    ids = np.random.default_rng(0).permutation(n) + 1000
    names = ["identifier", "ident", "uuid", "record_guid", "Patient ID", "userId", "customerID", "row-id"]
    not_keys = ["identified_count", "idle_seconds", "paid", "ideal", "keyboard", "valid"]
    schema = profile_table(pd.DataFrame({c: ids for c in names + not_keys}), "t")
    assert {c.name: c.kind for c in schema.columns} == (
        {c: ColumnKind.KEY for c in names} | {c: ColumnKind.INTEGER for c in not_keys})
    assert schema.column("identifier").protection == Protection.REGENERATE


def _people(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "name": rng.choice(["Ann Lee", "Bob Ray", "Cy Young"], n),
        "phone": np.arange(2125550000, 2125550000 + n),
        "code": [f"N{i:04d}AB" for i in range(n)],
        "v": rng.normal(size=n),
    })


def test_protection_model_on_pii_and_key_columns_models_them_as_their_values(tmp_path):
    """"Override any detection": a PII or key column the schema file says to model is learned by
    the generator as the kind of its values, and never refilled with Faker values or fresh ids."""
    from validation.protect import real_values, training_view

    df = _people()
    schema = profile_table(df, "t")
    assert [schema.column(c).kind for c in ("name", "phone", "code")] == [ColumnKind.PII, ColumnKind.PII, ColumnKind.KEY]
    path = tmp_path / "model.yaml"
    path.write_text("columns:\n- name: name\n  protection: model\n- name: phone\n  protection: model\n"
                    "- name: code\n  protection: model\n")
    updated = schema.apply_overrides(path)
    got = {c: (updated.column(c).kind, updated.column(c).modeled, updated.column(c).fill, updated.column(c).pii_type)
           for c in ("name", "phone", "code")}
    assert got == {"name": (ColumnKind.CATEGORICAL, True, None, None), "phone": (ColumnKind.INTEGER, True, None, None),
                   "code": (ColumnKind.CATEGORICAL, True, None, None)}
    assert updated.column("code").key_pattern is None and updated.column("phone").max == df["phone"].max()
    assert list(training_view(df, updated).columns) == ["name", "phone", "code", "v"]
    assert not real_values(df, updated)  # nothing left to keep out of the output
    # the same edit in the whole file `synthpipe profile --write` writes (the detected kind stays)
    written = tmp_path / "written.yaml"
    schema.to_yaml(written)
    text = written.read_text()
    assert "kind: pii\n  arrow_type: string" in text
    written.write_text(text.replace("protection: fake", "protection: model"))
    assert schema.apply_overrides(written).column("name").model_dump() == updated.column("name").model_dump()


@pytest.mark.parametrize("entry, says", [
    ("- name: v\n  kind: pii\n  pii_type: phone\n  protection: model\n", "a pii column is never modeled"),
    ("- name: name\n  kind: key\n  protection: model\n", "a key column is never modeled"),
    ("- name: at\n  protection: model\n", r"no generator models time32\[s\] values; leave its protection at drop"),
])
def test_contradictory_or_unmodelable_protection_model_is_one_clear_line(tmp_path, entry, says):
    table = pa.Table.from_pandas(_people(), preserve_index=False).append_column(
        "at", pa.array([i * 60 for i in range(120)], pa.time32("s")))
    schema = profile_table(table.to_pandas(), "t", table.schema)
    path = tmp_path / "bad.yaml"
    path.write_text("columns:\n" + entry)
    with pytest.raises(InputError, match=says) as info:
        schema.apply_overrides(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_categorical_override_of_a_date_column_is_one_clear_line(tmp_path):
    """A CSV date column reads as date32 (datetime.date values): such values cannot be written as
    categories into the release's expectations (exit 3 in suppressed_schema before)."""
    days = [dt.date(1992, 4, 30) + dt.timedelta(days=i % 5) for i in range(60)]
    table = pa.table({"death_date": pa.array(days, pa.date32()), "age": pa.array(range(60))})
    schema = profile_table(table.to_pandas(), "t", table.schema)
    for kind in ("categorical", "boolean"):
        path = tmp_path / f"{kind}.yaml"
        path.write_text(f"columns:\n- name: death_date\n  kind: {kind}\n")
        with pytest.raises(InputError, match=r"'death_date': date32\[day\] values cannot be .*keep kind: datetime") as info:
            schema.apply_overrides(path)
        assert "\n" not in str(info.value)
    dropped = tmp_path / "drop.yaml"  # a categorical that is not modeled needs no categories
    dropped.write_text("columns:\n- name: death_date\n  kind: categorical\n  protection: drop\n")
    assert schema.apply_overrides(dropped).column("death_date").protection == Protection.DROP
    # the file cannot "retype" the source to get past that (the column was published all null)
    retyped = tmp_path / "retyped.yaml"
    retyped.write_text("columns:\n- name: death_date\n  kind: categorical\n  arrow_type: string\n")
    with pytest.raises(InputError, match=r"'death_date': date32\[day\] values cannot be categorical"):
        schema.apply_overrides(retyped)
    # measured fields in a file follow the source: a file reused as the data grows still applies
    stale = tmp_path / "stale.yaml"
    stale.write_text("columns:\n- name: age\n  null_rate: 0.5\n  n_unique: 3\n  arrow_type: string\n")
    assert schema.apply_overrides(stale).column("age") == schema.column("age")
    swapped = tmp_path / "swapped.yaml"
    swapped.write_text("columns:\n- name: age\n  min: 100\n  max: 10\n")
    with pytest.raises(InputError, match="'age': min 100.0 is above max 10.0"):
        schema.apply_overrides(swapped)
    unchanged = tmp_path / "written.yaml"  # a file written by `profile --write` repeats the measured fields
    schema.to_yaml(unchanged)
    assert schema.apply_overrides(unchanged) == schema


def test_inf_is_an_input_error_without_a_numpy_warning():
    import warnings

    from validation.profile import require_finite_numbers

    df = pd.DataFrame({"wind": np.r_[np.inf, np.linspace(0, 9, 59).round(1)], "n": range(60)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decimal_places subtracted inf - inf: "invalid value"
        schema = profile_table(df, "t")
        with pytest.raises(InputError, match="'wind' holds 1 infinite value"):
            require_finite_numbers(df, schema)


def test_malformed_schema_yaml_is_one_line_naming_where(tmp_path):
    _, schema = real_table("planes")
    path = tmp_path / "bad.yaml"
    path.write_text("columns:\n- name: year\n  kind: [pii\n")
    with pytest.raises(InputError) as info:
        schema.apply_overrides(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"schema file {path} is not valid YAML: ")
    assert "line 4, column 1" in message and "line 3, column 9" in message
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(InputError, match="cannot be read"):
        schema.apply_overrides(folder)


_PEOPLE = ["Eve Smith", "Ahmed Khan", "Sofia Rossi", "Liam O'Brien", "Smith, John", "Dr. Maria Garcia",
           "Jan van der Berg", "Chloé Dubois", "Lukas Müller Jr.", "Mary-Jane Watson", "Olga Nowak", "Kenji Tanaka",
           "Grace Hopper", "Alan Turing", "Ada Lovelace", "Tom Baker", "Priya Patel", "Noah Johnson",
           "Emma Brown", "Mateo López"]
_PLACES = ["New York", "Los Angeles", "San Jose", "Fort Worth", "Kansas City", "El Paso", "Long Beach",
           "Oklahoma City", "Las Vegas", "San Antonio", "Virginia Beach", "Colorado Springs", "Salt Lake City",
           "Jackson County Airport", "Boston", "Denver", "Austin", "Charlotte", "Phoenix", "Miami"]


def test_person_names_under_a_neutral_header_are_pii_and_places_are_not():
    from validation.person_names import is_person_name

    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "person": rng.choice(_PEOPLE, 600),  # 20 real-looking names repeated: categorical by shape
        "city": rng.choice(_PLACES, 600),
        "owner": rng.choice(["Aircraft Leasing Ltd", "Delta Air Lines Inc.", "United Air Lines Inc."], 600),
    })
    by_name = {c.name: c for c in profile_table(df, "t").columns}
    assert by_name["person"].kind == ColumnKind.PII and by_name["person"].pii_type == PIIType.PERSON_NAME
    assert by_name["person"].protection == Protection.FAKE  # never published as real values
    assert by_name["city"].kind == ColumnKind.CATEGORICAL and by_name["owner"].kind == ColumnKind.CATEGORICAL
    assert sum(map(is_person_name, _PEOPLE)) >= 18 and sum(map(is_person_name, _PLACES)) <= 4
