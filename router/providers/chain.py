"""Fallback order: a tier's deployments in turn, then the tiers above; never after the first streamed byte."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from router.config import Deployment, GatewayConfig
from router.errors import GatewayError, UpstreamError
from router.providers.base import FailureKind, Provider, ProviderError
from router.providers.health import DeploymentHealth


@dataclass(frozen=True, slots=True)
class Attempt:
    deployment: str
    outcome: FailureKind | str  # "ok", "parked" (cooling down / breaker open) or the failure kind
    status: int | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class Attempts:
    items: list[Attempt] = field(default_factory=list)

    @property
    def fallbacks(self) -> int:
        """Deployments tried before the one that answered (parked ones were not tried)."""
        tried = [a for a in self.items if a.outcome != "parked"]
        return max(0, len(tried) - 1) if tried and tried[-1].outcome == "ok" else len(tried)


@dataclass(slots=True)
class OpenStream:
    """A stream that produced its first chunk: from here on the deployment is committed."""

    deployment: Deployment
    first_chunk: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]
    attempts: Attempts
    deadline: float


class UpstreamClientError(GatewayError):
    """The upstream rejected the request itself; another deployment would too, so it goes back as is."""

    error_type = "invalid_request_error"

    def __init__(self, error: ProviderError) -> None:
        upstream = (
            (error.body or {}).get("error") if isinstance((error.body or {}).get("error"), dict) else {}
        )
        super().__init__(
            upstream.get("message") or error.message, param=upstream.get("param"), code=upstream.get("code")
        )
        self.status_code = error.status or 400


class FallbackChain:
    def __init__(
        self, config: GatewayConfig, providers: Mapping[str, Provider], health: DeploymentHealth
    ) -> None:
        self._config = config
        self._providers = providers
        self.health = health

    def candidates(self, tier: str | None, deployment: str | None) -> list[Deployment]:
        """The order to try: a pinned deployment alone, else the tier's chain then (if configured) higher tiers."""
        config = self._config
        if deployment is not None:
            return [config.deployment(deployment)]
        assert tier is not None
        order = config.tier_order
        tiers = order[order.index(tier) :] if config.fallback.next_tier_up else [tier]
        names: list[str] = []
        for name in (d for t in tiers for d in config.tiers[t]):
            if name not in names:
                names.append(name)
        return [config.deployment(n) for n in names[: config.fallback.max_attempts]]

    async def complete(
        self, candidates: list[Deployment], body: dict[str, Any]
    ) -> tuple[Deployment, dict[str, Any], Attempts]:
        attempts = Attempts()
        for deployment in candidates:
            if not self.health.available(deployment.name):
                attempts.items.append(Attempt(deployment.name, "parked"))
                continue
            started = time.perf_counter()
            try:
                answer = await self._providers[deployment.name].complete(
                    deployment, body, self._config.timeouts_for(deployment)
                )
            except ProviderError as error:
                self._failed(deployment, error, attempts, started)
                continue
            self.health.record_success(deployment.name)
            attempts.items.append(Attempt(deployment.name, "ok", 200, time.perf_counter() - started))
            return deployment, answer, attempts
        raise self._exhausted(attempts)

    async def open_stream(self, candidates: list[Deployment], body: dict[str, Any]) -> OpenStream:
        attempts = Attempts()
        for deployment in candidates:
            if not self.health.available(deployment.name):
                attempts.items.append(Attempt(deployment.name, "parked"))
                continue
            timeouts = self._config.timeouts_for(deployment)
            started = time.perf_counter()
            stream = self._providers[deployment.name].stream(deployment, body, timeouts)
            try:
                async with asyncio.timeout(timeouts.first_token):
                    first = await anext(stream)
            except (ProviderError, TimeoutError, StopAsyncIteration) as exc:
                await _close(stream)
                error = exc if isinstance(exc, ProviderError) else _first_token_failure(deployment, exc)
                self._failed(deployment, error, attempts, started)
                continue
            self.health.record_success(deployment.name)
            attempts.items.append(Attempt(deployment.name, "ok", 200, time.perf_counter() - started))
            return OpenStream(deployment, first, stream, attempts, time.monotonic() + timeouts.total)
        raise self._exhausted(attempts)

    def _failed(
        self, deployment: Deployment, error: ProviderError, attempts: Attempts, started: float
    ) -> None:
        attempts.items.append(
            Attempt(deployment.name, error.kind, error.status, time.perf_counter() - started)
        )
        if not error.retryable:
            raise UpstreamClientError(error)
        self.health.record_failure(
            deployment.name, error, retry_after_cap=self._config.fallback.retry_after_cap_seconds
        )

    def _exhausted(self, attempts: Attempts) -> UpstreamError:
        outcomes = {a.outcome for a in attempts.items}
        tried = ", ".join(f"{a.deployment}: {a.outcome}" for a in attempts.items)
        if outcomes <= {"timeout"}:
            return UpstreamError(
                f"every deployment timed out ({tried})", status_code=504, code="upstream_timeout"
            )
        if outcomes <= {"rate_limited", "parked"}:
            error = UpstreamError(
                f"every deployment is rate limited or unavailable ({tried})",
                status_code=503,
                code="upstream_unavailable",
            )
            wait = self.health.shortest_wait([a.deployment for a in attempts.items])
            if wait is not None:
                error.headers["retry-after"] = str(max(1, round(wait)))
            return error
        return UpstreamError(f"every deployment failed ({tried})", status_code=502)


def _first_token_failure(deployment: Deployment, exc: BaseException) -> ProviderError:
    if isinstance(exc, TimeoutError):
        return ProviderError("timeout", f"{deployment.name}: no first token in time")
    return ProviderError("dropped", f"{deployment.name}: stream ended before the first chunk")


async def _close(stream: AsyncIterator[dict[str, Any]]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
