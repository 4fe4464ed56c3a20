"""The ledger records and metrics of a hedge's losers (``hedge_wasted``): money spent on answers nobody heard.

Each loser gets its own record beside the turn's, keyed ``<request id>:hedge:<n>`` (so a replayed batch changes
nothing) with the turn's caller and decision, the loser's deployment, tokens and price, ``status`` 200 and
``error_type`` ``hedge_wasted``. Its cost is in ``switchboard_cost_usd`` (under its own deployment) and in
``switchboard_hedge_wasted_cost_usd``, so the ledger and the metrics keep agreeing. A stream's losers are committed
with its provisional record, before its first byte (they were cancelled by then), so a gateway killed mid-stream
keeps their spend; the turn's final records replace them under the same ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from router.accounting.ledger import LedgerRecord, usage_fields
from router.accounting.speech import NO_SPEECH
from router.metrics import Metrics

if TYPE_CHECKING:
    from router.providers.hedge import HedgeReport

HEDGE_WASTED = "hedge_wasted"


def hedge_records(
    turn_record: LedgerRecord, report: HedgeReport | None, tier_of: Callable[[str], str | None]
) -> list[LedgerRecord]:
    if report is None:
        return []
    records = []
    for index, wasted in enumerate(report.wasted):
        assert wasted.usage is not None, "the gateway prices every loser before it is recorded"
        records.append(
            turn_record.model_copy(
                update={
                    "record_id": f"{turn_record.request_id}:hedge:{index}",
                    "tier": tier_of(wasted.deployment.name),
                    "deployment": wasted.deployment.name,
                    "model": wasted.deployment.model,
                    "fallbacks": 0,
                    "status": 200,
                    "error_type": HEDGE_WASTED,
                    "cost_usd": wasted.cost_usd,
                    # An all-baseline run would not have hedged: the waste is all extra cost, none of it saved.
                    "baseline_cost_usd": 0.0,
                    "interrupted": False,
                    "interrupted_cost_usd": 0.0,
                    "classification_ms": None,
                    "overhead_ms": None,
                    "ttft_ms": None,
                    "total_ms": wasted.seconds * 1000,
                    "shadow_rule": None,
                    "shadow_tier": None,
                    "shadow_deployment": None,
                    "shadow_cost_usd": None,
                    **usage_fields(wasted.usage),
                    **NO_SPEECH,  # the turn's speech is on the turn's own record
                    "handoff": None,
                }
            )
        )
    return records


def observe_hedge(
    metrics: Metrics,
    turn_record: LedgerRecord,
    wasted: list[LedgerRecord],
    report: HedgeReport | None,
    tenant_label: str,
    agent_label: str,
) -> None:
    if report is None or turn_record.deployment is None:
        return
    metrics.hedges.labels(turn_record.tier or "", turn_record.deployment, report.won_by).inc()
    for record in wasted:
        labels = (tenant_label, agent_label, record.tier or "", record.deployment or "", record.intent or "none")
        metrics.cost.labels(*labels).inc(record.cost_usd)
        metrics.hedge_wasted_cost.labels(record.tier or "", record.deployment or "").inc(record.cost_usd)
