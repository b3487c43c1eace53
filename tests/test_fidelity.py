"""Fidelity metrics: own vectorized code checked against scipy, pandas and SDMetrics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from validation.columns import prepare_tables
from validation.fidelity import (
    column_shapes,
    evaluate_fidelity,
    ks_complement,
    pair_trends,
    spearman_matrix,
    tv_complement,
)
from validation.profile import profile_table


def mixed_table(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0, 0], [[1, .7, -.3], [.7, 1, 0], [-.3, 0, 1]], n)
    return pd.DataFrame(
        {
            "x": z[:, 0] + shift,
            "y": np.round(np.exp(z[:, 1]), 3),
            "w": np.round(z[:, 2] * 5),
            "color": np.where(z[:, 0] > 0.5, "red", np.where(z[:, 2] > 0, "green", "blue")),
            "size": np.where(z[:, 1] + rng.normal(0, 1, n) > 0, "L", "S"),
            "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.round(50 + 10 * z[:, 0]), unit="D"),
        }
    )


def prep(real: pd.DataFrame, other: pd.DataFrame):
    schema = profile_table(pd.concat([real, other], ignore_index=True), "t")
    return prepare_tables({"train": real, "holdout": other, "synthetic": other}, schema)


def test_ks_complement_matches_scipy():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 700), rng.normal(0.2, 1.3, 400).round(1)
    assert ks_complement(a, b) == pytest.approx(1 - ks_2samp(a, b).statistic)


def test_ks_complement_counts_nulls_as_a_category():
    values = np.arange(70.0)
    a = np.r_[values, [np.nan] * 10]  # 12.5% null
    b = np.r_[values, [np.nan] * 30]  # 30% null, same non-null values
    # nulls are a point mass below every value: the KS distance is the null-rate gap
    assert ks_complement(a, b) == pytest.approx(1 - (0.3 - 0.125))
    assert ks_complement(a, a.copy()) == 1.0
    assert ks_complement(values, values[::-1].copy()) == 1.0


def test_tv_complement():
    a = np.array([0, 0, 1, 2])
    b = np.array([0, 1, 1, 1])
    # p = (.5, .25, .25), q = (.25, .75, 0): TV = .5 * (.25 + .5 + .25) = .5
    assert tv_complement(a, b, 3) == pytest.approx(0.5)


def test_spearman_matrix_matches_pandas_with_and_without_nulls():
    df = mixed_table(500, 1)[["x", "y", "w"]]
    expected = df.corr(method="spearman").to_numpy()
    assert np.allclose(spearman_matrix(df.to_numpy()), expected)
    holes = df.copy()
    holes.loc[::7, "x"] = np.nan
    holes.loc[::11, "y"] = np.nan
    got = spearman_matrix(holes.to_numpy())
    ref = holes.corr(method="spearman").to_numpy()  # per-pair ranks; ours ranks per column
    assert np.allclose(got, ref, atol=0.01)
    const = np.c_[np.ones(50), np.arange(50.0)]
    assert spearman_matrix(const)[0, 1] == 0.0


def test_scores_agree_with_sdmetrics():
    from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
    from sdmetrics.single_column import KSComplement, TVComplement

    real, synth = mixed_table(800, 2), mixed_table(600, 3, shift=0.3)
    p = prep(real, synth)
    shapes = column_shapes(p, "synthetic")
    for col in ("x", "y", "w"):
        assert shapes[col] == pytest.approx(KSComplement.compute(real[col], synth[col]), abs=1e-9)
    for col in ("color", "size"):
        assert shapes[col] == pytest.approx(TVComplement.compute(real[col], synth[col]), abs=1e-9)
    pairs = {(t.a, t.b): t.score for t in pair_trends(p, "synthetic")}
    for a, b in (("x", "y"), ("x", "w"), ("y", "w")):
        expected = CorrelationSimilarity.compute(real[[a, b]], synth[[a, b]], coefficient="Spearman")
        assert pairs[(a, b)] == pytest.approx(expected, abs=1e-9)
    expected = ContingencySimilarity.compute(real[["color", "size"]], synth[["color", "size"]])
    assert pairs[("color", "size")] == pytest.approx(expected, abs=1e-9)


def test_every_pair_is_scored_once_with_the_right_metric():
    real = mixed_table(400, 4)
    p = prep(real, mixed_table(400, 5))
    trends = pair_trends(p, "synthetic")
    n = len(p.columns)
    assert len(trends) == n * (n - 1) // 2
    metrics = {(t.a, t.b): t.metric for t in trends}
    assert metrics[("x", "y")] == "correlation"
    assert metrics[("x", "color")] == "contingency"  # binned numeric vs category
    assert metrics[("color", "size")] == "contingency"
    assert all(0.0 <= t.score <= 1.0 for t in trends)


def test_identical_tables_score_one_and_worse_tables_score_lower():
    real = mixed_table(1000, 6)
    same = evaluate_fidelity(prep(real, real.copy()))
    assert same.score == pytest.approx(1.0) and same.ceiling == pytest.approx(1.0)
    near = evaluate_fidelity(prep(real, mixed_table(1000, 7)))
    far = evaluate_fidelity(prep(real, mixed_table(1000, 7, shift=1.5)))
    assert 0.9 < near.score < 1.0
    assert far.score < near.score - 0.05
    assert far.shapes["x"]["synthetic"] < 0.6 and near.shapes["x"]["synthetic"] > 0.9


def test_independent_columns_lose_pair_trends_only():
    real = mixed_table(2000, 8)
    shuffled = real.apply(lambda s: s.sample(frac=1, random_state=hash(s.name) % 1000).to_numpy())
    res = evaluate_fidelity(prep(real, shuffled))
    assert res.shape_score == pytest.approx(1.0)
    corr_xy = next(p for p in res.pairs if (p["a"], p["b"]) == ("x", "y"))
    assert corr_xy["synthetic"] < 0.7  # rho 0.7 -> 0: similarity 1 - 0.7 / 2
    assert res.pair_score < 0.95


def test_high_cardinality_pairs_are_capped():
    rng = np.random.default_rng(9)
    real = pd.DataFrame({"code": [f"c{i}" for i in rng.integers(0, 300, 3000)], "v": rng.normal(0, 1, 3000)})
    p = prep(real, real.sample(frac=1, random_state=1).reset_index(drop=True))
    codes, levels = p.capped_codes(0, 20)
    assert len(levels) == 20 and levels[-1] == "(other)"
    trend = pair_trends(p, "synthetic", max_levels=20)[0]
    assert trend.score == pytest.approx(1.0)  # same rows, reordered
