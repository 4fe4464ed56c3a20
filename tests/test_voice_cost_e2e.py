"""The whole cost of a call, end to end: speech usage per turn (``metadata.voice``) and at call end
(``POST /v1/calls/{id}/usage``), priced from the gateway's ``speech_prices``, in the ledger, ``GET /v1/calls/{id}``
and the metrics; hostile usage reports are refused naming the field, and ledgered."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.accounting.report import build_report
from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "Can I book a cleaning for next Tuesday?"}]
PRICES = {
    "stt_per_minute": {"deepgram/nova-3": 0.0077, "deepgram": 0.0058},
    "tts_per_million_characters": {"elevenlabs": 180.0, "default": 15.0},
    "telephony_per_minute": {"twilio": 0.0085},
}
TENANT = {"x-tenant": "clinic-north"}


@pytest.fixture
def gateway(tmp_path: Path, simulator: SimulatorServer) -> Iterator[GatewayServer]:
    with make_gateway(tmp_path, gateway_config(simulator.base_url, speech_prices=PRICES)) as server:
        yield server


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0, default_headers=TENANT) as client:
        yield client


def metric(gateway: GatewayServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{gateway.base_url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def ledger_row(gateway: GatewayServer, request_id: str, columns: str) -> tuple[Any, ...] | None:
    """A request's ledger row (a refusal is queued, not awaited: wait for it a little)."""
    path = Path(gateway.settings.data_dir) / "ledger.sqlite3"
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(path) as db:
            row = db.execute(f"SELECT {columns} FROM ledger WHERE request_id = ?", (request_id,)).fetchone()
        if row is not None or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def usage(gateway: GatewayServer, call_id: str, body: Any, headers: dict[str, str] = TENANT) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}/v1/calls/{call_id}/usage", json=body, headers=headers)


def test_speech_per_turn_and_at_call_end_is_priced_everywhere(gateway: GatewayServer, client: openai.OpenAI) -> None:
    first_voice = {
        "stt_seconds": 12.5,
        "stt_vendor": "deepgram",
        "stt_model": "nova-3",
        "tts_characters": 240,
        "tts_vendor": "elevenlabs",
        "call_seconds": 20,
    }
    client.chat.completions.create(
        model="small", messages=MESSAGES, extra_body={"metadata": {"call_id": "call-7", "voice": first_voice}}
    )
    second_voice = {"stt_seconds": 7.5, "stt_vendor": "deepgram", "tts_characters": 100, "call_seconds": 45}
    stream = client.chat.completions.create(
        model="small",
        messages=MESSAGES,
        stream=True,
        extra_body={"metadata": {"call_id": "call-7", "voice": second_voice}},
    )
    assert list(stream)
    report = {"telephony_seconds": 90, "telephony_vendor": "twilio", "call_seconds": 90, "outcome": "resolved"}
    reported = usage(gateway, "call-7", report)
    assert reported.status_code == 200, reported.text
    call = httpx.get(f"{gateway.base_url}/v1/calls/call-7", headers=TENANT).json()

    stt = 12.5 / 60 * 0.0077 + 7.5 / 60 * 0.0058  # nova-3's own price, then deepgram's vendor price
    tts = 240 / 1e6 * 180.0 + 100 / 1e6 * 15.0  # elevenlabs, then the default TTS price
    telephony = 90 / 60 * 0.0085
    totals = call["totals"]
    assert totals["turns"] == 2
    assert totals["cost_by_kind"]["stt"] == pytest.approx(stt, rel=1e-12)
    assert totals["cost_by_kind"]["tts"] == pytest.approx(tts, rel=1e-12)
    assert totals["cost_by_kind"]["telephony"] == pytest.approx(telephony, rel=1e-12)
    llm = totals["cost_by_kind"]["llm"]
    assert llm == pytest.approx(totals["cost_usd"]) and llm > 0
    assert totals["total_cost_usd"] == pytest.approx(llm + stt + tts + telephony, rel=1e-12)
    assert (totals["stt_seconds"], totals["tts_characters"], totals["telephony_seconds"]) == (20.0, 340, 90.0)
    assert totals["call_seconds"] == 90
    assert totals["cost_per_minute_usd"] == pytest.approx(totals["total_cost_usd"] / 1.5, rel=1e-12)
    assert totals["outcome"] == "resolved"

    # The metrics agree with the ledger, kind by kind, and the call finished once, resolved.
    assert metric(gateway, "switchboard_speech_cost_usd_total", kind="stt") == pytest.approx(stt, rel=1e-12)
    assert metric(gateway, "switchboard_speech_cost_usd_total", kind="tts", vendor="elevenlabs") == pytest.approx(
        240 / 1e6 * 180.0, rel=1e-12
    )
    assert metric(gateway, "switchboard_speech_cost_usd_total", kind="telephony") == pytest.approx(telephony, rel=1e-12)
    assert metric(gateway, "switchboard_calls_total", tenant="clinic-north") == 1
    assert metric(gateway, "switchboard_call_outcomes_total", outcome="resolved") == 1
    assert metric(gateway, "switchboard_call_seconds_total") == 90
    assert metric(gateway, "switchboard_call_outcome_cost_usd_total", outcome="resolved") == pytest.approx(
        totals["total_cost_usd"], rel=1e-9
    )

    # Idempotent: the same report again answers the same; other figures are a conflict; the first is kept.
    again = usage(gateway, "call-7", report)
    assert again.status_code == 200 and again.json()["totals"] == totals
    conflict = usage(gateway, "call-7", {**report, "telephony_seconds": 91})
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "call_usage_conflict"
    assert metric(gateway, "switchboard_calls_total", tenant="clinic-north") == 1
    # Tenant-scoped: another tenant neither sees the call nor touches its report.
    other = {"x-tenant": "clinic-south"}
    assert httpx.get(f"{gateway.base_url}/v1/calls/call-7", headers=other).status_code == 404
    assert usage(gateway, "call-7", {**report, "telephony_seconds": 5}, headers=other).status_code == 200
    assert httpx.get(f"{gateway.base_url}/v1/calls/call-7", headers=TENANT).json()["totals"] == totals

    # The finance report reads the same ledger: the whole cost, per resolved call, by tenant.
    report = build_report(Path(gateway.settings.data_dir) / "ledger.sqlite3", by=["tenant"])
    north = report[report["tenant"] == "clinic-north"].iloc[0]
    # Two turns and the refused (409) report; the accepted usage report is the call's, not a request.
    assert (north["requests"], north["errors"]) == (3, 1)
    assert north["total_cost_usd"] == pytest.approx(totals["total_cost_usd"], rel=1e-12)
    assert (north["calls"], north["resolved_calls"], north["transferred_share"]) == (1, 1, 0.0)
    assert north["cost_per_resolved_call_usd"] == pytest.approx(totals["total_cost_usd"], rel=1e-12)


