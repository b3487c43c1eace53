"""Privacy metrics and the pre-training protections, on small controlled tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from validation.columns import prepare_tables
from validation.privacy import (
    auc,
    distance_metrics,
    encode,
    identical_match_shares,
    near_match_limit,
    nearest,
    normalized_value_set,
    outlier_exposure,
    rare_combination_exposure,
    value_overlap,
)
from validation.profile import profile_table
from validation.schema import ColumnKind
from validation.suppression import SuppressionConfig, suppress, suppressed_schema


def gaussian_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0, 0], [[1, .5, .2], [.5, 1, .3], [.2, .3, 1]], n)
    return pd.DataFrame(
        {
            "a": z[:, 0],
            "b": np.exp(z[:, 1]),  # skewed: quantile encoding must not care
            "c": np.round(z[:, 2] * 10),
            "cat": np.where(z[:, 0] > 0.3, "x", np.where(z[:, 1] > 0, "y", "z")),
        }
    )


@pytest.fixture(scope="module")
def tables():
    real = gaussian_table(5000, 0)
    schema = profile_table(real, "g")
    train, holdout = real.iloc[:4000].reset_index(drop=True), real.iloc[4000:].reset_index(drop=True)
    return train, holdout, schema


def prep_for(train, holdout, synthetic, schema):
    return prepare_tables({"train": train, "holdout": holdout, "synthetic": synthetic}, schema)


def test_encoding_scales(tables):
    train, holdout, schema = tables
    prep = prep_for(train, holdout, gaussian_table(100, 9), schema)
    enc = encode(prep)
    x = enc["train"]
    assert x.shape == (4000, 3 + 3)  # three numerics on [0, 1], one-hot of three categories
    assert x[:, :3].min() > 0 and x[:, :3].max() < 1
    # quantile-normalized numerics are roughly uniform on the train split
    assert np.allclose(np.sort(x[:, 1])[[400, 2000, 3600]], [0.1, 0.5, 0.9], atol=0.01)
    # two rows that differ only in the category are at distance exactly 1
    row = enc["train"][0].copy()
    other = row.copy()
    hot = np.flatnonzero(row[3:])[0]
    other[3:] = 0
    other[3 + (hot + 1) % 3] = 1 / np.sqrt(2)
    assert np.isclose(np.linalg.norm(row - other), 1.0)


def test_null_flags_and_unseen_categories():
    train = pd.DataFrame({"v": [1.0, 2.0, np.nan, 4.0] * 25, "k": ["a", "b", "a", None] * 25})
    schema = profile_table(train, "t")
    syn = pd.DataFrame({"v": [np.nan, 2.0], "k": ["zzz", "a"]})
    prep = prep_for(train, train, syn, schema)
    enc = encode(prep)
    # v + null flag + one-hot(a, b, null) ; the unseen "zzz" becomes no known level
    assert enc["synthetic"].shape[1] == enc["train"].shape[1]
    assert enc["synthetic"][0, 1] == 1.0  # the null flag


def test_nearest_exact_copies_are_zero_and_missing_neighbours_infinite():
    rng = np.random.default_rng(0)
    ref = rng.random((50, 5))
    d = nearest(ref, ref[:10], 2)
    assert (d[:, 0] == 0).all() and (d[:, 1] > 0).all()
    d = nearest(ref[:1], ref[:3], 2)
    assert np.isinf(d[:, 1]).all()


def test_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    pos, neg = rng.normal(0.3, 1, 300).round(1), rng.normal(0, 1, 200).round(1)  # with ties
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[pos, neg])
    assert auc(pos, neg) == pytest.approx(expected)


def test_dcr_share_is_half_for_fresh_data_despite_the_80_20_split(tables):
    """Against the whole 4x larger train split, half of the rows would look 'closer to train'
    far more often than 0.5; the equal-size pieces bring the ideal back to 0.5."""
    train, holdout, schema = tables
    fresh = gaussian_table(3000, 7)
    prep = prep_for(train, holdout, fresh, schema)
    enc = encode(prep)
    res = distance_metrics(enc, seed=0)
    assert res.metrics["dcr_share_pieces"] == 4
    assert abs(res.metrics["dcr_share"] - 0.5) < 0.03
    naive = (nearest(enc["train"], enc["synthetic"])[:, 0] < nearest(enc["holdout"], enc["synthetic"])[:, 0]).mean()
    assert naive > 0.7  # what an uncorrected share would report for a perfect generator
    assert abs(res.metrics["membership_auc"] - 0.5) < 0.05
    assert 0.8 < res.metrics["dcr_p5_ratio"] < 1.25


def test_copies_and_near_copies_are_caught(tables):
    train, holdout, schema = tables
    copies = train.sample(2000, random_state=0).reset_index(drop=True)
    res = distance_metrics(encode(prep_for(train, holdout, copies, schema)))
    assert res.metrics["dcr_p5"] == 0 and res.metrics["nndr_p5"] == 0
    assert res.metrics["dcr_share"] > 0.6  # 1/4 of the pieces hold each copy's source: 0.625
    assert res.metrics["membership_auc"] > 0.7  # half of the train rows are in the output: 0.75
    near = copies.copy()
    near["a"] += np.random.default_rng(0).normal(0, 1e-3, len(near))
    res = distance_metrics(encode(prep_for(train, holdout, near, schema)))
    assert res.metrics["dcr_p5_ratio"] < 0.1
    assert res.metrics["dcr_share"] > 0.6


def test_near_match_share_uses_the_holdout_quantile(tables):
    """Fresh rows are near matches at the holdout's rate; 3% near-copies add their share."""
    train, holdout, schema = tables
    fresh = gaussian_table(3000, 7)
    m = distance_metrics(encode(prep_for(train, holdout, fresh, schema)), near_quantile=0.01).metrics
    assert m["holdout_near_match_rows"] == 10 and m["holdout_near_match_share"] == 0.01  # 1% of 1000
    assert m["near_match_distance"] > 0
    limit = near_match_limit(m["holdout_near_match_rows"], m["query_rows_holdout"], m["query_rows_synthetic"], 3)
    assert m["near_match_share"] <= limit
    leaky = fresh.copy()
    leaky.iloc[:90] = train.iloc[:90].to_numpy()
    leaky.loc[:89, "a"] += 1e-4  # no exact copy
    prep = prep_for(train, holdout, leaky, schema)
    assert identical_match_shares(prep)[0] == 0  # the exact-match check sees nothing
    m = distance_metrics(encode(prep), near_quantile=0.01).metrics
    assert m["near_match_share"] > limit


