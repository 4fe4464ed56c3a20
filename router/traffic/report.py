"""What a replay found, as tables: cost and savings, tier mix, intents, risks, floor violations, changed decisions.

Floor violations are computed here from the classification and the policy's ``floor``/``thresholds`` alone, not
from the engine's decision path: a high-stakes turn (stakes ≥ the policy's ``stakes_threshold``) must be at or
above ``floor.high_stakes``, and a turn whose risks are present (probability ≥ the policy's threshold) at or above
``floor.risks[risk]``. A sane policy has none; one that has some has a bug the
engine's own bookkeeping would not reveal. Turns pinned to a deployment by the caller are not routed by the policy
and are left out. Whether a candidate may ship is judged against the current policy's floors, not its own
(``router.traffic.gate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from router.traffic.replay import RISK_PREFIX, ReplayResult

BASELINE_LABEL = "all-frontier"
UP, DOWN, SIDEWAYS = "up", "down", "sideways"
CHANGES_SHOWN = 25


def required_floor(result: ReplayResult, label: str) -> pd.Series:
    """Per turn, the rank of the lowest tier policy ``label`` allows for its stakes and present risks (-1: none)."""
    policy = result.policies[label].policy
    rank = {tier: index for index, tier in enumerate(result.tier_order)}
    turns = result.turns
    required = np.full(len(turns), -1)
    for risk in result.risk_names:
        present = (turns[f"{RISK_PREFIX}{risk}"] >= policy.threshold(risk)).to_numpy()
        if risk in policy.floor.risks:
            required = np.where(present, np.maximum(required, rank[policy.floor.risks[risk]]), required)
    if policy.floor.high_stakes is not None:
        high = (turns["stakes"] >= policy.stakes_threshold).to_numpy()
        required = np.where(high, np.maximum(required, rank[policy.floor.high_stakes]), required)
    return pd.Series(required, index=turns.index)


def floor_violations(result: ReplayResult, label: str) -> pd.DataFrame:
    """Policy-routed turns that ``label`` sends below the floor of their present risks."""
    turns = result.turns
    required = required_floor(result, label)
    decided = turns[f"tier.{label}"].map({tier: index for index, tier in enumerate(result.tier_order)}).astype(float)
    below = ~turns[f"pinned.{label}"] & (decided < required)
    violations = turns.loc[below, ["request_id", "call_id", "turn", "tenant", "intent", f"risks.{label}"]].copy()
    violations["tier"] = turns.loc[below, f"tier.{label}"]
    violations["floor"] = required[below].map(dict(enumerate(result.tier_order)))
    violations["rule"] = turns.loc[below, f"rule.{label}"]
    return violations.rename(columns={f"risks.{label}": "risks"})


def _tier_counts(turns: pd.DataFrame, label: str, tiers: list[str], by: str | None = None) -> pd.DataFrame:
    column = f"tier.{label}"
    counts = turns[column].value_counts().to_frame().T if by is None else pd.crosstab(turns[by], turns[column])
    return counts.reindex(columns=tiers, fill_value=0)


@dataclass(frozen=True)
class ReplayReport:
    result: ReplayResult
    summary: pd.DataFrame
    tier_mix: pd.DataFrame
    by_intent: pd.DataFrame
    by_risk: pd.DataFrame
    violations: dict[str, pd.DataFrame]
    changes: pd.DataFrame | None
    changes_by_intent: pd.DataFrame | None

    @property
    def labels(self) -> list[str]:
        return list(self.result.policies)

    @property
    def candidate(self) -> str:
        """The policy under test: the compared one if any, else the only one."""
        return self.labels[-1]

    def cost_per_call(self, label: str) -> float:
        return float(self.summary.loc[label, "cost_per_call_usd"])


def build_report(result: ReplayResult) -> ReplayReport:
    turns, tiers, labels = result.turns, result.tier_order, list(result.policies)
    calls = turns.groupby(["tenant", "call_key"]).ngroups
    baseline_total = turns["baseline_cost"].sum()
    summary_rows = {}
    for label in labels:
        cost = turns[f"cost.{label}"].sum()
        shares = _tier_counts(turns, label, tiers).iloc[0] / max(len(turns), 1) * 100
        summary_rows[label] = {
            "policy": result.policies[label].version,
            "turns": len(turns),
            "calls": calls,
            "cost_usd": cost,
            "savings_usd": baseline_total - cost,
            "savings_pct": (baseline_total - cost) / baseline_total * 100 if baseline_total else 0.0,
            "cost_per_call_usd": cost / calls if calls else 0.0,
            "floor_violations": 0,
            **{f"{tier}_pct": shares[tier] for tier in tiers},
        }
    summary_rows[BASELINE_LABEL] = {
        "policy": f"every turn on {result.baseline_deployment}",
        "turns": len(turns),
        "calls": calls,
        "cost_usd": baseline_total,
        "savings_usd": 0.0,
        "savings_pct": 0.0,
        "cost_per_call_usd": baseline_total / calls if calls else 0.0,
        "floor_violations": 0,
        **{f"{tier}_pct": 100.0 if tier == tiers[-1] else 0.0 for tier in tiers},
    }
    summary = pd.DataFrame.from_dict(summary_rows, orient="index")
    violations = {label: floor_violations(result, label) for label in labels}
    for label, found in violations.items():
        summary.loc[label, "floor_violations"] = len(found)

    mix = {}
    for label in labels:
        mix[f"turns.{label}"] = _tier_counts(turns, label, tiers).iloc[0]
        mix[f"cost_usd.{label}"] = turns.groupby(f"tier.{label}")[f"cost.{label}"].sum().reindex(tiers, fill_value=0)
    tier_mix = pd.DataFrame(mix).rename_axis("tier")

    grouped = turns.groupby("intent")
    intent_columns: dict[str, pd.Series] = {"turns": grouped.size(), "share_pct": grouped.size() / len(turns) * 100}
    for label in labels:
        intent_columns[f"cost_usd.{label}"] = grouped[f"cost.{label}"].sum()
        counts = _tier_counts(turns, label, tiers, by="intent")
        for tier in tiers:
            intent_columns[f"{tier}.{label}"] = counts[tier]
    by_intent = pd.DataFrame(intent_columns).sort_values("turns", ascending=False)

    risk_frames = []
    for label in labels:
        present = turns[["tenant", f"risks.{label}", f"tier.{label}", f"cost.{label}", "request_id"]].copy()
        present["risk"] = present[f"risks.{label}"].str.split(",")
        exploded = present.explode("risk")
        exploded = exploded[exploded["risk"].astype(bool)]
        frame = pd.DataFrame(
            {
                f"turns.{label}": exploded.groupby("risk").size(),
                f"cost_usd.{label}": exploded.groupby("risk")[f"cost.{label}"].sum(),
            }
        )
        counts = pd.crosstab(exploded["risk"], exploded[f"tier.{label}"]).reindex(columns=tiers, fill_value=0)
        for tier in tiers:
            frame[f"{tier}.{label}"] = counts[tier]
        broken = violations[label]["risks"].str.split(",").explode()
        frame[f"violations.{label}"] = broken.value_counts().reindex(frame.index, fill_value=0)
        risk_frames.append(frame)
    by_risk = pd.concat(risk_frames, axis=1).fillna(0).rename_axis("risk")

    changes = changes_by_intent = None
    if len(labels) == 2:
        changes = _changes(result, *labels)
        changes_by_intent = (
            pd.crosstab(changes["intent"], changes["direction"]).reindex(columns=[UP, DOWN, SIDEWAYS], fill_value=0)
            if len(changes)
            else pd.DataFrame(columns=[UP, DOWN, SIDEWAYS])
        )
    return ReplayReport(result, summary, tier_mix, by_intent, by_risk, violations, changes, changes_by_intent)


def _changes(result: ReplayResult, before: str, after: str) -> pd.DataFrame:
    """Exactly the turns whose tier or deployment differs between the two policies, with both sides' reasons."""
    turns = result.turns
    differs = (turns[f"tier.{before}"] != turns[f"tier.{after}"]) | (
        turns[f"deployment.{before}"] != turns[f"deployment.{after}"]
    )
    changed = turns.loc[differs]
    rank = {tier: index for index, tier in enumerate(result.tier_order)}
    # Float ranks: a deployment pinned outside every tier has none (NaN), and an empty frame stays numeric.
    delta = changed[f"tier.{after}"].map(rank).astype(float) - changed[f"tier.{before}"].map(rank).astype(float)
    columns = ["request_id", "call_id", "turn", "tenant", "intent", "intent_confidence"]
    for label in (before, after):
        columns += [f"risks.{label}", f"rule.{label}", f"tier.{label}", f"deployment.{label}", f"reasons.{label}"]
    out = changed[columns].copy()
    out["direction"] = np.select([delta > 0, delta < 0], [UP, DOWN], SIDEWAYS)
    out["cost_delta_usd"] = changed[f"cost.{after}"] - changed[f"cost.{before}"]
    return out


