"""Every Prometheus metric of the gateway, defined and documented in one place.

Labels never carry call or request ids (unbounded cardinality); per-call figures are histograms. Tenant and agent
labels come from callers, so they pass :meth:`Metrics.caller_labels`: a process labels at most
``label_values`` distinct tenants (and as many agents) and counts later ones as ``other``. With several uvicorn
workers, set ``PROMETHEUS_MULTIPROC_DIR`` (``switchboard serve`` does); ``/metrics`` aggregates.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Milliseconds matter here: buckets from 0.25 ms to 30 s.
LATENCY_BUCKETS = (
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
CALL_COST_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

TURN_LABELS = ("tenant", "agent", "tier", "model", "intent")
OTHER = "other"


class LabelGuard:
    """One caller-derived label: its first ``limit`` distinct values are kept, later ones become ``other``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: set[str] = {"", OTHER}

    def __call__(self, value: str) -> str:
        if value in self._kept:
            return value
        if len(self._kept) - 2 >= self._limit:
            return OTHER
        self._kept.add(value)
        return value


class Metrics:
    """The gateway's metrics on their own registry (one per app, so tests can run several)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        label_values: int = 100,
        labelled_agents: Collection[str] = (),
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._tenant_label = LabelGuard(label_values)
        self._agent_label = LabelGuard(label_values)
        self._labelled_agents = frozenset(labelled_agents)
        self._published_policies: set[tuple[str, str]] = set()
        r = self.registry
        self.requests = Counter(
            "switchboard_requests",
            "Chat completion requests by outcome.",
            (*TURN_LABELS, "status"),
            registry=r,
        )
        self.tokens = Counter(
            "switchboard_tokens",
            "Tokens by kind (prompt, completion, cached_prompt, reasoning).",
            (*TURN_LABELS, "kind"),
            registry=r,
        )
        self.cost = Counter(
            "switchboard_cost_usd", "Spend in USD at the served model's prices.", TURN_LABELS, registry=r
        )
        self.baseline_cost = Counter(
            "switchboard_baseline_cost_usd",
            "What the same tokens would have cost on the baseline model.",
            TURN_LABELS,
            registry=r,
        )
        self.interrupted_cost = Counter(
            "switchboard_interrupted_cost_usd",
            "Spend on answers the client cancelled mid-stream (barge-in).",
            TURN_LABELS,
            registry=r,
        )
        self.overhead = Histogram(
            "switchboard_gateway_overhead_seconds",
            "Time the gateway adds: total minus upstream time.",
            ("tier",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "switchboard_time_to_first_token_seconds",
            "Request arrival to first streamed chunk.",
            ("tier", "model"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "switchboard_upstream_latency_seconds",
            "Upstream call duration (non-streamed answers).",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.classification_latency = Histogram(
            "switchboard_classification_seconds",
            "Intent and risk classification per turn.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "switchboard_fallbacks",
            "Deployments that failed and were fallen over from, by failure kind.",
            ("tier", "deployment", "kind"),
            registry=r,
        )
        self.hedges = Counter(
            "switchboard_hedges",
            "Turns where a hedge ran beside a slow attempt, by the tier and deployment that won and which won "
            "(winner: first or hedge).",
            ("tier", "deployment", "winner"),
            registry=r,
        )
        self.hedge_wasted_cost = Counter(
            "switchboard_hedge_wasted_cost_usd",
            "Spend on hedge losers (cancelled attempts), by their tier and deployment; also in switchboard_cost_usd.",
            ("tier", "deployment"),
            registry=r,
        )
        self.handoffs = Counter(
            "switchboard_handoffs",
            "Turns whose answer recommended a human handoff (x-switchboard-handoff), by the policy's handoff name.",
            ("tenant", "agent", "handoff"),
            registry=r,
        )
        self.decisions = Counter(
            "switchboard_routing_decisions",
            "Routing decisions by rule and tier.",
            ("tenant", "rule", "tier"),
            registry=r,
        )
        self.shadow_decisions = Counter(
            "switchboard_shadow_decisions",
            "Decisions of the shadow policy, and whether they agree with the live one.",
            ("tenant", "rule", "tier", "agrees"),
            registry=r,
        )
        self.shadow_cost = Counter(
            "switchboard_shadow_cost_usd",
            "What the shadow policy's choice would have cost.",
            ("tenant", "tier"),
            registry=r,
        )
        self.policy_version = Gauge(
            "switchboard_policy_info",
            "1 for the active policy version.",
            ("version", "role"),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.circuit_open = Gauge(
            "switchboard_circuit_open",
            "1 while a deployment's circuit breaker is open.",
            ("deployment",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.budget_remaining = Gauge(
            "switchboard_budget_remaining_usd",
            "Remaining hard budget by scope and window.",
            ("scope", "tenant", "agent", "window"),
            registry=r,
            multiprocess_mode="livemin",
        )
        self.budget_limit = Gauge(
            "switchboard_budget_limit_usd",
            "Hard budget limit by scope and window.",
            ("scope", "tenant", "agent", "window"),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.calls = Counter(
            "switchboard_calls", "Voice calls (distinct call ids) finished.", ("tenant", "agent"), registry=r
        )
        self.call_outcomes = Counter(
            "switchboard_call_outcomes",
            "Finished calls by outcome: resolved, transferred (to a human) or abandoned (also: idle expiry).",
            ("tenant", "agent", "outcome"),
            registry=r,
        )
        self.call_outcome_cost = Counter(
            "switchboard_call_outcome_cost_usd",
            "Whole cost (LLM, hedges, speech) of finished calls by outcome: cost per resolved call is the sum over "
            "every outcome divided by the resolved calls.",
            ("tenant", "agent", "outcome"),
            registry=r,
        )
        self.call_seconds = Counter(
            "switchboard_call_seconds",
            "Length of finished calls (metadata.voice.call_seconds or the call's usage report), for cost per minute.",
            ("tenant", "agent"),
            registry=r,
        )
        self.speech_cost = Counter(
            "switchboard_speech_cost_usd",
            "Speech spend besides the LLM: kind stt, tts or telephony, by the price table's vendor key.",
            ("tenant", "agent", "kind", "vendor"),
            registry=r,
        )
        self.call_cost = Histogram(
            "switchboard_call_cost_usd",
            "Cost of one finished call (LLM, hedges and speech).",
            ("tenant",),
            buckets=CALL_COST_BUCKETS,
            registry=r,
        )
        self.call_minute_cost = Histogram(
            "switchboard_call_minute_cost_usd",
            "Cost per minute of a finished call (metadata.voice.call_seconds).",
            ("tenant",),
            buckets=CALL_COST_BUCKETS,
            registry=r,
        )
        self.ledger_spooled = Gauge(
            "switchboard_ledger_spooled_batches",
            "Ledger batches waiting in the local spool.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ledger_commit = Histogram(
            "switchboard_ledger_commit_seconds",
            "Wait for a turn's ledger record to be durable (group commit) before its answer is released.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_up = Gauge(
            "switchboard_redis_up",
            "1 while Redis is reachable, 0 while every role runs its degrade policy (only with Redis configured).",
            registry=r,
            multiprocess_mode="livemin",
        )

    def caller_labels(self, tenant: str, agent: str | None, *, keyed: bool, agent_pinned: bool) -> tuple[str, str]:
        """The tenant and agent label values of a caller, bounded in number.

        A virtual key's tenant and agent were chosen by the operator and are labels as they are. Values the caller
        chose itself are not: without keys, ``X-Tenant`` and ``X-Agent`` pass a :class:`LabelGuard`; with keys, an
        ``X-Agent`` (on a key without an agent) is a label only when the operator allow-listed it.
        """
        agent = agent or ""
        if keyed:
            return tenant, agent if agent_pinned or not agent or agent in self._labelled_agents else OTHER
        return self._tenant_label(tenant), self._agent_label(agent)

    def publish_policy(self, active: str, shadow: str | None) -> None:
        """Mark the running versions 1 and the replaced ones 0 (clearing series is impossible across workers)."""
        current = {(active, "active")} | ({(shadow, "shadow")} if shadow else set())
        for labels in self._published_policies - current:
            self.policy_version.labels(*labels).set(0)
        for labels in current:
            self.policy_version.labels(*labels).set(1)
        self._published_policies = current

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition, aggregated across workers in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