def test_near_match_ties_at_zero_count_fully(tables):
    """When more holdout rows repeat a train row than the quantile, the threshold is 0 and the
    holdout's rate is its whole share of exact repeats (not the quantile)."""
    train, holdout, schema = tables
    repeated = holdout.copy()
    repeated.iloc[:50] = train.iloc[:50].to_numpy()  # 5% of the holdout repeats train rows
    synthetic = gaussian_table(1000, 8)
    synthetic.iloc[:50] = train.iloc[100:150].to_numpy()  # as often as the holdout: honest
    m = distance_metrics(encode(prep_for(train, repeated, synthetic, schema)), near_quantile=0.01).metrics
    assert m["near_match_distance"] == 0
    assert m["holdout_near_match_rows"] == 50 and m["near_match_share"] == 0.05
    assert m["near_match_share"] <= near_match_limit(50, 1000, 1000, 3)


def test_near_match_limit_allows_for_a_noisy_quantile():
    """Large tables: the holdout's rate + 3 standard errors of both shares; a quantile resting on
    a few holdout rows is skewed noise, and the limit widens beyond the normal one."""
    rate, n_h, n_s = 0.01, 5000, 5000
    normal = rate + 3 * np.sqrt(rate * (1 - rate) * (1 / n_s + 1 / n_h))
    assert abs(near_match_limit(50, n_h, n_s, 3) - normal) < 0.001
    small = 0.01 + 3 * np.sqrt(0.01 * 0.99 * (1 / 400 + 1 / 100))
    assert near_match_limit(1, 100, 400, 3) > small + 0.02
    # honest runs (the share of fresh rows below the k-th of n fresh distances) pass 99.9% of the time
    rng = np.random.default_rng(0)
    cover = rng.beta(1, 100, 20_000)
    shares = rng.binomial(400, cover) / 400
    assert (shares > near_match_limit(1, 100, 400, 3)).mean() < 0.003


def test_distance_metrics_are_seeded(tables):
    train, holdout, schema = tables
    enc = encode(prep_for(train, holdout, gaussian_table(6000, 3), schema))
    a = distance_metrics(enc, sample_rows=1000, seed=5).metrics
    b = distance_metrics(enc, sample_rows=1000, seed=5).metrics
    assert a == b


