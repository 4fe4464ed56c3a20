"""Which deployments may be tried now: parked for their Retry-After after a 429."""

from __future__ import annotations

import time
from collections.abc import Iterable

from router.providers.base import ProviderError


class DeploymentHealth:
    def __init__(self) -> None:
        self._parked_until: dict[str, float] = {}

    def available(self, name: str) -> bool:
        until = self._parked_until.get(name)
        return until is None or until <= time.monotonic()

    def record_failure(self, name: str, error: ProviderError, *, retry_after_cap: float) -> None:
        if error.kind == "rate_limited" and error.retry_after:
            self._parked_until[name] = time.monotonic() + min(error.retry_after, retry_after_cap)

    def record_success(self, name: str) -> None:
        self._parked_until.pop(name, None)

    def shortest_wait(self, names: Iterable[str]) -> float | None:
        now = time.monotonic()
        waits = [self._parked_until[n] - now for n in names if self._parked_until.get(n, 0) > now]
        return min(waits) if waits else None
