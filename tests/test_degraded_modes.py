"""Faults around the gateway: Redis dying mid-run, and callers hanging up mid-stream (barge-in)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from router.simulator import SimulatorServer
from tests.conftest import gateway_config, make_gateway
from tests.redis_server import RedisServer
from tests.test_gateway_e2e import MESSAGES, set_behaviour, sim_stats


def _wait(condition, timeout: float = 10.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@pytest.mark.e2e
def test_redis_killed_and_restarted_mid_run_loses_nothing_and_fails_nothing(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    with RedisServer() as redis_server:
        config = gateway_config(simulator.base_url)
        with make_gateway(tmp_path, config, redis_url=redis_server.url) as gateway:
            statuses: list[int] = []
            readiness: list[str] = []
            stop = threading.Event()

            def load() -> None:
                with httpx.Client(timeout=10) as client:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        response = client.post(
                            f"{gateway.base_url}/v1/chat/completions",
                            json={"model": "auto", "messages": MESSAGES, "stream": n % 3 == 0},
                            headers={"X-Call-Id": f"call-{n % 7}"},
                        )
                        statuses.append(response.status_code)

            worker = threading.Thread(target=load)
            worker.start()
            try:
                _wait(lambda: len(statuses) >= 30)
                redis_server.stop(persist=True)
                served_before_restart = len(statuses)
                _wait(lambda: len(statuses) >= served_before_restart + 60)
                readiness.append(httpx.get(f"{gateway.base_url}/readyz").json()["status"])
                redis_server.start()
                _wait(lambda: len(statuses) >= served_before_restart + 120)
            finally:
                stop.set()
                worker.join()
            ledger = gateway.services.recorder.ledger
            assert _wait(lambda: ledger.healthy and ledger.pending == 0, timeout=15)
            recorded = gateway.call(ledger.sink.count())
            # Redis is probed every 5 s while down, traffic or not.
            ready_after = _wait(lambda: httpx.get(f"{gateway.base_url}/readyz").json()["status"] == "ready", 7)
    assert statuses and all(status == 200 for status in statuses), set(statuses)
    assert readiness == ["degraded"]
    assert ready_after
    assert recorded == len(statuses)


@pytest.mark.e2e
def test_caller_hanging_up_mid_stream_cancels_upstream_and_records_partial_usage(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    set_behaviour(simulator, "gpt-4o-mini", tokens_per_second=40, output_tokens=400)
    with make_gateway(tmp_path, gateway_config(simulator.base_url)) as gateway:
        body = orjson.dumps({"model": "small", "messages": MESSAGES, "stream": True})
        host, port = "127.0.0.1", gateway.port
        with socket.create_connection((host, port)) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                b"x-call-id: barge-in\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            received = b""
            while received.count(b"data: ") < 8:
                received += sock.recv(65536)
            hung_up_at = time.monotonic()
        assert _wait(lambda: sim_stats(simulator)["streams_cancelled"] == 1, timeout=2)
        noticed = time.monotonic() - hung_up_at
        ledger = gateway.services.recorder.ledger
        assert _wait(lambda: ledger.pending == 0)
        records = gateway.call(ledger.sink.query("default", call_id="barge-in"))
        metrics = httpx.get(f"{gateway.base_url}/metrics").text
    assert noticed < 1.0
    (record,) = records
    assert record.interrupted and record.status == 499
    assert 5 <= record.completion_tokens < 400
    assert record.usage_estimated  # the upstream never sent its usage chunk: counted with tiktoken
    assert record.cost_usd > 0 and record.interrupted_cost_usd == record.cost_usd
    assert "switchboard_interrupted_cost_usd_total{" in metrics
