"""Per-call cost for the metrics: a call's turns add up until it ends, then one observation per call.

A call ends with its usage report (``POST /v1/calls/{id}/usage``, at once), ``end_grace_seconds`` after a turn says
``metadata.voice.call_ended: true`` (time for the report, which carries the outcome and the telephony minutes, to
arrive), or after ``idle_seconds`` without a turn (outcome ``abandoned``). Each replica sees the turns it served:
route a call's turns to one replica (e.g. hash on X-Call-Id) for exact per-call histograms; the ledger and
``GET /v1/calls/{id}`` are exact either way.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from router.metrics import Metrics

IDLE_OUTCOME = "abandoned"  # a call nobody ended went quiet: the caller hung up
UNREPORTED_OUTCOME = "unreported"  # ended by the agent without saying how


@dataclass(slots=True)
class _OpenCall:
    tenant: str
    agent: str
    cost_usd: float = 0.0
    call_seconds: float | None = None
    last_turn_at: float = 0.0
    outcome: str | None = None
    ended: bool = False


Key = tuple[str, str]


class CallCostTracker:
    def __init__(
        self,
        metrics: Metrics,
        idle_seconds: float = 300.0,
        max_open_calls: int = 100_000,
        end_grace_seconds: float = 30.0,
    ) -> None:
        self._metrics = metrics
        self._idle = idle_seconds
        self._grace = min(end_grace_seconds, idle_seconds)
        self._max = max_open_calls
        # Ordered by last activity, oldest first.
        self._open: OrderedDict[Key, _OpenCall] = OrderedDict()
        # Calls finished lately: a late turn or report must not count the call twice.
        self._finished: OrderedDict[Key, None] = OrderedDict()

    def add_turn(
        self,
        tenant: str,
        agent: str | None,
        call_id: str,
        cost_usd: float,
        call_seconds: float | None,
        ended: bool,
        outcome: str | None = None,
        *,
        report: bool = False,
    ) -> None:
        """Add a turn's (or the call's usage ``report``'s) cost to its call; ``tenant`` and ``agent`` are metric
        label values (bounded by the caller). A report finishes the call at once.

        A turn or report of a call finished lately is not a new call: its cost is in the cost counters already,
        and the finished call's histogram observation cannot be amended."""
        key = (tenant, call_id)
        if key in self._finished:
            return
        call = self._open.pop(key, None) or _OpenCall(tenant, agent or "")
        call.cost_usd += cost_usd
        if call_seconds is not None:
            call.call_seconds = max(call.call_seconds or 0.0, call_seconds)
        call.outcome = outcome or call.outcome
        call.ended = call.ended or ended
        call.last_turn_at = time.monotonic()
        if report:
            self._finish(key, call)
            return
        self._open[key] = call
        while len(self._open) > self._max:
            self._finish(*self._open.popitem(last=False))

    def _finish(self, key: Key, call: _OpenCall) -> None:
        self._finished[key] = None
        while len(self._finished) > self._max:
            self._finished.popitem(last=False)
        outcome = call.outcome or (UNREPORTED_OUTCOME if call.ended else IDLE_OUTCOME)
        self._metrics.call_outcomes.labels(call.tenant, call.agent, outcome).inc()
        self._metrics.call_outcome_cost.labels(call.tenant, call.agent, outcome).inc(call.cost_usd)
        self._metrics.calls.labels(call.tenant, call.agent).inc()
        self._metrics.call_cost.labels(call.tenant).observe(call.cost_usd)
        if call.call_seconds:
            self._metrics.call_seconds.labels(call.tenant, call.agent).inc(call.call_seconds)
            self._metrics.call_minute_cost.labels(call.tenant).observe(call.cost_usd / (call.call_seconds / 60))

    def sweep(self) -> int:
        """Finish the calls ended more than ``end_grace_seconds`` ago and those idle for ``idle_seconds``."""
        now = time.monotonic()
        due = []
        for key, call in self._open.items():
            if call.last_turn_at > now - self._grace:
                break  # this call and every later one had a turn within the grace period
            if call.ended or call.last_turn_at <= now - self._idle:
                due.append(key)
        for key in due:
            self._finish(key, self._open.pop(key))
        return len(due)

    def finish_all(self) -> None:
        while self._open:
            self._finish(*self._open.popitem(last=False))

    async def run(self, interval_seconds: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            self.sweep()