def test_identical_match_shares_ignore_dtypes():
    train = pd.DataFrame({"n": [1, 2, 3, 4] * 20, "s": list("abcd") * 20, "f": np.arange(80) / 3})
    schema = profile_table(train, "t")
    syn = train.head(10).copy()
    syn["n"] = syn["n"].astype("float64")
    syn["f"] = syn["f"] + 0.0  # same values
    hold = train.tail(10).assign(f=lambda d: d["f"] + 100)
    s, h = identical_match_shares(prep_for(train, hold, syn, schema))
    assert s == 1.0 and h == 0.0


def test_value_overlap_per_column_and_across_columns():
    real = pd.DataFrame(
        {
            "email": ["ann@example.org", "bob@example.org"] * 30,
            "customer_id": np.arange(60),
            "note": ["x"] * 60,
        }
    )
    schema = profile_table(real, "t")
    assert schema.column("email").kind == ColumnKind.PII
    assert schema.column("customer_id").kind == ColumnKind.KEY
    syn = pd.DataFrame(
        {"email": ["new@example.org", " BOB@example.org "], "customer_id": [1000.0, 7.0], "note": ["ann@example.org", "y"]}
    )
    pii = value_overlap([real], syn, schema, (ColumnKind.PII,))
    assert pii == {"total": 2, "per_column": {"email": 2}}  # bob (same column), ann (in `note`)
    keys = value_overlap([real], syn, schema, (ColumnKind.KEY,))
    assert keys["per_column"] == {"customer_id": 1}  # 7.0 read from a CSV is the real id 7
    clean = syn.assign(email=["new@example.org", "other@example.org"], note=["y", "z"], customer_id=[1000, 1001])
    assert value_overlap([real], clean, schema, (ColumnKind.PII,))["total"] == 0


def test_rare_combination_exposure_uses_the_holdout_rate():
    rng = np.random.default_rng(0)
    n = 3000
    common = pd.DataFrame({"sex": rng.choice(["f", "m"], n), "job": rng.choice(["a", "b", "c"], n)})
    common.loc[:3, "job"] = ["astronaut", "astronaut", "diver", "king"]  # rare values in train
    train, holdout = common.iloc[:2000].reset_index(drop=True), common.iloc[2000:].reset_index(drop=True)
    schema = profile_table(common, "t")
    syn = holdout.copy()
    prep = prep_for(train, holdout, syn, schema)
    res = rare_combination_exposure(prep, None, k=5)
    assert res["rare_records"] == 4 and res["synthetic_rows"] == 0
    syn.loc[0] = train.loc[0]  # the astronaut's exact quasi-identifiers
    syn.loc[1] = train.loc[0]
    res = rare_combination_exposure(prep_for(train, holdout, syn, schema), None, k=5)
    assert res["synthetic_rows"] == 2 and res["synthetic_distinct"] == 1 and res["holdout_rows"] == 0
    # a quasi-identifier set of its own
    res = rare_combination_exposure(prep_for(train, holdout, syn, schema), ["sex"], k=5)
    assert res["rare_records"] == 0


def test_outlier_exposure_counts_exact_tail_values():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(0, 1, 4000)})
    holdout = pd.DataFrame({"x": rng.normal(0, 1, 1000)})
    schema = profile_table(pd.concat([train, holdout]), "t")
    syn = pd.DataFrame({"x": rng.normal(0, 1, 1000)})
    res = outlier_exposure(prep_for(train, holdout, syn, schema), 0.0025)
    assert res["synthetic_rows"] == 0 and res["holdout_rows"] == 0
    syn.loc[:4, "x"] = np.sort(train["x"].to_numpy())[-5:]  # the five largest train values
    res = outlier_exposure(prep_for(train, holdout, syn, schema), 0.0025)
    assert res["synthetic_rows"] == 5


# ------------------------------------------------------------------------------------------------
# Protections


def protection_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "rome", "oslo"], n).astype(object)
    city[:3] = "vaduz"  # 3 rows: always pooled (k = 5)
    city[3:8] = "monaco"  # 5 rows: pooled or not depending on the noise
    city[8:9] = "andorra"  # 1 row
    return pd.DataFrame(
        {
            "city": city,
            "income": np.round(rng.lognormal(10, 1, n), 2),
            "age": rng.integers(18, 90, n),
            "when": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s"),
            "flag": rng.random(n) < 0.5,
        }
    )


