"""Privacy metrics: does the synthetic table reveal the rows it was trained on?

The yardstick throughout is the holdout: real rows from the same source that the generator never
saw. A synthetic table that is no closer to the train split than fresh real data is, leaks
nothing that distance-based attacks can measure.

Distances are Euclidean on an encoded matrix fitted on the train split:

* numeric and datetime columns are mapped through the train split's empirical CDF (mid-ranks,
  linearly interpolated between observed values), so every numeric column spans [0, 1] whatever
  its unit or skew; a null becomes 0.5 plus a 0/1 null flag;
* categorical and boolean columns are one-hot encoded over at most ``max_levels`` levels (the
  most frequent train levels, nulls, and one shared "other" level), scaled by 1/sqrt(2) so that
  two different categories are at distance 1, the full range of a numeric column.

Nearest neighbours come from scikit-learn's brute-force index (chunked BLAS, multi-threaded),
never from pairwise pandas merges. Large tables are subsampled for the queries (seeded); exact
copies are counted on the full tables by hashing.

Metrics:

* DCR (distance to closest record) of synthetic rows to the train split, compared with the
  holdout's own DCR to the train split (the baseline), at the 5th percentile.
* Near-match share: share of synthetic rows at or below a small distance to their closest train
  row, the holdout's own low DCR quantile (1st percentile by default). Fresh real rows fall
  there at about that rate; a generator that replays a few percent of its training rows with a
  tiny change (no exact copy, too few to move the 5th percentile) exceeds it.
* DCR share: share of synthetic rows closer to the train split than to the holdout. The train
  split is cut into disjoint pieces of the holdout's size and the share is averaged over the
  pieces, so the ideal value is 0.5 whatever the split ratio (against the whole 4x larger train
  split a perfect generator would score about 0.8).
* NNDR: distance to the closest train row divided by the distance to the second closest; near 0
  singles out one training record.
* Membership-inference AUC: an attacker scores a candidate row by minus its distance to the
  nearest synthetic row; AUC of telling train members from holdout non-members (0.5 = chance).
* Identical-match share, PII/key value overlap, rare quasi-identifier combination exposure and
  outlier exposure (exact matching, see the functions below).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from validation.columns import PreparedTables, row_keys
from validation.schema import ColumnKind, PIIType, TableSchema

# Distances are rounded to this precision before comparisons: BLAS computes |x|^2+|y|^2-2xy,
# which leaves ~1e-8 of noise on exact copies; one category mismatch is distance 1.
_DIST_DECIMALS = 6
_PARALLEL_PAIRS = 50_000_000


# ----------------------------------------------------------------------------------------------
# Encoding


def _midrank_map(train_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct train values and their mid-rank CDF positions in (0, 1)."""
    finite = train_values[~np.isnan(train_values)]
    if len(finite) == 0:
        return np.array([0.0]), np.array([0.5])
    uniq, counts = np.unique(finite, return_counts=True)
    cum = np.cumsum(counts)
    mid = (cum - counts / 2.0) / cum[-1]
    return uniq, mid


def encode(prep: PreparedTables, max_levels: int = 20) -> dict[str, np.ndarray]:
    """The encoded float64 matrix of every role (see the module docstring)."""
    blocks: dict[str, list[np.ndarray]] = {r: [] for r in prep.num}
    for i in range(len(prep.num_cols)):
        xp, fp = _midrank_map(prep.num["train"][:, i])
        any_null = any(np.isnan(prep.num[r][:, i]).any() for r in prep.num)
        for r in prep.num:
            v = prep.num[r][:, i]
            null = np.isnan(v)
            q = np.interp(np.where(null, xp[0], v), xp, fp)
            q = np.where(null, 0.5, q)
            blocks[r].append(q[:, None])
            if any_null:
                blocks[r].append(null.astype("float64")[:, None])
    scale = 1.0 / np.sqrt(2.0)
    for j in range(len(prep.cat_cols)):
        codes, levels = prep.capped_codes(j, max_levels)
        eye = np.eye(len(levels)) * scale
        for r in prep.num:
            blocks[r].append(eye[codes[r]])
    return {
        r: (np.hstack(b) if b else np.zeros((prep.n_rows(r), 0))) for r, b in blocks.items()
    }


