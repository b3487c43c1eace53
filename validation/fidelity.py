"""Fidelity metrics: how closely a table follows the real train split.

Every score is a *similarity* in [0, 1] (1 = identical distributions) and is computed twice:
synthetic vs train, and holdout vs train. The holdout is fresh real data the generator never
saw, so its score is the ceiling a perfect generator could reach at that sample size.

* Column shapes: 1 - KS statistic for numeric and datetime columns (nulls count as a point mass
  below every value, so a wrong null rate lowers the score), 1 - total variation distance for
  categorical and boolean columns (nulls are their own category).
* Pair trends: for two numeric columns 1 - |rho_a - rho_b| / 2 with Spearman's rho (rank based:
  robust to outliers and to monotone transforms); for two categorical columns
  1 - total variation of the contingency tables; for a numeric and a categorical column the
  numeric one is binned on the train split's deciles first (nulls get their own bin).
* Train-on-synthetic, test-on-real (optional, one target column): a histogram gradient
  boosting model trained on synthetic rows and scored on the holdout, compared with the same
  model trained on the real train split.

The code is vectorized numpy (SDMetrics' per-pair loops take minutes at 50k rows x 20 columns);
``tests/test_fidelity.py`` checks it against SDMetrics on a small table.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from validation.columns import PreparedTables

# ----------------------------------------------------------------------------------------------
# Column shapes


def ks_complement(a: np.ndarray, b: np.ndarray) -> float:
    """1 - two-sample KS statistic; NaN (null) is a point mass below all values."""
    a = np.where(np.isnan(a), -np.inf, a)
    b = np.where(np.isnan(b), -np.inf, b)
    if len(a) == 0 or len(b) == 0:
        return 0.0 if len(a) != len(b) else 1.0
    a = np.sort(a)
    b = np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(1.0 - np.max(np.abs(fa - fb)))


def tv_complement(codes_a: np.ndarray, codes_b: np.ndarray, n_levels: int) -> float:
    """1 - total variation distance between the level frequencies of two code arrays."""
    if len(codes_a) == 0 or len(codes_b) == 0:
        return 0.0 if len(codes_a) != len(codes_b) else 1.0
    pa = np.bincount(codes_a, minlength=n_levels) / len(codes_a)
    pb = np.bincount(codes_b, minlength=n_levels) / len(codes_b)
    return float(1.0 - 0.5 * np.abs(pa - pb).sum())


def column_shapes(prep: PreparedTables, other: str, ref: str = "train") -> dict[str, float]:
    """Shape similarity of every prepared column of ``other`` against ``ref``."""
    out: dict[str, float] = {}
    for i, name in enumerate(prep.num_cols):
        out[name] = ks_complement(prep.num[ref][:, i], prep.num[other][:, i])
    for j, name in enumerate(prep.cat_cols):
        out[name] = tv_complement(prep.cat[ref][:, j], prep.cat[other][:, j], len(prep.cat_levels[j]))
    return out


# ----------------------------------------------------------------------------------------------
# Pair trends


def spearman_matrix(x: np.ndarray) -> np.ndarray:
    """Spearman correlation of every pair of columns of ``x``, on pairwise-complete rows.

    Ranks are taken per column over its non-null values (not per pair); with few nulls this is
    indistinguishable from the per-pair definition and keeps the whole matrix to three matrix
    products. Undefined correlations (a constant column) are 0: no monotone relation.
    """
    n_cols = x.shape[1]
    if n_cols == 0:
        return np.zeros((0, 0))
    ranks = pd.DataFrame(x).rank(method="average").to_numpy(dtype="float64")
    mask = ~np.isnan(ranks)
    with np.errstate(invalid="ignore", divide="ignore"):
        if mask.all():
            corr = np.corrcoef(ranks, rowvar=False) if len(ranks) > 1 else np.full((n_cols, n_cols), np.nan)
            corr = np.atleast_2d(corr)
        else:
            m = mask.astype("float64")
            r0 = np.where(mask, ranks, 0.0)
            n = m.T @ m
            sx = r0.T @ m  # sum of column i over rows where j is present too
            sxx = (r0 * r0).T @ m
            sxy = r0.T @ r0
            cov = sxy - sx * sx.T / n
            var_i = sxx - sx * sx / n
            var_j = var_i.T
            corr = cov / np.sqrt(var_i * var_j)
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


def quantile_bins(ref: np.ndarray, values: np.ndarray, n_bins: int) -> tuple[np.ndarray, int]:
    """Bin ``values`` on the deciles (``n_bins``-iles) of ``ref``; nulls get the last bin."""
    finite = ref[~np.isnan(ref)]
    if len(finite):
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1]))
    else:
        edges = np.empty(0)
    n_value_bins = len(edges) + 1
    codes = np.searchsorted(edges, values, side="right")
    codes = np.where(np.isnan(values), n_value_bins, codes)
    return codes.astype(np.int64), n_value_bins + 1


def contingency_complement(a_ref: np.ndarray, b_ref: np.ndarray, a_oth: np.ndarray, b_oth: np.ndarray, la: int, lb: int) -> float:
    """1 - total variation distance between two joint distributions of code pairs."""
    return tv_complement(a_ref * lb + b_ref, a_oth * lb + b_oth, la * lb)


@dataclass
class PairTrend:
    a: str
    b: str
    metric: str  # "correlation" or "contingency"
    score: float
    ref_value: float | None = None  # Spearman rho in the reference, for correlation pairs
    other_value: float | None = None


def pair_trends(
    prep: PreparedTables, other: str, ref: str = "train", max_levels: int = 20, n_bins: int = 10
) -> list[PairTrend]:
    """Pair-trend similarity of every pair of prepared columns, ``other`` against ``ref``."""
    out: list[PairTrend] = []
    n_num = len(prep.num_cols)
    rho_ref = spearman_matrix(prep.num[ref])
    rho_oth = spearman_matrix(prep.num[other])
    for i in range(n_num):
        for k in range(i + 1, n_num):
            out.append(
                PairTrend(
                    prep.num_cols[i], prep.num_cols[k], "correlation",
                    float(1.0 - abs(rho_ref[i, k] - rho_oth[i, k]) / 2.0),
                    float(rho_ref[i, k]), float(rho_oth[i, k]),
                )
            )
    # discrete views: capped categorical codes and decile-binned numerics
    cat_codes: list[tuple[np.ndarray, np.ndarray, int]] = []
    for j in range(len(prep.cat_cols)):
        codes, levels = prep.capped_codes(j, max_levels)
        cat_codes.append((codes[ref], codes[other], len(levels)))
    bins: list[tuple[np.ndarray, np.ndarray, int]] = []
    for i in range(n_num):
        r, nb = quantile_bins(prep.num[ref][:, i], prep.num[ref][:, i], n_bins)
        o, _ = quantile_bins(prep.num[ref][:, i], prep.num[other][:, i], n_bins)
        bins.append((r, o, nb))
    for i in range(n_num):
        for j in range(len(prep.cat_cols)):
            br, bo, nb = bins[i]
            cr, co, nc = cat_codes[j]
            out.append(
                PairTrend(prep.num_cols[i], prep.cat_cols[j], "contingency",
                          contingency_complement(br, cr, bo, co, nb, nc))
            )
    for j in range(len(prep.cat_cols)):
        for k in range(j + 1, len(prep.cat_cols)):
            ar, ao, la = cat_codes[j]
            br_, bo_, lb = cat_codes[k]
            out.append(
                PairTrend(prep.cat_cols[j], prep.cat_cols[k], "contingency",
                          contingency_complement(ar, br_, ao, bo_, la, lb))
            )
    return out


# ----------------------------------------------------------------------------------------------
# Train on synthetic, test on real


def _features(prep: PreparedTables, role: str, target: str, max_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix without ``target``: numerics as they are (NaN allowed), categoricals as
    capped codes flagged as categorical for the gradient boosting model."""
    cols, is_cat = [], []
    for i, name in enumerate(prep.num_cols):
        if name != target:
            cols.append(prep.num[role][:, i])
            is_cat.append(False)
    for j, name in enumerate(prep.cat_cols):
        if name != target:
            codes, _ = prep.capped_codes(j, max_levels)
            cols.append(codes[role].astype("float64"))
            is_cat.append(True)
    x = np.column_stack(cols) if cols else np.zeros((prep.n_rows(role), 1))
    return x, np.array(is_cat if cols else [False])


