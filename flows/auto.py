"""``generator=auto``: which families to try, with which options, and which one to publish.

The rule (recorded in every manifest as ``selection``):
1. Only candidates whose synthetic table passed the gate may be published.
2. Among those, the highest ``fidelity_score`` of the gate wins (the gate's overall fidelity
   metric). When the gate reports no fidelity score, the lowest ``identical_match_share`` wins
   instead (fewest copied training rows). Ties keep the order of ``candidates``.
3. When no candidate passes, the run is quarantined with the candidate that failed the fewest
   hard checks (then the higher ``fidelity_score``, then the order of ``candidates``), so the
   report shows what went wrong.
"""
from __future__ import annotations

from typing import Any

from validation.errors import ConfigError

DEFAULT_CANDIDATES = ["copula", "vae", "gan", "diffusion"]
"""The LLM family is left out by default: it is far slower than the others on CPU."""

SELECTION_RULE = (
    "passing candidates only; highest gate fidelity_score, else lowest identical_match_share; "
    "ties keep candidate order; if none passes, quarantine the one with the fewest hard failures, "
    "then the highest fidelity_score"
)


def available_families(candidates: list[str]) -> tuple[list[str], dict[str, str]]:
    """Candidates whose module is installed, and the reason each other one was skipped."""
    from generators.registry import generator_class

    usable, skipped = [], {}
    for family in dict.fromkeys(candidates):  # keep order, drop duplicates
        try:
            generator_class(family)
        except ConfigError as exc:
            skipped[family] = str(exc)
            continue
        usable.append(family)
    if not usable:
        raise ConfigError(f"generator=auto: none of the candidates {candidates} is available ({skipped})")
    return usable, skipped


def options_for(family: str, options: dict[str, Any], auto: bool) -> dict[str, Any]:
    """The options a candidate gets.

    With one family the options pass through unchanged (its config rejects unknown keys). With
    ``auto`` they may be keyed by family (``{"vae": {"epochs": 50}}``) or flat
    (``{"epochs": 50}``); flat keys go to every candidate whose config has that field, so
    ``--epochs`` reaches the neural families and not the copula.
    """
    if not auto:
        return dict(options)
    from generators.registry import generator_class

    if isinstance(options.get(family), dict):
        return dict(options[family])
    fields = generator_class(family).config_class.model_fields
    return {k: v for k, v in options.items() if k in fields and not isinstance(v, dict)}


def _fidelity(candidate: dict[str, Any]) -> float | None:
    value = candidate.get("fidelity_score")
    return float(value) if isinstance(value, (int, float)) else None


def choose(candidates: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """Pick the candidate to publish (or to quarantine) and name the metric that decided.

    Each candidate dict carries ``family``, ``gated`` (a gate result exists), ``passed``,
    ``hard_failures``, ``fidelity_score`` and ``identical_match_share``.
    """
    gated = [c for c in candidates if c.get("gated")]
    if not gated:
        return None, "none"
    passing = [c for c in gated if c["passed"]]
    if passing:
        if any(_fidelity(c) is not None for c in passing):
            best = max(passing, key=lambda c: (_fidelity(c) if _fidelity(c) is not None else float("-inf")))
            return best, "fidelity_score"
        best = min(passing, key=lambda c: c.get("identical_match_share", float("inf")))
        return best, "identical_match_share"
    best = min(gated, key=lambda c: (c.get("hard_failures", 0), -(_fidelity(c) or 0.0)))
    return best, "fewest_hard_failures"