# -- output -----------------------------------------------------------------------------------------------------


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "  (none)"
    # Six significant digits: a turn costs fractions of a cent, a log's total many dollars.
    return frame.to_string(float_format=lambda value: f"{value:,.6g}" if abs(value) < 1e5 else f"{value:,.0f}")


def render_text(report: ReplayReport, source: str) -> str:
    result = report.result
    timings = result.timings
    lines = [
        f"Replayed {len(result.turns):,} turns ({report.summary['calls'].iloc[0]:,} calls) from {source} in "
        f"{timings['total']:.1f} s: {result.turns_per_second:,.0f} turns/s, {timings['cpu']:.1f} CPU-seconds",
        f"  setup {timings['setup']:.1f} s; reading {timings['read']:.1f} s; waiting for classification "
        f"{timings['classification_wait']:.1f} s ({result.unique_conversations:,} distinct conversations); "
        f"decisions and pricing {timings['decide']:.1f} s",
    ]
    for label, loaded in result.policies.items():
        lines.append(f"  {label} = {loaded.version} ({loaded.path})")
    lines.append(f"  {BASELINE_LABEL} = every turn on {result.baseline_deployment}")
    sections = [
        ("Cost and savings against all-frontier", report.summary),
        ("Tier mix", report.tier_mix),
        ("By intent", report.by_intent),
        ("Risks present (under each policy's thresholds)", report.by_risk),
    ]
    for title, frame in sections:
        lines += ["", title, _table(frame)]
    for label, found in report.violations.items():
        lines += ["", f"Floor violations under {label}: {len(found)}"]
        if len(found):
            lines.append(_table(found.head(CHANGES_SHOWN)))
    if report.changes is not None:
        before, after = report.labels
        lines += ["", f"Decisions that differ between {before} and {after}: {len(report.changes):,}"]
        if len(report.changes):
            lines += [_table(report.changes_by_intent), ""]
            lines += _change_lines(report.changes.head(CHANGES_SHOWN), before, after)
            if len(report.changes) > CHANGES_SHOWN:
                lines.append(f"  ... {len(report.changes) - CHANGES_SHOWN:,} more in changes.csv")
    return "\n".join(lines)


