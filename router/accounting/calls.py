"""Per-call cost for the metrics: a call's turns add up until it ends, then one histogram observation.

A call ends when its client says so (``metadata.voice.call_ended: true``) or after ``idle_seconds`` without a
turn. Each replica sees the turns it served: route a call's turns to one replica (e.g. hash on X-Call-Id) for exact
per-call histograms; the ledger and ``GET /v1/calls/{id}`` are exact either way.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from router.metrics import Metrics

IDLE_OUTCOME = "abandoned"  # a call nobody ended went quiet: the caller hung up


@dataclass(slots=True)
class _OpenCall:
    tenant: str
    agent: str
    cost_usd: float = 0.0
    call_seconds: float | None = None
    last_turn_at: float = 0.0
    outcome: str | None = None


class CallCostTracker:
    def __init__(self, metrics: Metrics, idle_seconds: float = 300.0, max_open_calls: int = 100_000) -> None:
        self._metrics = metrics
        self._idle = idle_seconds
        self._max = max_open_calls
        self._open: OrderedDict[tuple[str, str], _OpenCall] = OrderedDict()
        # Calls finished lately: a usage report after call_ended must not count the call twice.
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add_turn(
        self,
        tenant: str,
        agent: str | None,
        call_id: str,
        cost_usd: float,
        call_seconds: float | None,
        ended: bool,
        outcome: str | None = None,
    ) -> None:
        """Add a turn's cost to its call; ``tenant`` and ``agent`` are metric label values (bounded by the caller).

        A turn (or usage report) of a call finished lately is not a new call: its cost is in the cost counters
        already, and the finished call's histogram observation cannot be amended."""
        key = (tenant, call_id)
        if key in self._finished:
            return
        call = self._open.get(key) or _OpenCall(tenant, agent or "")
        call.cost_usd += cost_usd
        if call_seconds is not None:
            call.call_seconds = max(call.call_seconds or 0.0, call_seconds)
        call.outcome = outcome or call.outcome
        call.last_turn_at = time.monotonic()
        self._open[key] = call
        self._open.move_to_end(key)
        if ended:
            self._finish(self._open.pop(key), key)
        while len(self._open) > self._max:
            self._finish(*reversed(self._open.popitem(last=False)))

    def _finish(self, call: _OpenCall, key: tuple[str, str]) -> None:
        self._finished[key] = None
        while len(self._finished) > self._max:
            self._finished.popitem(last=False)
        outcome = call.outcome or IDLE_OUTCOME
        self._metrics.call_outcomes.labels(call.tenant, call.agent, outcome).inc()
        self._metrics.call_outcome_cost.labels(call.tenant, call.agent, outcome).inc(call.cost_usd)
        self._metrics.calls.labels(call.tenant, call.agent).inc()
        self._metrics.call_cost.labels(call.tenant).observe(call.cost_usd)
        if call.call_seconds:
            self._metrics.call_seconds.labels(call.tenant, call.agent).inc(call.call_seconds)
            self._metrics.call_minute_cost.labels(call.tenant).observe(call.cost_usd / (call.call_seconds / 60))

    def sweep(self) -> int:
        """Finish the calls idle for longer than ``idle_seconds``; the oldest are first in the order."""
        deadline = time.monotonic() - self._idle
        finished = 0
        while self._open:
            key, call = next(iter(self._open.items()))
            if call.last_turn_at > deadline:
                break
            del self._open[key]
            self._finish(call, key)
            finished += 1
        return finished

    def finish_all(self) -> None:
        while self._open:
            self._finish(*reversed(self._open.popitem(last=False)))

    async def run(self, interval_seconds: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            self.sweep()
