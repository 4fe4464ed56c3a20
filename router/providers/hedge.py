"""No dead air: first-token deadlines, hedged requests and the stall guard (``latency:`` in the gateway YAML).

A voice caller hears silence while the model has not produced its first content token. When a deployment has a
``first_token_deadline_ms`` (or an earlier ``hedge_after_ms``) and misses it, :class:`HedgedRound` starts the next
deployment of the chain *without* cancelling the first, takes whichever produces content first and cancels the
other; the loser is accounted as ``hedge_wasted`` (its prompt, and any tokens it produced, priced). A stream that
then goes silent for ``stall_ms`` mid-answer ends like a dropped stream (:func:`stall_guarded`).

Non-streamed answers have no first token to watch: only ``hedge_after_ms`` applies to them, as a deadline on the
whole answer (start the next deployment when the first has not answered by then; the first answer wins).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from router import headers as H
from router.accounting.tokens import content_text
from router.accounting.usage import Usage
from router.config import Deployment, GatewayConfig, LatencyGuard
from router.providers.base import ProviderError

T = TypeVar("T")
# Two upstream requests at most run for one turn: a hedge doubles the cost of a slow turn, never more.
MAX_IN_FLIGHT = 2


def latency_guards(config: GatewayConfig) -> dict[str, LatencyGuard]:
    """Each deployment's guard: its own fields over those of the first tier (cheapest first) whose chain holds it."""
    guards: dict[str, LatencyGuard] = {}
    for deployment in config.deployments:
        tier = next((t for t in config.tier_order if deployment.name in config.tiers[t]), None)
        merged = config.latency.tiers[tier].model_dump(exclude_none=True) if tier in config.latency.tiers else {}
        own = config.latency.deployments.get(deployment.name)
        merged.update(own.model_dump(exclude_none=True) if own is not None else {})
        guards[deployment.name] = LatencyGuard(**merged)
    return guards


def hedge_trigger(guard: LatencyGuard, *, stream: bool) -> float | None:
    """Seconds after which a still-silent attempt gets a hedge (``None``: never)."""
    if not stream:
        return guard.hedge_after_ms / 1000 if guard.hedge_after_ms is not None else None
    marks = [m for m in (guard.hedge_after_ms, guard.first_token_deadline_ms) if m is not None]
    return min(marks) / 1000 if marks else None


@dataclass(slots=True)
class Wasted:
    """A hedge loser: what it cost for nobody. ``usage`` is known when it finished before it could be cancelled;
    otherwise the gateway prices its prompt and the text it produced (estimated)."""

    deployment: Deployment
    seconds: float
    produced_text: str = ""
    usage: Usage | None = None
    cost_usd: float = 0.0


@dataclass(slots=True)
class HedgeReport:
    """A hedge happened: which attempt won (the first one or the hedge) and what the losers wasted."""

    won_by: Literal["first", "hedge"]
    wasted: list[Wasted] = field(default_factory=list)

    @property
    def cancelled(self) -> list[str]:
        return [w.deployment.name for w in self.wasted]

    def headers(self) -> dict[str, str]:
        return {H.HEDGE_WINNER: self.won_by, H.HEDGE_CANCELLED: ",".join(self.cancelled)}


@dataclass(slots=True)
class _Runner(Generic[T]):
    deployment: Deployment
    task: asyncio.Task[T]
    started: float  # perf_counter, for the attempt's duration
    trigger_at: float | None  # loop time at which it gets a hedge while still silent
    late_at: float | None  # loop time of its first-token deadline (missing it counts against its health)
    hedged: bool = False  # its hedge was started
    is_hedge: bool = False  # it was itself started as a hedge


@dataclass(slots=True)
class RoundResult(Generic[T]):
    deployment: Deployment
    result: T
    seconds: float
    hedge: HedgeReport | None


