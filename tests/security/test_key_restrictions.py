"""A key's allowed tiers and models hold for every deployment the gateway calls, whatever the request names;
fallbacks stay inside them; labels name the tier that served; a turn routed above a key's allowance is served by
the best tier it may use, or refused when so configured (issue 11, item 3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.allowance import Allowance
from router.config import GatewayConfig
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from router.types import Caller
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.test_gateway_e2e import MESSAGES, set_behaviour, sim_stats

ADMIN_KEY = "admin-5e1c9a77f0"
EMERGENCY = [{"role": "user", "content": "my husband collapsed and he is not breathing, please help me"}]
# The small tier's models in tests.conftest.gateway_config (small-a, small-b).
SMALL_MODELS = ("gpt-4o-mini", "gpt-4.1-mini")


def issue(gateway: GatewayServer, **spec: Any) -> dict[str, str]:
    response = httpx.post(f"{gateway.base_url}/admin/keys", json=spec, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


def chat(gateway: GatewayServer, headers: dict[str, str], model: str, **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": MESSAGES, **body}
    return httpx.post(f"{gateway.base_url}/v1/chat/completions", json=payload, headers=headers, timeout=30)


def ledger_rows(gateway: GatewayServer, tenant: str) -> list[Any]:
    ledger = gateway.services.recorder.ledger
    deadline = time.monotonic() + 5
    while ledger.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(gateway.call(ledger.sink.query(tenant)))


def test_allowance_is_decided_per_deployment_and_keeps_floors_when_it_can() -> None:
    allowance = Allowance(GatewayConfig.model_validate(gateway_config("http://127.0.0.1:9")))
    small_only = Caller(tenant="acme", allowed_tiers=frozenset({"small"}))
    assert allowance.permits(small_only, "small-b") and not allowance.permits(small_only, "frontier-a")
    assert allowance.nearest_tier(small_only, "frontier") == "small"
    mini_only = Caller(tenant="acme", allowed_models=frozenset({"small-a"}))
    assert allowance.may_use_tier(mini_only, "small") and not allowance.may_use_tier(mini_only, "frontier")
    with_a_gap = Caller(tenant="acme", allowed_tiers=frozenset({"small", "frontier"}))
    assert allowance.nearest_tier(with_a_gap, "standard") == "frontier"  # a floor at standard is kept
    nothing = Caller(tenant="acme", allowed_tiers=frozenset({"small"}), allowed_models=frozenset({"frontier-a"}))
    assert allowance.nearest_tier(nothing, "standard") is None


@pytest.fixture
def gateway(tmp_path: Path, simulator: SimulatorServer) -> Iterator[GatewayServer]:
    with make_gateway(tmp_path, gateway_config(simulator.base_url), admin_key=ADMIN_KEY) as server:
        yield server


@pytest.mark.e2e
def test_allowed_tiers_hold_whatever_the_request_names(gateway: GatewayServer) -> None:
    small_only = issue(gateway, tenant="acme", allowed_tiers=["small"])
    for model in ("frontier-a", "standard-a", "frontier"):  # frontier's deployment by name, then the tier
        denied = chat(gateway, small_only, model)
        assert denied.status_code == 403, model
        assert denied.json()["error"]["code"] == "model_not_allowed"
    assert chat(gateway, small_only, "small-b").headers["x-switchboard-deployment"] == "small-b"
    listed = httpx.get(f"{gateway.base_url}/v1/models", headers=small_only).json()["data"]
    assert [m["id"] for m in listed] == ["auto", "small", "small-a", "small-b"]  # only what it may use


@pytest.mark.e2e
def test_allowed_models_hold_whatever_the_request_names(gateway: GatewayServer, simulator: SimulatorServer) -> None:
    mini_only = issue(gateway, tenant="acme", allowed_models=["small-a"])
    assert chat(gateway, mini_only, "frontier").status_code == 403
    assert chat(gateway, mini_only, "standard-a").status_code == 403
    routed = chat(gateway, mini_only, "auto")  # the policy's default is standard: served by what the key may use
    assert routed.status_code == 200
    assert routed.headers["x-switchboard-deployment"] == "small-a"
    assert routed.headers["x-switchboard-capped"] == "standard->small"
    assert set(sim_stats(simulator)["requests_by_model"]) == {"gpt-4o-mini"}


@pytest.mark.e2e
def test_fallback_never_leaves_the_allowance_and_labels_name_the_tier_that_served(
    gateway: GatewayServer, simulator: SimulatorServer
) -> None:
    for model in SMALL_MODELS:
        set_behaviour(simulator, model, rate_500=1.0)
    small_only = issue(gateway, tenant="acme", agent="small-only", allowed_tiers=["small"])
    refused = chat(gateway, small_only, "small")
    assert refused.status_code == 502  # the small tier is down, and the tiers above are not this key's
    assert set(sim_stats(simulator)["requests_by_model"]) <= set(SMALL_MODELS)

    unrestricted = issue(gateway, tenant="acme", agent="unrestricted")
    climbed = chat(gateway, unrestricted, "small")
    assert climbed.status_code == 200
    assert climbed.headers["x-switchboard-deployment"] == "standard-a"
    assert climbed.headers["x-switchboard-tier"] == "standard"  # not "small": that tier failed
    (row,) = [r for r in ledger_rows(gateway, "acme") if r.agent == "unrestricted"]
    assert (row.tier, row.deployment, row.status) == ("standard", "standard-a", 200)
    metrics = httpx.get(f"{gateway.base_url}/metrics").text
    served = [line for line in metrics.splitlines() if line.startswith("switchboard_requests_total{")]
    assert any('model="standard-a"' in line and 'tier="standard"' in line for line in served), served
    assert not any('model="standard-a"' in line and 'tier="small"' in line for line in served), served


@pytest.mark.e2e
def test_a_turn_routed_above_the_allowance_can_be_refused_instead(tmp_path: Path, simulator: SimulatorServer) -> None:
    config = gateway_config(simulator.base_url, permissions={"above_allowance": "refuse"})
    with make_gateway(tmp_path, config, admin_key=ADMIN_KEY) as gateway:
        small_only = issue(gateway, tenant="acme", allowed_tiers=["small"])
        refused = chat(gateway, small_only, "auto")  # the policy's default: standard
        assert refused.status_code == 403
        assert "routed this turn to tier 'standard'" in refused.json()["error"]["message"]
        assert chat(gateway, small_only, "small").status_code == 200


@pytest.mark.e2e
def test_an_emergency_on_a_small_only_key_is_answered_not_dropped(tmp_path: Path) -> None:
    settings = SimulatorSettings(models={"*": ModelBehaviour(output_tokens=8)})
    with (
        SimulatorServer(settings) as simulator,
        make_gateway(tmp_path, gateway_config(simulator.base_url), admin_key=ADMIN_KEY, classifier="on") as gateway,
    ):
        small_only = issue(gateway, tenant="acme", allowed_tiers=["small"])
        answered = chat(gateway, small_only, "auto", messages=EMERGENCY)
        assert answered.status_code == 200, answered.text
        assert "emergency" in answered.headers["x-switchboard-risk"]
        assert answered.headers["x-switchboard-capped"] == "frontier->small"  # the floor, and what served
        assert answered.headers["x-switchboard-tier"] == "small"
        assert answered.json()["choices"][0]["message"]["content"]
        assert set(sim_stats(simulator)["requests_by_model"]) <= set(SMALL_MODELS)
