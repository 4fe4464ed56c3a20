"""Replay a traffic log under one or more policies: classify offline, rebuild call state, decide, price.

Every turn is decided exactly as the gateway decides a live one: the same facts builder (``turn_facts``), the same
engine, and call state (turn counter, highest tier, risks seen, callers' complaints) advanced in log order per
policy, so stickiness and sticky floors behave as they did live. What differs from live, on purpose:

* Classification runs offline in batches, on the logged (masked) messages with each placeholder swapped for a
  stand-in that fires the same PII detector (see ``router.traffic.redact``); identical conversations are
  classified once.
* Caller memory ages by the log's timestamps, not the wall clock; call state never expires.
* Tools are known by name only, so ``prompt_tokens`` facts omit tool schemas (the billed usage includes them).

Each turn is priced on the first deployment of its tier (or its pinned deployment) with the logged usage, or a
tiktoken estimate when the log has none (prompt from the messages; completion from the agent's reply, which the
next turn of the call carries). Cached prompt tokens are honoured only when the previous turn of the call went to
the same deployment under the same policy, since a prompt cache lives with one deployment. The all-frontier
baseline prices every turn on ``config.baseline``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import pandas as pd
from tqdm import tqdm

from classifiers.schemas import Classification, Conversation
from router.accounting.pricing import PriceBook
from router.accounting.tokens import text_tokens
from router.accounting.usage import Usage
from router.config import GatewayConfig
from router.facts import TurnClassification, turn_facts
from router.gateway import COMPLAINT_INTENT
from router.policy.engine import Decision, TierLadder
from router.policy.facts import CallFacts, Facts
from router.policy.store import LoadedPolicy
from router.state import CallRecord
from router.traffic.log import TrafficRecord
from router.traffic.redact import with_stand_ins

DEFAULT_BATCH_SIZE = 256
RISK_PREFIX = "risk."


class BatchClassifier(Protocol):
    """What a replay needs of a classifier; ``classifiers.TurnClassifier`` is one."""

    def cache_key(self, conversation: Conversation) -> Hashable:
        """Everything the classification depends on: equal keys give equal classifications."""
        ...

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Classification]: ...


def turn_classification(classification: Classification) -> TurnClassification:
    return TurnClassification(
        intent=classification.intent,
        intent_confidence=classification.intent_confidence,
        risks=dict(classification.risks),
        reasons=tuple(classification.reasons),
    )


@dataclass(slots=True)
class CallMemory:
    """Call state and caller memory of one policy, advanced turn by turn in log order.

    Calls are ``router.state.CallRecord``\\ s updated as ``InProcessState.record_turn`` updates them; complaints
    are timed by the log, so a complaint a week before a call is as old in the replay as it was live.
    """

    ladder: TierLadder
    memory: timedelta
    calls: dict[tuple[str, str], CallRecord] = field(default_factory=dict)
    complaints: dict[tuple[str, str], datetime] = field(default_factory=dict)
    served_by: dict[tuple[str, str], str] = field(default_factory=dict)

    def facts(self, record: TrafficRecord) -> CallFacts | None:
        if record.call_id is None and record.caller_id is None:
            return None
        call = self.calls.get((record.tenant, record.call_id), CallRecord()) if record.call_id else CallRecord()
        complained_at = self.complaints.get((record.tenant, record.caller_id)) if record.caller_id else None
        return call.facts(complained_at is not None and record.ts - complained_at <= self.memory)

    def remember(self, record: TrafficRecord, decision: Decision, intent: str, deployment: str) -> bool:
        """Record the turn; returns whether the previous turn of the call was served by ``deployment`` too."""
        tier = decision.tier or self.ladder.tier_of(decision.deployment or "")
        if record.call_id and tier is not None:
            call = self.calls.setdefault((record.tenant, record.call_id), CallRecord())
            call.turns += 1
            rank = self.ladder.rank(tier)
            if rank > call.max_rank:
                call.max_rank, call.max_tier, call.escalated_at_turn = rank, tier, call.turns
            call.risks_seen.update(decision.risks_present)
        if record.caller_id and intent == COMPLAINT_INTENT:
            self.complaints[(record.tenant, record.caller_id)] = record.ts
        if not record.call_id:
            return False
        previous = self.served_by.get((record.tenant, record.call_id))
        self.served_by[(record.tenant, record.call_id)] = deployment
        return previous == deployment


@dataclass(frozen=True)
class ReplayResult:
    """One row per turn (``turns``) with, for each policy label L, columns ``tier.L``, ``deployment.L``,
    ``rule.L``, ``reasons.L``, ``risks.L`` (present under L's thresholds), ``cost.L``; plus ``baseline_cost``,
    the classification (``intent``, ``intent_confidence``, ``risk.<name>`` probabilities) and the usage priced."""

    turns: pd.DataFrame
    policies: dict[str, LoadedPolicy]
    tier_order: list[str]
    baseline_deployment: str
    unique_conversations: int
    timings: dict[str, float]

    @property
    def risk_names(self) -> list[str]:
        return [column.removeprefix(RISK_PREFIX) for column in self.turns.columns if column.startswith(RISK_PREFIX)]

    @property
    def turns_per_second(self) -> float:
        return len(self.turns) / self.timings["total"] if self.timings["total"] else float("inf")


def _replies(records: Sequence[TrafficRecord]) -> dict[int, str]:
    """Turn index → the agent's reply to it, read from the next turn of the same call when that turn has it."""
    replies: dict[int, str] = {}
    last_of_call: dict[tuple[str, str], int] = {}
    for index, record in enumerate(records):
        if record.call_id is None:
            continue
        key = (record.tenant, record.call_id)
        previous = last_of_call.get(key)
        if previous is not None:
            answered = len(records[previous].messages)
            if len(record.messages) > answered and record.messages[answered].role == "assistant":
                replies[previous] = record.messages[answered].content
        last_of_call[key] = index
    return replies


def _classify(
    conversations: Sequence[Conversation], classifier: BatchClassifier, batch_size: int, progress: bool
) -> tuple[list[TurnClassification], int]:
    """Classify each distinct conversation once, in batches: (one classification per turn, distinct count)."""
    index_of: dict[Hashable, int] = {}
    distinct: list[Conversation] = []
    turn_to_distinct = []
    for conversation in conversations:
        key = classifier.cache_key(conversation)
        if key not in index_of:
            index_of[key] = len(distinct)
            distinct.append(conversation)
        turn_to_distinct.append(index_of[key])
    classified: list[Classification] = []
    with tqdm(total=len(distinct), desc="classify", unit="turn", disable=not progress, leave=False) as bar:
        for start in range(0, len(distinct), batch_size):
            batch = distinct[start : start + batch_size]
            classified.extend(classifier.classify_batch(batch))
            bar.update(len(batch))
    converted = [turn_classification(c) for c in classified]
    return [converted[i] for i in turn_to_distinct], len(distinct)


def replay(
    records: Sequence[TrafficRecord],
    policies: Mapping[str, LoadedPolicy],
    config: GatewayConfig,
    classifier: BatchClassifier,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> ReplayResult:
    """Decide and price every turn of ``records`` (in their order) under each of ``policies`` (label → policy)."""
    started = time.perf_counter()
    prices = PriceBook({d.name: (d.model, d.price) for d in config.deployments})  # loads litellm's cost map
    ready = time.perf_counter()
    stand_ins: dict[str, str] = {}
    chats = [
        [{"role": m.role, "content": stand_ins.setdefault(m.content, with_stand_ins(m.content))} for m in r.messages]
        for r in records
    ]
    conversations = [
        Conversation.from_messages(chat, has_tools=bool(r.tools)) for chat, r in zip(chats, records, strict=True)
    ]
    classifications, unique = _classify(conversations, classifier, batch_size, progress)
    classified_at = time.perf_counter()

    ladder = TierLadder(config.tiers)
    baseline = config.baseline.name
    memories = {
        label: CallMemory(ladder, timedelta(days=loaded.policy.caller_memory_days))
        for label, loaded in policies.items()
    }
    replies = _replies(records)
    rows: dict[str, list[object]] = {name: [] for name in _row_names(policies)}
    risk_names = sorted({risk for c in classifications for risk in c.risks})
    risk_rows: dict[str, list[float]] = {risk: [] for risk in risk_names}
    items = zip(records, chats, classifications, strict=True)
    for index, (record, chat, classification) in enumerate(
        tqdm(items, total=len(records), desc="decide", unit="turn", disable=not progress, leave=False)
    ):
        facts = _facts(record, chat, classification)
        usage = record.usage or Usage(
            prompt_tokens=facts.prompt_tokens, completion_tokens=text_tokens(replies.get(index, "")), estimated=True
        )
        _append_turn(rows, record, classification, usage, float(prices.cost(baseline, usage).cost_usd))
        for risk in risk_names:
            risk_rows[risk].append(classification.risks.get(risk, 0.0))
        for label, loaded in policies.items():
            memory = memories[label]
            decision = loaded.engine.decide(dataclasses.replace(facts, call=memory.facts(record)))
            deployment = decision.deployment or config.tiers[decision.tier or ""][0]
            cache_kept = memory.remember(record, decision, classification.intent, deployment)
            priced = usage if cache_kept else usage.model_copy(update={"cached_prompt_tokens": 0})
            rows[f"tier.{label}"].append(decision.tier or ladder.tier_of(deployment))
            rows[f"deployment.{label}"].append(deployment)
            rows[f"rule.{label}"].append(decision.rule)
            rows[f"reasons.{label}"].append("; ".join(decision.reasons))
            rows[f"risks.{label}"].append(",".join(decision.risks_present))
            rows[f"pinned.{label}"].append(decision.tier is None)
            rows[f"cost.{label}"].append(float(prices.cost(deployment, priced).cost_usd))
    turns = pd.DataFrame(rows)
    for risk in risk_names:
        turns[f"{RISK_PREFIX}{risk}"] = risk_rows[risk]
    turns["turn"] = turns.groupby(["tenant", "call_key"], sort=False).cumcount() + 1
    finished = time.perf_counter()
    return ReplayResult(
        turns=turns,
        policies=dict(policies),
        tier_order=list(config.tiers),
        baseline_deployment=baseline,
        unique_conversations=unique,
        timings={
            "setup": ready - started,
            "classify": classified_at - ready,
            "decide": finished - classified_at,
            "total": finished - started,
        },
    )


def _facts(record: TrafficRecord, chat: list[dict[str, str]], classification: TurnClassification) -> Facts:
    voice = record.metadata.voice
    return turn_facts(
        tenant=record.tenant,
        agent=record.agent,
        requested_model=record.requested_model,
        messages=chat,
        tools=record.tool_stubs,
        metadata={"voice": voice.model_dump(exclude_none=True)} if voice else None,
        classification=classification,
    )


_TURN_COLUMNS = (
    "request_id",
    "ts",
    "tenant",
    "agent",
    "call_key",
    "call_id",
    "caller_id",
    "status",
    "live_tier",
    "live_rule",
    "intent",
    "intent_confidence",
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "baseline_cost",
)
_POLICY_COLUMNS = ("tier", "deployment", "rule", "reasons", "risks", "pinned", "cost")


def _row_names(policies: Mapping[str, LoadedPolicy]) -> list[str]:
    return [*_TURN_COLUMNS, *(f"{column}.{label}" for label in policies for column in _POLICY_COLUMNS)]


def _append_turn(
    rows: dict[str, list[object]],
    record: TrafficRecord,
    classification: TurnClassification,
    usage: Usage,
    baseline_cost: float,
) -> None:
    live = record.decision
    values = {
        "request_id": record.request_id,
        "ts": record.ts,
        "tenant": record.tenant,
        "agent": record.agent,
        # A turn without a call id is a call of its own (as the gateway treats it: no state).
        "call_key": record.call_id or record.request_id,
        "call_id": record.call_id,
        "caller_id": record.caller_id,
        "status": record.status,
        "live_tier": live.tier if live else None,
        "live_rule": live.rule if live else None,
        "intent": classification.intent,
        "intent_confidence": classification.intent_confidence,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_prompt_tokens": usage.cached_prompt_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_estimated": usage.estimated,
        "baseline_cost": baseline_cost,
    }
    for name, value in values.items():
        rows[name].append(value)
