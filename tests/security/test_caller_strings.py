"""Issue 11, item 6: caller-controlled strings are bounded: 431 for oversized heads, ids checked before they are
stored, tenant and agent labels bounded in number, and the internal endpoints can be closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.security.edge import CHAT, MESSAGES, ledger_rows

pytestmark = pytest.mark.e2e

ADMIN_KEY = "admin-7c1d9e"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
PINNED = {"model": "small-a", "messages": MESSAGES}  # a deployment: no classification, quick


@pytest.fixture
def server(tmp_path: Path, simulator: SimulatorServer) -> Iterator[GatewayServer]:
    with make_gateway(tmp_path, gateway_config(simulator.base_url), metrics_label_values=10) as gateway:
        yield gateway


def series(metrics_text: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    ]


def label_values(metrics_text: str, label: str) -> set[str]:
    return {
        labels[label] for name, labels in series(metrics_text) if label in labels and name.startswith("switchboard")
    }


def test_oversized_request_heads_are_431_and_the_gateway_serves_on(server: GatewayServer) -> None:
    url = f"{server.base_url}{CHAT}"
    one_huge = httpx.post(url, json=PINNED, headers={"x-call-id": "a" * 64 * 1024})
    assert one_huge.status_code == 431
    assert one_huge.json()["error"]["code"] == "request_headers_too_large"
    many = {f"x-filler-{i}": "b" * 1000 for i in range(40)}  # 40 kB in headers of 1 kB each
    assert httpx.post(url, json=PINNED, headers=many).status_code == 431
    assert httpx.post(url, json=PINNED, headers={"x-filler": "c" * 8000}).status_code == 200  # under 32 kB


@pytest.mark.parametrize(
    ("headers", "extra", "param"),
    [
        ({"x-call-id": "c" * 129}, {}, "x-call-id"),
        ({"x-call-id": "call 1"}, {}, "x-call-id"),
        ({"x-caller-id": "+1 555 0100"}, {}, "x-caller-id"),
        ({"x-tenant": "t" * 200}, {}, "x-tenant"),
        ({"x-agent": "<script>"}, {}, "x-agent"),
        ({}, {"metadata": {"call_id": "c" * 300}}, "metadata.call_id"),
        ({}, {"metadata": {"caller_id": "line\nbreak"}}, "metadata.caller_id"),
    ],
)
def test_malformed_ids_are_400s_naming_the_header_or_field(
    server: GatewayServer, headers: dict[str, str], extra: dict[str, object], param: str
) -> None:
    response = httpx.post(f"{server.base_url}{CHAT}", json={**PINNED, **extra}, headers={"x-tenant": "ids", **headers})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, "invalid_id")
    tenant = "unknown" if param in ("x-tenant", "x-agent") else "ids"  # refused before the caller was known
    row = ledger_rows(server, tenant)[response.headers["x-switchboard-request-id"]]
    assert row.status == 400 and row.call_id is None


@pytest.mark.parametrize("user", ["u" * 129, "Jane Doe", "line\nbreak"])
def test_a_user_that_is_not_a_valid_id_is_accepted_but_never_the_call_id(server: GatewayServer, user: str) -> None:
    # OpenAI's `user` is free text: refusing it would break clients; storing it as a call id would not be bounded.
    ok = httpx.post(f"{server.base_url}{CHAT}", json={**PINNED, "user": user}, headers={"x-tenant": "ids-user"})
    assert ok.status_code == 200, ok.text
    assert ledger_rows(server, "ids-user")[ok.headers["x-switchboard-request-id"]].call_id is None


def test_valid_ids_pass_and_a_user_that_is_not_the_call_id_is_not_checked(server: GatewayServer) -> None:
    headers = {"x-tenant": "ids-ok", "x-call-id": "CA1f0e:sip@pbx.example-1", "x-caller-id": "+15550100"[1:]}
    ok = httpx.post(f"{server.base_url}{CHAT}", json={**PINNED, "user": "Jane Doe <jane@x>"}, headers=headers)
    assert ok.status_code == 200, ok.text
    row = ledger_rows(server, "ids-ok")[ok.headers["x-switchboard-request-id"]]
    assert (row.call_id, row.caller_id) == ("CA1f0e:sip@pbx.example-1", "15550100")


def test_500_distinct_tenants_and_agents_keep_metrics_bounded(server: GatewayServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        before = client.get("/metrics").text
        for i in range(500):
            response = client.post(CHAT, json=PINNED, headers={"x-tenant": f"tenant-{i}", "x-agent": f"agent-{i}"})
            assert response.status_code == 200
        after = client.get("/metrics").text
    tenants, agents = label_values(after, "tenant"), label_values(after, "agent")
    assert len(tenants - {"other"}) == 10 and "other" in tenants  # the first ten, then everyone else
    assert len(agents - {"", "other"}) == 10 and "other" in agents
    growth = len(series(after)) - len(series(before))
    assert growth < 400, f"/metrics grew by {growth} series for 500 distinct callers"
    assert "tenant-499" in {row.tenant for row in ledger_rows(server, "tenant-499").values()}  # the ledger is exact


def test_with_keys_only_pinned_or_allow_listed_agents_become_labels(tmp_path: Path, simulator: SimulatorServer) -> None:
    config = gateway_config(simulator.base_url)
    with make_gateway(tmp_path, config, admin_key=ADMIN_KEY, metrics_agents=["billing"]) as gateway:
        base = gateway.base_url

        def key(**spec: str) -> dict[str, str]:
            response = httpx.post(f"{base}/admin/keys", json={"tenant": "acme", **spec}, headers=ADMIN)
            assert response.status_code == 201, response.text
            return {"authorization": f"Bearer {response.json()['key']}"}

        pinned, unpinned = key(agent="reception"), key()
        for headers in (
            {**pinned, "x-agent": "spoofed"},
            {**unpinned, "x-agent": "billing"},
            *({**unpinned, "x-agent": f"rogue-{i}"} for i in range(20)),
        ):
            assert httpx.post(f"{base}{CHAT}", json=PINNED, headers=headers).status_code == 200
        agents = label_values(httpx.get(f"{base}/metrics").text, "agent") - {""}
    assert agents == {"reception", "billing", "other"}


def test_metrics_docs_and_openapi_need_the_token_when_one_is_set(tmp_path: Path, simulator: SimulatorServer) -> None:
    config = gateway_config(simulator.base_url)
    with make_gateway(tmp_path, config, admin_key=ADMIN_KEY, metrics_token="scrape-91f2") as gateway:
        for path in ("/metrics", "/docs", "/openapi.json"):
            refused = httpx.get(f"{gateway.base_url}{path}")
            assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error", path
            assert httpx.get(f"{gateway.base_url}{path}", headers={"authorization": "Bearer wrong"}).status_code == 401
            for token in ("scrape-91f2", ADMIN_KEY):
                allowed = httpx.get(f"{gateway.base_url}{path}", headers={"authorization": f"Bearer {token}"})
                assert allowed.status_code == 200, path
        assert httpx.get(f"{gateway.base_url}/healthz").status_code == 200
    (tmp_path / "nodocs").mkdir()
    with make_gateway(tmp_path / "nodocs", config, docs=False) as gateway:
        assert httpx.get(f"{gateway.base_url}/docs").status_code == 404
        assert httpx.get(f"{gateway.base_url}/openapi.json").status_code == 404
        assert httpx.get(f"{gateway.base_url}/metrics").status_code == 200