def _change_lines(changes: pd.DataFrame, before: str, after: str) -> list[str]:
    """Each changed turn on three lines: the turn, then each side as "tier by rule [reasons]"."""
    lines = []
    for fields in changes.to_dict("records"):
        risks = fields.get(f"risks.{before}") or "no risk"
        lines.append(
            f"  {fields['request_id']}  turn {fields['turn']} of {fields['tenant']}  {fields['intent']}  {risks}"
        )
        for label in (before, after):
            reasons = fields[f"reasons.{label}"]
            lines.append(
                f"      {label}: {fields[f'tier.{label}']} by {fields[f'rule.{label}']}"
                + (f" [{reasons}]" if reasons else "")
            )
    return lines


def write_outputs(report: ReplayReport, folder: Path) -> list[Path]:
    """CSV tables and PNG charts into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        "turns.csv": report.result.turns.set_index("request_id"),
        "summary.csv": report.summary,
        "tier_mix.csv": report.tier_mix,
        "by_intent.csv": report.by_intent,
        "by_risk.csv": report.by_risk,
    }
    for label, found in report.violations.items():
        tables[f"floor_violations.{label}.csv"] = found.set_index("request_id")
    if report.changes is not None and report.changes_by_intent is not None:
        tables["changes.csv"] = report.changes.set_index("request_id")
        tables["changes_by_intent.csv"] = report.changes_by_intent
    written = []
    for name, frame in tables.items():
        frame.to_csv(folder / name)
        written.append(folder / name)
    written.append(_cost_by_tier_chart(report, folder / "cost_by_tier.png"))
    if report.changes_by_intent is not None:
        written.append(_changes_chart(report, folder / "changes_by_intent.png"))
    return written


def _cost_by_tier_chart(report: ReplayReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = report.result
    costs = pd.DataFrame(
        {
            label: result.turns.groupby(f"tier.{label}")[f"cost.{label}"].sum().reindex(result.tier_order)
            for label in report.labels
        }
    ).fillna(0.0)
    costs[BASELINE_LABEL] = [0.0] * (len(result.tier_order) - 1) + [result.turns["baseline_cost"].sum()]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    costs.T.plot(kind="bar", stacked=True, ax=axes, colormap="viridis", rot=0)
    axes.set_ylabel("USD")
    axes.set_title(f"Cost by tier over {len(result.turns):,} replayed turns")
    axes.legend(title="tier", loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _changes_chart(report: ReplayReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before, after = report.labels
    changes = report.changes_by_intent
    assert changes is not None
    figure, axes = plt.subplots(figsize=(8, max(2.5, 0.45 * len(changes) + 1.5)))
    if len(changes):
        ordered = changes.loc[changes.sum(axis=1).sort_values().index]
        ordered.plot(kind="barh", stacked=True, ax=axes, color={UP: "#c0392b", DOWN: "#27ae60", SIDEWAYS: "#7f8c8d"})
        axes.legend(title=f"tier {after} vs {before}", loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        axes.text(0.5, 0.5, "no decision changed", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("turns")
    axes.set_title(f"Decisions that differ between {before} and {after}, by intent")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
