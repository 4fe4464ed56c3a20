"""The hedging race and the latency guards without servers (the end-to-end runs are test_voice_latency_e2e.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from router.config import Deployment, GatewayConfig, LatencyGuard
from router.providers.base import ProviderError
from router.providers.hedge import (
    HedgedRound,
    StallGuarded,
    Wasted,
    hedge_trigger,
    latency_guards,
    read_to_first_content,
)

A, B, C = (Deployment(name=n, model=f"openai/{n}") for n in ("a", "b", "c"))


def config(**latency: Any) -> GatewayConfig:
    return GatewayConfig(deployments=[A, B, C], tiers={"small": ["a", "b"], "frontier": ["c"]}, latency=latency or {})


class Race:
    """A HedgedRound over scripted attempts: each deployment answers after ``delays[name]`` or fails."""

    def __init__(self, delays: dict[str, float | ProviderError], trigger: float | None, deadline: float | None):
        self.delays = delays
        self.events: list[tuple[str, str]] = []
        self.round = HedgedRound(
            self._attempt,
            available=lambda d: True,
            trigger=lambda d: trigger,
            deadline=lambda d: deadline,
            failed=lambda d, error, started: self.events.append(("failed", d.name)),
            lost=lambda d, started, late: self.events.append(("lost-late" if late else "lost", d.name)),
            waste=self._waste,
        )

    async def _attempt(self, deployment: Deployment) -> str:
        self.events.append(("start", deployment.name))
        delay = self.delays[deployment.name]
        if isinstance(delay, ProviderError):
            await asyncio.sleep(0.01)
            raise delay
        await asyncio.sleep(delay)
        return deployment.name

    async def _waste(self, deployment: Deployment, seconds: float, result: str | None) -> Wasted:
        return Wasted(deployment, seconds)

    def run(self, *candidates: Deployment) -> Any:
        return asyncio.run(self.round.run(candidates))


def test_a_silent_attempt_gets_a_hedge_and_the_first_answer_wins() -> None:
    race = Race({"a": 1.0, "b": 0.05, "c": 0.0}, trigger=0.05, deadline=0.05)
    won = race.run(A, B, C)
    assert won.deployment is B and won.result == "b"
    assert won.hedge.won_by == "hedge" and won.hedge.cancelled == ["a"]
    # Two in flight at most: c never started; a was late (past its deadline), so it counts against its health.
    assert race.events == [("start", "a"), ("start", "b"), ("lost-late", "a")]


def test_the_first_attempt_may_still_win_after_its_hedge_started() -> None:
    race = Race({"a": 0.1, "b": 1.0}, trigger=0.02, deadline=0.5)
    won = race.run(A, B)
    assert won.deployment is A and won.hedge.won_by == "first" and won.hedge.cancelled == ["b"]
    assert ("lost", "b") in race.events  # cancelled before its own deadline: not a failure


def test_a_failure_is_replaced_at_once_and_is_no_hedge() -> None:
    race = Race({"a": ProviderError("server", "boom"), "b": 0.01}, trigger=5.0, deadline=5.0)
    won = race.run(A, B)
    assert won.deployment is B and won.hedge is None
    assert race.events == [("start", "a"), ("failed", "a"), ("start", "b")]


def test_every_attempt_failing_gives_none() -> None:
    error = ProviderError("server", "boom")
    race = Race({"a": error, "b": error}, trigger=0.01, deadline=0.01)
    assert race.run(A, B) is None


def test_guards_merge_deployment_over_tier_and_validate() -> None:
    guards = latency_guards(
        config(
            tiers={"small": {"first_token_deadline_ms": 800, "stall_ms": 2000}},
            deployments={"b": {"first_token_deadline_ms": 400}},
        )
    )
    assert guards["a"] == LatencyGuard(first_token_deadline_ms=800, stall_ms=2000)
    assert guards["b"] == LatencyGuard(first_token_deadline_ms=400, stall_ms=2000)
    assert guards["c"] == LatencyGuard()
    assert hedge_trigger(LatencyGuard(first_token_deadline_ms=800, hedge_after_ms=300), stream=True) == 0.3
    assert hedge_trigger(LatencyGuard(first_token_deadline_ms=800), stream=False) is None
    with pytest.raises(ValidationError, match="unknown tiers or deployments: nope"):
        config(tiers={"nope": {"stall_ms": 1}})
    with pytest.raises(ValidationError):
        config(tiers={"small": {"stall_ms": -1}})


async def _chunks(*chunks: dict[str, Any], pause: float = 0.0) -> AsyncIterator[dict[str, Any]]:
    for index, chunk in enumerate(chunks):
        if index == 2:
            await asyncio.sleep(pause)
        yield chunk


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_the_first_content_token_is_not_the_opening_role_chunk() -> None:
    async def run() -> list[dict[str, Any]]:
        return await read_to_first_content(_chunks(_delta(role="assistant", content=""), _delta(content="Hi")))

    assert [c["choices"][0]["delta"] for c in asyncio.run(run())] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]


def test_a_stall_mid_answer_raises_a_provider_error() -> None:
    async def run(pause: float) -> list[dict[str, Any]]:
        stream = _chunks(_delta(content="a"), _delta(content="b"), _delta(content="c"), pause=pause)
        return [c async for c in StallGuarded([], stream, 0.05, "a")]

    assert len(asyncio.run(run(0.0))) == 3
    with pytest.raises(ProviderError, match="stalled"):
        asyncio.run(run(0.5))


def test_closing_a_guarded_stream_before_its_first_chunk_closes_the_upstream() -> None:
    closed = []

    async def upstream() -> AsyncIterator[dict[str, Any]]:
        try:
            yield _delta(content="a")
            yield _delta(content="b")
        finally:
            closed.append(True)

    async def run() -> None:
        stream = upstream()
        await anext(stream)  # opened: the gateway read up to the first content token
        await StallGuarded([], stream, 1.0, "a").aclose()  # the caller hung up before any relay

    asyncio.run(run())
    assert closed == [True]
