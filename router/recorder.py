"""Accounting for finished turns: price them, write the ledger record, move the metrics.

It is the gateway's only writer of cost data, so the ledger and Prometheus always agree. A turn's record is
durable (committed, or fsync'd to the spool) before ``record`` returns, so before its answer reaches the
client; a stream also gets a provisional record before its first byte (see ``router.accounting.ledger``).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from router.access_log import note_ledger_record
from router.accounting.calls import CallCostTracker
from router.accounting.hedged import hedge_records, observe_hedge
from router.accounting.ledger import (
    STREAM_UNFINISHED,
    Ledger,
    LedgerRecord,
    LedgerSink,
    PostgresLedgerSink,
    Spool,
    SQLiteLedgerSink,
    usage_fields,
)
from router.accounting.pricing import PriceBook
from router.accounting.speech import observe_speech, speech_cost_of, turn_speech
from router.accounting.usage import Usage
from router.config import Deployment, GatewayConfig
from router.metrics import Metrics
from router.settings import Settings
from router.traffic.log import LoggedDecision, TrafficLogWriter, TrafficRecord
from router.types import HEDGE_LOST, Caller, Outcome, Rejection, Turn

if TYPE_CHECKING:
    from router.providers.hedge import HedgeReport

logger = logging.getLogger(__name__)

TOKEN_KINDS = ("prompt_tokens", "completion_tokens", "cached_prompt_tokens", "reasoning_tokens")


class Recorder:
    def __init__(
        self, config: GatewayConfig, prices: PriceBook, ledger: Ledger, metrics: Metrics, calls: CallCostTracker
    ) -> None:
        self._config = config
        self.prices = prices
        self.ledger = ledger
        self.metrics = metrics
        self.calls = calls
        self.spool_lock: IO[bytes] | None = None
        self.traffic: TrafficLogWriter | None = None
        self._baseline = config.baseline.name

    def _tier_of(self, deployment: str) -> str | None:
        return next((t for t in self._config.tier_order if deployment in self._config.tiers[t]), None)

    def price(self, deployment: Deployment, usage: Usage) -> tuple[float, float]:
        cost = self.prices.cost(deployment.name, usage).cost_usd
        baseline = self.prices.baseline_cost(usage, self._baseline, deployment.name).cost_usd
        return float(cost), float(baseline)

    def max_cost(self, deployments: list[Deployment], prompt_tokens: int, max_output_tokens: int) -> float:
        return float(max(self.prices.max_cost(d.name, prompt_tokens, max_output_tokens) for d in deployments))

    def _shadow(self, turn: Turn, usage: Usage | None, served: str | None) -> dict[str, object]:
        if turn.shadow is None:
            return {}
        _, decision = turn.shadow
        deployment = decision.deployment or self._config.tiers[decision.tier or ""][0]
        cost = self.prices.baseline_cost(usage, deployment, served).cost_usd if usage is not None else Decimal(0)
        return {
            "shadow_rule": decision.rule,
            "shadow_tier": decision.tier,
            "shadow_deployment": deployment,
            "shadow_cost_usd": float(cost),
        }

    async def record(self, turn: Turn, outcome: Outcome) -> None:
        """Account for a finished turn; returns once its record is durable (else ``LedgerUnavailable``)."""
        try:
            record, overhead_ms = self._ledger_record(turn, outcome)
            wasted = hedge_records(record, outcome.attempts.hedge, self._tier_of)
            durable = asyncio.gather(self.ledger.commit(record), *(self.ledger.commit(w) for w in wasted))
            note_ledger_record(record)
        except Exception:  # a bug in accounting must never fail a turn that was served
            logger.exception("could not account for %s", turn.request_id)
            return
        try:
            tenant_label, agent_label = self._caller_labels(turn.caller)
            self._observe(record, turn, outcome, overhead_ms, tenant_label, agent_label)
            observe_hedge(self.metrics, record, wasted, outcome.attempts.hedge, tenant_label, agent_label)
            observe_speech(self.metrics, record, tenant_label, agent_label)
            self._follow(turn, record, outcome, tenant_label, agent_label, sum(w.cost_usd for w in wasted))
        except Exception:
            logger.exception("could not account for %s", turn.request_id)
        await durable

    async def record_stream_start(self, turn: Turn, deployment: Deployment, hedge: HedgeReport | None = None) -> None:
        """Commit the provisional record of a stream about to send its first byte: what it costs if the gateway
        dies before the end (the prompt; completion tokens unknown). The final record replaces it.

        A hedge's losers (priced: they were cancelled when this stream produced its first token) are committed with
        it, so their spend survives a gateway killed mid-stream; the final records, same ids, replace them."""
        try:
            usage = Usage(prompt_tokens=turn.facts.prompt_tokens, completion_tokens=0, estimated=True)
            cost, baseline = self.price(deployment, usage)
            outcome = Outcome(
                deployment=deployment,
                usage=usage,
                cost_usd=cost,
                baseline_cost_usd=baseline,
                error_type=STREAM_UNFINISHED,
                interrupted=True,
            )
            record, _ = self._ledger_record(turn, outcome)
            wasted = hedge_records(record, hedge, self._tier_of)
            durable = asyncio.gather(self.ledger.commit(record), *(self.ledger.commit(w) for w in wasted))
            note_ledger_record(record)
        except Exception:  # as in record(): a bug in accounting must never fail the turn
            logger.exception("could not account for the start of %s", turn.request_id)
            return
        await durable

    def _follow(
        self,
        turn: Turn,
        record: LedgerRecord,
        outcome: Outcome,
        tenant_label: str,
        agent_label: str,
        wasted_usd: float = 0.0,
    ) -> None:
        """The traffic log and the call's running cost (its metrics carry the bounded caller labels)."""
        if self.traffic is not None:
            self.traffic.write(self._traffic_record(turn, record, outcome.usage))
        if turn.call_id is not None:
            self.calls.add_turn(
                tenant_label,
                agent_label,
                turn.call_id,
                record.cost_usd + wasted_usd + speech_cost_of(record),
                record.voice_call_seconds,
                ended=turn.facts.voice.call_ended,
                outcome=record.call_outcome,
            )

    def _ledger_record(self, turn: Turn, outcome: Outcome) -> tuple[LedgerRecord, float | None]:
        """The turn's record (its id is the request id, so a stream's final record replaces its provisional one)."""
        deployment = outcome.deployment
        decision = turn.decision
        tier = outcome.tier if deployment is not None else decision.tier
        usage = outcome.usage
        upstream_seconds = sum(a.seconds for a in outcome.attempts.items if a.outcome != HEDGE_LOST)
        # A hedge's loser ran beside the winner, from about the start until the winner's first token.
        upstream_seconds = max(
            [upstream_seconds, *(a.seconds for a in outcome.attempts.items if a.outcome == HEDGE_LOST)]
        )
        reference_ms = outcome.ttft_ms if outcome.ttft_ms is not None else outcome.total_ms
        overhead_ms = max(0.0, reference_ms - upstream_seconds * 1000) if outcome.attempts.items else None
        interrupted_cost = outcome.cost_usd if outcome.interrupted else 0.0
        classification = turn.classification
        speech = turn_speech(turn.body.get("metadata"), self._config.speech_prices)  # validated by the gateway
        record = LedgerRecord(
            record_id=turn.request_id,
            request_id=turn.request_id,
            ts=turn.received_at,
            call_id=turn.call_id,
            caller_id=turn.caller_id,
            tenant=turn.caller.tenant,
            agent=turn.caller.agent,
            key_id=turn.caller.key_id,
            requested_model=turn.facts.requested_model,
            intent=classification.intent if classification else None,
            intent_confidence=classification.intent_confidence if classification else None,
            risks=dict(classification.risks) if classification else {},
            high_stakes=decision.high_stakes,
            rule=decision.rule,
            tier=tier,
            deployment=deployment.name if deployment else None,
            model=deployment.model if deployment else None,
            policy_version=turn.policy_version,
            fallbacks=outcome.attempts.fallbacks,
            stream=turn.stream,
            status=outcome.status,
            error_type=outcome.error_type,
            cost_usd=outcome.cost_usd,
            baseline_cost_usd=outcome.baseline_cost_usd,
            interrupted=outcome.interrupted,
            interrupted_cost_usd=interrupted_cost,
            classification_ms=turn.classification_ms or None,
            overhead_ms=overhead_ms,
            ttft_ms=outcome.ttft_ms,
            total_ms=outcome.total_ms,
            voice_call_seconds=turn.facts.voice.call_seconds,
            handoff=f"{decision.handoff}: {decision.handoff_reason}" if decision.handoff else None,
            **(speech.ledger_fields() if speech is not None else {}),
            **(usage_fields(usage) if usage is not None else {}),
            **self._shadow(turn, usage, deployment.name if deployment else None),
        )
        return record, overhead_ms

    def _caller_labels(self, caller: Caller | None) -> tuple[str, str]:
        if caller is None:
            return "unknown", ""
        keyed = caller.key_id is not None
        return self.metrics.caller_labels(caller.tenant, caller.agent, keyed=keyed, agent_pinned=caller.agent_pinned)

    def _observe(
        self,
        record: LedgerRecord,
        turn: Turn,
        outcome: Outcome,
        overhead_ms: float | None,
        tenant_label: str,
        agent_label: str,
    ) -> None:
        m = self.metrics
        labels = (
            tenant_label,
            agent_label,
            record.tier or "",
            record.deployment or "",
            record.intent or "none",
        )
        m.requests.labels(*labels, str(record.status)).inc()
        m.decisions.labels(tenant_label, record.rule or "", record.tier or "").inc()
        if turn.decision.handoff is not None:
            m.handoffs.labels(tenant_label, agent_label, turn.decision.handoff).inc()
        if record.deployment is not None:
            for kind in TOKEN_KINDS:
                count = getattr(record, kind)
                if count:
                    m.tokens.labels(*labels, kind.removesuffix("_tokens")).inc(count)
            m.cost.labels(*labels).inc(record.cost_usd)
            m.baseline_cost.labels(*labels).inc(record.baseline_cost_usd)
            if record.interrupted:
                m.interrupted_cost.labels(*labels).inc(record.interrupted_cost_usd)
        if overhead_ms is not None:
            m.overhead.labels(record.tier or "").observe(overhead_ms / 1000)
        if outcome.ttft_ms is not None:
            m.ttft.labels(record.tier or "", record.deployment or "").observe(outcome.ttft_ms / 1000)
        elif outcome.attempts.items and record.deployment is not None:
            m.upstream_latency.labels(record.deployment).observe(outcome.attempts.items[-1].seconds)
        if turn.classification_ms:
            m.classification_latency.observe(turn.classification_ms / 1000)
        for attempt in outcome.attempts.items:
            if attempt.outcome not in ("ok", "parked", HEDGE_LOST):  # a hedge's loser did not fail
                m.fallbacks.labels(record.tier or "", attempt.deployment, attempt.outcome).inc()
        if record.shadow_tier is not None:
            # Policies are compared on what they decided, not on where a fallback or a key's allowance took the turn.
            decided = turn.capped_from or turn.decision.tier
            agrees = "true" if record.shadow_tier == decided else "false"
            m.shadow_decisions.labels(tenant_label, record.shadow_rule or "", record.shadow_tier, agrees).inc()
            m.shadow_cost.labels(tenant_label, record.shadow_tier).inc(record.shadow_cost_usd or 0.0)

    @staticmethod
    def _traffic_record(turn: Turn, record: LedgerRecord, usage: Usage | None) -> TrafficRecord:
        """The turn for the redacted traffic log (masked off the request path by the writer)."""
        body = turn.body
        return TrafficRecord.from_request(
            request_id=record.request_id,
            ts=record.ts,
            tenant=record.tenant,
            requested_model=turn.facts.requested_model,
            messages=body["messages"],
            tools=body.get("tools"),
            metadata=body.get("metadata"),
            call_id=record.call_id,
            caller_id=record.caller_id,
            agent=record.agent,
            decision=LoggedDecision(
                tier=record.tier,
                deployment=record.deployment,
                rule=record.rule,
                policy_version=record.policy_version,
                intent=record.intent,
                risks=list(turn.decision.risks_present),
            ),
            usage=usage,
            status=record.status,
            error_type=record.error_type,
        )

    def record_rejection(self, rejection: Rejection) -> None:
        caller = rejection.caller
        record = LedgerRecord(
            request_id=rejection.request_id,
            ts=rejection.received_at,
            call_id=rejection.call_id,
            tenant=caller.tenant if caller else "unknown",
            agent=caller.agent if caller else None,
            key_id=caller.key_id if caller else None,
            requested_model=rejection.requested_model,
            policy_version=rejection.policy_version,
            status=rejection.status,
            error_type=rejection.error_type,
            total_ms=rejection.total_ms,
        )
        try:
            self.ledger.record(record)
            note_ledger_record(record)
            tenant_label, agent_label = self._caller_labels(caller)
            self.metrics.requests.labels(tenant_label, agent_label, "", "", "none", str(record.status)).inc()
        except Exception:
            logger.exception("could not account for rejected %s", rejection.request_id)


