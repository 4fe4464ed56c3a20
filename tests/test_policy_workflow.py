"""The policy workflow through real gateways: stickiness across replicas sharing Redis, hot reload, shadow."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway, write_yaml
from tests.redis_server import RedisServer
from tests.test_gateway_e2e import MESSAGES

STICKY_POLICY = {
    "name": "sticky",
    "default": "small",
    "stickiness": {"from_tier": "frontier"},
    "rules": [{"name": "noisy-line", "when": {"voice": {"asr_confidence": {"lt": 0.5}}}, "route": "frontier"}],
}
ADMIN_KEY = "admin-secret-for-tests"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def turn(gateway: GatewayServer, call_id: str, asr_confidence: float = 0.95) -> httpx.Response:
    response = httpx.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "auto", "messages": MESSAGES, "metadata": {"voice": {"asr_confidence": asr_confidence}}},
        headers={"X-Call-Id": call_id, "X-Tenant": "clinic"},
    )
    response.raise_for_status()
    return response


@pytest.mark.e2e
def test_escalated_call_stays_on_frontier_on_every_replica_until_its_state_expires(
    tmp_path: Path, simulator: SimulatorServer, redis_server: RedisServer
) -> None:
    policy = write_yaml(tmp_path / "sticky.yaml", STICKY_POLICY)
    config = gateway_config(simulator.base_url, policy=str(policy))
    settings = {"redis_url": redis_server.url, "call_ttl_seconds": 2}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        make_gateway(tmp_path / "a", config, **settings) as one,
        make_gateway(tmp_path / "b", config, **settings) as two,
    ):
        replicas = [one, two]
        tiers = [turn(replicas[0], "call-1").headers["x-switchboard-tier"]]
        tiers.append(turn(replicas[1], "call-1").headers["x-switchboard-tier"])
        escalation = turn(replicas[0], "call-1", asr_confidence=0.3)
        tiers.append(escalation.headers["x-switchboard-tier"])
        assert escalation.headers["x-switchboard-rule"] == "noisy-line"
        later = [turn(replicas[n % 2], "call-1") for n in range(4, 11)]
        tiers += [r.headers["x-switchboard-tier"] for r in later]
        assert tiers == ["small", "small"] + ["frontier"] * 8
        assert all("sticky_call" in r.headers["x-switchboard-reasons"] for r in later)
        assert turn(replicas[1], "call-2").headers["x-switchboard-tier"] == "small"  # another call is unaffected
        time.sleep(2.5)  # the call's state expires after its TTL
        assert turn(replicas[1], "call-1").headers["x-switchboard-tier"] == "small"


def _hammer(url: str, stop: threading.Event, statuses: list[int]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            statuses.append(client.post(url, json={"model": "auto", "messages": MESSAGES}).status_code)


@pytest.mark.e2e
def test_hot_reload_on_change_keeps_the_old_policy_on_errors_and_fails_no_request(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    policy = write_yaml(tmp_path / "live.yaml", {"name": "live", "default": "small"})
    config = gateway_config(simulator.base_url, policy=str(policy))
    with make_gateway(tmp_path, config, admin_key=ADMIN_KEY) as gateway:
        url = f"{gateway.base_url}/v1/chat/completions"
        first = httpx.post(url, json={"model": "auto", "messages": MESSAGES}).headers
        assert first["x-switchboard-tier"] == "small"
        stop, statuses = threading.Event(), []
        load = threading.Thread(target=_hammer, args=(url, stop, statuses))
        load.start()
        try:
            write_yaml(policy, {"name": "live", "default": "frontier"})
            changed = _wait_for(
                lambda: httpx.post(url, json={"model": "auto", "messages": MESSAGES}).headers,
                lambda h: h["x-switchboard-tier"] == "frontier",
            )
            assert changed["x-switchboard-policy-version"] != first["x-switchboard-policy-version"]
            policy.write_text("name: live\ndefault: frontier\nrules:\n  - name: broken\n    route: nowhere\n")
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            rejected = httpx.post(f"{gateway.base_url}/admin/policy/reload", headers=admin)
            assert rejected.status_code == 400
            assert "live.yaml:5" in rejected.json()["error"]["message"]
            assert "unknown tier 'nowhere'" in rejected.json()["error"]["message"]
            time.sleep(1.5)  # the watcher sees the broken file too, and keeps the running policy
            status = httpx.get(f"{gateway.base_url}/admin/policy", headers=admin).json()
            assert status["version"] == changed["x-switchboard-policy-version"]
            assert "nowhere" in status["last_error"]
        finally:
            stop.set()
            load.join()
        assert statuses and set(statuses) == {200}
        assert httpx.post(f"{gateway.base_url}/admin/policy/reload").status_code == 401


def _wait_for(fetch, ready, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.mark.e2e
def test_shadow_policy_is_recorded_without_changing_the_live_answer(tmp_path: Path, simulator: SimulatorServer) -> None:
    live = write_yaml(tmp_path / "live.yaml", {"name": "live", "default": "small"})
    shadow = write_yaml(tmp_path / "candidate.yaml", {"name": "candidate", "default": "frontier"})
    config = gateway_config(simulator.base_url, policy=str(live), shadow_policy=str(shadow))
    with make_gateway(tmp_path, config) as gateway:
        response = turn(gateway, "call-shadow")
        assert response.headers["x-switchboard-tier"] == "small"
        assert response.headers["x-switchboard-policy-version"].startswith("live@")
        ledger = gateway.services.recorder.ledger
        _wait_for(lambda: ledger.pending, lambda pending: pending == 0)
        records = gateway.call(ledger.sink.query("clinic", call_id="call-shadow"))
        metrics = httpx.get(f"{gateway.base_url}/metrics").text
    (record,) = records
    assert (record.tier, record.deployment) == ("small", "small-a")
    assert (record.shadow_tier, record.shadow_deployment, record.shadow_rule) == ("frontier", "frontier-a", "default")
    assert record.shadow_cost_usd > record.cost_usd > 0
    shadow_lines = [line for line in metrics.splitlines() if line.startswith("switchboard_shadow_decisions_total{")]
    assert len(shadow_lines) == 1 and 'agrees="false"' in shadow_lines[0] and shadow_lines[0].endswith(" 1.0")


@pytest.mark.e2e
def test_traffic_log_records_masked_turns_with_their_decisions(tmp_path: Path, simulator: SimulatorServer) -> None:
    from router.traffic.log import read_traffic

    log = tmp_path / "traffic.jsonl"
    with make_gateway(tmp_path, gateway_config(simulator.base_url), traffic_log=log) as gateway:
        card_turn = [{"role": "user", "content": "my card is 4111 1111 1111 1111, expiry next May"}]
        response = httpx.post(
            f"{gateway.base_url}/v1/chat/completions",
            json={"model": "small", "messages": card_turn, "metadata": {"voice": {"asr_confidence": 0.8}}},
            headers={"X-Call-Id": "logged-call", "X-Tenant": "bank"},
        )
        assert response.status_code == 200
    (record,) = list(read_traffic(log))  # the writer flushed at shutdown
    assert "4111" not in record.messages[0].content and "[CARD]" in record.messages[0].content
    assert (record.tenant, record.call_id, record.requested_model) == ("bank", "logged-call", "small")
    assert record.decision is not None and record.decision.tier == "small" and record.decision.deployment == "small-a"
    assert record.usage is not None and record.usage.completion_tokens > 0
    assert record.metadata.voice is not None and record.metadata.voice.asr_confidence == 0.8
