"""Budgets through real gateways: a hard limit holds exactly across two replicas sharing Redis; soft limits
downgrade non-risky turns; the caller sees what remains; a tenant at its hard limit stays refused across
restarts and Redis losing its data, because spend is rebuilt from the ledger."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from router.simulator import SimulatorServer
from tests.conftest import gateway_config, make_gateway
from tests.redis_server import RedisServer
from tests.test_gateway_e2e import MESSAGES


async def _burst(urls: list[str], count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{urls[i % len(urls)]}/v1/chat/completions",
                    json={"model": "small", "messages": MESSAGES, "max_tokens": 16},
                    headers={"X-Tenant": "acme"},
                )
                for i in range(count)
            )
        )


@pytest.mark.e2e
def test_hard_limit_holds_under_200_concurrent_requests_across_two_replicas(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    hard = 0.0004  # a few dozen small-tier turns
    config = gateway_config(simulator.base_url, budgets={"tenants": {"acme": {"daily": {"hard_usd": hard}}}})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with RedisServer() as redis_server:
        settings = {"redis_url": redis_server.url}
        with (
            make_gateway(tmp_path / "a", config, **settings) as one,
            make_gateway(tmp_path / "b", config, **settings) as two,
        ):
            responses = asyncio.run(_burst([one.base_url, two.base_url], 200))
            served = [r for r in responses if r.status_code == 200]
            refused = [r for r in responses if r.status_code == 429]
            spent = sum(float(r.headers["x-switchboard-cost-usd"]) for r in served)
            budgets = httpx.get(f"{one.base_url}/v1/budgets", headers={"X-Tenant": "acme"}).json()
    assert len(served) + len(refused) == 200
    assert served and refused, "the limit must both admit and refuse within one burst"
    assert spent <= hard
    assert refused[0].json()["error"]["code"] == "budget_exceeded"
    assert refused[0].json()["error"]["param"].startswith("tenant:acme")
    (daily,) = budgets["data"]
    assert daily["spent_usd"] == pytest.approx(spent, abs=1e-9)
    assert daily["remaining_usd"] == pytest.approx(hard - spent, abs=1e-9)


@pytest.mark.e2e
def test_soft_limit_downgrades_non_risky_turns_only(tmp_path: Path, simulator: SimulatorServer) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "name: soft\ndefault: standard\nbudget_downgrade: {tier: small}\nfloor: {risks: {payment: frontier}}\n"
    )
    config = gateway_config(
        simulator.base_url,
        policy=str(policy),
        budgets={"tenants": {"acme": {"per_call": {"soft_usd": 0.000001, "hard_usd": 10}}}},
    )
    with make_gateway(tmp_path, config) as gateway:
        url = f"{gateway.base_url}/v1/chat/completions"
        headers = {"X-Tenant": "acme", "X-Call-Id": "call-soft"}
        first = httpx.post(url, json={"model": "auto", "messages": MESSAGES}, headers=headers)
        second = httpx.post(url, json={"model": "auto", "messages": MESSAGES}, headers=headers)
        other_call = httpx.post(url, json={"model": "auto", "messages": MESSAGES}, headers={"X-Tenant": "acme"})
    assert first.headers["x-switchboard-tier"] == "standard"  # nothing spent yet
    assert second.headers["x-switchboard-tier"] == "small"  # past the call's soft limit: downgraded
    assert "budget_soft_limit->small" in second.headers["x-switchboard-reasons"]
    assert other_call.headers["x-switchboard-tier"] == "standard"


def _spend_until_refused(base_url: str, limit: int = 200) -> int:
    """Serve turns until the budget refuses one; how many were served."""
    for served in range(limit):
        response = httpx.post(
            f"{base_url}/v1/chat/completions",
            json={"model": "small", "messages": MESSAGES, "max_tokens": 16},
            headers={"X-Tenant": "acme"},
        )
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "budget_exceeded"
            return served
        assert response.status_code == 200, response.text
    raise AssertionError("the hard limit never refused")


def _refused(base_url: str) -> bool:
    response = httpx.post(
        f"{base_url}/v1/chat/completions",
        json={"model": "small", "messages": MESSAGES, "max_tokens": 16},
        headers={"X-Tenant": "acme"},
    )
    return response.status_code == 429


def _refusal(base_url: str) -> tuple[int, str | None]:
    """The status and error code of one turn of acme."""
    response = httpx.post(
        f"{base_url}/v1/chat/completions",
        json={"model": "small", "messages": MESSAGES, "max_tokens": 16},
        headers={"X-Tenant": "acme"},
    )
    return response.status_code, response.json()["error"]["code"] if response.status_code != 200 else None


BUDGET_STORE_DOWN = (503, "budget_store_unavailable")


@pytest.mark.e2e
def test_a_tenant_at_its_hard_limit_stays_refused_across_restarts_without_redis(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    config = gateway_config(simulator.base_url, budgets={"tenants": {"acme": {"daily": {"hard_usd": 0.0004}}}})
    with make_gateway(tmp_path, config) as gateway:
        assert _spend_until_refused(gateway.base_url) > 0
    with make_gateway(tmp_path, config) as restarted:  # same data directory: the ledger is the memory
        assert _refused(restarted.base_url)
        (daily,) = httpx.get(f"{restarted.base_url}/v1/budgets", headers={"X-Tenant": "acme"}).json()["data"]
    assert daily["spent_usd"] > 0.0004 * 0.5


@pytest.mark.e2e
def test_a_tenant_at_its_hard_limit_stays_refused_when_redis_restarts_empty(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    config = gateway_config(simulator.base_url, budgets={"tenants": {"acme": {"daily": {"hard_usd": 0.0004}}}})
    with RedisServer() as redis_server:
        with make_gateway(tmp_path, config, redis_url=redis_server.url) as gateway:
            assert _spend_until_refused(gateway.base_url) > 0
            redis_server.stop(persist=False)  # Redis crashes and comes back with nothing
            # During the outage a hard limit is not granted blind: 503.
            assert _refusal(gateway.base_url) == BUDGET_STORE_DOWN
            redis_server.start()
            for _ in range(20):  # across the retry: Redis is found empty and reseeded from the ledger
                assert _refusal(gateway.base_url) in {BUDGET_STORE_DOWN, (429, "budget_exceeded")}
                time.sleep(0.5)
            assert _refused(gateway.base_url)
            with redis_server.client() as client:
                assert client.exists("switchboard:budget:seeded")
        redis_server.stop(persist=False)
        redis_server.start()
        with make_gateway(tmp_path, config, redis_url=redis_server.url) as restarted:
            assert _refused(restarted.base_url)  # a new replica on an empty Redis
