"""The one Redis degrade policy through real gateways, with a real Redis that crashes and comes back empty.

While Redis is down: no request is served without a valid key (keys live in the system of record), a turn charged
to a hard budget is refused with 503 (no replica grants hard budget alone), soft-only tenants and rate-limited keys
are still served (in-process), ``/readyz`` says what each role does and ``switchboard_redis_up`` is 0. Once Redis
is back, everything works again within the retry interval, and the ledger never shows more spend for a tenant than
its hard limit plus the documented outage allowance.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.keys import KeySpec
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer
from tests.test_gateway_e2e import MESSAGES

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
BODY = {"model": "small", "messages": MESSAGES, "max_tokens": 16}


def _metric(base_url: str, name: str) -> float:
    for line in httpx.get(f"{base_url}/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def _post(base_url: str, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{base_url}{CHAT}", json=BODY, headers=headers, timeout=10)


def test_each_role_follows_the_degrade_policy_while_redis_is_down(tmp_path: Path, simulator: SimulatorServer) -> None:
    budgets = {"tenants": {"capped": {"daily": {"hard_usd": 10}}, "soft": {"daily": {"soft_usd": 10}}}}
    config = gateway_config(simulator.base_url, budgets=budgets)
    with RedisServer() as redis_server, make_gateway(tmp_path, config, redis_url=redis_server.url) as gateway:
        keys = gateway.services.auth.keys
        capped = gateway.call(keys.create(KeySpec(tenant="capped", rpm=1000))).key
        soft = gateway.call(keys.create(KeySpec(tenant="soft", rpm=3))).key
        assert _post(gateway.base_url, capped).status_code == 200
        assert _metric(gateway.base_url, "switchboard_redis_up") == 1

        redis_server.stop(persist=False)  # a crash: it comes back with nothing
        down = _post(gateway.base_url, capped)
        assert down.status_code == 503 and down.json()["error"]["code"] == "budget_store_unavailable"
        assert int(down.headers["retry-after"]) >= 1
        assert _post(gateway.base_url, None).status_code == 401  # never open
        assert _post(gateway.base_url, "sb-0123456789ab-" + "x" * 43).status_code == 401
        # Soft-only budget, call state and the key's rpm of 3 all run in-process.
        assert [_post(gateway.base_url, soft).status_code for _ in range(4)] == [200, 200, 200, 429]
        ready = httpx.get(f"{gateway.base_url}/readyz").json()
        assert _metric(gateway.base_url, "switchboard_redis_up") == 0

        redis_server.start()
        back_at = time.monotonic()
        while (status := _post(gateway.base_url, capped).status_code) == 503 and time.monotonic() - back_at < 10:
            time.sleep(0.2)
        recovered_s = time.monotonic() - back_at
        assert status == 200
        ready_after = httpx.get(f"{gateway.base_url}/readyz").json()
        up_after = _metric(gateway.base_url, "switchboard_redis_up")
        ledger = gateway.services.recorder.ledger
        deadline = time.monotonic() + 10
        while ledger.pending and time.monotonic() < deadline:  # rejections are recorded without waiting
            time.sleep(0.05)
        records = gateway.call(ledger.sink.query("capped"))
        (daily,) = httpx.get(f"{gateway.base_url}/v1/budgets", headers={"authorization": f"Bearer {capped}"}).json()[
            "data"
        ]
    assert ready["status"] == "degraded"
    (redis_line,) = [line for line in ready["degraded"] if line.startswith("redis:")]
    for role in ("keys", "budgets", "rate_limits", "state", "ledger"):
        assert f"{role}: " in redis_line
    assert recovered_s <= 6.0  # the shared client retries Redis every 5 s (+ one turn)
    assert ready_after["status"] == "ready" and up_after == 1
    # Redis came back empty: its counters were rebuilt from the ledger, so they hold the served turns' spend.
    served = [r for r in records if r.status == 200]
    assert len(served) == 2 and {r.status for r in records} == {200, 503}
    assert daily["spent_usd"] == pytest.approx(sum(r.cost_usd for r in served), abs=1e-9)


async def _spend(urls: list[str], stop: asyncio.Event, statuses: list[int], workers: int) -> None:
    """``workers`` clients sending turns of tenant acme to the replicas in turn until ``stop``."""

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            n = index
            while not stop.is_set():
                n += 1
                try:
                    response = await client.post(
                        f"{urls[n % len(urls)]}{CHAT}", json=BODY, headers={"x-tenant": "acme"}
                    )
                except httpx.TransportError:
                    statuses.append(0)  # a replica being restarted
                    await asyncio.sleep(0.05)
                    continue
                statuses.append(response.status_code)
                if response.status_code != 200:
                    await asyncio.sleep(0.02)

    await asyncio.gather(*(worker(i) for i in range(workers)))


async def _until(condition: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def test_no_hard_budget_overshoot_beyond_the_outage_allowance(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Two replicas on PostgreSQL and Redis; mid-traffic Redis crashes and comes back empty, then a replica
    restarts. The ledger's spend of the tenant stays within hard limit + allowance, where the allowance is the turns
    in flight when Redis lost its data (at most ``workers`` turns, each at most the dearest turn served)."""
    behaviour = ModelBehaviour(ttft_ms=20, tokens_per_second=400, output_tokens=16)
    workers, hard = 8, 0.003
    with SimulatorServer(SimulatorSettings(models={"*": behaviour}, seed=3)) as simulator:
        config = gateway_config(simulator.base_url, budgets={"tenants": {"acme": {"daily": {"hard_usd": hard}}}})
        with RedisServer() as redis_server:
            settings = {"redis_url": redis_server.url, "database_url": postgres_url}
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
            replicas: list[GatewayServer] = [make_gateway(tmp_path / n, config, **settings).start() for n in "ab"]
            statuses: list[int] = []
            try:

                async def scenario() -> None:
                    urls = [r.base_url for r in replicas]
                    stop = asyncio.Event()
                    load = asyncio.create_task(_spend(urls, stop, statuses, workers))
                    await _until(lambda: statuses.count(200) >= 20, 60)
                    await asyncio.to_thread(redis_server.stop, False)  # crash mid-traffic: data lost
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(redis_server.start)
                    await _until(lambda: statuses.count(200) >= 40, 60)
                    replicas[0].stop()  # a replica restarts (deploy, OOM kill) mid-traffic
                    replicas[0] = make_gateway(tmp_path / "a", config, **settings).start()
                    urls[0] = replicas[0].base_url
                    # Until the limit refuses every worker for a while.
                    await _until(lambda: len(statuses) > 60 and set(statuses[-3 * workers :]) == {429}, 120)
                    stop.set()
                    await load

                asyncio.run(scenario())
            finally:
                for replica in replicas:
                    replica.stop()
    database = postgres_url.rsplit("/", 1)[1]
    spent, dearest, rows = postgres_server.query(
        "SELECT sum(cost_usd) || ' ' || max(cost_usd) || ' ' || count(*) FROM ledger "
        "WHERE tenant = 'acme' AND status = 200",
        database,
    ).split()
    allowance = workers * float(dearest)
    print(
        f"overshoot: {statuses.count(200)} served, {statuses.count(429)} refused 429, {statuses.count(503)} refused "
        f"503 during the outage; ledger {rows} rows, {float(spent):.6f} USD spent of {hard} hard "
        f"(allowance {allowance:.6f})"
    )
    assert int(rows) == statuses.count(200)
    assert statuses.count(503) > 0  # the outage refused hard-budget turns rather than granting them
    assert float(spent) <= hard + allowance