def _fit_score(x_tr, y_tr, x_te, y_te, is_cat, classification: bool, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, r2_score

    if classification:
        if len(np.unique(y_tr)) < 2:  # a one-class training set: the model is a constant
            pred = np.full(len(y_te), y_tr[0] if len(y_tr) else -1)
        else:
            model = HistGradientBoostingClassifier(
                max_iter=100, categorical_features=is_cat, random_state=seed, early_stopping=False
            )
            pred = model.fit(x_tr, y_tr).predict(x_te)
        return float(f1_score(y_te, pred, average="macro"))
    model = HistGradientBoostingRegressor(
        max_iter=100, categorical_features=is_cat, random_state=seed, early_stopping=False
    )
    return float(r2_score(y_te, model.fit(x_tr, y_tr).predict(x_te)))


def train_synthetic_test_real(
    prep: PreparedTables, target: str, max_rows: int = 20_000, max_levels: int = 50, seed: int = 0
) -> dict[str, Any]:
    """Macro F1 (categorical target) or R^2 (numeric target) on the holdout of a model trained on
    synthetic rows (``tstr``) and of the same model trained on the real train split (``trtr``)."""
    if target in prep.cat_cols:
        j = prep.cat_cols.index(target)
        y = {r: prep.cat[r][:, j] for r in prep.cat}
        classification = True
    elif target in prep.num_cols:
        i = prep.num_cols.index(target)
        y = {r: prep.num[r][:, i] for r in prep.num}
        classification = False
    else:
        raise KeyError(f"target column {target!r} is not a modeled column of all three tables")
    rng = np.random.default_rng(seed)
    data = {}
    for role in ("train", "synthetic", "holdout"):
        x, is_cat = _features(prep, role, target, max_levels)
        yr = y[role]
        keep = np.ones(len(yr), bool) if classification else ~np.isnan(yr)
        x, yr = x[keep], yr[keep]
        if role != "holdout" and len(yr) > max_rows:
            idx = rng.choice(len(yr), max_rows, replace=False)
            x, yr = x[idx], yr[idx]
        data[role] = (x, yr)
    x_te, y_te = data["holdout"]
    if len(y_te) == 0 or len(data["synthetic"][1]) == 0:
        return {"target": target, "task": "classification" if classification else "regression",
                "tstr": None, "trtr": None, "ratio": None}
    # One thread: at these sizes OpenMP's barrier waits dominate (50x the CPU time on a busy
    # machine), and a single thread also makes the scores reproducible bit for bit.
    with threadpool_limits(1):
        tstr = _fit_score(*data["synthetic"], x_te, y_te, is_cat, classification, seed)
        trtr = _fit_score(*data["train"], x_te, y_te, is_cat, classification, seed)
    ratio = tstr / trtr if trtr > 0 else None
    return {
        "target": target,
        "task": "classification" if classification else "regression",
        "metric": "macro_f1" if classification else "r2",
        "tstr": tstr,
        "trtr": trtr,
        "ratio": ratio,
    }


# ----------------------------------------------------------------------------------------------
# Everything together


@dataclass
class FidelityResult:
    """Column-shape and pair-trend scores of the synthetic table and of the holdout ceiling."""

    shapes: dict[str, dict[str, float]] = field(default_factory=dict)  # col -> {synthetic, holdout}
    pairs: list[dict[str, Any]] = field(default_factory=list)
    score: float | None = None  # mean of the shape mean and the pair mean, synthetic vs train
    ceiling: float | None = None  # the same for the holdout
    shape_score: float | None = None
    pair_score: float | None = None
    shape_ceiling: float | None = None
    pair_ceiling: float | None = None
    tstr: dict[str, Any] | None = None
    rho: dict[str, Any] = field(default_factory=dict)  # Spearman matrices for the report

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "ceiling": self.ceiling,
            "column_shape_score": self.shape_score,
            "column_shape_ceiling": self.shape_ceiling,
            "pair_trend_score": self.pair_score,
            "pair_trend_ceiling": self.pair_ceiling,
            "column_shapes": self.shapes,
            "pair_trends": self.pairs,
            "tstr": self.tstr,
        }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _overall(shape: float | None, pair: float | None) -> float | None:
    parts = [v for v in (shape, pair) if v is not None]
    return float(np.mean(parts)) if parts else None


