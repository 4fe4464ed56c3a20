"""The auth matrix through real gateways and the openai SDK: virtual keys decide who calls and what they may do,
tenants are isolated, per-key RPM holds across replicas, and no key material ever reaches the logs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.redis_server import RedisServer
from tests.test_gateway_e2e import MESSAGES

pytestmark = pytest.mark.e2e

ADMIN_KEY = "admin-0f3b8c2e5d"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WELL_FORMED_UNKNOWN_KEY = "sb-0123456789ab-" + "q" * 43


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """Everything logged by anyone in this process (the gateway runs in-process) at any level."""
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        return "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in caplog.records)

    yield text


def sdk(gateway: GatewayServer, key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0, default_headers=headers)


def issue(base_url: str, **spec: Any) -> tuple[str, str]:
    """(key id, key material) of a key issued through the admin API."""
    response = httpx.post(f"{base_url}/admin/keys", json=spec, headers=ADMIN)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    return body["record"]["key_id"], body["key"]


def ledger_records(gateway: GatewayServer, tenant: str, call_id: str) -> list[Any]:
    ledger = gateway.services.recorder.ledger
    deadline = time.monotonic() + 5
    while ledger.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(gateway.call(ledger.sink.query(tenant, call_id=call_id)))


def test_auth_matrix(tmp_path: Path, simulator: SimulatorServer, all_logs: Callable[[], str]) -> None:
    with make_gateway(tmp_path, gateway_config(simulator.base_url), admin_key=ADMIN_KEY) as gateway:
        url = gateway.base_url
        chat = f"{url}/v1/chat/completions"
        body = {"model": "small", "messages": MESSAGES}

        # No key issued yet: the gateway is open and X-Tenant names the tenant.
        assert httpx.post(chat, json=body, headers={"X-Tenant": "acme"}).status_code == 200

        # Admin endpoints need the admin key.
        for headers in ({}, {"Authorization": "Bearer not-the-admin-key"}, {"Authorization": ADMIN_KEY}):
            for method, path in (("POST", "/admin/keys"), ("GET", "/admin/keys"), ("DELETE", "/admin/keys/x")):
                refused = httpx.request(method, f"{url}{path}", json={"tenant": "acme"}, headers=headers)
                assert refused.status_code == 401, (method, path, headers)
                assert refused.json()["error"]["type"] == "authentication_error"
        unknown_tier = httpx.post(
            f"{url}/admin/keys", json={"tenant": "acme", "allowed_tiers": ["huge"]}, headers=ADMIN
        )
        assert unknown_tier.status_code == 400 and unknown_tier.json()["error"]["param"] == "allowed_tiers"

        small_id, small_key = issue(url, tenant="acme", agent="billing", allowed_tiers=["small"], name="billing bot")
        open_agent_id, open_agent_key = issue(url, tenant="acme")
        doomed_id, doomed_key = issue(url, tenant="acme", agent="doomed")
        _, globex_key = issue(url, tenant="globex")
        listed = httpx.get(f"{url}/admin/keys", params={"tenant": "acme"}, headers=ADMIN)
        assert [k["key_id"] for k in listed.json()["data"]] == [small_id, open_agent_id, doomed_id]
        assert small_key not in listed.text and "hash" not in listed.text

        # No key, a foreign key, an unknown key: 401.
        missing = httpx.post(chat, json=body, headers={"X-Tenant": "acme"})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        for key in ("sk-not-a-switchboard-key", WELL_FORMED_UNKNOWN_KEY, small_key + "x"):
            with sdk(gateway, key) as client, pytest.raises(openai.AuthenticationError) as refused:
                client.chat.completions.create(**body)
            assert refused.value.code == "invalid_api_key"

        # Revoked: works until the admin revokes it, refused at once after.
        with sdk(gateway, doomed_key) as client:
            assert client.chat.completions.create(**body).choices[0].message.content
            revoked = httpx.delete(f"{url}/admin/keys/{doomed_id}", headers=ADMIN)
            assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
            with pytest.raises(openai.AuthenticationError):
                client.chat.completions.create(**body)
        assert httpx.delete(f"{url}/admin/keys/0123456789ab", headers=ADMIN).status_code == 404

        # A key limited to small may not ask for frontier; a turn the policy routes past small is served by small.
        with sdk(gateway, small_key, **{"X-Tenant": "globex", "X-Agent": "support", "X-Call-Id": "c-1"}) as client:
            raw = client.chat.completions.with_raw_response.create(**body)
            assert raw.headers["x-switchboard-tier"] == "small"
            with pytest.raises(openai.PermissionDeniedError) as denied:
                client.chat.completions.create(model="frontier", messages=MESSAGES)
            assert denied.value.status_code == 403 and denied.value.code == "model_not_allowed"
            capped = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
            assert capped.headers["x-switchboard-capped"] == "standard->small"  # the policy's default: standard
            assert capped.headers["x-switchboard-tier"] == "small"
        with sdk(gateway, open_agent_key, **{"X-Tenant": "globex", "X-Agent": "support", "X-Call-Id": "c-2"}) as client:
            assert client.chat.completions.create(model="frontier", messages=MESSAGES).choices

        # The key's tenant and agent are what the ledger records; X-Tenant changed nothing, X-Agent only narrows.
        pinned = ledger_records(gateway, "acme", "c-1")
        assert {(r.tenant, r.agent, r.status) for r in pinned} == {
            ("acme", "billing", 200),
            ("acme", "billing", 403),
        }
        assert [(r.tenant, r.agent, r.tier) for r in ledger_records(gateway, "acme", "c-2")] == [
            ("acme", "support", "frontier")
        ]
        assert ledger_records(gateway, "globex", "c-1") == []

        # Tenants read only their own calls and budgets.
        assert httpx.get(f"{url}/v1/calls/c-1", headers={"Authorization": f"Bearer {small_key}"}).status_code == 200
        as_globex = {"Authorization": f"Bearer {globex_key}", "X-Tenant": "acme"}
        assert httpx.get(f"{url}/v1/calls/c-1", headers=as_globex).status_code == 404
        budgets = httpx.get(f"{url}/v1/budgets", headers=as_globex)
        assert budgets.json()["tenant"] == "globex"
        assert httpx.get(f"{url}/v1/budgets", headers={"X-Tenant": "acme"}).status_code == 401

        # Requests per minute: the key's limit, then 429 with Retry-After until the window ends.
        rpm = 3
        for _ in range(2):  # a second try only if the one-minute window rolled over mid-burst
            window = int(time.time() // 60)
            _, limited_key = issue(url, tenant="acme", rpm=rpm)
            with sdk(gateway, limited_key) as client:
                for _ in range(rpm):
                    client.chat.completions.create(**body)
                with pytest.raises(openai.RateLimitError) as limited:
                    client.chat.completions.create(**body)
            if int(time.time() // 60) == window:
                break
        error = limited.value
        assert error.status_code == 429 and error.body["param"] == "rpm"  # type: ignore[index]
        assert 1 <= int(error.response.headers["retry-after"]) <= 60

        material = [small_key, open_agent_key, doomed_key, globex_key, limited_key]

    logs = all_logs()
    assert f"issued key {small_id}" in logs  # the capture sees the gateway's own logging
    for key in material:
        assert key not in logs and key.split("-", 2)[2] not in logs
    assert ADMIN_KEY not in logs


def test_keys_and_rate_limits_are_shared_by_replicas_through_postgres_and_redis(
    tmp_path: Path, simulator: SimulatorServer, postgres_url: str
) -> None:
    config = gateway_config(simulator.base_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with RedisServer() as redis_server:
        settings = {"redis_url": redis_server.url, "database_url": postgres_url, "admin_key": ADMIN_KEY}
        with (
            make_gateway(tmp_path / "a", config, **settings) as one,
            make_gateway(tmp_path / "b", config, **settings) as two,
        ):
            body = {"model": "small", "messages": MESSAGES}
            for _ in range(2):  # a second try only if the one-minute window rolled over mid-burst
                window = int(time.time() // 60)
                key_id, key = issue(one.base_url, tenant="acme", rpm=4)
                statuses = [
                    httpx.post(
                        f"{replica.base_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                    ).status_code
                    for replica in (one, two, one, two, one, two)
                ]
                if int(time.time() // 60) == window:
                    break
            assert statuses == [200, 200, 200, 200, 429, 429]

            # Another replica stops accepting a revoked key within its cache TTL (5 s).
            _, other_key = issue(one.base_url, tenant="acme")
            headers = {"Authorization": f"Bearer {other_key}"}
            assert httpx.post(f"{two.base_url}/v1/chat/completions", json=body, headers=headers).status_code == 200
            revoked_at = time.monotonic()
            other_id = other_key.split("-")[1]
            assert httpx.delete(f"{one.base_url}/admin/keys/{other_id}", headers=ADMIN).status_code == 200
            assert httpx.post(f"{one.base_url}/v1/chat/completions", json=body, headers=headers).status_code == 401
            while httpx.post(f"{two.base_url}/v1/chat/completions", json=body, headers=headers).status_code == 200:
                assert time.monotonic() - revoked_at < 6.0
                time.sleep(0.2)
            assert key_id in httpx.get(f"{two.base_url}/admin/keys", headers=ADMIN).text


async def _auth_load(bases: list[str], key: str, seconds: float) -> list[tuple[float, str, int]]:
    """(time, kind, status) of requests with the valid key, with no key and with an unknown key, in a loop."""
    body = {"model": "small", "messages": MESSAGES}
    kinds = {
        "valid": {"Authorization": f"Bearer {key}"},
        "none": {"X-Tenant": "acme"},
        "unknown": {"Authorization": f"Bearer {WELL_FORMED_UNKNOWN_KEY}", "X-Tenant": "acme"},
    }
    results: list[tuple[float, str, int]] = []
    deadline = time.monotonic() + seconds

    async def client_loop(index: int) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            n = index
            while time.monotonic() < deadline:
                kind = list(kinds)[n % 3]
                response = await client.post(
                    f"{bases[n % len(bases)]}/v1/chat/completions", json=body, headers=kinds[kind]
                )
                results.append((time.monotonic(), kind, response.status_code))
                n += 1

    await asyncio.gather(*(client_loop(i) for i in range(6)))
    return results


def test_redis_restarted_empty_under_load_never_lets_a_request_in_without_a_valid_key(
    tmp_path: Path, simulator: SimulatorServer, postgres_url: str
) -> None:
    config = gateway_config(simulator.base_url)
    with RedisServer() as redis_server:
        settings = {"redis_url": redis_server.url, "database_url": postgres_url, "admin_key": ADMIN_KEY}
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        (tmp_path / "c").mkdir()
        with (
            make_gateway(tmp_path / "a", config, **settings) as one,
            make_gateway(tmp_path / "b", config, **settings) as two,
        ):
            _, key = issue(one.base_url, tenant="acme")
            bases = [one.base_url, two.base_url]

            def outage() -> float:
                time.sleep(1.0)
                redis_server.stop(persist=False)
                time.sleep(1.5)
                redis_server.start()  # back, empty
                return time.monotonic()

            async def run() -> tuple[list[tuple[float, str, int]], float]:
                load, back = await asyncio.gather(_auth_load(bases, key, 9.0), asyncio.to_thread(outage))
                return load, back

            results, redis_back = asyncio.run(run())
            # A replica started while Redis is empty learns from the system of record that keys exist.
            with make_gateway(tmp_path / "c", config, **settings) as fresh:
                keyless = httpx.post(
                    f"{fresh.base_url}/v1/chat/completions", json={"model": "small", "messages": MESSAGES}
                )
                keyed = httpx.post(
                    f"{fresh.base_url}/v1/chat/completions",
                    json={"model": "small", "messages": MESSAGES},
                    headers={"Authorization": f"Bearer {key}"},
                )
    served_without_key = [r for r in results if r[1] != "valid" and r[2] == 200]
    assert len(results) > 60
    assert served_without_key == []
    assert {status for _, kind, status in results if kind != "valid"} <= {401, 503}
    valid_after = [status for at, kind, status in results if kind == "valid" and at > redis_back + 5.0]
    assert valid_after and set(valid_after) == {200}  # existing keys work again within 5 s of Redis returning
    assert keyless.status_code == 401 and keyed.status_code == 200
