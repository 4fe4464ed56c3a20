"""The access log: one structured line per request, with the ledger's facts of a turn and nothing a caller wrote."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from router import headers as H
from router.logs import JsonFormatter
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import GatewayServer, gateway_config, make_gateway

pytestmark = pytest.mark.e2e

SECRET_WORDS = "my card is 4111 1111 1111 1111 and my pin is 9876"
CALLER = {H.TENANT: "clinic-north", H.AGENT: "front-desk", H.CALL_ID: "call-77", H.CALLER_ID: "caller-phone-5550100"}


def _chat(gateway: GatewayServer, **body: object) -> httpx.Response:
    payload = {"model": "auto", "messages": [{"role": "user", "content": SECRET_WORDS}], **body}
    return httpx.post(f"{gateway.base_url}/v1/chat/completions", json=payload, headers=CALLER, timeout=10)


def _ledger_row(gateway: GatewayServer, request_id: str) -> sqlite3.Row:
    with sqlite3.connect(f"file:{gateway.settings.ledger_path}?mode=ro", uri=True) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute("SELECT * FROM ledger WHERE request_id = ?", (request_id,)).fetchone()


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "switchboard.access"]


def test_one_line_per_request_with_the_ledgers_facts_and_no_caller_text(
    gateway: GatewayServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="switchboard.access"):
        served = _chat(gateway)
        streamed = _chat(gateway, stream=True)
        bad = httpx.post(f"{gateway.base_url}/v1/chat/completions", content=b"{nope", headers=CALLER, timeout=10)
        unknown = _chat(gateway, model="no-such-model")
        missing = httpx.get(f"{gateway.base_url}/v2/nowhere?token=sk-secretsecret", timeout=10)
        huge = httpx.post(
            f"{gateway.base_url}/v1/chat/completions", content=b"x" * (5 * 1024 * 1024), headers=CALLER, timeout=30
        )
    assert [r.status_code for r in (served, streamed, bad, unknown, missing, huge)] == [200, 200, 400, 404, 404, 413]
    lines = _lines(caplog)
    assert [line.status for line in lines] == [200, 200, 400, 404, 404, 413]  # type: ignore[attr-defined]

    turn = vars(lines[0])
    row = _ledger_row(gateway, served.headers[H.REQUEST_ID])
    for name in ("request_id", "tenant", "agent", "call_id", "tier", "deployment", "rule"):
        assert turn[name] == row[name], name
    assert turn["requested_model"] == "auto" and turn["cost_usd"] == pytest.approx(row["cost_usd"])
    assert turn["method"] == "POST" and turn["path"] == "/v1/chat/completions" and turn["latency_ms"] > 0
    assert vars(lines[1])["stream"] is True and vars(lines[1])["cost_usd"] > 0
    assert vars(lines[2])["error_type"] == "invalid_json" and vars(lines[2])["tenant"] == "clinic-north"
    assert vars(lines[3])["requested_model"] == "no-such-model"
    assert vars(lines[4])["path"] == "/v2/nowhere" and "request_id" not in vars(lines[4])

    written = "\n".join(JsonFormatter().format(line) for line in lines)
    for line in written.splitlines():
        assert json.loads(line)["logger"] == "switchboard.access"
    for never in ("4111", "9876", "pin", "caller-phone", "secretsecret", "token="):
        assert never not in written


def test_the_access_log_can_be_turned_off(
    tmp_path: Path, simulator: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        make_gateway(tmp_path, gateway_config(simulator.base_url), access_log=False) as gateway,
        caplog.at_level(logging.INFO, logger="switchboard.access"),
    ):
        assert _chat(gateway).status_code == 200
    assert _lines(caplog) == []


def test_a_caller_who_hangs_up_is_logged_as_499(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    slow = SimulatorSettings(models={"*": ModelBehaviour(ttft_ms=3000)})
    with (
        SimulatorServer(slow) as simulator,
        make_gateway(tmp_path, gateway_config(simulator.base_url)) as gateway,
        caplog.at_level(logging.INFO, logger="switchboard.access"),
    ):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{gateway.base_url}/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]},
                headers=CALLER,
                timeout=httpx.Timeout(10, read=0.5),
            )
        deadline = time.monotonic() + 10
        while not _lines(caplog) and time.monotonic() < deadline:
            time.sleep(0.05)
    (line,) = _lines(caplog)
    assert vars(line)["status"] == 499 and vars(line)["call_id"] == "call-77" and vars(line)["tier"]
