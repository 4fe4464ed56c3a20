"""Which deployments may be tried now: circuit breakers, and parking after a 429's Retry-After.

A breaker opens after ``consecutive_failures`` failures in a row, or when the error rate over the last ``window``
attempts reaches ``error_rate`` (with at least ``min_requests`` of them), or at once when the upstream rejects the
operator's credentials (401/403). After ``open_seconds`` it lets one probe through (half-open): success closes it,
failure opens it again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from router.config import BreakerConfig
from router.providers.base import ProviderError


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class _Deployment:
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    outcomes: deque[bool] = field(default_factory=deque)
    opened_at: float = 0.0
    probe_in_flight: bool = False
    parked_until: float = 0.0
    opened_count: int = 0
    last_error: str | None = None


class DeploymentHealth:
    def __init__(
        self,
        config: BreakerConfig | None = None,
        on_state_change: Callable[[str, BreakerState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or BreakerConfig()
        self._on_state_change = on_state_change
        self._clock = clock
        self._deployments: dict[str, _Deployment] = {}

    def _get(self, name: str) -> _Deployment:
        entry = self._deployments.get(name)
        if entry is None:
            entry = self._deployments[name] = _Deployment(outcomes=deque(maxlen=self.config.window))
        return entry

    def _set_state(self, name: str, entry: _Deployment, state: BreakerState) -> None:
        if entry.state != state:
            entry.state = state
            if self._on_state_change is not None:
                self._on_state_change(name, state)

    def available(self, name: str) -> bool:
        """May a request go to ``name`` now? A half-open breaker admits one probe at a time."""
        entry = self._get(name)
        now = self._clock()
        if entry.parked_until > now:
            return False
        if entry.state == BreakerState.OPEN:
            if now - entry.opened_at < self.config.open_seconds:
                return False
            self._set_state(name, entry, BreakerState.HALF_OPEN)
        if entry.state == BreakerState.HALF_OPEN:
            if entry.probe_in_flight:
                return False
            entry.probe_in_flight = True
        return True

    def record_success(self, name: str) -> None:
        entry = self._get(name)
        entry.consecutive_failures = 0
        entry.outcomes.append(True)
        entry.parked_until = 0.0
        entry.probe_in_flight = False
        self._set_state(name, entry, BreakerState.CLOSED)

    def record_failure(self, name: str, error: ProviderError, *, retry_after_cap: float) -> None:
        entry = self._get(name)
        now = self._clock()
        entry.consecutive_failures += 1
        entry.outcomes.append(False)
        entry.last_error = f"{error.kind}: {error.message}"
        if error.kind == "rate_limited" and error.retry_after:
            entry.parked_until = now + min(error.retry_after, retry_after_cap)
        config = self.config
        failures = entry.outcomes.count(False)
        # A rejected credential does not heal between requests: the circuit opens at once (and probes later).
        too_many = (
            error.kind == "auth"
            or entry.consecutive_failures >= config.consecutive_failures
            or (len(entry.outcomes) >= config.min_requests and failures / len(entry.outcomes) >= config.error_rate)
        )
        if entry.state == BreakerState.HALF_OPEN or too_many:
            entry.opened_at = now
            entry.opened_count += 1
            entry.probe_in_flight = False
            entry.outcomes.clear()
            self._set_state(name, entry, BreakerState.OPEN)

    def release_probe(self, name: str) -> None:
        """A probe that ended without a verdict (the client left) frees the half-open slot."""
        self._get(name).probe_in_flight = False

    def shortest_wait(self, names: Iterable[str]) -> float | None:
        now = self._clock()
        waits = []
        for name in names:
            entry = self._get(name)
            if entry.parked_until > now:
                waits.append(entry.parked_until - now)
            elif entry.state == BreakerState.OPEN:
                waits.append(max(0.0, entry.opened_at + self.config.open_seconds - now))
        return min(waits) if waits else None

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = self._clock()
        return {
            name: {
                "state": entry.state.value,
                "consecutive_failures": entry.consecutive_failures,
                "recent_error_rate": round(entry.outcomes.count(False) / len(entry.outcomes), 3)
                if entry.outcomes
                else 0.0,
                "parked_for_seconds": round(max(0.0, entry.parked_until - now), 3),
                "times_opened": entry.opened_count,
                "last_error": entry.last_error,
            }
            for name, entry in sorted(self._deployments.items())
        }