class HedgedRound(Generic[T]):
    """One pass over the candidates with hedging: each attempt that stays silent past its trigger gets the next
    candidate started beside it (``MAX_IN_FLIGHT`` at most); a failed attempt is replaced at once, as in a plain
    fallback. The caller's callbacks record attempts and health exactly as for sequential attempts."""

    def __init__(
        self,
        attempt: Callable[[Deployment], Awaitable[T]],
        *,
        available: Callable[[Deployment], bool],
        trigger: Callable[[Deployment], float | None],
        deadline: Callable[[Deployment], float | None],
        failed: Callable[[Deployment, ProviderError, float], None],
        lost: Callable[[Deployment, float, bool], None],
        waste: Callable[[Deployment, float, T | None], Awaitable[Wasted]],
    ) -> None:
        self._attempt = attempt
        self._available = available
        self._trigger = trigger
        self._deadline = deadline
        self._failed = failed
        self._lost = lost
        self._waste = waste

    async def run(self, candidates: Iterable[Deployment]) -> RoundResult[T] | None:
        """The first attempt to succeed, or ``None`` when every candidate failed (or was parked)."""
        loop = asyncio.get_running_loop()
        queue = deque(candidates)
        running: list[_Runner[T]] = []
        hedged = False

        def launch(is_hedge: bool) -> None:
            nonlocal hedged
            while queue:
                deployment = queue.popleft()
                if not self._available(deployment):
                    continue
                now = loop.time()
                trigger, late = self._trigger(deployment), self._deadline(deployment)
                task = asyncio.ensure_future(self._attempt(deployment))
                running.append(
                    _Runner(
                        deployment,
                        task,
                        time.perf_counter(),
                        now + trigger if trigger is not None else None,
                        now + late if late is not None else None,
                        is_hedge=is_hedge,
                    )
                )
                hedged = hedged or is_hedge
                return

        winner: _Runner[T] | None = None
        try:
            launch(is_hedge=False)
            while running and winner is None:
                waiting = [r for r in running if not r.hedged and r.trigger_at is not None]
                triggers = [r.trigger_at for r in waiting if r.trigger_at is not None]
                next_trigger = min(triggers) if triggers and queue else None
                timeout = max(0.0, next_trigger - loop.time()) if next_trigger is not None else None
                tasks = [r.task for r in running]
                done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    for runner in waiting:
                        if runner.trigger_at is not None and runner.trigger_at <= loop.time():
                            runner.hedged = True
                    if len(running) < MAX_IN_FLIGHT:
                        launch(is_hedge=True)
                    continue
                for runner in [r for r in running if r.task in done]:
                    error = runner.task.exception()
                    if error is None:
                        if winner is None:  # a second success in the same instant is a loser with a result
                            winner = runner
                            running.remove(runner)
                        continue
                    running.remove(runner)
                    if not isinstance(error, ProviderError):
                        raise error
                    self._failed(runner.deployment, error, runner.started)
                    if winner is None:
                        launch(is_hedge=bool(running))
        except BaseException:
            for runner, _ in await _stop(running):
                self._lost(runner.deployment, runner.started, False)
            raise
        wasted: list[Wasted] = []
        for runner, result in await _stop(running):
            late = runner.late_at is not None and loop.time() >= runner.late_at
            self._lost(runner.deployment, runner.started, late)
            wasted.append(await self._waste(runner.deployment, time.perf_counter() - runner.started, result))
        if winner is None:
            return None
        report = HedgeReport("hedge" if winner.is_hedge else "first", wasted) if hedged else None
        return RoundResult(winner.deployment, winner.task.result(), time.perf_counter() - winner.started, report)


async def _stop(running: list[_Runner[T]]) -> list[tuple[_Runner[T], T | None]]:
    """Cancel the attempts still running; each with its result if it finished before it could be cancelled."""
    for runner in running:
        runner.task.cancel()
    if running:
        await asyncio.wait([r.task for r in running])
    stopped: list[tuple[_Runner[T], T | None]] = []
    for runner in running:
        finished = not runner.task.cancelled() and runner.task.exception() is None
        stopped.append((runner, runner.task.result() if finished else None))
    return stopped


# -- streams ---------------------------------------------------------------------------------------------------


def has_content(chunk: dict[str, Any]) -> bool:
    """A chunk a listener hears: text, a tool call, the end of the answer, or the usage that closes it."""
    if not chunk.get("choices"):
        return chunk.get("usage") is not None
    for choice in chunk["choices"]:
        delta = choice.get("delta") or {}
        if content_text(delta.get("content")) or delta.get("tool_calls") or choice.get("finish_reason"):
            return True
    return False


async def read_to_first_content(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chunks up to and including the first with content (an opening role-only chunk is not a token).

    Raises ``StopAsyncIteration`` when the stream ends before any chunk at all."""
    chunks = [await anext(stream)]
    while not has_content(chunks[-1]):
        try:
            chunks.append(await anext(stream))
        except StopAsyncIteration:
            break
    return chunks


class StallGuarded:
    """``buffered`` then the rest of ``stream``; a gap longer than ``stall_s`` between chunks raises a
    ``ProviderError`` (the relay ends the stream with an error event, as for a dropped one).

    A class rather than an async generator: ``aclose()`` must close the upstream stream even when iteration never
    started (a caller who hung up before the first chunk was relayed)."""

    def __init__(
        self, buffered: list[dict[str, Any]], stream: AsyncIterator[dict[str, Any]], stall_s: float | None, name: str
    ) -> None:
        self._buffered = deque(buffered)
        self._stream = stream
        self._stall_s = stall_s
        self._name = name

    def __aiter__(self) -> StallGuarded:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._buffered:
            return self._buffered.popleft()
        try:
            async with asyncio.timeout(self._stall_s):
                return await anext(self._stream)
        except TimeoutError:
            raise ProviderError(
                "timeout",
                f"{self._name}: the stream stalled for more than {(self._stall_s or 0) * 1000:g} ms mid-answer",
            ) from None

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


def chunks_text(chunks: Iterable[dict[str, Any]]) -> str:
    parts: list[str] = []
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            parts.append(content_text(delta.get("content")))
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                parts.append(str(function.get("name") or "") + str(function.get("arguments") or ""))
    return "".join(parts)


def price_waste(
    report: HedgeReport | None,
    prompt_tokens: int,
    price: Callable[[Deployment, Usage], tuple[float, float]],
    count_tokens: Callable[[str], int],
) -> float:
    """Price each loser (its reported usage, else its prompt and produced text, estimated); their total in USD."""
    if report is None:
        return 0.0
    total = 0.0
    for wasted in report.wasted:
        if wasted.usage is None:
            wasted.usage = Usage(
                prompt_tokens=prompt_tokens, completion_tokens=count_tokens(wasted.produced_text), estimated=True
            )
        wasted.cost_usd = price(wasted.deployment, wasted.usage)[0]
        total += wasted.cost_usd
    return total
