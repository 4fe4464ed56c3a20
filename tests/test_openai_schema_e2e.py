"""Every tier of the embedded default answers in OpenAI's published schema (tests/data/openai-openapi).

Eight turns per tier — text, text with tools offered, a demanded tool call and a tool result, each non-streamed and
streamed (with the usage chunk and its cost object) — through each tier's real path: small and standard over the
OpenAI wire, frontier (``claude-sonnet-4-5``) through litellm and the Anthropic wire. Every answer, chunk, model list
and error body is validated twice (tests/openai_spec.py): against the spec as published, and against the spec with
its objects closed, so a provider-specific extra cannot slip through either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from router import headers as H
from router.settings import Settings
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.openai_spec import CHUNK, COMPLETION, ERROR, MODELS, Reading, violations

pytestmark = pytest.mark.e2e

READINGS: tuple[Reading, ...] = ("published", "closed")
# The embedded default's tiers and the deployment that answers first in each (frontier goes through litellm).
TIERS = {"small": "gpt-4o-mini", "standard": "gpt-4o", "frontier": "claude-sonnet-4-5"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
GREETING = [{"role": "user", "content": "Hi there! Please reply with a short greeting."}]
WEATHER_ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]
ROUND_TRIP = [
    *WEATHER_ASK,
    {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 21, "condition": "sunny"}'},
]
USAGE = {"stream_options": {"include_usage": True}}
CALL_DEMANDED = {"messages": WEATHER_ASK, "tools": [WEATHER], "tool_choice": "required"}
CASES: dict[str, dict[str, Any]] = {
    "text": {"messages": GREETING},
    "text-tools-offered": {"messages": GREETING, "tools": [WEATHER]},
    "tool-call": CALL_DEMANDED,
    "tool-result": {"messages": ROUND_TRIP, "tools": [WEATHER]},
    "stream-text": {"messages": GREETING, "stream": True},
    "stream-usage": {"messages": GREETING, "stream": True, **USAGE},
    "stream-tool-call": {
        "messages": WEATHER_ASK,
        "tools": [WEATHER],
        "tool_choice": "required",
        "stream": True,
        **USAGE,
    },
    "stream-tool-result": {"messages": ROUND_TRIP, "tools": [WEATHER], "stream": True, **USAGE},
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    data_dir: Path = tmp_path_factory.mktemp("schema") / "data"
    with GatewayServer(Settings(data_dir=data_dir, classifier="off")) as server:
        yield server


@pytest.fixture(scope="module")
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{gateway.base_url}/v1", timeout=30) as http:
        yield http


def _events(response: httpx.Response) -> list[Any]:
    """The JSON events of an SSE answer, checking it ends with ``data: [DONE]``."""
    data = [line.removeprefix("data:").strip() for line in response.text.splitlines() if line.startswith("data:")]
    assert data and data[-1] == "[DONE]", response.text[-300:]
    return [orjson.loads(item) for item in data[:-1]]


def _nonconforming(name: str, instance: Any) -> list[str]:
    return [f"{reading}: {problem}" for reading in READINGS for problem in violations(name, instance, reading)]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("tier", list(TIERS))
def test_every_answer_of_every_tier_conforms_to_openais_schema(client: httpx.Client, tier: str, case: str) -> None:
    body = {"model": tier, **CASES[case]}
    response = client.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert (response.headers[H.TIER], response.headers[H.DEPLOYMENT]) == (tier, TIERS[tier])
    if not body.get("stream"):
        answer = response.json()
        assert _nonconforming(COMPLETION, answer) == []
        choice = answer["choices"][0]
        calls_tool = case == "tool-call"
        assert (choice["finish_reason"], bool(choice["message"].get("tool_calls"))) == (
            ("tool_calls", True) if calls_tool else ("stop", False)
        ), answer
        assert calls_tool or choice["message"]["content"]
        return
    chunks = _events(response)
    problems = {i: _nonconforming(CHUNK, chunk) for i, chunk in enumerate(chunks)}
    assert {i: found for i, found in problems.items() if found} == {}
    with_choices = [chunk for chunk in chunks if chunk["choices"]]
    assert len({chunk["id"] for chunk in chunks}) == 1, "every chunk of one answer carries the same id"
    finish = [chunk["choices"][0]["finish_reason"] for chunk in with_choices]
    assert finish[-1] == ("tool_calls" if case == "stream-tool-call" else "stop")
    assert all(reason is None for reason in finish[:-1])
    if "stream_options" in body:
        *_, last = chunks
        assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0
        assert last["switchboard"]["cost_usd"] > 0
    else:
        assert all(not chunk.get("usage") and "switchboard" not in chunk for chunk in chunks)


def test_the_model_list_conforms_to_openais_schema(client: httpx.Client) -> None:
    listing = client.get("/models")
    assert listing.status_code == 200
    assert _nonconforming(MODELS, listing.json()) == []
    assert {"auto", *TIERS, *TIERS.values()} <= {card["id"] for card in listing.json()["data"]}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "frontier", "messages": [{"role": "robot", "content": "hi"}]}, 400),
        ({"model": "no-such-model", "messages": GREETING}, 404),
        ({"model": "small", "messages": GREETING, "stream": "yes"}, 400),
        ({"model": "frontier", "messages": GREETING, "n": "2"}, 400),
    ],
)
def test_errors_conform_to_openais_error_schema(client: httpx.Client, body: dict[str, Any], status: int) -> None:
    response = client.post("/chat/completions", json=body)
    assert response.status_code == status, response.text
    assert _nonconforming(ERROR, response.json()) == []


@pytest.mark.parametrize(
    ("model", "api_base"),
    [("openai/gpt-4o-mini", "{sim}/v1"), ("anthropic/claude-sonnet-4-5", "{sim}")],
    ids=["openai-wire", "litellm-anthropic"],
)
def test_a_stream_broken_upstream_ends_in_openais_error_shape(tmp_path: Path, model: str, api_base: str) -> None:
    # The upstream drops the connection after a few events: the gateway is committed to it by then, so the client
    # gets the chunks so far, then an error event in OpenAI's error shape (and a non-streamed turn a 502 in it).
    dropping = SimulatorSettings(models={"*": ModelBehaviour(rate_drop=1.0, drop_after_chunks=4)})
    with SimulatorServer(dropping) as simulator:
        deployment = {"name": "only", "model": model, "api_base": api_base.format(sim=simulator.base_url)}
        tiers = {tier: ["only"] for tier in TIERS}  # the default policy names all three
        config = {**gateway_config(simulator.base_url, tiers=tiers), "deployments": [deployment]}
        with make_gateway(tmp_path, config) as gateway, httpx.Client(base_url=f"{gateway.base_url}/v1") as http:
            streamed = http.post("/chat/completions", json={"model": "small", "messages": GREETING, "stream": True})
            *chunks, error = _events(streamed)
            assert chunks and [found for chunk in chunks for found in _nonconforming(CHUNK, chunk)] == []
            assert error["error"]["code"] == "stream_interrupted" and _nonconforming(ERROR, error) == []
            whole = http.post("/chat/completions", json={"model": "small", "messages": GREETING})
            assert whole.status_code == 502 and _nonconforming(ERROR, whole.json()) == []
