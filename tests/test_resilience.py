"""Circuit breakers (unit) and a chaos run through a real gateway against a faulty simulated deployment."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from router.config import BreakerConfig
from router.providers.base import ProviderError
from router.providers.health import BreakerState, DeploymentHealth
from router.simulator import SimulatorServer
from tests.conftest import gateway_config, make_gateway
from tests.test_gateway_e2e import MESSAGES, set_behaviour, sim_stats


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failure(kind: str = "server", retry_after: float | None = None) -> ProviderError:
    return ProviderError(kind, "boom", retry_after=retry_after)  # type: ignore[arg-type]


def test_breaker_opens_after_consecutive_failures_and_probes_when_half_open() -> None:
    clock = FakeClock()
    transitions: list[tuple[str, BreakerState]] = []
    health = DeploymentHealth(
        BreakerConfig(consecutive_failures=3, open_seconds=10), lambda n, s: transitions.append((n, s)), clock
    )
    for _ in range(3):
        assert health.available("a")
        health.record_failure("a", failure(), retry_after_cap=60)
    assert not health.available("a")
    clock.now += 10
    assert health.available("a")  # the half-open probe
    assert not health.available("a")  # only one probe at a time
    health.record_failure("a", failure(), retry_after_cap=60)
    assert not health.available("a")  # failed probe: open again
    clock.now += 10
    assert health.available("a")
    health.record_success("a")
    assert health.available("a") and health.available("a")
    assert [s for _, s in transitions] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_breaker_opens_on_error_rate_and_parks_on_retry_after() -> None:
    clock = FakeClock()
    health = DeploymentHealth(
        BreakerConfig(consecutive_failures=100, error_rate=0.5, window=10, min_requests=10), clock=clock
    )
    for index in range(10):
        if index % 2:
            health.record_failure("a", failure(), retry_after_cap=60)
        else:
            health.record_success("a")
    assert health.snapshot()["a"]["state"] == "open"
    health.record_failure("b", failure("rate_limited", retry_after=30), retry_after_cap=5)
    assert not health.available("b")
    assert health.shortest_wait(["b"]) == pytest.approx(5)
    clock.now += 5
    assert health.available("b")


async def _drive(base_url: str, total: int, concurrency: int, stream_every: int) -> list[tuple[int, float]]:
    results: list[tuple[int, float]] = []
    queue = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            for index in queue:
                body = {"model": "small", "messages": MESSAGES, "stream": index % stream_every == 0}
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/chat/completions", json=body)
                    ok = response.status_code == 200 and "stream_interrupted" not in response.text
                    results.append((200 if ok else response.status_code or 599, time.perf_counter() - started))
                except httpx.HTTPError:
                    results.append((599, time.perf_counter() - started))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


@pytest.mark.e2e
def test_chaos_run_survives_a_deployment_failing_half_the_time(tmp_path: Path, simulator: SimulatorServer) -> None:
    total_timeout = 4.0
    config = gateway_config(
        simulator.base_url,
        breaker={"consecutive_failures": 5, "open_seconds": 1.0},
        timeouts={"connect": 1, "first_token": 1.0, "total": total_timeout},
    )
    # A deployment's own total leaves the request's total room for a fallback after a hang.
    for deployment in config["deployments"]:
        deployment["timeouts"] = {"connect": 1, "first_token": 1.0, "total": total_timeout / 2}
    set_behaviour(
        simulator,
        "gpt-4o-mini",
        rate_500=0.15,
        rate_429=0.15,
        rate_timeout=0.1,
        rate_drop=0.1,
        timeout_hang_seconds=30,
        retry_after_seconds=0.5,
        output_tokens=12,
    )
    set_behaviour(simulator, "gpt-4.1-mini", output_tokens=12)
    with make_gateway(tmp_path, config) as gateway:
        results = asyncio.run(_drive(f"{gateway.base_url}/v1".removesuffix("/v1"), 2000, 50, stream_every=4))
        opened = gateway.services.gateway.chain.health.snapshot()["small-a"]["times_opened"]
        # Recovery: the deployment heals; after open_seconds a probe closes the breaker.
        set_behaviour(simulator, "gpt-4o-mini", output_tokens=12)
        time.sleep(1.2)
        recovered = False
        for _ in range(20):
            headers = httpx.post(
                f"{gateway.base_url}/v1/chat/completions", json={"model": "small", "messages": MESSAGES}
            ).headers
            if headers["x-switchboard-deployment"] == "small-a":
                recovered = True
                break
            time.sleep(0.2)
        state = gateway.services.gateway.chain.health.snapshot()["small-a"]["state"]
    succeeded = sum(1 for status, _ in results if status == 200)
    # The gateway's own measurement of each turn: the client's wall time also counts this process's contention
    # between load generator, gateway and simulator, which is not what the deadline bounds.
    with sqlite3.connect(tmp_path / "data" / "ledger.sqlite3") as ledger:
        slowest = max(total_ms for (total_ms,) in ledger.execute("SELECT total_ms FROM ledger")) / 1000
    print(f"chaos: {succeeded}/{len(results)} succeeded, slowest {slowest:.2f}s, breaker opened {opened} times")
    assert len(results) == 2000
    assert succeeded / len(results) >= 0.999
    assert opened >= 1
    assert recovered and state == "closed"
    # The request's total timeout bounds every attempt and backoff together (plus scheduling slack).
    assert slowest < total_timeout + 0.5
    assert sim_stats(simulator)["faults"], "the simulator really injected faults"