def nearest(reference: np.ndarray, queries: np.ndarray, k: int = 1) -> np.ndarray:
    """Distances of each query row to its ``k`` nearest reference rows, ``(n_queries, k)``."""
    from sklearn.neighbors import NearestNeighbors

    k_eff = min(k, len(reference))
    if len(queries) == 0:
        return np.zeros((0, k))
    if reference.shape[1] == 0:
        dist = np.zeros((len(queries), k_eff))
    else:
        index = NearestNeighbors(n_neighbors=k_eff, algorithm="brute", metric="euclidean")
        # Small searches run single-threaded: OpenMP start-up and barrier waits cost more than
        # they save there, and on a shared, oversubscribed machine they cost 4x the CPU time.
        threads = 1 if len(reference) * len(queries) < _PARALLEL_PAIRS else None
        with threadpool_limits(threads):
            dist, _ = index.fit(reference).kneighbors(queries, return_distance=True)
    dist = np.round(dist, _DIST_DECIMALS)
    if k_eff < k:  # fewer reference rows than neighbours asked for: the rest are infinitely far
        dist = np.hstack([dist, np.full((len(queries), k - k_eff), np.inf)])
    return dist


# ----------------------------------------------------------------------------------------------
# Distance metrics


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = pd.Series(np.concatenate([pos, neg])).rank(method="average").to_numpy()
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def auc_null_se(n_pos: int, n_neg: int) -> float:
    """Standard error of the AUC of a chance-level scorer (Hanley & McNeil at AUC = 0.5)."""
    if n_pos == 0 or n_neg == 0:
        return float("inf")
    return float(np.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg)))


def near_match_limit(holdout_near_rows: int, holdout_rows: int, synthetic_rows: int, z: float) -> float:
    """Highest near-match share an honest generator's ``synthetic_rows`` reach, except with the
    one-sided probability of ``z`` standard errors.

    The threshold is the k-th smallest (k = ``holdout_near_rows``) of ``holdout_rows`` holdout
    distances, so the share of fresh real rows at or below it is Beta(k, n + 1 - k) distributed,
    and the synthetic count given that share is binomial: together beta-binomial. For large
    tables the limit is the holdout's rate plus ``z`` standard errors of both shares; at a few
    holdout rows that noise is skewed and the normal limit would quarantine honest runs.
    """
    from scipy.stats import betabinom, norm

    if synthetic_rows == 0 or holdout_rows == 0:
        return 1.0
    k = min(max(holdout_near_rows, 1), holdout_rows)
    count = betabinom.ppf(norm.cdf(z), synthetic_rows, k, holdout_rows + 1 - k)
    return float(count) / synthetic_rows


