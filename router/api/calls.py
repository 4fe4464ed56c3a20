"""``GET /v1/calls/{call_id}``: what one call cost, turn by turn, scoped to the caller's tenant."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from router.accounting.hedged import HEDGE_WASTED
from router.accounting.ledger import LedgerRecord
from router.api.deps import ServicesDep, get_caller
from router.errors import NotFound, error_responses

router = APIRouter()

# Records of the last few milliseconds may still be queued for the ledger's next batch.
FLUSH_WAIT_SECONDS = 0.5


class CallTurn(BaseModel):
    request_id: str
    ts: str
    status: int
    requested_model: str | None
    tier: str | None
    deployment: str | None
    model: str | None
    rule: str | None
    intent: str | None
    risks: list[str]
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    reasoning_tokens: int
    usage_estimated: bool
    interrupted: bool
    cost_usd: float
    baseline_cost_usd: float


class CallTotals(BaseModel):
    turns: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = Field(description="Everything the call cost: its turns and the hedge losers beside them.")
    hedge_wasted_usd: float = Field(0.0, description="Spend on hedge losers (cancelled slow attempts).")
    baseline_cost_usd: float
    savings_usd: float
    savings_pct: float | None
    cost_by_model: dict[str, float]


class CallCost(BaseModel):
    object: str = "call"
    call_id: str
    tenant: str
    turns: list[CallTurn]
    totals: CallTotals


def summarize(
    call_id: str, tenant: str, records: list[LedgerRecord], present_risks: Callable[[dict[str, float]], tuple[str, ...]]
) -> CallCost:
    records = sorted(records, key=lambda r: r.ts)
    wasted = sum(r.cost_usd for r in records if r.error_type == HEDGE_WASTED)
    records = [r for r in records if r.error_type != HEDGE_WASTED]
    turns = [
        CallTurn(
            request_id=r.request_id,
            ts=r.ts.isoformat(),
            status=r.status,
            requested_model=r.requested_model,
            tier=r.tier,
            deployment=r.deployment,
            model=r.model,
            rule=r.rule,
            intent=r.intent,
            risks=list(present_risks(r.risks)),
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cached_prompt_tokens=r.cached_prompt_tokens,
            reasoning_tokens=r.reasoning_tokens,
            usage_estimated=r.usage_estimated,
            interrupted=r.interrupted,
            cost_usd=r.cost_usd,
            baseline_cost_usd=r.baseline_cost_usd,
        )
        for r in records
    ]
    cost = sum(t.cost_usd for t in turns) + wasted
    baseline = sum(t.baseline_cost_usd for t in turns)
    by_model: dict[str, float] = {}
    for t in turns:
        if t.deployment:
            by_model[t.deployment] = by_model.get(t.deployment, 0.0) + t.cost_usd
    return CallCost(
        call_id=call_id,
        tenant=tenant,
        turns=turns,
        totals=CallTotals(
            turns=len(turns),
            prompt_tokens=sum(t.prompt_tokens for t in turns),
            completion_tokens=sum(t.completion_tokens for t in turns),
            cost_usd=cost,
            hedge_wasted_usd=wasted,
            baseline_cost_usd=baseline,
            savings_usd=baseline - cost,
            savings_pct=round(100 * (baseline - cost) / baseline, 4) if baseline else None,
            cost_by_model=by_model,
        ),
    )


@router.get(
    "/v1/calls/{call_id}",
    response_model=CallCost,
    summary="Turns, models, tokens, cost and savings of a call",
    responses=error_responses(401, 404, 429, 503),
)
async def get_call(call_id: str, request: Request, services: ServicesDep) -> Any:
    caller = await get_caller(request)
    ledger = services.recorder.ledger
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FLUSH_WAIT_SECONDS
    while ledger.pending and loop.time() < deadline:
        await asyncio.sleep(0.01)
    records = await ledger.sink.query(caller.tenant, call_id=call_id)
    if not records:
        # Another tenant's call is indistinguishable from no call at all.
        raise NotFound(f"no call '{call_id}' for this tenant", param="call_id", code="call_not_found")
    return summarize(call_id, caller.tenant, list(records), services.policies.active.engine.present_risks)
