"""Fallback order: a tier's deployments in turn, then the tiers above; never after the first streamed byte."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from router.accounting.usage import Usage
from router.config import Deployment, GatewayConfig, LatencyGuard
from router.errors import GatewayError, UpstreamError
from router.providers.base import Provider, ProviderError
from router.providers.health import DeploymentHealth
from router.providers.hedge import (
    HedgedRound,
    StallGuarded,
    Wasted,
    chunks_text,
    hedge_trigger,
    latency_guards,
    read_to_first_content,
)
from router.types import HEDGE_LOST, Attempt, Attempts

T = TypeVar("T")
_NO_GUARD = LatencyGuard()
logger = logging.getLogger(__name__)


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
        detail = (error.body or {}).get("error")
        upstream: dict[str, Any] = detail if isinstance(detail, dict) else {}
        super().__init__(
            upstream.get("message") or error.message, param=upstream.get("param"), code=upstream.get("code")
        )
        self.status_code = error.status or 400


class FallbackChain:
    def __init__(self, config: GatewayConfig, providers: Mapping[str, Provider], health: DeploymentHealth) -> None:
        self._config = config
        self._providers = providers
        self.health = health
        self._guards = latency_guards(config)

    def candidates(
        self, tier: str | None, deployment: str | None, permitted: Callable[[str], bool] = lambda _: True
    ) -> list[Deployment]:
        """The order to try: a pinned deployment alone, else the tier's chain then (if configured) higher tiers.

        Only deployments the caller is ``permitted`` to use are ever candidates, so falling over never leaves
        what the caller's key allows.
        """
        config = self._config
        if deployment is not None:
            return [config.deployment(deployment)] if permitted(deployment) else []
        assert tier is not None
        names: list[str] = []
        for name in (d for t in self._climb(tier) for d in config.tiers[t]):
            if name not in names and permitted(name):
                names.append(name)
        return [config.deployment(n) for n in names[: config.fallback.max_attempts]]

    def served_tier(self, tier: str | None, deployment: str) -> str | None:
        """The tier whose chain ``deployment`` served from: the first holding it on the way up from ``tier``
        (a fallback may have climbed), or for a pinned deployment the first tier holding it."""
        tiers = self._climb(tier) if tier is not None else self._config.tier_order
        return next((t for t in tiers if deployment in self._config.tiers[t]), None)

    def _climb(self, tier: str) -> list[str]:
        order = self._config.tier_order
        return order[order.index(tier) :] if self._config.fallback.next_tier_up else [tier]

    async def _first_success(
        self,
        candidates: list[Deployment],
        attempt: Callable[[Deployment], Awaitable[T]],
        *,
        stream: bool = False,
        waste: Callable[[Deployment, float, T | None], Awaitable[Wasted]] | None = None,
    ) -> tuple[Deployment, T, Attempts]:
        """Try the candidates in order, for ``1 + retries`` rounds with jittered backoff between rounds; with
        latency guards (``latency:``) a round hedges slow attempts (router/providers/hedge.py)."""
        attempts = Attempts()
        fallback = self._config.fallback
        # The whole request, every attempt and backoff included, stays within the global total timeout.
        deadline = asyncio.get_running_loop().time() + self._config.timeouts.total
        hedging = waste is not None and any(
            hedge_trigger(self._guards[d.name], stream=stream) is not None for d in candidates
        )
        for round_number in range(1 + fallback.retries):
            if round_number:
                pause = self._backoff(candidates, round_number)
                if asyncio.get_running_loop().time() + pause >= deadline:
                    break
                await asyncio.sleep(pause)
            if hedging:
                assert waste is not None
                won = await self._hedged_round(candidates, attempt, attempts, deadline, stream, waste)
                if won is not None:
                    return won
                continue
            for deployment in candidates:
                if not self.health.available(deployment.name):
                    attempts.items.append(Attempt(deployment.name, "parked"))
                    continue
                started = time.perf_counter()
                try:
                    async with asyncio.timeout_at(deadline):
                        result = await attempt(deployment)
                except TimeoutError:
                    error = ProviderError("timeout", f"{deployment.name}: the request's total timeout ran out")
                    self._failed(deployment, error, attempts, started)
                    raise self._exhausted(attempts) from None
                except ProviderError as error:
                    self._failed(deployment, error, attempts, started)
                    continue
                except BaseException:
                    self.health.release_probe(deployment.name)
                    raise
                self.health.record_success(deployment.name)
                attempts.items.append(Attempt(deployment.name, "ok", 200, time.perf_counter() - started))
                return deployment, result, attempts
        raise self._exhausted(attempts)

    async def _hedged_round(
        self,
        candidates: list[Deployment],
        attempt: Callable[[Deployment], Awaitable[T]],
        attempts: Attempts,
        deadline: float,
        stream: bool,
        waste: Callable[[Deployment, float, T | None], Awaitable[Wasted]],
    ) -> tuple[Deployment, T, Attempts] | None:
        def available(deployment: Deployment) -> bool:
            if self.health.available(deployment.name):
                return True
            attempts.items.append(Attempt(deployment.name, "parked"))
            return False

        def lost(deployment: Deployment, started: float, late: bool) -> None:
            attempts.items.append(Attempt(deployment.name, HEDGE_LOST, None, time.perf_counter() - started))
            if late:  # silent past its first-token deadline: for a voice caller that is a failure
                error = ProviderError("timeout", f"{deployment.name}: no first token by its deadline")
                self.health.record_failure(deployment.name, error, retry_after_cap=0)
            else:
                self.health.release_probe(deployment.name)

        def first_token_deadline(deployment: Deployment) -> float | None:
            guard = self._guards[deployment.name]
            ms = guard.first_token_deadline_ms if stream else guard.hedge_after_ms
            return ms / 1000 if ms is not None else None

        hedged = HedgedRound(
            attempt,
            available=available,
            trigger=lambda d: hedge_trigger(self._guards[d.name], stream=stream),
            deadline=first_token_deadline,
            failed=lambda d, error, started: self._failed(d, error, attempts, started),
            lost=lost,
            waste=waste,
        )
        try:
            async with asyncio.timeout_at(deadline):
                won = await hedged.run(candidates)
        except TimeoutError:
            # The request's total timeout stopped every attempt still running: they timed out, not lost.
            attempts.items = [
                Attempt(a.deployment, "timeout", None, a.seconds) if a.outcome == HEDGE_LOST else a
                for a in attempts.items
            ]
            raise self._exhausted(attempts) from None
        if won is None:
            return None
        self.health.record_success(won.deployment.name)
        attempts.items.append(Attempt(won.deployment.name, "ok", 200, won.seconds))
        attempts.hedge = won.hedge
        return won.deployment, won.result, attempts

    def _backoff(self, candidates: list[Deployment], round_number: int) -> float:
        """Exponential backoff with full jitter, or the shortest Retry-After when that is sooner to honour."""
        fallback = self._config.fallback
        backoff = random.uniform(0, fallback.backoff_seconds * 2 ** (round_number - 1))
        wait = self.health.shortest_wait(d.name for d in candidates)
        if wait is not None and wait <= fallback.retry_wait_cap_seconds:
            return max(backoff, wait)
        return backoff

    async def complete(
        self, candidates: list[Deployment], body: dict[str, Any]
    ) -> tuple[Deployment, dict[str, Any], Attempts]:
        async def attempt(deployment: Deployment) -> dict[str, Any]:
            provider = self._providers[deployment.name]
            return await provider.complete(deployment, body, self._config.timeouts_for(deployment))

        async def waste(deployment: Deployment, seconds: float, answer: dict[str, Any] | None) -> Wasted:
            return Wasted(deployment, seconds, usage=Usage.from_openai((answer or {}).get("usage")))

        return await self._first_success(candidates, attempt, stream=False, waste=waste)

    async def open_stream(self, candidates: list[Deployment], body: dict[str, Any]) -> OpenStream:
        Opened = tuple[list[dict[str, Any]], AsyncIterator[dict[str, Any]]]

        async def attempt(deployment: Deployment) -> Opened:
            timeouts = self._config.timeouts_for(deployment)
            stream = self._providers[deployment.name].stream(deployment, body, timeouts)
            guarded = self._guards[deployment.name] != _NO_GUARD
            try:
                async with asyncio.timeout(timeouts.first_token):
                    # A guarded deployment is judged on its first content token, not on an opening role chunk.
                    return (await read_to_first_content(stream) if guarded else [await anext(stream)]), stream
            except (ProviderError, TimeoutError, StopAsyncIteration) as exc:
                await _close(stream)
                raise exc if isinstance(exc, ProviderError) else _first_token_failure(deployment, exc) from exc
            except BaseException:
                await _close(stream)
                raise

        async def waste(deployment: Deployment, seconds: float, opened: Opened | None) -> Wasted:
            if opened is None:
                return Wasted(deployment, seconds)
            chunks, stream = opened
            await _close(stream)
            usage = next((Usage.from_openai(c.get("usage")) for c in chunks if c.get("usage")), None)
            return Wasted(deployment, seconds, produced_text=chunks_text(chunks), usage=usage)

        request_deadline = time.monotonic() + self._config.timeouts.total
        deployment, (chunks, rest), attempts = await self._first_success(candidates, attempt, stream=True, waste=waste)
        deadline = min(request_deadline, time.monotonic() + self._config.timeouts_for(deployment).total)
        stall_ms = self._guards[deployment.name].stall_ms
        if stall_ms is not None or len(chunks) > 1:
            rest = StallGuarded(chunks[1:], rest, stall_ms / 1000 if stall_ms else None, deployment.name)
        return OpenStream(deployment, chunks[0], rest, attempts, deadline)

    def _failed(self, deployment: Deployment, error: ProviderError, attempts: Attempts, started: float) -> None:
        attempts.items.append(Attempt(deployment.name, error.kind, error.status, time.perf_counter() - started))
        logger.warning("deployment %s failed (%s): %s", deployment.name, error.kind, error.message)
        if not error.retryable:
            raise UpstreamClientError(error)
        self.health.record_failure(
            deployment.name, error, retry_after_cap=self._config.fallback.retry_after_cap_seconds
        )

    def _exhausted(self, attempts: Attempts) -> UpstreamError:
        outcomes = {a.outcome for a in attempts.items}
        tried = ", ".join(f"{a.deployment}: {a.outcome}" for a in attempts.items)
        if outcomes <= {"timeout"}:
            return UpstreamError(f"every deployment timed out ({tried})", status_code=504, code="upstream_timeout")
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
