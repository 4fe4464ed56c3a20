"""No dead air, end to end: first-token deadlines, hedged requests and the stall guard, through the real openai SDK
against a real gateway in front of the provider simulator (slow first tokens and mid-stream stalls injected)."""

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

from router.accounting.ledger import STREAM_UNFINISHED
from router.accounting.usage import Usage
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import GatewayServer, gateway_config, make_gateway

MESSAGES = [{"role": "user", "content": "What time do you open tomorrow?"}]
SLOW_MS = 3000
FAST_TTFT_MS = 200
DEADLINE_MS = 500

pytestmark = pytest.mark.e2e


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    # small-a (gpt-4o-mini) accepts and sits silent for 3 s; small-b (gpt-4.1-mini) is healthy.
    models = {
        "gpt-4o-mini": ModelBehaviour(ttft_ms=SLOW_MS, tokens_per_second=200, output_tokens=20),
        "gpt-4.1-mini": ModelBehaviour(ttft_ms=FAST_TTFT_MS, tokens_per_second=200, output_tokens=20),
        "*": ModelBehaviour(),
    }
    with SimulatorServer(SimulatorSettings(models=models, seed=7)) as server:
        yield server


def voice_config(sim_url: str, latency: dict[str, Any]) -> dict[str, Any]:
    config = gateway_config(sim_url, latency=latency)
    for deployment in config["deployments"]:  # the slow first token alone never trips a plain timeout
        deployment["timeouts"] = {"connect": 1, "first_token": 10, "total": 20}
    return config


