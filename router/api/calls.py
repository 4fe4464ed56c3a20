"""``GET /v1/calls/{call_id}``: what one call cost, turn by turn, scoped to the caller's tenant; and
``POST /v1/calls/{call_id}/usage``: the call's speech usage and outcome, reported once at its end."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field, ValidationError

from router import headers as H
from router.accounting.hedged import HEDGE_WASTED
from router.accounting.ledger import LedgerRecord
from router.accounting.speech import (
    CALL_USAGE_PREFIX,
    SPEECH_KINDS,
    CallUsageReport,
    observe_speech,
    price_speech,
    speech_cost_of,
)
from router.api.deps import ServicesDep, get_caller
from router.errors import GatewayError, InvalidRequest, NotFound, RequestTooLarge, error_response, error_responses
from router.errors import validation_error as invalid_field
from router.identifiers import ID_MAX_CHARS, checked_id
from router.services import Services
from router.types import Caller, Rejection

router = APIRouter()

# Records of the last few milliseconds may still be queued for the ledger's next batch.
FLUSH_WAIT_SECONDS = 0.5
# A usage report is a handful of numbers and names.
MAX_USAGE_BODY_BYTES = 4096


# Documented for clients and fuzzers; checked by the handler itself, so a refusal is ledgered like any other.
CallIdParam = Annotated[str, PathParam(json_schema_extra={"pattern": f"^[A-Za-z0-9._:@-]{{1,{ID_MAX_CHARS}}}$"})]


class UsageConflict(GatewayError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "call_usage_conflict"


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
    handoff: str | None = Field(None, description="The human handoff this turn's answer recommended, and why.")


class CallTotals(BaseModel):
    turns: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = Field(description="LLM spend: the call's turns and the hedge losers beside them.")
    hedge_wasted_usd: float = Field(0.0, description="Spend on hedge losers (cancelled slow attempts).")
    stt_seconds: float = 0.0
    tts_characters: int = 0
    telephony_seconds: float = 0.0
    cost_by_kind: dict[str, float] = Field(
        default_factory=dict, description="The whole cost split into llm, stt, tts and telephony (USD)."
    )
    total_cost_usd: float = Field(0.0, description="LLM and speech together: what the call cost.")
    call_seconds: float | None = None
    cost_per_minute_usd: float | None = None
    outcome: str | None = Field(None, description="resolved, transferred or abandoned, when reported.")
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
    speech = {kind: sum(getattr(r, f"{kind}_cost_usd") for r in records) for kind in SPEECH_KINDS}
    seconds = [r.voice_call_seconds for r in records if r.voice_call_seconds is not None]
    outcomes = [r.call_outcome for r in records if r.call_outcome is not None]
    quantities = {
        "stt_seconds": sum(r.stt_seconds or 0.0 for r in records),
        "tts_characters": sum(r.tts_characters or 0 for r in records),
        "telephony_seconds": sum(r.telephony_seconds or 0.0 for r in records),
    }
    wasted = sum(r.cost_usd for r in records if r.error_type == HEDGE_WASTED)
    records = [r for r in records if r.error_type != HEDGE_WASTED and not r.record_id.startswith(CALL_USAGE_PREFIX)]
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
            handoff=r.handoff,
        )
        for r in records
    ]
    cost = sum(t.cost_usd for t in turns) + wasted
    baseline = sum(t.baseline_cost_usd for t in turns)
    total = cost + sum(speech.values())
    call_seconds = max(seconds) if seconds else None
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
            **quantities,
            cost_by_kind={"llm": cost, **speech},
            total_cost_usd=total,
            call_seconds=call_seconds,
            cost_per_minute_usd=total / (call_seconds / 60) if call_seconds else None,
            outcome=outcomes[-1] if outcomes else None,
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
    records = await _call_records(services, caller, call_id)
    if not records:
        # Another tenant's call is indistinguishable from no call at all.
        raise NotFound(f"no call '{call_id}' for this tenant", param="call_id", code="call_not_found")
    return summarize(call_id, caller.tenant, list(records), services.policies.active.engine.present_risks)


async def _call_records(services: Services, caller: Caller, call_id: str) -> list[LedgerRecord]:
    ledger = services.recorder.ledger
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FLUSH_WAIT_SECONDS
    while ledger.pending and loop.time() < deadline:
        await asyncio.sleep(0.01)
    return list(await ledger.sink.query(caller.tenant, call_id=call_id))


@router.post(
    "/v1/calls/{call_id}/usage",
    response_model=CallCost,
    summary="Report a call's speech usage (STT, TTS, telephony), length and outcome at its end (idempotent)",
    responses=error_responses(400, 401, 409, 413, 429, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CallUsageReport"}}},
        }
    },
)
async def report_call_usage(call_id: CallIdParam, request: Request, services: ServicesDep) -> Any:
    """The first report of a call is kept: the same report again answers as the first did (a retry is safe), a
    different one is a 409. Every refusal is in the ledger like a refused chat request."""
    started = time.perf_counter()
    request_id = f"req_{uuid.uuid4().hex}"
    caller: Caller | None = None
    try:
        caller = await get_caller(request)
        checked_id(call_id, "call_id")
        report = _parse_report(await _read_small_body(request))
        cost = price_speech(report, services.gateway.config.speech_prices, "")
        record = LedgerRecord(
            record_id=f"{CALL_USAGE_PREFIX}{caller.tenant}:{call_id}",
            request_id=request_id,
            call_id=call_id,
            tenant=caller.tenant,
            agent=caller.agent,
            key_id=caller.key_id,
            status=200,
            voice_call_seconds=report.call_seconds,
            **cost.ledger_fields(),
        )
        existing = next(
            (r for r in await _call_records(services, caller, call_id) if r.record_id == record.record_id), None
        )
        if existing is not None and _reported(existing) != _reported(record):
            raise UsageConflict(
                "this call's usage was already reported with other figures; the first report is kept", param="call_id"
            )
        if existing is None:
            await services.recorder.ledger.commit(record)
            tenant_label, agent_label = services.recorder.metrics.caller_labels(
                caller.tenant, caller.agent, keyed=caller.key_id is not None, agent_pinned=caller.agent_pinned
            )
            observe_speech(services.recorder.metrics, record, tenant_label, agent_label)
            services.recorder.calls.add_turn(
                tenant_label,
                agent_label,
                call_id,
                speech_cost_of(record),
                report.call_seconds,
                ended=True,
                outcome=report.outcome,
                report=True,
            )
        records = await _call_records(services, caller, call_id)
        return summarize(call_id, caller.tenant, records, services.policies.active.engine.present_risks)
    except GatewayError as error:
        services.recorder.record_rejection(
            Rejection(
                request_id=request_id,
                received_at=datetime.now(UTC),
                caller=caller,
                requested_model=None,
                call_id=None,  # a refused report is no turn of the call: kept out of its turns and totals
                status=error.status_code,
                error_type=error.code or error.error_type,
                total_ms=(time.perf_counter() - started) * 1000,
                policy_version=services.policies.active.version,
            )
        )
        return error_response(error, {H.REQUEST_ID: request_id})


def _reported(record: LedgerRecord) -> tuple[Any, ...]:
    return (
        record.stt_seconds,
        record.tts_characters,
        record.telephony_seconds,
        record.speech_vendors,
        record.voice_call_seconds,
        record.call_outcome,
    )


async def _read_small_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_USAGE_BODY_BYTES:
            raise RequestTooLarge(f"a usage report is at most {MAX_USAGE_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_report(raw: bytes) -> CallUsageReport:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}", code="invalid_json") from exc
    if not isinstance(document, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json")
    try:
        return CallUsageReport.model_validate(document)
    except ValidationError as exc:
        raise invalid_field(list(exc.errors())) from exc
