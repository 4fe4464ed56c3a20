"""Replay a traffic log under one or more policies: classify offline, rebuild call state, decide, price.

Every turn is decided exactly as the gateway decides a live one: the same facts builder (``turn_facts``), the same
engine, and call state (turn counter, highest tier, risks seen, callers' complaints) advanced in log order per
policy, so stickiness and sticky floors behave as they did live. What differs from live, on purpose:

* Classification runs offline in batches, on the logged (masked) messages with each placeholder swapped for a
  stand-in that fires the same PII detector (see ``router.traffic.redact``); identical conversations are
  classified once.
* Caller memory ages by the log's timestamps, not the wall clock; call state never expires.
* Tools are known by name only, so ``prompt_tokens`` facts omit tool schemas (the billed usage includes them).
* No budgets: a turn is never downgraded for a crossed soft budget limit, and classification never fails.

Each turn is priced on the first deployment of its tier (or its pinned deployment) with the logged usage, or a
tiktoken estimate when the log has none (prompt from the messages; completion from the agent's reply, which the
next turn of the call carries). Cached prompt tokens are honoured only when the previous turn of the call went to
the same deployment under the same policy, since a prompt cache lives with one deployment. The all-frontier
baseline prices every turn on ``config.baseline``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing import get_context
from typing import Protocol

import pandas as pd
from tqdm import tqdm

from classifiers.schemas import Classification, Conversation
from router.accounting.pricing import PriceBook
from router.accounting.tokens import text_tokens
from router.accounting.usage import Usage
from router.config import GatewayConfig
from router.facts import TurnClassification, turn_facts
from router.policy.engine import Decision, TierLadder
from router.policy.facts import COMPLAINT_INTENT, CallFacts, Facts
from router.policy.store import LoadedPolicy
from router.state import CallRecord
from router.traffic.classify import classify_in_worker
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


@dataclass(slots=True)
class CallMemory:
    """Call state and caller memory of one policy, advanced turn by turn in log order.

    Calls are ``router.state.CallRecord``\\ s advanced by ``CallRecord.add_turn``, as live; complaints
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
        tier = self.ladder.decided_tier(decision)
        if record.call_id and tier is not None:
            call = self.calls.setdefault((record.tenant, record.call_id), CallRecord())
            call.add_turn(tier, self.ladder.rank(tier), decision.call_labels)
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
    ``rule.L``, ``reasons.L``, ``risks.L`` (present under L's thresholds), ``pinned.L`` (the caller named a
    deployment) and ``cost.L``; plus ``baseline_cost``, the classification (``intent``, ``intent_confidence``,
    ``risk.<name>`` probabilities), the usage priced and the live decision (``live_tier``, ``live_rule``)."""

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


class ClassificationQueue:
    """Classifies each distinct conversation once, in batches queued as they fill, while the caller reads on.

    With ``workers`` > 1, batches go to that many processes, each with its own copy of ``classifier`` (which must
    pickle); the pool starts with the second batch, so a log of one batch is classified here. A turn's
    classification is waited for only when the turn is decided, so reading the log, building facts and deciding
    earlier turns overlap with classifying later ones.
    """

    def __init__(self, classifier: BatchClassifier, batch_size: int, workers: int, stack: contextlib.ExitStack) -> None:
        self._classifier = classifier
        self._batch_size = batch_size
        self._workers = workers
        self._stack = stack
        self._pool: ProcessPoolExecutor | None = None
        self._index_of: dict[Hashable, int] = {}
        self._filling: list[Conversation] = []
        self._batches: list[Future[list[Classification]] | list[Classification]] = []
        self._held: list[Conversation] | None = None
        self._done: dict[int, list[TurnClassification]] = {}
        self.waited = 0.0

    @property
    def distinct(self) -> int:
        return len(self._index_of)

    def add(self, conversation: Conversation) -> int:
        """Queue a turn's conversation; returns the ticket its classification is fetched with."""
        key = self._classifier.cache_key(conversation)
        ticket = self._index_of.get(key)
        if ticket is None:
            ticket = self._index_of[key] = len(self._index_of)
            self._filling.append(conversation)
            if len(self._filling) == self._batch_size:
                self._submit()
        return ticket

    def close(self) -> None:
        """Queue the last, partial batch."""
        if self._filling:
            self._submit()
        if self._held is not None:  # the only batch: not worth starting processes for
            self._batches.append(self._classifier.classify_batch(self._held))

    def _submit(self) -> None:
        batch, self._filling = self._filling, []
        if self._workers <= 1:
            self._batches.append(self._classifier.classify_batch(batch))
            return
        if self._pool is None:
            if self._held is None:
                self._held = batch
                return
            self._pool = self._stack.enter_context(
                ProcessPoolExecutor(max_workers=self._workers, mp_context=get_context("spawn"))
            )
            self._batches.append(self._pool.submit(classify_in_worker, self._classifier, self._held))
            self._held = None
        self._batches.append(self._pool.submit(classify_in_worker, self._classifier, batch))

    def get(self, ticket: int) -> TurnClassification:
        number, offset = divmod(ticket, self._batch_size)
        converted = self._done.get(number)
        if converted is None:
            batch = self._batches[number]
            if isinstance(batch, Future):
                waiting = time.perf_counter()
                batch = batch.result()
                self.waited += time.perf_counter() - waiting
            converted = self._done[number] = [TurnClassification.of(c) for c in batch]
            self._batches[number] = []  # release the raw results
        return converted[offset]