def ledger_rows(gateway: GatewayServer, request_id: str) -> list[dict[str, Any]]:
    path = Path(gateway.settings.data_dir) / "ledger.sqlite3"
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(path) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM ledger WHERE request_id = ?", (request_id,))]
        if len(rows) >= 2 or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def metric(gateway: GatewayServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{gateway.base_url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def wait_for_cancellations(simulator: SimulatorServer, streams: int, requests: int = 0) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        stats = httpx.get(f"{simulator.base_url}/_sim/stats").json()
        done = stats["streams_cancelled"] >= streams and stats["requests_cancelled"] >= requests
        if done or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def warm_up(client: openai.OpenAI) -> None:
    """One turn on another tier first: a fresh process loads its token counter on its first request."""
    client.chat.completions.create(model="frontier", messages=MESSAGES)


def prompt_price(gateway: GatewayServer, deployment: str, prompt_tokens: int) -> float:
    recorder = gateway.services.recorder
    config = gateway.services.gateway.config
    return recorder.price(config.deployment(deployment), Usage(prompt_tokens=prompt_tokens, completion_tokens=0))[0]


def test_a_silent_first_deployment_is_hedged_and_the_caller_hears_the_second(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    config = voice_config(simulator.base_url, {"tiers": {"small": {"first_token_deadline_ms": DEADLINE_MS}}})
    with (
        make_gateway(tmp_path, config) as gateway,
        openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        warm_up(client)
        sent = time.perf_counter()
        raw = client.chat.completions.with_raw_response.create(
            model="small", messages=MESSAGES, stream=True, extra_headers={"x-call-id": "call-hedge-1"}
        )
        first_content_s = None
        text = []
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                first_content_s = first_content_s or time.perf_counter() - sent
                text.append(chunk.choices[0].delta.content)
        headers = raw.headers
        request_id = headers["x-switchboard-request-id"]
        rows = ledger_rows(gateway, request_id)
        stats = wait_for_cancellations(simulator, streams=1)
        call = httpx.get(f"{gateway.base_url}/v1/calls/call-hedge-1").json()
        hedges = metric(gateway, "switchboard_hedges_total", deployment="small-b", winner="hedge")
        wasted_metric = metric(gateway, "switchboard_hedge_wasted_cost_usd_total", deployment="small-a")
        cost_metric = metric(gateway, "switchboard_cost_usd_total", tier="small")
        fallbacks = metric(gateway, "switchboard_fallbacks_total")
        expected_waste = prompt_price(gateway, "small-a", rows[0]["prompt_tokens"])

    assert "".join(text)
    assert headers["x-switchboard-deployment"] == "small-b"
    assert headers["x-switchboard-hedge-winner"] == "hedge"
    assert headers["x-switchboard-hedge-cancelled"] == "small-a"
    served = next(r for r in rows if r["record_id"] == request_id)
    wasted = next(r for r in rows if r["error_type"] == "hedge_wasted")
    # The gateway's own time to first token: the deadline, then the second deployment's first token — far from 3 s.
    print(f"hedged TTFT: gateway {served['ttft_ms']:.0f} ms, client {first_content_s * 1000:.0f} ms")
    assert DEADLINE_MS + FAST_TTFT_MS <= served["ttft_ms"] < SLOW_MS / 2
    assert first_content_s is not None and first_content_s < SLOW_MS / 1000
    assert (served["status"], served["deployment"], served["error_type"]) == (200, "small-b", None)
    # Both attempts ledgered: the slow one's prompt was billed for nobody, priced at its own deployment.
    assert (wasted["deployment"], wasted["status"], wasted["completion_tokens"]) == ("small-a", 200, 0)
    assert wasted["prompt_tokens"] == served["prompt_tokens"] > 0
    assert wasted["cost_usd"] == pytest.approx(expected_waste, rel=1e-9) and expected_waste > 0
    assert wasted["baseline_cost_usd"] == 0.0
    assert stats["streams_cancelled"] == 1  # the slow stream was cancelled, not left running
    assert hedges == 1
    assert fallbacks == 0  # the cancelled attempt did not fail
    # The wait for the deadline was upstream time, not the gateway's: overhead excludes it.
    assert served["overhead_ms"] < DEADLINE_MS
    assert wasted_metric == pytest.approx(wasted["cost_usd"], rel=1e-9)
    assert cost_metric == pytest.approx(served["cost_usd"] + wasted["cost_usd"], rel=1e-9)
    assert call["totals"]["turns"] == 1
    assert call["totals"]["hedge_wasted_usd"] == pytest.approx(wasted["cost_usd"], rel=1e-9)
    assert call["totals"]["cost_usd"] == pytest.approx(served["cost_usd"] + wasted["cost_usd"], rel=1e-9)


def test_a_hedge_losers_record_is_durable_before_the_winners_first_byte(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    """A gateway killed mid-stream keeps the loser's spend: its record is committed with the stream's provisional
    one, before the first byte, not only when the stream ends."""
    # The hedge (small-b) answers at 200 ms, then streams its 20 tokens over about 4 s.
    httpx.put(f"{simulator.base_url}/_sim/models/gpt-4.1-mini", json={"tokens_per_second": 5}).raise_for_status()
    config = voice_config(simulator.base_url, {"tiers": {"small": {"first_token_deadline_ms": DEADLINE_MS}}})
    ledger = tmp_path / "data" / "ledger.sqlite3"  # make_gateway's data_dir

    def rows(request_id: str) -> dict[str, tuple[Any, ...]]:
        sql = "SELECT record_id, deployment, error_type, cost_usd, prompt_tokens FROM ledger WHERE request_id = ?"
        with sqlite3.connect(ledger) as db:
            return {row[0]: row[1:] for row in db.execute(sql, (request_id,))}

    with (
        make_gateway(tmp_path, config) as gateway,
        openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        warm_up(client)
        raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES, stream=True)
        request_id = raw.headers["x-switchboard-request-id"]
        loser_id = f"{request_id}:hedge:0"
        chunks = iter(raw.parse())
        next(c for c in chunks if c.choices and c.choices[0].delta.content)
        mid_stream = rows(request_id)  # mid-answer: what a kill -9 of the gateway now would leave in the ledger
        assert list(chunks)
        deadline = time.monotonic() + 5
        while (final := rows(request_id))[request_id][1] == STREAM_UNFINISHED and time.monotonic() < deadline:
            time.sleep(0.05)
        expected_waste = prompt_price(gateway, "small-a", final[request_id][3])
    assert set(mid_stream) == {request_id, loser_id}
    assert mid_stream[request_id][:2] == ("small-b", STREAM_UNFINISHED)
    assert mid_stream[loser_id][:2] == ("small-a", "hedge_wasted")
    assert mid_stream[loser_id][2] == pytest.approx(expected_waste, rel=1e-9) and expected_waste > 0
    # The final records replace both under the same ids: the loser's spend is counted once, as it was.
    assert set(final) == {request_id, loser_id}
    assert final[request_id][:2] == ("small-b", None)
    assert final[loser_id] == mid_stream[loser_id]


def test_an_early_hedge_loses_to_the_first_answer_and_is_cancelled(tmp_path: Path, simulator: SimulatorServer) -> None:
    # hedge_after_ms starts small-b at 100 ms; small-a answers at 400 ms, small-b would take 3 s.
    httpx.put(f"{simulator.base_url}/_sim/models/gpt-4o-mini", json={"ttft_ms": 400}).raise_for_status()
    httpx.put(f"{simulator.base_url}/_sim/models/gpt-4.1-mini", json={"ttft_ms": SLOW_MS}).raise_for_status()
    latency = {"tiers": {"small": {"hedge_after_ms": 100, "first_token_deadline_ms": 1000}}}
    with (
        make_gateway(tmp_path, voice_config(simulator.base_url, latency)) as gateway,
        openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES, stream=True)
        assert list(raw.parse())
        rows = ledger_rows(gateway, raw.headers["x-switchboard-request-id"])
        stats = wait_for_cancellations(simulator, streams=1)
        health = gateway.services.gateway.chain.health.snapshot()
    assert raw.headers["x-switchboard-deployment"] == "small-a"
    assert raw.headers["x-switchboard-hedge-winner"] == "first"
    assert raw.headers["x-switchboard-hedge-cancelled"] == "small-b"
    assert raw.headers["x-switchboard-fallbacks"] == "0"  # a hedge that lost is not a fallback
    assert sorted((r["deployment"], r["error_type"]) for r in rows) == [("small-a", None), ("small-b", "hedge_wasted")]
    assert stats["streams_cancelled"] == 1
    # Cancelled before its own deadline: not held against the hedge's health.
    assert health["small-b"]["consecutive_failures"] == 0


def test_a_non_streamed_answer_hedges_on_time_to_response(tmp_path: Path, simulator: SimulatorServer) -> None:
    latency = {"tiers": {"small": {"hedge_after_ms": DEADLINE_MS}}}
    with (
        make_gateway(tmp_path, voice_config(simulator.base_url, latency)) as gateway,
        openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        warm_up(client)
        raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES)
        answer = raw.parse()
        request_id = raw.headers["x-switchboard-request-id"]
        rows = ledger_rows(gateway, request_id)
        stats = wait_for_cancellations(simulator, streams=0, requests=1)
    assert answer.choices[0].message.content
    assert raw.headers["x-switchboard-deployment"] == "small-b"
    assert raw.headers["x-switchboard-hedge-winner"] == "hedge"
    served = next(r for r in rows if r["record_id"] == request_id)
    assert DEADLINE_MS + FAST_TTFT_MS <= served["total_ms"] < SLOW_MS / 2
    assert [r["deployment"] for r in rows if r["error_type"] == "hedge_wasted"] == ["small-a"]
    assert stats["requests_cancelled"] == 1


def test_a_stream_that_stalls_mid_answer_ends_with_a_clean_error_event(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    stall = {"rate_stall": 1.0, "stall_after_chunks": 3, "stall_ms": 8000, "output_tokens": 30}
    httpx.put(f"{simulator.base_url}/_sim/models/gpt-4o-mini", json=stall).raise_for_status()
    latency = {"deployments": {"small-a": {"stall_ms": 400}}}
    with (
        make_gateway(tmp_path, voice_config(simulator.base_url, latency)) as gateway,
        openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES, stream=True)
        received = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in raw.parse():
                received.append(chunk)
        request_id = raw.headers["x-switchboard-request-id"]
        path = Path(gateway.settings.data_dir) / "ledger.sqlite3"
        time.sleep(0.2)
        with sqlite3.connect(path) as db:
            status, error_type, total_ms, cost = db.execute(
                "SELECT status, error_type, total_ms, cost_usd FROM ledger WHERE request_id = ?", (request_id,)
            ).fetchone()
        stats = wait_for_cancellations(simulator, streams=1)
    assert received, "the chunks before the stall were relayed"
    assert "stalled" in str(caught.value.message)
    assert (status, error_type) == (502, "upstream_stream_error")
    assert cost > 0  # what was produced is billed
    # The gateway's own clock: ended at the stall guard, not after the upstream's 8 s of silence.
    assert 400 <= total_ms < 4000
    assert stats["streams_cancelled"] == 1