@pytest.mark.parametrize(
    ("voice", "param", "code"),
    [
        ({"stt_seconds": "12"}, "metadata.voice.stt_seconds", "invalid_value"),
        ({"stt_seconds": 1e12, "stt_vendor": "deepgram"}, "metadata.voice.stt_seconds", "invalid_value"),
        ({"tts_characters": -1}, "metadata.voice.tts_characters", "invalid_value"),
        ({"tts_characters": 1.5}, "metadata.voice.tts_characters", "invalid_value"),
        ({"stt_seconds": 3, "stt_vendor": "x" * 65}, "metadata.voice.stt_vendor", "invalid_value"),
        ({"stt_seconds": 3, "stt_vendor": "acme"}, "metadata.voice.stt_vendor", "unknown_speech_vendor"),
        ({"telephony_seconds": 3}, "metadata.voice.telephony_vendor", "unknown_speech_vendor"),
        ({"outcome": "happy"}, "metadata.voice.outcome", "invalid_value"),
    ],
)
def test_hostile_speech_metadata_is_refused_naming_the_field_and_ledgered(
    gateway: GatewayServer, client: openai.OpenAI, voice: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="small", messages=MESSAGES, extra_body={"metadata": {"voice": voice}})
    error = caught.value.body
    assert (error["param"], error["code"]) == (param, code)
    request_id = caught.value.response.headers["x-switchboard-request-id"]
    assert ledger_row(gateway, request_id, "status, error_type") == (400, code)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"telephony_seconds": "90", "telephony_vendor": "twilio"}, 400, "telephony_seconds"),
        ({"telephony_seconds": 90, "telephony_vendor": "twilio", "extra": 1}, 400, "extra"),
        ({"call_seconds": float("nan")}, 400, None),
        ({"call_seconds": -1}, 400, "call_seconds"),
        ({"outcome": "resolved", "stt_seconds": 1, "stt_vendor": "nobody"}, 400, "stt_vendor"),
        ([1, 2], 400, None),
        ({"stt_seconds": 1, "stt_vendor": "deepgram", "stt_model": "a" * 5000}, 413, None),
    ],
)
def test_hostile_usage_reports_are_refused_and_ledgered(
    gateway: GatewayServer, body: Any, status: int, param: str | None
) -> None:
    if isinstance(body, dict) and body.get("call_seconds") != body.get("call_seconds"):
        response = httpx.post(
            f"{gateway.base_url}/v1/calls/call-9/usage", content=b'{"call_seconds": NaN}', headers=TENANT
        )
    else:
        response = usage(gateway, "call-9", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if param is not None:
        assert error["param"] == param
    assert ledger_row(gateway, response.headers["x-switchboard-request-id"], "status") == (status,)


def test_a_malformed_call_id_is_refused_naming_it(gateway: GatewayServer) -> None:
    response = usage(gateway, "bad id!", {"outcome": "resolved"})
    assert (response.status_code, response.json()["error"]["param"]) == (400, "call_id")