def test_suppress_pools_rare_categories_and_clips_extremes():
    df = protection_table()
    schema = profile_table(df, "t")
    out, summary = suppress(df, schema, seed=1)
    assert df["city"].isin(["vaduz"]).sum() == 3  # the input is untouched
    assert not out["city"].isin(["vaduz", "andorra"]).any()
    counts = out["city"].value_counts()
    assert all(c >= 5 for v, c in counts.items() if v != "__rare__")
    rare = summary["rare_categories"]["city"]
    assert rare["rows_pooled"] == (out["city"] == "__rare__").sum() >= 4
    # the summary never names a pooled value
    assert "vaduz" not in str(summary) and "andorra" not in str(summary)
    for name in ("income", "when"):
        info = summary["clipped"][name]
        # at least min_tail_rows rows lie beyond each bound that clips anything
        assert info["rows_low"] >= 3 and info["rows_high"] >= 3
    # ages 18-89 in 2,000 rows: ~28 rows per value, the extremes identify nobody, nothing clipped
    assert "age" not in summary["clipped"] and (out["age"] == df["age"]).all()
    assert out["income"].min() == summary["clipped"]["income"]["low"]
    assert out["income"].max() == summary["clipped"]["income"]["high"]
    assert out["income"].max() in set(df["income"])  # an order statistic, not an interpolation
    assert out["income"].max() < df["income"].max() and out["age"].dtype == df["age"].dtype
    assert out["when"].dtype == df["when"].dtype and out["when"].max() < df["when"].max()
    assert (out["flag"] == df["flag"]).all()  # booleans are left alone


def test_suppress_is_seeded_and_can_be_switched_off():
    df = protection_table()
    schema = profile_table(df, "t")
    a, sa = suppress(df, schema, seed=3)
    b, sb = suppress(df, schema, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert sa == sb
    levels = {suppress(df, schema, seed=s)[1]["clipped"]["income"]["high"] for s in range(8)}
    assert len(levels) > 1  # the clip level is noisy across seeds
    off, summary = suppress(df, schema, SuppressionConfig(enabled=False))
    pd.testing.assert_frame_equal(off, df)
    assert summary["rare_categories"] == {} and summary["clipped"] == {}


def test_suppressed_schema_matches_the_protected_data():
    from validation.expectations import run_expectations

    df = protection_table()
    schema = profile_table(df, "t")
    out, summary = suppress(df, schema, seed=1)
    protected = suppressed_schema(schema, summary, out)
    cats = protected.column("city").category_values
    assert "__rare__" in cats and "vaduz" not in cats
    assert protected.column("income").max == pytest.approx(summary["clipped"]["income"]["high"])
    ge = run_expectations(out, protected)
    assert ge["success"], [r["expectation_config"]["type"] for r in ge["results"] if not r["success"]]
    assert not run_expectations(df, protected)["success"]  # the raw table breaks the protected ranges


def test_normalized_value_set_is_the_gate_rule():
    values = normalized_value_set([
        pd.Series(["  Alice@Example.COM ", "", None, "bob"]),
        pd.Series([1.0, 2.0, np.nan]),  # whole floats (an int column read from CSV with nulls)
        pd.Series([1.5]),
    ])
    assert values == {"alice@example.com", "bob", "1", "2", "1.5"}
    assert normalized_value_set([]) == set() and normalized_value_set([pd.Series([None])]) == set()


def test_real_values_match_across_unicode_forms_whitespace_and_bytes():
    import unicodedata

    from validation.protect import normalized

    name = "José  Müller"
    decomposed = unicodedata.normalize("NFD", name)
    values = normalized_value_set([pd.Series([decomposed]), pd.Series([b"\xc8raw", "Ｔａｒｏ"]),
                                   pd.Series([np.array([1, 2]), {"a": 1}, None])])  # a nested column
    # the NFC spelling with one space is the same real name; full-width letters are plain ones
    assert values == {"josé müller", "\ufffdraw", "taro", "[1 2]", "{'a': 1}"}
    assert normalized(" jose\u0301\tMÜLLER ") in values  # protect's avoid-sets use the same rule
    real = pd.DataFrame({"name": [decomposed, "Ann Lee"] * 30, "x": np.arange(60)})
    schema = profile_table(real, "t").model_copy()
    schema.column("name").kind = ColumnKind.PII
    synthetic = pd.DataFrame({"name": ["José Müller", "Zoe Kim"], "x": [1, 2]})
    assert value_overlap([real], synthetic, schema, (ColumnKind.PII,))["total"] == 1
