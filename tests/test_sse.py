"""Upstream server-sent events: the decoder against the standard's rules, and oversized events end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.providers.sse import EventTooLarge, ServerSentEvent, SSEDecoder
from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.test_auth_e2e import ledger_records
from tests.test_gateway_e2e import MESSAGES, set_behaviour


def decode(*chunks: bytes, limit: int = 1024) -> list[ServerSentEvent]:
    decoder = SSEDecoder(limit)
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_every_line_end_counts_even_split_across_chunks() -> None:
    stream = b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r\n\r\n"
    assert [e.data for e in decode(stream)] == ["a", "b", "c", "d"]
    # The same bytes one at a time: a CR ending one chunk and an LF starting the next are one line end.
    assert [e.data for e in decode(*(stream[i : i + 1] for i in range(len(stream))))] == ["a", "b", "c", "d"]


def test_fields_comments_and_multi_line_data() -> None:
    events = decode(b'\xef\xbb\xbf: keep-alive\nevent: delta\nid: 7\nretry: 3000\ndata:{"a":\ndata:  1}\nbogus\n\n')
    assert events == [ServerSentEvent(data='{"a":\n 1}', event="delta", id="7", retry=3000)]


def test_events_without_data_and_an_unfinished_event_are_not_dispatched() -> None:
    assert decode(b"event: ping\n\n: comment\n\ndata: kept\n\ndata: never finished\n") == [ServerSentEvent("kept")]
    assert decode(b"data:\n\n") == [ServerSentEvent("")]


def test_an_event_over_the_limit_fails_as_its_bytes_arrive() -> None:
    decoder = SSEDecoder(100)
    assert list(decoder.feed(b"data: " + b"x" * 90 + b"\n\n")) == [ServerSentEvent("x" * 90)]
    with pytest.raises(EventTooLarge):
        list(decoder.feed(b"data: " + b"x" * 60 + b"\n"))  # one line within the limit, the event not
        list(decoder.feed(b"data: " + b"x" * 60))
    with pytest.raises(EventTooLarge):
        list(SSEDecoder(100).feed(b"data: " + b"x" * 200))  # no line end yet: the limit holds all the same


def roomy_config(simulator: SimulatorServer) -> dict[str, Any]:
    """Deadlines far beyond a busy machine's slowest relay of megabytes: these tests are about sizes, not time."""
    config = gateway_config(simulator.base_url)
    for deployment in config["deployments"]:
        deployment["timeouts"] = {"connect": 5, "first_token": 30, "total": 60}
    return config


def stream_text(gateway: GatewayServer, call_id: str) -> tuple[str, openai.APIError | None]:
    headers = {"X-Tenant": "acme", "X-Call-Id": call_id}
    received: list[str] = []
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        try:
            for chunk in client.chat.completions.create(
                model="small", messages=MESSAGES, stream=True, extra_headers=headers
            ):
                received.extend(c.delta.content or "" for c in chunk.choices)
        except openai.APIError as error:
            return "".join(received), error
    return "".join(received), None


@pytest.mark.e2e
def test_an_event_over_the_old_line_limit_is_relayed_whole(tmp_path: Path, simulator: SimulatorServer) -> None:
    # aiohttp's line reader raised LineTooLong past 512 KiB; the decoder's limit is on events and far higher.
    set_behaviour(simulator, "gpt-4o-mini", oversized_event_bytes=600 * 1024, drop_after_chunks=2)
    with make_gateway(tmp_path, roomy_config(simulator)) as gateway:
        text, error = stream_text(gateway, "big-event")
        [row] = ledger_records(gateway, "acme", "big-event")
    assert error is None and text.count("x") >= 600 * 1024
    assert row.status == 200 and row.deployment == "small-a"


@pytest.mark.e2e
def test_an_oversized_first_event_fails_over_like_a_dropped_stream(tmp_path: Path, simulator: SimulatorServer) -> None:
    set_behaviour(simulator, "gpt-4o-mini", oversized_event_bytes=5 * 1024 * 1024, drop_after_chunks=0)
    with make_gateway(tmp_path, roomy_config(simulator)) as gateway:
        raw = httpx.post(
            f"{gateway.base_url}/v1/chat/completions",
            json={"model": "small", "messages": MESSAGES, "stream": True},
            headers={"X-Tenant": "acme", "X-Call-Id": "first-event"},
            timeout=120,
        )
        [row] = ledger_records(gateway, "acme", "first-event")
    assert raw.status_code == 200 and raw.headers["x-switchboard-deployment"] == "small-b"
    assert raw.headers["x-switchboard-fallbacks"] == "1" and "x" * 1000 not in raw.text
    assert row.status == 200 and row.deployment == "small-b" and row.fallbacks == 1


@pytest.mark.e2e
def test_an_oversized_event_mid_stream_is_an_upstream_error_in_the_ledger(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    set_behaviour(simulator, "gpt-4o-mini", oversized_event_bytes=5 * 1024 * 1024, drop_after_chunks=2)
    with make_gateway(tmp_path, roomy_config(simulator)) as gateway:
        text, error = stream_text(gateway, "mid-stream")
        [row] = ledger_records(gateway, "acme", "mid-stream")
    assert text and "x" * 1000 not in text, "the chunks before the oversized event were relayed, none of it"
    assert error is not None and "exceeded" in str(error.message)
    assert row.status == 502 and row.error_type == "upstream_stream_error" and row.deployment == "small-a"
