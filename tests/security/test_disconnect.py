"""Issue 11, item 10: a client that hangs up before its answer cancels the upstream request; the turn is recorded
as 499 and its budget reservation released, streamed or not."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.security.edge import CHAT, MESSAGES, ledger_rows

pytestmark = pytest.mark.e2e

TENANT = "hangup"
UPSTREAM_SECONDS = 10.0  # the answer the client stops waiting for


@pytest.fixture
def slow_simulator() -> Iterator[SimulatorServer]:
    behaviour = ModelBehaviour(ttft_ms=UPSTREAM_SECONDS * 1000)
    with SimulatorServer(SimulatorSettings(models={"*": behaviour})) as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, slow_simulator: SimulatorServer) -> Iterator[GatewayServer]:
    config = gateway_config(slow_simulator.base_url, budgets={"tenants": {TENANT: {"daily": {"hard_usd": 5}}}})
    for deployment in config["deployments"]:
        deployment["timeouts"] = {"connect": 1, "first_token": 30, "total": 60}
    with make_gateway(tmp_path, config) as gateway:
        yield gateway


def sim_stats(simulator: SimulatorServer) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(f"{simulator.base_url}/_sim/stats").json()
    return stats


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def hang_up_once_upstream(gateway: GatewayServer, simulator: SimulatorServer, body: dict[str, object]) -> None:
    """Send the request, wait until the upstream is working on it, and close without reading any answer."""
    address = urlsplit(gateway.base_url)
    payload = json.dumps(body).encode()
    head = (
        f"POST {CHAT} HTTP/1.1\r\nhost: {address.netloc}\r\ncontent-type: application/json\r\n"
        f"x-tenant: {TENANT}\r\ncontent-length: {len(payload)}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(head + payload)
        assert wait_until(lambda: sim_stats(simulator)["requests_total"] == 1), "the upstream never got the request"


def wait_for_row(gateway: GatewayServer, timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = list(ledger_rows(gateway, TENANT).values())
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError(f"no ledger row within {timeout_s} s")


@pytest.mark.parametrize("stream", [False, True])
def test_hang_up_cancels_upstream_and_records_499_with_the_reservation_released(
    server: GatewayServer, slow_simulator: SimulatorServer, stream: bool
) -> None:
    hang_up_once_upstream(server, slow_simulator, {"model": "small-a", "messages": MESSAGES, "stream": stream})
    row = wait_for_row(server, timeout_s=UPSTREAM_SECONDS / 2)
    assert (row.status, row.error_type, row.interrupted) == (499, "client_disconnected", True)  # type: ignore[attr-defined]
    # The gateway's own clock: the turn ended with the hang-up, not with the upstream answer.
    assert row.total_ms < UPSTREAM_SECONDS * 1000 / 2  # type: ignore[attr-defined]
    cancelled = "streams_cancelled" if stream else "requests_cancelled"
    assert wait_until(lambda: sim_stats(slow_simulator)[cancelled] == 1), "the upstream request was not cancelled"
    (daily,) = httpx.get(f"{server.base_url}/v1/budgets", headers={"x-tenant": TENANT}).json()["data"]
    assert daily["reserved_usd"] == 0 and daily["spent_usd"] == 0
