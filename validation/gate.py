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
        "by at most this share",
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
