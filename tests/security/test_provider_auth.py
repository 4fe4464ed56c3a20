"""A provider that rejects the operator's key is the operator's problem: the tenant never sees the provider's
answer (key suffix, organisation), the deployment's circuit opens, and the chain falls over (issue 11, item 7)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from router.providers.base import ProviderError, failure_kind_of_status
from router.providers.health import BreakerState, DeploymentHealth
from router.simulator import SimulatorServer
from router.simulator.app import SIMULATED_ORGANIZATION
from tests.conftest import gateway_config, make_gateway
from tests.test_gateway_e2e import MESSAGES, set_behaviour, sim_stats

PROVIDER_KEY = "sk-proj-operator-secret-7Q4Z"
# What a relayed provider answer would give away.
PROVIDER_DETAILS = ("7Q4Z", PROVIDER_KEY[:8], SIMULATED_ORGANIZATION, "Incorrect API key")


def assert_no_provider_details(response: httpx.Response) -> None:
    seen = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    for detail in PROVIDER_DETAILS:
        assert detail not in seen, f"{detail!r} reached the tenant"


def test_a_rejected_credential_opens_the_circuit_at_once() -> None:
    health = DeploymentHealth()
    assert failure_kind_of_status(401) == failure_kind_of_status(403) == "auth"
    health.record_failure("revoked", ProviderError("auth", "401", status=401), retry_after_cap=60)
    assert health.snapshot()["revoked"]["state"] == BreakerState.OPEN
    assert not health.available("revoked")


@pytest.mark.e2e
def test_provider_auth_failures_never_reach_the_tenant(
    tmp_path: Path, simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SB_TEST_PROVIDER_KEY", PROVIDER_KEY)
    tiers = {
        "small": ["revoked", "claude-revoked", "healthy"],
        "standard": ["also-revoked"],
        "frontier": ["frontier-a"],
    }
    config = gateway_config(simulator.base_url, tiers=tiers, fallback={"retries": 0})
    for deployment in config["deployments"]:
        deployment["api_key_env"] = "SB_TEST_PROVIDER_KEY"
    # The same rejection through litellm (Anthropic's wire format), not only the OpenAI-compatible fast path.
    (claude,) = [d for d in config["deployments"] if d["name"] == "claude-revoked"]
    claude.update(model="anthropic/claude-revoked", api_base=simulator.base_url)
    for model in ("revoked", "claude-revoked", "also-revoked"):
        set_behaviour(simulator, model, rate_401=1.0)
    with make_gateway(tmp_path, config) as gateway:
        url = f"{gateway.base_url}/v1/chat/completions"

        # The simulator really answers 401 with the key's suffix and the organisation...
        direct = httpx.post(
            f"{simulator.base_url}/v1/chat/completions",
            json={"model": "revoked", "messages": MESSAGES},
            headers={"authorization": f"Bearer {PROVIDER_KEY}"},
        )
        assert direct.status_code == 401 and "7Q4Z" in direct.text and SIMULATED_ORGANIZATION in direct.text

        # ...the gateway falls over to the next deployment of the tier, streamed or not.
        for stream in (False, True):
            served = httpx.post(url, json={"model": "small", "messages": MESSAGES, "stream": stream})
            assert served.status_code == 200, served.text
            assert served.headers["x-switchboard-deployment"] == "healthy"
            assert_no_provider_details(served)
        requests = sim_stats(simulator)["requests_by_model"]
        assert (requests["revoked"], requests["claude-revoked"]) == (2, 1)  # the direct probe, then the first turn
        health = gateway.services.gateway.chain.health.snapshot()
        for name in ("revoked", "claude-revoked"):
            assert health[name]["state"] == "open"  # marked unhealthy after one rejection: not tried again

        # With nowhere else to go the tenant gets a 502 of the gateway's own, never the provider's 401.
        pinned = httpx.post(url, json={"model": "also-revoked", "messages": MESSAGES})
        assert pinned.status_code == 502
        error = pinned.json()["error"]
        assert (error["type"], error["code"]) == ("upstream_error", "upstream_failed")
        assert_no_provider_details(pinned)