def sized_like_holdout_score(
    prep: PreparedTables, draws: int = 8, seed: int = 0, max_levels: int = 20, n_bins: int = 10
) -> float | None:
    """The overall score of synthetic rows drawn as many as the holdout has (without replacement,
    the mean of ``draws`` draws): the score is 1 - a sampling distance, so a larger table scores
    higher, and only a sample of the holdout's size compares like with like with its ceiling.
    None when the synthetic table has no more rows than the holdout."""
    n = prep.n_rows("holdout")
    if n == 0 or prep.n_rows("synthetic") <= n:
        return None  # no larger than the holdout: the whole table's score compares as it is
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(draws):
        idx = np.sort(rng.choice(prep.n_rows("synthetic"), n, replace=False))
        sub = replace(prep, num={**prep.num, "sized": prep.num["synthetic"][idx]},
                      cat={**prep.cat, "sized": prep.cat["synthetic"][idx]})
        scores.append(_overall(_mean(list(column_shapes(sub, "sized").values())),
                               _mean([p.score for p in pair_trends(sub, "sized", max_levels=max_levels, n_bins=n_bins)])))
    return _mean([s for s in scores if s is not None])


def evaluate_fidelity(
    prep: PreparedTables,
    target_column: str | None = None,
    max_levels: int = 20,
    n_bins: int = 10,
    tstr_max_rows: int = 20_000,
    seed: int = 0,
) -> FidelityResult:
    """All fidelity scores of ``prep['synthetic']`` and the holdout ceiling, against train."""
    res = FidelityResult()
    syn_shapes = column_shapes(prep, "synthetic")
    hold_shapes = column_shapes(prep, "holdout")
    res.shapes = {c: {"synthetic": syn_shapes[c], "holdout": hold_shapes[c]} for c in prep.columns}
    syn_pairs = pair_trends(prep, "synthetic", max_levels=max_levels, n_bins=n_bins)
    hold_pairs = pair_trends(prep, "holdout", max_levels=max_levels, n_bins=n_bins)
    res.pairs = [
        {"a": s.a, "b": s.b, "metric": s.metric, "synthetic": s.score, "holdout": h.score,
         "rho_train": s.ref_value, "rho_synthetic": s.other_value}
        for s, h in zip(syn_pairs, hold_pairs)
    ]
    res.shape_score = _mean(list(syn_shapes.values()))
    res.shape_ceiling = _mean(list(hold_shapes.values()))
    res.pair_score = _mean([p.score for p in syn_pairs])
    res.pair_ceiling = _mean([p.score for p in hold_pairs])
    res.score = _overall(res.shape_score, res.pair_score)
    res.ceiling = _overall(res.shape_ceiling, res.pair_ceiling)
    res.rho = {
        "columns": list(prep.num_cols),
        "train": spearman_matrix(prep.num["train"]),
        "synthetic": spearman_matrix(prep.num["synthetic"]),
    }
    if target_column:
        res.tstr = train_synthetic_test_real(prep, target_column, max_rows=tstr_max_rows, seed=seed)
    return res
