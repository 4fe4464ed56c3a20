"""Issue 11, item 11: slow or idle clients cannot hold connections: a head must arrive within
``header_timeout_seconds`` and a body within ``body_timeout_seconds``, else 408 and the connection closes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.security.edge import CHAT, MESSAGES, ledger_rows

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
# Closing is the server's job; the margin only covers this test's own scheduling on a loaded machine.
MARGIN = 2.0
ADMIN_KEY = "admin-slow-1"


@pytest.fixture
def server(tmp_path: Path, simulator: SimulatorServer) -> Iterator[GatewayServer]:
    settings = {"header_timeout_seconds": HEADER_TIMEOUT, "body_timeout_seconds": BODY_TIMEOUT, "admin_key": ADMIN_KEY}
    with make_gateway(tmp_path, gateway_config(simulator.base_url), **settings) as gateway:
        yield gateway


def connect(gateway: GatewayServer) -> socket.socket:
    address = urlsplit(gateway.base_url)
    sock = socket.create_connection((address.hostname, address.port))
    sock.settimeout(0.05)
    return sock


def trickle_until_closed(
    sock: socket.socket, data: bytes, interval: float, give_up_after: float
) -> tuple[bytes, float]:
    """Send ``data`` a byte per ``interval`` until the server closes; what it answered and when it closed."""
    started = time.monotonic()
    answer = b""
    position = 0
    while time.monotonic() - started < give_up_after:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            chunk = None
        except ConnectionResetError:
            break
        if chunk == b"":
            break
        answer += chunk or b""
        if position < len(data):
            try:
                sock.sendall(data[position : position + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            position += 1
        time.sleep(interval)
    return answer, time.monotonic() - started


def request_head(gateway: GatewayServer, content_length: int, path: str = CHAT) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: {urlsplit(gateway.base_url).netloc}\r\ncontent-type: application/json\r\n"
        f"x-tenant: slow\r\nauthorization: Bearer {ADMIN_KEY}\r\ncontent-length: {content_length}\r\n\r\n"
    ).encode()


def test_a_head_sent_byte_by_byte_is_408_and_closed_within_the_header_timeout(server: GatewayServer) -> None:
    with connect(server) as sock:
        answer, seconds = trickle_until_closed(sock, request_head(server, 100), 0.1, give_up_after=10)
    assert seconds < HEADER_TIMEOUT + MARGIN, f"still open after {seconds:.1f} s"
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"


def test_connections_that_send_nothing_are_closed_within_the_header_timeout(server: GatewayServer) -> None:
    sockets = [connect(server) for _ in range(100)]
    try:
        time.sleep(HEADER_TIMEOUT + MARGIN)
        still_open = 0
        for sock in sockets:
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                closed = False
            except ConnectionResetError:
                closed = True
            still_open += not closed
    finally:
        for sock in sockets:
            sock.close()
    assert still_open == 0, f"{still_open} of 100 idle connections still open after {HEADER_TIMEOUT + MARGIN} s"


def test_a_body_sent_byte_by_byte_is_408_with_a_ledger_row_and_closed(server: GatewayServer) -> None:
    body = json.dumps({"model": "small-a", "messages": MESSAGES}).encode()
    with connect(server) as sock:
        sock.sendall(request_head(server, len(body)))
        answer, seconds = trickle_until_closed(sock, body, 0.1, give_up_after=10)
    assert seconds < BODY_TIMEOUT + MARGIN, f"still open after {seconds:.1f} s"
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
    assert json.loads(payload)["error"]["code"] == "request_timeout"
    request_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-switchboard-request-id")
    )
    assert ledger_rows(server, "slow")[request_id].status == 408


def test_a_slow_body_to_any_route_is_408_and_closed(server: GatewayServer) -> None:
    body = b'{"path": "default.yaml"}'
    with connect(server) as sock:
        sock.sendall(request_head(server, len(body), "/admin/policy/reload"))
        answer, seconds = trickle_until_closed(sock, body, 0.1, give_up_after=10)
    assert seconds < BODY_TIMEOUT + MARGIN, f"still open after {seconds:.1f} s"
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert json.loads(payload)["error"]["code"] == "request_timeout"


def test_timely_clients_are_unaffected_on_a_kept_alive_connection(server: GatewayServer) -> None:
    body = json.dumps({"model": "small-a", "messages": MESSAGES}).encode()
    with connect(server) as sock:
        sock.settimeout(10)
        for _ in range(3):
            sock.sendall(request_head(server, len(body)) + body)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 ")
            time.sleep(HEADER_TIMEOUT * 1.5)  # idle between requests: keep-alive, not the head deadline, applies
