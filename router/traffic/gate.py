"""``replay --gate``: may the candidate policy ship? Judged against the *current* policy and the routing contract.

A candidate is never judged by its own floors: one that lowers ``floor.high_stakes`` to ``small`` would have
nothing to violate. Every turn the candidate routes (pinned turns aside) must be at or above the tier that the
current policy's floors require of it, read from the replay's classification under the current policy's
thresholds, and at or above the routing contract's floor (``policies/README.md``: a high-stakes turn is never
answered by the cheapest tier):

* ``floor.high_stakes`` of the current policy for a turn whose stakes reach its ``stakes_threshold``, and, when
  ``floor.sticky_high_stakes`` is set, for every later turn of the call;
* ``floor.risks[risk]`` for a turn whose risk is present under the current policy's threshold, and, when
  ``floor.sticky_risks`` is set, for every later turn of the call;
* the contract: a high-stakes turn above the cheapest tier, whatever the current policy says.

The candidate may also not raise the cost per call by more than the allowed percentage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from router.traffic.replay import RISK_PREFIX, ReplayResult
from router.traffic.report import ReplayReport

GATE_TURNS_SHOWN = 25


def _later_in_call(turns: pd.DataFrame, flags: np.ndarray) -> np.ndarray:
    """Per turn: whether ``flags`` held on it or on an earlier turn of its call (turns are in log order)."""
    series = pd.Series(flags.astype(np.int8), index=turns.index)
    return series.groupby([turns["tenant"], turns["call_key"]], sort=False).cummax().to_numpy().astype(bool)


def required_tiers(result: ReplayResult, current: str) -> pd.DataFrame:
    """Per turn: ``required`` (the lowest tier allowed, None when any is) and ``required_by`` (which floors)."""
    policy = result.policies[current].policy
    turns = result.turns
    tiers = result.tier_order
    rank = {tier: index for index, tier in enumerate(tiers)}
    high = (turns["stakes"] >= policy.stakes_threshold).to_numpy()
    floors: list[tuple[np.ndarray, int, str]] = []  # (turns it applies to, tier rank, why)
    if len(tiers) > 1:
        floors.append((high, 1, f"contract: high-stakes, never {tiers[0]}"))
    if policy.floor.high_stakes is not None:
        floors.append((high, rank[policy.floor.high_stakes], f"{current} floor.high_stakes"))
        if policy.floor.sticky_high_stakes:
            inherited = _later_in_call(turns, high) & ~high
            floors.append((inherited, rank[policy.floor.high_stakes], f"{current} floor.high_stakes (earlier in call)"))
    for risk, tier in policy.floor.risks.items():
        column = f"{RISK_PREFIX}{risk}"
        if column not in turns:
            continue
        present = (turns[column] >= policy.threshold(risk)).to_numpy()
        floors.append((present, rank[tier], f"{current} floor.risks.{risk}"))
        if policy.floor.sticky_risks:
            inherited = _later_in_call(turns, present) & ~present
            floors.append((inherited, rank[tier], f"{current} floor.risks.{risk} (earlier in call)"))
    required = np.full(len(turns), -1)
    reasons: list[list[str]] = [[] for _ in range(len(turns))]
    for applies, tier_rank, why in floors:
        for row in np.flatnonzero(applies):
            if tier_rank > required[row]:
                required[row], reasons[row] = tier_rank, [why]
            elif tier_rank == required[row]:
                reasons[row].append(why)
    return pd.DataFrame(
        {
            "required": [tiers[r] if r >= 0 else None for r in required],
            "required_rank": required,
            "required_by": ["; ".join(why) for why in reasons],
        },
        index=turns.index,
    )


def gate_violations(result: ReplayResult, current: str, candidate: str) -> pd.DataFrame:
    """Turns ``candidate`` routes below what ``current``'s floors and the routing contract require."""
    turns = result.turns
    required = required_tiers(result, current)
    decided = turns[f"tier.{candidate}"].map({tier: index for index, tier in enumerate(result.tier_order)})
    below = ~turns[f"pinned.{candidate}"].astype(bool) & (decided.astype(float) < required["required_rank"])
    found = turns.loc[below, ["request_id", "call_id", "turn", "tenant", "intent", "stakes"]].copy()
    found["tier"] = turns.loc[below, f"tier.{candidate}"]
    found["rule"] = turns.loc[below, f"rule.{candidate}"]
    found["required"] = required.loc[below, "required"]
    found["required_by"] = required.loc[below, "required_by"]
    return found


def gate_failures(report: ReplayReport, violations: pd.DataFrame, max_cost_increase_pct: float) -> list[str]:
    """Why the candidate policy must not ship; empty when it may."""
    current, candidate = report.labels[0], report.candidate
    failures = []
    if len(violations):
        calls = violations.groupby(["tenant", "call_id"], dropna=False).ngroups
        failures.append(
            f"{candidate} routes {len(violations):,} turns ({calls:,} calls) below the tier {current}'s floors "
            f"and the routing contract require"
        )
    if len(report.labels) == 2:
        baseline, after = report.cost_per_call(current), report.cost_per_call(candidate)
        limit = baseline * (1 + max_cost_increase_pct / 100)
        if after > limit:
            increase = (after / baseline - 1) * 100 if baseline else float("inf")
            failures.append(
                f"{candidate} costs ${after:.6f} per call, {increase:.1f}% more than {current} "
                f"(${baseline:.6f}); the limit is +{max_cost_increase_pct:g}%"
            )
    return failures


def violation_lines(violations: pd.DataFrame, shown: int = GATE_TURNS_SHOWN) -> list[str]:
    """One line per offending turn (the first ``shown``), for the gate's stderr."""
    lines = [
        f"  {row.request_id} call {row.call_id} turn {row.turn} ({row.intent}, stakes {row.stakes:.2f}): "
        f"{row.tier} by rule {row.rule}, requires {row.required} ({row.required_by})"
        for row in violations.head(shown).itertuples()
    ]
    if len(violations) > shown:
        lines.append(f"  ... {len(violations) - shown:,} more (--out writes them all to gate_violations.csv)")
    return lines