async def build_recorder(
    settings: Settings, config: GatewayConfig, metrics: Metrics, postgres: Any | None = None
) -> Recorder:
    """The recorder with its ledger started (spools left by earlier processes replayed): PostgreSQL when a pool
    is given, else SQLite in WAL mode under the data directory."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sink: LedgerSink = PostgresLedgerSink(postgres) if postgres is not None else SQLiteLedgerSink(settings.ledger_path)
    spool, spool_lock = claim_spool(settings.data_dir)
    await adopt_orphan_spools(settings.data_dir, sink)
    ledger = Ledger(sink, spool, on_spooled=metrics.ledger_spooled.set, on_commit_wait=metrics.ledger_commit.observe)
    await ledger.start()
    prices = PriceBook({d.name: (d.model, d.price) for d in config.deployments})
    recorder = Recorder(config, prices, ledger, metrics, CallCostTracker(metrics))
    recorder.spool_lock = spool_lock
    if settings.traffic_log is not None:
        recorder.traffic = TrafficLogWriter(settings.traffic_log)
    return recorder


def claim_spool(data_dir: Path, slots: int = 256) -> tuple[Path, IO[bytes]]:
    """The first spool no running process holds, locked for this process's lifetime.

    Workers must not interleave writes to one file, and a restarted worker must adopt the spool a crashed one left
    behind, so spools are numbered slots guarded by advisory locks rather than named after process ids.
    """
    for slot in range(slots):
        lock = (data_dir / f"ledger-spool-{slot}.lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return data_dir / f"ledger-spool-{slot}.jsonl", lock
    raise RuntimeError(f"all {slots} ledger spool slots in {data_dir} are held by running processes")


async def adopt_orphan_spools(data_dir: Path, sink: LedgerSink) -> None:
    """Replay the spools that no running process holds (a worker that crashed and came back in another slot).

    Each is locked while it is replayed, so two starting workers never replay one spool twice; a spool whose sink
    still fails stays for the next start.
    """
    for path in sorted(data_dir.glob("ledger-spool-*.jsonl")):
        with path.with_suffix(".lock").open("wb") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive (this one included) and replays it itself
            try:
                await Spool(path).replay_into(sink)
            except Exception as exc:
                logger.warning("ledger: could not replay the orphaned spool %s yet (%s)", path, exc)