def replay(
    records: Iterable[TrafficRecord],
    policies: Mapping[str, LoadedPolicy],
    config: GatewayConfig,
    classifier: BatchClassifier,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 1,
    progress: bool = False,
) -> ReplayResult:
    """Decide and price every turn of ``records`` (in their order) under each of ``policies`` (label → policy).

    ``workers`` > 1 classifies in that many processes (the classifier must pickle, see ``ShippedClassifier``).
    """
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    prices = PriceBook({d.name: (d.model, d.price) for d in config.deployments})  # loads litellm's cost map
    ready = time.perf_counter()
    with contextlib.ExitStack() as stack:
        queue = ClassificationQueue(classifier, batch_size, workers, stack)
        turns, chats, tickets = _read(records, queue, progress)
        read_at = time.perf_counter()
        frame = _decide(turns, chats, tickets, queue, policies, config, prices, progress)
    finished = time.perf_counter()  # after the worker processes exited, so that their CPU time is counted
    return ReplayResult(
        turns=frame,
        policies=dict(policies),
        tier_order=list(config.tiers),
        baseline_deployment=config.baseline.name,
        unique_conversations=queue.distinct,
        timings={
            "setup": ready - started,
            "read": read_at - ready,
            "decide": finished - read_at - queue.waited,
            "classification_wait": queue.waited,
            "total": finished - started,
            "cpu": _cpu_seconds() - cpu_started,
        },
    )


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (the classification workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _read(
    records: Iterable[TrafficRecord], queue: ClassificationQueue, progress: bool
) -> tuple[list[TrafficRecord], list[list[dict[str, str]]], list[int]]:
    """Each record with its messages (placeholders swapped for stand-ins), queued for classification."""
    turns, chats, tickets = [], [], []
    stand_ins: dict[str, str] = {}  # every turn resends the call so far: swap each text once

    def stand_in(text: str) -> str:
        swapped = stand_ins.get(text)
        if swapped is None:
            swapped = stand_ins[text] = with_stand_ins(text)
        return swapped

    for record in tqdm(records, desc="read", unit="turn", disable=not progress, leave=False):
        chat = [{"role": m.role, "content": stand_in(m.content)} for m in record.messages]
        turns.append(record)
        chats.append(chat)
        tickets.append(queue.add(Conversation.from_messages(chat, has_tools=bool(record.tools))))
    queue.close()
    return turns, chats, tickets


def _decide(
    records: list[TrafficRecord],
    chats: list[list[dict[str, str]]],
    tickets: list[int],
    queue: ClassificationQueue,
    policies: Mapping[str, LoadedPolicy],
    config: GatewayConfig,
    prices: PriceBook,
    progress: bool,
) -> pd.DataFrame:
    ladder = TierLadder(config.tiers)
    baseline = config.baseline.name
    memories = {
        label: CallMemory(ladder, timedelta(days=loaded.policy.caller_memory_days))
        for label, loaded in policies.items()
    }
    replies = _replies(records)
    rows: dict[str, list[object]] = {name: [] for name in _row_names(policies)}
    risks: list[dict[str, float]] = []
    items = zip(records, chats, tickets, strict=True)
    for index, (record, chat, ticket) in enumerate(
        tqdm(items, total=len(records), desc="decide", unit="turn", disable=not progress, leave=False)
    ):
        classification = queue.get(ticket)
        facts = _facts(record, chat, classification)
        usage = record.usage or Usage(
            prompt_tokens=facts.prompt_tokens, completion_tokens=text_tokens(replies.get(index, "")), estimated=True
        )
        _append_turn(rows, record, classification, usage, float(prices.cost(baseline, usage).cost_usd))
        risks.append(classification.risks)
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
    probabilities = pd.DataFrame.from_records(risks, index=turns.index).fillna(0.0)
    for risk in sorted(probabilities.columns):
        turns[f"{RISK_PREFIX}{risk}"] = probabilities[risk]
    turns["turn"] = turns.groupby(["tenant", "call_key"], sort=False).cumcount() + 1
    return turns


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
    "stakes",
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
        "stakes": classification.stakes,
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
