"""Tenant intent catalogs through a real gateway: they change exactly the turns they cover, hot-reload, and never
silence a detector's floor."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import REPO, GatewayServer, gateway_config, make_gateway, write_yaml

CATALOG_TENANT = "clinic-north"
ADMIN_KEY = "catalog-admin"


@pytest.fixture(scope="module")
def catalog_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, Path]]:
    tmp_path = tmp_path_factory.mktemp("catalogs")
    catalog = tmp_path / "clinic.yaml"
    shutil.copy(REPO / "policies" / "catalogs" / "clinic.yaml", catalog)
    policy = write_yaml(
        tmp_path / "policy.yaml",
        {
            **__import__("yaml").safe_load((REPO / "policies" / "default.yaml").read_text()),
            "catalogs": {"tenants": {CATALOG_TENANT: "clinic.yaml"}},
        },
    )
    with (
        SimulatorServer(SimulatorSettings(models={"*": ModelBehaviour(output_tokens=4)})) as simulator,
        make_gateway(
            tmp_path,
            gateway_config(simulator.base_url, policy=str(policy)),
            classifier="on",
            admin_key=ADMIN_KEY,
        ) as gateway,
    ):
        yield gateway, catalog


def decide(gateway: GatewayServer, tenant: str, text: str) -> httpx.Headers:
    response = httpx.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": text}]},
        headers={"X-Tenant": tenant},
    )
    response.raise_for_status()
    return response.headers


COVERED = "my test results came back positive"
UNCOVERED = ["I want to dispute a 300 dollar charge on my card", "thanks, that's all for today"]


@pytest.mark.e2e
def test_a_catalog_changes_the_turns_it_covers_and_nothing_else(catalog_gateway: tuple[GatewayServer, Path]) -> None:
    gateway, _ = catalog_gateway
    with_catalog = decide(gateway, CATALOG_TENANT, COVERED)
    without = decide(gateway, "another-clinic", COVERED)
    assert with_catalog["x-switchboard-rule"] == "catalog:test_results_positive"
    assert with_catalog["x-switchboard-tier"] == "frontier"
    assert "medical" in with_catalog["x-switchboard-risk"]
    assert without["x-switchboard-rule"] != with_catalog["x-switchboard-rule"]
    for text in UNCOVERED:
        a, b = decide(gateway, CATALOG_TENANT, text), decide(gateway, "another-clinic", text)
        keys = ("x-switchboard-tier", "x-switchboard-rule", "x-switchboard-intent", "x-switchboard-risk")
        assert [a[k] for k in keys] == [b[k] for k in keys], text


@pytest.mark.e2e
def test_a_detector_risk_keeps_its_floor_when_the_catalog_says_small(
    catalog_gateway: tuple[GatewayServer, Path],
) -> None:
    gateway, _ = catalog_gateway
    plain = decide(gateway, CATALOG_TENANT, "can I bring my dog to my appointment")
    assert (plain["x-switchboard-rule"], plain["x-switchboard-tier"]) == ("catalog:bring_pet", "small")
    carded = decide(gateway, CATALOG_TENANT, "is it ok if my dog comes along, my card is 4111 1111 1111 1111")
    assert carded["x-switchboard-rule"] == "catalog:bring_pet"  # the catalog matched and asked for small...
    assert carded["x-switchboard-tier"] == "frontier"  # ...but the card number's hard evidence (stakes 1.0) wins
    assert "floor:high_stakes(1.00)->frontier" in carded["x-switchboard-reasons"]
    emergency = decide(gateway, CATALOG_TENANT, "can my dog come with me? also I have chest pain right now")
    assert emergency["x-switchboard-tier"] == "frontier" and "emergency" in emergency["x-switchboard-risk"]


@pytest.mark.e2e
def test_catalog_hot_reload_takes_effect_and_a_broken_catalog_is_rejected(
    catalog_gateway: tuple[GatewayServer, Path],
) -> None:
    gateway, catalog = catalog_gateway
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    before = decide(gateway, CATALOG_TENANT, "can I bring my dog to my appointment")
    text = catalog.read_text()
    catalog.write_text(text.replace("    tier: small", "    tier: standard", 1))  # bring_pet is the first intent
    reloaded = httpx.post(f"{gateway.base_url}/admin/policy/reload", headers=admin)
    assert reloaded.status_code == 200
    after = decide(gateway, CATALOG_TENANT, "can I bring my dog to my appointment")
    assert after["x-switchboard-tier"] == "standard"
    assert after["x-switchboard-policy-version"] != before["x-switchboard-policy-version"]
    catalog.write_text(text.replace("    intent: faq", "    intent: fax", 1))
    rejected = httpx.post(f"{gateway.base_url}/admin/policy/reload", headers=admin)
    assert rejected.status_code == 400
    message = rejected.json()["error"]["message"]
    assert "clinic.yaml:" in message and "fax" in message
    still = decide(gateway, CATALOG_TENANT, "can I bring my dog to my appointment")
    assert still["x-switchboard-policy-version"] == after["x-switchboard-policy-version"]
    catalog.write_text(text)
    time.sleep(0.01)
    assert httpx.post(f"{gateway.base_url}/admin/policy/reload", headers=admin).status_code == 200