def _nndr(d: np.ndarray) -> np.ndarray:
    """d1/d2 per row; two equally close records (0/0 included) single nobody out: ratio 1."""
    d1, d2 = d[:, 0], d[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(d2 > 0, d1 / d2, 1.0)
    return np.where(np.isfinite(r), r, 1.0)


@dataclass
class DistanceResult:
    """Distance-based privacy metrics; arrays are kept for the report's plots."""

    metrics: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def distance_metrics(
    encoded: dict[str, np.ndarray],
    sample_rows: int = 5_000,
    membership_rows: int = 2_500,
    membership_index_rows: int = 50_000,
    seed: int = 0,
    near_quantile: float = 0.01,
) -> DistanceResult:
    """DCR share, DCR, near-match share and NNDR against the holdout baseline,
    membership-inference AUC. ``near_quantile`` is the holdout DCR quantile that sets the
    near-match distance."""
    rng = np.random.default_rng(seed)
    train, hold, syn = encoded["train"], encoded["holdout"], encoded["synthetic"]
    n_t, n_h, n_s = len(train), len(hold), len(syn)
    out = DistanceResult()
    if n_t == 0 or n_h == 0 or n_s == 0:
        out.metrics["error"] = "a table is empty"
        return out

    def sample(n: int, cap: int) -> np.ndarray:
        return np.sort(rng.choice(n, cap, replace=False)) if n > cap else np.arange(n)

    s_q = syn[sample(n_s, sample_rows)]
    h_q = hold[sample(n_h, sample_rows)]

    # Equal-size references: the holdout (or a subsample of it, when larger than train) and
    # disjoint pieces of the train split of that size; leftover train rows still count for the
    # closest-record distances, which are taken over the whole train split.
    m = min(n_t, n_h)
    h_ref = hold[sample(n_h, m)] if n_h > m else hold
    perm = rng.permutation(n_t)
    n_pieces = n_t // m
    pieces = [perm[p * m:(p + 1) * m] for p in range(n_pieces)]
    if n_pieces * m < n_t:
        pieces.append(perm[n_pieces * m:])

    d_s_hold = nearest(h_ref, s_q, 1)[:, 0]
    shares = []
    s_best = np.full((len(s_q), 2), np.inf)
    h_best = np.full((len(h_q), 2), np.inf)
    for p, idx in enumerate(pieces):
        ref = train[idx]
        d_s = nearest(ref, s_q, 2)
        d_h = nearest(ref, h_q, 2)
        if p < n_pieces:
            closer = (d_s[:, 0] < d_s_hold).mean() + 0.5 * (d_s[:, 0] == d_s_hold).mean()
            shares.append(float(closer))
        s_best = np.sort(np.hstack([s_best, d_s]), axis=1)[:, :2]
        h_best = np.sort(np.hstack([h_best, d_h]), axis=1)[:, :2]

    dcr_s, dcr_h = s_best[:, 0], h_best[:, 0]
    nndr_s, nndr_h = _nndr(s_best), _nndr(h_best)
    p5_s, p5_h = float(np.percentile(dcr_s, 5)), float(np.percentile(dcr_h, 5))
    # Near matches: the threshold is an observed holdout distance (inverted CDF, no
    # interpolation), so when many holdout rows tie at it (0 for tables whose rows repeat) the
    # holdout's rate counts them all and may exceed the quantile; synthetic rows are held to
    # that same rate.
    near = float(np.quantile(dcr_h, near_quantile, method="inverted_cdf"))
    near_h_rows = int(np.sum(dcr_h <= near))
    near_s = float(np.mean(dcr_s <= near))

    # Membership inference: the attacker sees the synthetic table (subsampled when huge) and
    # scores candidates by closeness to it. Members: train rows; non-members: holdout rows.
    n_mia = min(n_h, n_t, membership_rows)
    members = train[sample(n_t, n_mia)]
    non_members = hold[sample(n_h, n_mia)]
    index = syn[sample(n_s, membership_index_rows)]
    d_mem = nearest(index, members, 1)[:, 0]
    d_non = nearest(index, non_members, 1)[:, 0]
    mia = auc(-d_mem, -d_non)

    out.metrics.update(
        {
            "dcr_share": float(np.mean(shares)),
            "dcr_share_pieces": len(shares),
            "dcr_share_reference_rows": int(m),
            "dcr_p5": p5_s,
            "holdout_dcr_p5": p5_h,
            "dcr_p5_ratio": (p5_s / p5_h) if p5_h > 0 else None,
            "dcr_median": float(np.median(dcr_s)),
            "holdout_dcr_median": float(np.median(dcr_h)),
            "near_match_quantile": float(near_quantile),
            "near_match_distance": near,
            "near_match_share": near_s,
            "holdout_near_match_share": near_h_rows / len(dcr_h),
            "holdout_near_match_rows": near_h_rows,
            "synthetic_exact_dcr_zero_share": float(np.mean(dcr_s == 0)),
            "holdout_exact_dcr_zero_share": float(np.mean(dcr_h == 0)),
            "nndr_p5": float(np.percentile(nndr_s, 5)),
            "holdout_nndr_p5": float(np.percentile(nndr_h, 5)),
            "nndr_median": float(np.median(nndr_s)),
            "holdout_nndr_median": float(np.median(nndr_h)),
            "membership_auc": mia,
            "membership_auc_se": auc_null_se(n_mia, n_mia),
            "membership_rows": int(n_mia),
            "query_rows_synthetic": int(len(s_q)),
            "query_rows_holdout": int(len(h_q)),
        }
    )
    out.arrays = {
        "dcr_synthetic_train": dcr_s,
        "dcr_holdout_train": dcr_h,
        "dcr_synthetic_holdout": d_s_hold,
        "nndr_synthetic": nndr_s,
        "nndr_holdout": nndr_h,
    }
    return out


# ----------------------------------------------------------------------------------------------
# Exact-match metrics


def train_repeats(prep: PreparedTables, counts: np.ndarray | None = None) -> tuple[int, int, int]:
    """How often train rows equal another train row on all prepared columns: each train row,
    checked against the rest of the split, shows how often a fresh real row copies a train row
    by chance (never in a table of continuous columns, often in one of a few coarse columns).

    Returns ``(repeats, effective_repeats, effective_rows)``. Repeats come in clusters (a value
    seen k times gives k repeating rows), so the rate 1 - N1/n (Good-Turing: N1 values seen once)
    varies more than n independent rows would: its variance has an extra 2 N2 / n^2 (N2 values
    seen twice). The effective rows are the independent rows of the same variance, and the
    effective repeats keep the rate; with no repeats at all every row counts. ``counts``: how
    often each distinct train row occurs, when :func:`identical_match_counts` has them.
    """
    n = prep.n_rows("train")
    if not prep.columns or n < 2:
        return 0, 0, n
    if counts is None:
        counts = np.unique(row_keys(prep, "train"), return_counts=True)[1]
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    repeats = n - n1
    binomial, good_turing = n1 - n1 * n1 / n, n1 + 2 * n2 - n1 * n1 / n  # n^2 x the two variances
    rows = n * binomial / good_turing if good_turing > 0 else float(n)
    return repeats, round(repeats / n * rows), round(rows)


def identical_match_counts(prep: PreparedTables) -> tuple[int, int, np.ndarray]:
    """Synthetic rows and holdout rows equal to some train row on all prepared columns
    (canonical values, so CSV-vs-Parquet dtype differences do not hide copies), and how often
    each distinct train row occurs (for :func:`train_repeats`): the train split hashed once."""
    if not prep.columns:
        return 0, 0, np.zeros(0, dtype=np.int64)
    train, counts = np.unique(row_keys(prep, "train"), return_counts=True)

    def copies(role: str) -> int:
        return int(np.isin(row_keys(prep, role), train).sum()) if prep.n_rows(role) else 0

    return copies("synthetic"), copies("holdout"), counts


def identical_match_shares(prep: PreparedTables) -> tuple[float, float]:
    """Share of synthetic rows, and of holdout rows, equal to some train row (see
    :func:`identical_match_counts`)."""
    copies_s, copies_h, _ = identical_match_counts(prep)
    return copies_s / max(prep.n_rows("synthetic"), 1), copies_h / max(prep.n_rows("holdout"), 1)


def normalized_text(value: object) -> str:
    """The form values are compared in: Unicode NFKC (composed accents, full-width digits), runs
    of whitespace as one space, trimmed and case-folded; bytes read as UTF-8 (bad bytes replaced).
    So a real name typed with decomposed accents or a double space is still that name."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def normalized_value_set(series_list: list[pd.Series]) -> set[str]:
    """Distinct non-empty values of the columns as :func:`normalized_text`: the one rule the
    gate's value-overlap check compares by, and that :mod:`validation.protect` must use for its
    avoid-sets. A float column whose values are all whole (``1.0`` read from a CSV column with
    nulls) is written as integers (``"1"``), like the integer column it was."""
    parts = []
    for s in series_list:
        try:
            u = pd.Series(s.dropna().unique())
        except TypeError:  # lists and dicts of a nested column cannot be hashed: compare their text
            parts.append(pd.Series(s.dropna().map(normalized_text).unique(), dtype=object))
            continue
        if len(u) == 0:
            continue
        if pd.api.types.is_float_dtype(u) and bool((u == np.floor(u)).all()):
            u = u.astype("int64")
        parts.append(u.astype(str).str.casefold() if pd.api.types.is_numeric_dtype(u) else u.map(normalized_text))
    if not parts:
        return set()
    values = set(pd.concat(parts, ignore_index=True).unique().tolist())
    values.discard("")
    return values


# PII whose values are specific enough to look for in *other* synthetic columns too; names and
# addresses share words with ordinary text and are compared within their own column only.
_CROSS_COLUMN_PII = {PIIType.EMAIL, PIIType.PHONE, PIIType.NATIONAL_ID, PIIType.CREDIT_CARD, PIIType.IP_ADDRESS}
_CROSS_COLUMN_MIN_LEN = 6


def value_overlap(
    real_tables: list[pd.DataFrame], synthetic: pd.DataFrame, schema: TableSchema, kinds: tuple[ColumnKind, ...]
) -> dict[str, Any]:
    """Real values of columns of ``kinds`` (PII, keys, free text) that appear in the synthetic
    table: in the same column, and for specific PII types (emails, phones, ids, cards, IPs) in
    any synthetic text column. Values are compared as trimmed, case-folded text. Returns the
    counts per column (never the values themselves: the report must not repeat the leak)."""
    per_column: dict[str, int] = {}
    text_cols = [
        c for c in synthetic.columns
        if pd.api.types.is_object_dtype(synthetic[c]) or pd.api.types.is_string_dtype(synthetic[c])
    ]
    synth_sets: dict[str, set[str]] = {}

    def synth_values(name: str) -> set[str]:
        if name not in synth_sets:
            synth_sets[name] = normalized_value_set([synthetic[name]])
        return synth_sets[name]

    for col in schema.columns:
        if col.kind not in kinds or not all(col.name in t.columns for t in real_tables):
            continue
        real = normalized_value_set([t[col.name] for t in real_tables])
        hits: set[str] = set()
        if col.name in synthetic.columns:
            hits |= real & synth_values(col.name)
        if col.kind == ColumnKind.PII and col.pii_type in _CROSS_COLUMN_PII:
            specific = {v for v in real if len(v) >= _CROSS_COLUMN_MIN_LEN}
            for other in text_cols:
                if other != col.name:
                    hits |= specific & synth_values(other)
        per_column[col.name] = len(hits)
    return {"total": int(sum(per_column.values())), "per_column": per_column}


def rare_combination_exposure(
    prep: PreparedTables, quasi_identifiers: list[str] | None, k: int
) -> dict[str, Any]:
    """Rows reproducing a *rare record*'s quasi-identifiers, in the synthetic table and holdout.

    A rare record is a train row that carries a rare value (fewer than ``k`` train rows have it
    in that column) and whose combination of quasi-identifier values occurs fewer than ``k``
    times in the train split: such a combination points at a handful of people. The protections
    pool rare categories before training, so a generator cannot produce them; the holdout's
    rate shows how often fresh real data reproduces a rare record by chance.
    Quasi-identifiers default to every modeled categorical and boolean column.
    """
    if quasi_identifiers is None:
        qi = list(prep.cat_cols)
    else:
        qi = [c for c in quasi_identifiers if c in prep.columns]
    num_idx = [prep.num_cols.index(c) for c in qi if c in prep.num_cols]
    cat_idx = [prep.cat_cols.index(c) for c in qi if c in prep.cat_cols]
    res: dict[str, Any] = {"quasi_identifiers": qi, "k": k}
    if not qi:
        res.update({"synthetic_rows": 0, "holdout_rows": 0, "rare_records": 0,
                    "synthetic_distinct": 0, "note": "no quasi-identifier columns"})
        return res
    n_t = prep.n_rows("train")
    rare_value = np.zeros(n_t, dtype=bool)
    for j in cat_idx:
        counts = prep.cat_counts("train", j)
        levels = prep.cat_levels[j]
        rare_levels = (counts > 0) & (counts < k)
        null = [i for i, v in enumerate(levels) if v is None]
        rare_levels[null] = False  # a missing value identifies nobody
        rare_value |= rare_levels[prep.cat["train"][:, j]]
    for i in num_idx:
        v = prep.num["train"][:, i]
        vals, inv, counts = np.unique(v, return_inverse=True, return_counts=True)
        rare_value |= (counts[inv] < k) & ~np.isnan(v)
    keys_t = row_keys(prep, "train", num_idx, cat_idx)
    uniq, inv, counts = np.unique(keys_t, return_inverse=True, return_counts=True)
    rare_record = rare_value & (counts[inv] < k)
    rare_keys = np.unique(keys_t[rare_record])
    keys_s = row_keys(prep, "synthetic", num_idx, cat_idx)
    keys_h = row_keys(prep, "holdout", num_idx, cat_idx)
    hit_s = np.isin(keys_s, rare_keys)
    hit_h = np.isin(keys_h, rare_keys)
    res.update(
        {
            "rare_records": int(rare_record.sum()),
            "synthetic_rows": int(hit_s.sum()),
            "synthetic_distinct": int(len(np.unique(keys_s[hit_s]))),
            "holdout_rows": int(hit_h.sum()),
            "synthetic_share": float(hit_s.mean()) if len(hit_s) else 0.0,
            "holdout_share": float(hit_h.mean()) if len(hit_h) else 0.0,
        }
    )
    return res


def outlier_exposure(prep: PreparedTables, quantile: float = 0.0025) -> dict[str, Any]:
    """Rows carrying a train *tail value* exactly (a numeric value strictly beyond the train
    split's ``quantile`` / ``1 - quantile`` order statistics), synthetic vs holdout.

    Extreme values identify people (the one 7-foot patient); the protections clip them to
    noisy inner quantiles, and continuous values almost never repeat by chance, so exact
    reappearance beyond the holdout's rate means the generator memorized outliers.
    """
    n_s, n_h = prep.n_rows("synthetic"), prep.n_rows("holdout")
    hit_s = np.zeros(n_s, dtype=bool)
    hit_h = np.zeros(n_h, dtype=bool)
    per_column: dict[str, int] = {}
    for i, name in enumerate(prep.num_cols):
        t = prep.num["train"][:, i]
        t = t[~np.isnan(t)]
        if len(t) == 0:
            continue
        lo = np.quantile(t, quantile, method="lower")
        hi = np.quantile(t, 1 - quantile, method="higher")
        tail = np.unique(t[(t < lo) | (t > hi)])
        if len(tail) == 0:
            continue
        s_hit = np.isin(prep.num["synthetic"][:, i], tail)
        hit_s |= s_hit
        hit_h |= np.isin(prep.num["holdout"][:, i], tail)
        per_column[name] = int(s_hit.sum())
    return {
        "quantile": quantile,
        "synthetic_rows": int(hit_s.sum()),
        "holdout_rows": int(hit_h.sum()),
        "synthetic_share": float(hit_s.mean()) if n_s else 0.0,
        "holdout_share": float(hit_h.mean()) if n_h else 0.0,
        "per_column": per_column,
    }
