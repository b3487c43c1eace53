"""The gate: every check run on the synthetic table before it may be published.

Checks come in three groups (schema, fidelity, privacy). A failing *hard* check quarantines the
run; soft checks are reported only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from validation.schema import TableSchema

Category = Literal["schema", "fidelity", "privacy"]


class GateConfig(BaseModel):
    """Thresholds of the gate, with their documented defaults."""

    model_config = ConfigDict(extra="forbid")

    max_identical_match_excess: float = Field(
        0.0,
        description="synthetic rows equal to a training row may exceed the holdout's own rate "
        "by at most this share (or three standard errors of that rate, whichever is larger)",
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
    """All checks plus every metric computed on the way."""

    checks: list[CheckResult] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)  # e.g. the GE validation result

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.hard)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.hard and not c.passed]

    def summary(self) -> str:
        if self.passed:
            return f"PASS: {len(self.checks)} checks"
        names = ", ".join(f"{c.name} ({c.detail})" if c.detail else c.name for c in self.failures)
        return f"FAIL: {names}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "summary": self.summary(),
            "checks": [c.to_dict() for c in self.checks],
            "metrics": self.metrics,
        }


def row_hashes(table: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One 64-bit hash per row over ``columns`` (nulls hash equal), for exact-match checks."""
    return pd.util.hash_pandas_object(table[columns], index=False)


def identical_match_share(candidate: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> float:
    """Share of ``candidate`` rows equal, on ``columns``, to some row of ``reference``."""
    if not columns or len(candidate) == 0:
        return 0.0
    ref = set(row_hashes(reference, columns).to_numpy().tolist())
    hits = row_hashes(candidate, columns).isin(ref)
    return float(hits.mean())


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


def run_gate(
    real_train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    config: GateConfig | None = None,
    expected_rows: int | None = None,
) -> GateResult:
    """Every check of the gate on the synthetic table, against the train split and the holdout."""
    config = config or GateConfig()
    result = GateResult()
    checks, ge = schema_checks(synthetic, schema, expected_rows)
    result.checks.extend(checks)
    result.artifacts["great_expectations"] = ge

    modeled = [c.name for c in schema.modeled_columns if c.name in synthetic.columns]
    synth_rate = identical_match_share(synthetic, real_train, modeled)
    holdout_rate = identical_match_share(holdout, real_train, modeled)
    result.metrics["identical_match_share"] = synth_rate
    result.metrics["holdout_identical_match_share"] = holdout_rate
    # The holdout's rate is itself an estimate: allow three standard errors of it.
    noise = 3 * (holdout_rate * (1 - holdout_rate) / max(len(holdout), 1)) ** 0.5
    limit = holdout_rate + max(config.max_identical_match_excess, noise)
    result.checks.append(
        CheckResult(
            name="identical_match_share",
            category="privacy",
            passed=synth_rate <= limit,
            value=round(synth_rate, 6),
            threshold=round(limit, 6),
            detail="" if synth_rate <= limit else (
                f"{synth_rate:.2%} of synthetic rows copy a training row; the holdout's own rate is {holdout_rate:.2%}"
            ),
        )
    )
    return result
