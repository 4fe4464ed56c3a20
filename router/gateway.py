"""One turn through the gateway: understand → classify → decide → call → account.

The HTTP layer (``router.api``) parses and shapes answers; everything in between lives here, so the same path
serves every surface and every test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from router import headers as H
from router.accounting.budgets import BudgetEnforcer, BudgetExceeded, BudgetPolicy, Reservation
from router.accounting.ledger import LedgerUnavailable
from router.accounting.speech import turn_speech
from router.accounting.tokens import (
    MediaParts,
    completion_text,
    content_text,
    media_parts,
    quick_to_count,
    text_tokens,
)
from router.accounting.usage import Usage
from router.allowance import Allowance
from router.config import Deployment, GatewayConfig
from router.errors import BudgetExhausted, GatewayError, InvalidRequest, ModelNotFound, PermissionDenied
from router.facts import TurnClassification, text_or_none, turn_facts
from router.identifiers import ID_MAX_CHARS, call_identity
from router.policy.engine import Decision
from router.policy.facts import COMPLAINT_INTENT, CallFacts, Facts
from router.policy.store import PolicyStore
from router.providers.chain import FallbackChain, OpenStream
from router.providers.hedge import price_waste
from router.schemas import ChatCompletionRequest
from router.state import CallRecord, StateStore
from router.types import Accountant, Attempts, Caller, Outcome, RateLimit, Rejection, Turn, TurnClassifier

logger = logging.getLogger(__name__)

# metadata keys addressed to the gateway; upstreams (OpenAI allows only string values) never see them.
GATEWAY_METADATA_KEYS = frozenset({"voice", "call_id", "caller_id"})


@dataclass(frozen=True, slots=True)
class Budgets:
    policy: BudgetPolicy
    enforcer: BudgetEnforcer


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        policies: PolicyStore,
        chain: FallbackChain,
        accountant: Accountant,
        state: StateStore,
        classifier: TurnClassifier | None = None,
        budgets: Budgets | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.config = config
        self.policies = policies
        self.chain = chain
        self.accountant = accountant
        self.classifier = classifier
        self.state = state
        self.budgets = budgets
        self.rate_limit = rate_limit
        self._deployments = {d.name: d for d in config.deployments}
        self.allowance = Allowance(config)

    # -- understand, classify, decide -----------------------------------------------------------------------

    async def prepare(
        self,
        request_id: str,
        started: float,
        body: dict[str, Any],
        request: ChatCompletionRequest,
        caller: Caller,
        headers: Mapping[str, str],
    ) -> Turn:
        self._check_limits(request)
        requested = request.model
        if requested != "auto" and requested not in self.config.tiers and requested not in self._deployments:
            raise ModelNotFound(f"The model '{requested}' does not exist", param="model")
        self.allowance.check_requested(caller, requested)
        metadata = request.metadata or {}
        turn_speech(metadata, self.config.speech_prices)  # a bad metadata.voice is a 400 before any work
        call_id, caller_id = call_identity(headers, metadata, request.user)
        messages = body["messages"]
        has_tools = bool(request.tools)
        classification, classification_ms, failed = None, 0.0, False
        loaded = self.policies.active
        if self.classifier is not None and requested not in self._deployments:
            t0 = time.perf_counter()
            deadline = self.config.limits.classification_deadline_ms / 1000
            try:
                classification = await asyncio.wait_for(
                    self.classifier.classify(messages, has_tools, loaded.catalog_for(caller.tenant)), deadline
                )
            except TimeoutError:
                # The classification goes on in its worker (its result is cached); this turn does not wait for it.
                logger.warning(
                    "classification overran its %.0f ms deadline; routing by classifier_failure", deadline * 1000
                )
                failed = True
            except Exception:
                logger.exception("classification failed; routing by the policy's classifier_failure route")
                failed = True
            classification_ms = (time.perf_counter() - t0) * 1000
        call = await self._call_facts(caller.tenant, call_id, caller_id, loaded.policy.caller_memory_days)
        build_facts = functools.partial(
            turn_facts,
            tenant=caller.tenant,
            agent=caller.agent,
            requested_model=requested,
            messages=messages,
            tools=request.tools,
            metadata=metadata,
            classification=classification,
            classifier_failed=failed,
            call=call,
        )
        # Counting the prompt tokens of a large body takes tiktoken tens of milliseconds: off the event loop.
        facts = build_facts() if quick_to_count(messages, request.tools) else await asyncio.to_thread(build_facts)
        if self.rate_limit is not None:
            max_output = request.max_completion_tokens or request.max_tokens or 0
            await self.rate_limit.check(caller, facts.prompt_tokens + max_output * (request.n or 1))
        decision, capped_from = self._within_allowance(caller, loaded.engine.decide(facts))
        reservation = None
        if self.budgets is not None:
            reservation = await self._reserve(caller, call_id, request, facts, decision, media_parts(messages))
        try:
            if reservation is not None and reservation.soft_exceeded and not decision.high_stakes:
                facts = dataclasses.replace(facts, budget_soft_exceeded=True)
                decision, capped_from = self._within_allowance(caller, loaded.engine.decide(facts))
            await self._remember(caller.tenant, call_id, caller_id, decision, classification)
        except BaseException:
            if reservation is not None and self.budgets is not None:
                await self.budgets.enforcer.release(reservation)
            raise
        shadow = self.policies.shadow
        return Turn(
            request_id=request_id,
            received_at=datetime.now(UTC),
            started=started,
            body=body,
            upstream_body=_upstream_body(body),
            caller=caller,
            call_id=call_id,
            caller_id=caller_id,
            facts=facts,
            classification=classification,
            classification_ms=classification_ms,
            decision=decision,
            policy_version=loaded.version,
            shadow=(shadow.version, shadow.engine.decide(facts)) if shadow else None,
            stream=bool(request.stream),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
            reservation=reservation,
            capped_from=capped_from,
        )

    async def _reserve(
        self,
        caller: Caller,
        call_id: str | None,
        request: ChatCompletionRequest,
        facts: Facts,
        decision: Decision,
        media: MediaParts,
    ) -> Reservation | None:
        """Hold the most this turn could cost on every budget it is charged to, before calling anyone.

        Images and audio count at their upper bound on each deployment; content no bound can be put on is refused.
        """
        assert self.budgets is not None
        scopes = self.budgets.policy.scopes_for(caller.tenant, caller.agent, call_id)
        if not scopes:
            return None
        if media.unpriceable is not None:
            raise InvalidRequest(
                "this content part cannot be priced before it is sent, and a budget applies to this request: "
                "send text, image_url or input_audio parts",
                param=media.unpriceable,
                code="unpriceable_content",
            )
        limits = self.config.limits
        max_output = request.max_completion_tokens or request.max_tokens or limits.reserve_output_tokens
        output_tokens = max_output * (request.n or 1)
        amount = max(
            self.accountant.max_cost([d], facts.prompt_tokens + media.token_bound(d.model), output_tokens)
            for d in self._candidates(caller, decision)
        )
        try:
            return await self.budgets.enforcer.reserve(scopes, amount)
        except BudgetExceeded as exc:
            raise BudgetExhausted(
                f"the budget '{exc.scope_name}' is exhausted: {exc.spent:.6f} of {exc.limit:.6f} USD spent",
                param=exc.scope_name,
            ) from exc

    async def _call_facts(
        self, tenant: str, call_id: str | None, caller_id: str | None, memory_days: float
    ) -> CallFacts | None:
        if call_id is None and caller_id is None:
            return None
        record = await self.state.load_call(tenant, call_id) if call_id else CallRecord()
        complained = await self.state.caller_complained_within(tenant, caller_id, memory_days) if caller_id else False
        return record.facts(complained)

    async def _remember(
        self,
        tenant: str,
        call_id: str | None,
        caller_id: str | None,
        decision: Decision,
        classification: TurnClassification | None,
    ) -> None:
        ladder = self.policies.active.engine.ladder
        tier = ladder.decided_tier(decision)
        if call_id and tier is not None:
            await self.state.record_turn(tenant, call_id, tier, ladder.rank(tier), decision.call_labels)
        if caller_id and classification is not None and classification.intent == COMPLAINT_INTENT:
            await self.state.note_complaint(tenant, caller_id)

    def _check_limits(self, request: ChatCompletionRequest) -> None:
        limits = self.config.limits
        if len(request.messages) > limits.max_messages:
            raise InvalidRequest(f"at most {limits.max_messages} messages are accepted", param="messages")
        for index, message in enumerate(request.messages):
            if len(content_text(message.content)) > limits.max_content_chars:
                raise InvalidRequest(
                    f"message content longer than {limits.max_content_chars} characters",
                    param=f"messages[{index}].content",
                )
        if request.n is not None and request.n > limits.max_n:
            raise InvalidRequest(f"n must be at most {limits.max_n}", param="n")
        for name in ("max_tokens", "max_completion_tokens"):
            value = getattr(request, name)
            if value is not None and value > limits.max_tokens:
                raise InvalidRequest(f"{name} must be at most {limits.max_tokens}", param=name)

    def _within_allowance(self, caller: Caller, decision: Decision) -> tuple[Decision, str | None]:
        """The decision moved into what the key may use, and the tier it was moved from (``None``: unchanged).

        A restricted key whose turn the policy sends beyond its allowance gets the nearest tier it may use (see
        ``Allowance.nearest_tier``), or a 403 with ``permissions.above_allowance: refuse``.
        """
        if decision.tier is None or self.allowance.may_use_tier(caller, decision.tier):
            return decision, None
        nearest = self.allowance.nearest_tier(caller, decision.tier)
        if nearest is None or self.config.permissions.above_allowance == "refuse":
            raise PermissionDenied(
                f"the policy routed this turn to tier '{decision.tier}', which this key is not allowed", param="model"
            )
        capped = dataclasses.replace(decision, tier=nearest, reasons=(*decision.reasons, f"key_allowance->{nearest}"))
        return capped, decision.tier

    def _candidates(self, caller: Caller, decision: Decision) -> list[Deployment]:
        """The deployments this turn may try: the decision's chain, filtered by what the caller's key permits."""
        return self.chain.candidates(
            decision.tier, decision.deployment, lambda name: self.allowance.permits(caller, name)
        )

    # -- call and account -----------------------------------------------------------------------------------

    def decision_headers(self, turn: Turn, deployment: Deployment, attempts: Attempts) -> dict[str, str]:
        decision = turn.decision
        result = {
            H.REQUEST_ID: turn.request_id,
            H.TIER: self.chain.served_tier(decision.tier, deployment.name) or "",
            H.MODEL: deployment.model,
            H.DEPLOYMENT: deployment.name,
            H.RULE: decision.rule,
            H.FALLBACKS: str(attempts.fallbacks),
            H.POLICY_VERSION: turn.policy_version,
        }
        if turn.classification is not None:
            result[H.INTENT] = turn.classification.intent
        result[H.RISK] = ",".join(decision.risks_present) or "none"
        if decision.reasons:
            result[H.REASONS] = "; ".join(decision.reasons)
        if turn.capped_from is not None:
            result[H.CAPPED] = f"{turn.capped_from}->{decision.tier}"
        if deployment.is_simulated:
            result[H.SIMULATED] = "true"
        if attempts.hedge is not None:
            result.update(attempts.hedge.headers())
        if decision.handoff_reason is not None:
            result[H.HANDOFF], result[H.HANDOFF_REASON] = "recommended", decision.handoff_reason
        return result

    async def complete(self, turn: Turn) -> tuple[dict[str, Any], dict[str, str]]:
        outcome = Outcome()
        candidates = self._candidates(turn.caller, turn.decision)
        try:
            deployment, answer, attempts = await self.chain.complete(candidates, turn.upstream_body)
        except Exception as exc:
            await self._fail(turn, outcome, exc)
            raise
        outcome.deployment, outcome.attempts = deployment, attempts
        usage = Usage.from_openai(answer.get("usage"))
        if usage is None:
            usage = _estimate_usage(turn, completion_text(answer.get("choices"), "message"))
            answer["usage"] = usage.to_openai()
        outcome.usage = usage
        outcome.cost_usd, outcome.baseline_cost_usd = self.accountant.price(deployment, usage)
        outcome.total_ms = (time.perf_counter() - turn.started) * 1000
        await self.finish(turn, outcome)
        response_headers = self.decision_headers(turn, deployment, attempts)
        response_headers[H.COST_USD] = f"{outcome.cost_usd:.8f}"
        response_headers[H.BASELINE_COST_USD] = f"{outcome.baseline_cost_usd:.8f}"
        return answer, response_headers

    async def open_stream(self, turn: Turn) -> tuple[OpenStream, dict[str, str]]:
        candidates = self._candidates(turn.caller, turn.decision)
        try:
            opened = await self.chain.open_stream(candidates, turn.upstream_body)
        except Exception as exc:
            await self._fail(turn, Outcome(), exc)
            raise
        # The losers of a hedge were cancelled when this stream produced its first token: price them now, so their
        # records are as durable as the stream's own provisional one.
        price_waste(opened.attempts.hedge, turn.facts.prompt_tokens, self.accountant.price, text_tokens)
        try:
            await self.accountant.record_stream_start(turn, opened.deployment, opened.attempts.hedge)
        except LedgerUnavailable as exc:
            await opened.rest.aclose()  # type: ignore[attr-defined]
            await self._fail(turn, Outcome(deployment=opened.deployment, attempts=opened.attempts), exc)
            raise
        return opened, self.decision_headers(turn, opened.deployment, opened.attempts)

    async def _fail(self, turn: Turn, outcome: Outcome, exc: Exception) -> None:
        outcome.status = getattr(exc, "status_code", 500)
        outcome.error_type = getattr(exc, "error_type", type(exc).__name__)
        outcome.total_ms = (time.perf_counter() - turn.started) * 1000
        # The turn's own error is what the client gets; its record stays queued if the ledger is down.
        with contextlib.suppress(LedgerUnavailable):
            await self.finish(turn, outcome)

    async def finish(self, turn: Turn, outcome: Outcome) -> None:
        """Settle the turn's budget reservation at its real cost (nothing if it failed), then account for it;
        returns once the record is durable, so before the answer is released (``LedgerUnavailable`` if not)."""
        if outcome.deployment is not None:
            outcome.tier = self.chain.served_tier(turn.decision.tier, outcome.deployment.name)
        # A hedge's loser was billed too: priced here, charged to the budgets, ledgered beside the turn.
        wasted_usd = price_waste(outcome.attempts.hedge, turn.facts.prompt_tokens, self.accountant.price, text_tokens)
        if turn.reservation is not None and self.budgets is not None:
            try:
                await self.budgets.enforcer.settle(turn.reservation, outcome.cost_usd + wasted_usd)
            except Exception:
                logger.exception("could not settle the budget of %s", turn.request_id)
        await self.accountant.record(turn, outcome)

    def record_rejection(
        self,
        request_id: str,
        started: float,
        caller: Caller | None,
        body: dict[str, Any] | None,
        headers: Mapping[str, str],
        error: GatewayError,
    ) -> None:
        """A request refused before it had a decision (bad JSON, auth, limits, unknown model) is recorded too."""
        body = body if isinstance(body, dict) else {}
        metadata = body.get("metadata")
        call_id, _ = call_identity(
            headers, metadata if isinstance(metadata, dict) else None, body.get("user"), strict=False
        )
        self.accountant.record_rejection(
            Rejection(
                request_id=request_id,
                received_at=datetime.now(UTC),
                caller=caller,
                requested_model=_bounded(text_or_none(body.get("model"))),
                call_id=call_id,
                status=error.status_code,
                error_type=error.code or error.error_type,
                total_ms=(time.perf_counter() - started) * 1000,
                policy_version=self.policies.active.version,
            )
        )

    def usage_for_stream(self, turn: Turn, reported: Usage | None, produced_text: str) -> Usage:
        return reported if reported is not None else _estimate_usage(turn, produced_text)


def _bounded(text: str | None) -> str | None:
    """A refused request's model name as recorded: its length is the caller's choice, the ledger's is not."""
    return text[:ID_MAX_CHARS] if text is not None else None


def _upstream_body(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not (metadata.keys() & GATEWAY_METADATA_KEYS):
        return body
    kept = {k: v for k, v in metadata.items() if k not in GATEWAY_METADATA_KEYS}
    upstream = {k: v for k, v in body.items() if k != "metadata"}
    if kept:
        upstream["metadata"] = kept
    return upstream


def _estimate_usage(turn: Turn, produced_text: str) -> Usage:
    return Usage(prompt_tokens=turn.facts.prompt_tokens, completion_tokens=text_tokens(produced_text), estimated=True)
