"""The provider simulator, driven over real HTTP with httpx, the official openai SDK and raw SSE."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import ValidationError

from router.simulator import FaultKind, ModelBehaviour, SimulatorServer, SimulatorSettings
from router.simulator.faults import FaultInjector
from router.simulator.replies import ToolMode, ToolOffer, ToolSpec, content_stems
from router.simulator.schema_example import example_for_schema
from router.simulator.tokens import count_tokens, split_pieces

# The simulator is served over real HTTP (and the CLI as a subprocess).
pytestmark = pytest.mark.e2e

USER_TURN = [{"role": "user", "content": "Summarise the routing policy in one line."}]
WEATHER_TURN = [{"role": "user", "content": "What's the weather in Paris this week?"}]
WEATHER_AND_TIME_TURN = [{"role": "user", "content": "What's the weather in Paris, and what time is it there?"}]
GREETING_TURN = [{"role": "user", "content": "Hi there! Please reply with a short greeting."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 2},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "note": {"type": ["string", "null"]},
                "optional": {"type": "boolean"},
            },
            "required": ["city", "unit", "days", "note"],
            "additionalProperties": False,
        },
    },
}
CLOCK_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    settings = SimulatorSettings(
        models={
            "gpt-4o-mini": ModelBehaviour(),
            "gpt-4o": ModelBehaviour(cached_prompt_ratio=0.5, reasoning_tokens=5),
            "claude-sonnet-4-5": ModelBehaviour(cached_prompt_ratio=0.25),
            "*": ModelBehaviour(),
        },
        seed=7,
    )
    with SimulatorServer(settings) as server:
        yield server


@pytest.fixture
def client(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        http.post("/_sim/reset").raise_for_status()
        yield http


@pytest.fixture
def sdk(sim: SimulatorServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.base_url + "/v1", api_key="x", max_retries=0) as sdk_client:
        yield sdk_client


def set_behaviour(client: httpx.Client, model: str, **behaviour: Any) -> None:
    client.put(f"/_sim/models/{model}", json=behaviour).raise_for_status()


def stats(client: httpx.Client) -> dict[str, Any]:
    return client.get("/_sim/stats").json()


def chat(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER_TURN, **body})


def openai_stream_events(client: httpx.Client, **body: Any) -> tuple[list[dict[str, Any]], str]:
    """The JSON chunks of an OpenAI stream and its final data line, checking the SSE framing."""
    body = {"model": "gpt-4o-mini", "messages": USER_TURN, "stream": True, **body}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-1] == ""
    data_lines = [event.removeprefix("data: ") for event in events[:-1]]
    assert all(event.startswith("data: ") for event in events[:-1])
    return [json.loads(line) for line in data_lines[:-1]], data_lines[-1]


def anthropic_stream_events(client: httpx.Client, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    response = client.post("/v1/messages", json={"stream": True, **body})
    assert response.status_code == 200
    events = []
    for block in response.text.strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        events.append((name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return events


def wait_for(predicate: Any, client: httpx.Client, within: float = 1.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        current = stats(client)
        if predicate(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.01)


def test_non_stream_answer_has_the_exact_openai_shape(client: httpx.Client) -> None:
    response = chat(client, model="gpt-4o")
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o"
    assert isinstance(body["created"], int)
    assert body["system_fingerprint"].startswith("fp_")
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["logprobs"] is None
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["refusal"] is None
    assert "tool_calls" not in message
    assert message["content"].startswith("Simulated reply from gpt-4o.")
    usage = body["usage"]
    visible_tokens = count_tokens(message["content"])
    assert visible_tokens == 24
    assert usage["completion_tokens"] == visible_tokens + 5
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": usage["prompt_tokens"] // 2, "audio_tokens": 0}


def test_answer_is_deterministic_and_depends_on_the_last_user_message(client: httpx.Client) -> None:
    first, again = (chat(client).json()["choices"][0]["message"]["content"] for _ in range(2))
    other_turn = [{"role": "user", "content": "Something else entirely."}]
    other = chat(client, messages=other_turn).json()["choices"][0]["message"]["content"]
    assert first == again
    assert other != first


def test_openai_sdk_parses_answers_and_usage(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="gpt-4o", messages=USER_TURN)
    assert completion.choices[0].message.content.startswith("Simulated reply")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == completion.usage.prompt_tokens // 2


def test_stream_reassembles_to_the_non_stream_answer_with_openai_chunk_fields(client: httpx.Client) -> None:
    expected = chat(client).json()
    chunks, last_line = openai_stream_events(client, stream_options={"include_usage": True})
    assert last_line == "[DONE]"
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    *choice_chunks, usage_chunk = chunks
    assert all("usage" in chunk and chunk["usage"] is None for chunk in choice_chunks)
    assert choice_chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    finish_reasons = [chunk["choices"][0]["finish_reason"] for chunk in choice_chunks]
    assert finish_reasons == [None] * (len(choice_chunks) - 1) + ["stop"]
    assert choice_chunks[-1]["choices"][0]["delta"] == {}
    content_chunks = choice_chunks[1:-1]
    assert len(content_chunks) == 24
    text = "".join(chunk["choices"][0]["delta"]["content"] for chunk in content_chunks)
    assert text == expected["choices"][0]["message"]["content"]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == expected["usage"]


def test_stream_sends_no_usage_unless_asked(client: httpx.Client, sdk: openai.OpenAI) -> None:
    chunks, last_line = openai_stream_events(client)
    assert last_line == "[DONE]"
    assert all("usage" not in chunk and chunk["choices"] for chunk in chunks)
    streamed = sdk.chat.completions.create(model="gpt-4o-mini", messages=USER_TURN, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed)
    assert text == chat(client).json()["choices"][0]["message"]["content"]
    assert stats(client)["streams_completed"] == 2


def test_token_caps_shorten_the_answer_and_report_length(client: httpx.Client) -> None:
    for cap_field in ("max_tokens", "max_completion_tokens"):
        body = chat(client, **{cap_field: 5}).json()
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 5
        assert count_tokens(body["choices"][0]["message"]["content"]) == 5
    chunks, _ = openai_stream_events(client, max_tokens=5)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_n_returns_distinct_choices_and_streams_each_by_index(client: httpx.Client) -> None:
    body = chat(client, n=3).json()
    contents = [choice["message"]["content"] for choice in body["choices"]]
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]
    assert len(set(contents)) == 3
    assert body["usage"]["completion_tokens"] == 3 * 24
    chunks, _ = openai_stream_events(client, n=3)
    streamed = ["", "", ""]
    for chunk in chunks:
        [choice] = chunk["choices"]
        streamed[choice["index"]] += choice["delta"].get("content") or ""
    assert streamed == contents


def test_tool_call_round_trip_with_the_openai_sdk(sdk: openai.OpenAI) -> None:
    first = sdk.chat.completions.create(model="gpt-4o-mini", messages=WEATHER_TURN, tools=[WEATHER_TOOL, CLOCK_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])
    assert set(arguments) == {"city", "unit", "days", "note"}
    assistant_turn = {"role": "assistant", "tool_calls": [call.model_dump()]}
    tool_result = {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees"}
    # The turn still asks for the weather, and tools are still offered: a model answers the result in text.
    second = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[*WEATHER_TURN, assistant_turn, tool_result], tools=[WEATHER_TOOL]
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content.startswith("Simulated reply")


def test_a_turn_that_asks_for_no_tool_is_answered_in_text_stream_or_not(client: httpx.Client) -> None:
    # Pipecat and LiveKit offer their tools on every turn: a greeting must still get words back.
    body = chat(client, messages=GREETING_TURN, tools=[WEATHER_TOOL, CLOCK_TOOL]).json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]
    assert choice["message"]["content"].startswith("Simulated reply from gpt-4o-mini.")
    chunks, _ = openai_stream_events(client, messages=GREETING_TURN, tools=[WEATHER_TOOL, CLOCK_TOOL])
    assert not any("tool_calls" in chunk["choices"][0]["delta"] for chunk in chunks)
    assert (
        "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks) == choice["message"]["content"]
    )
    anthropic_tools = [_anthropic_tool(WEATHER_TOOL), _anthropic_tool(CLOCK_TOOL)]
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": GREETING_TURN, "tools": anthropic_tools}
    answer = client.post("/v1/messages", json=request).json()
    assert answer["stop_reason"] == "end_turn"
    assert [block["type"] for block in answer["content"]] == ["text"]


def test_tool_choice_required_calls_a_tool_the_turn_does_not_ask_for(client: httpx.Client) -> None:
    body = chat(client, messages=GREETING_TURN, tools=[WEATHER_TOOL, CLOCK_TOOL], tool_choice="required").json()
    [call] = body["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    for choice in ({"type": "any"}, {"type": "tool", "name": "get_time"}):
        request = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "messages": GREETING_TURN,
            "tools": [_anthropic_tool(WEATHER_TOOL), _anthropic_tool(CLOCK_TOOL)],
            "tool_choice": choice,
        }
        answer = client.post("/v1/messages", json=request).json()
        assert answer["stop_reason"] == "tool_use"
        assert [block["name"] for block in answer["content"]] == [choice.get("name", "get_weather")]
    unknown = chat(client, tools=[WEATHER_TOOL], tool_choice="sometimes")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "tool_choice"
    # A malformed named choice names no tool: the turn is answered as under "auto", not with a crash.
    malformed = chat(client, messages=GREETING_TURN, tools=[WEATHER_TOOL], tool_choice={"function": "get_weather"})
    assert malformed.json()["choices"][0]["finish_reason"] == "stop"


def test_tool_choice_picks_the_named_tool_or_none(client: httpx.Client) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    body = chat(client, messages=WEATHER_TURN, tools=[WEATHER_TOOL, CLOCK_TOOL], tool_choice=named).json()
    [call] = body["choices"][0]["message"]["tool_calls"]
    assert (call["function"]["name"], call["function"]["arguments"]) == ("get_time", "{}")
    text_only = chat(client, messages=WEATHER_TURN, tools=[WEATHER_TOOL], tool_choice="none").json()
    assert text_only["choices"][0]["finish_reason"] == "stop"


def test_streamed_tool_call_follows_the_openai_delta_format(client: httpx.Client) -> None:
    expected = chat(client, tools=[WEATHER_TOOL], tool_choice="required").json()
    [expected_call] = expected["choices"][0]["message"]["tool_calls"]
    chunks, last_line = openai_stream_events(client, tools=[WEATHER_TOOL], tool_choice="required")
    assert last_line == "[DONE]"
    first_delta = chunks[0]["choices"][0]["delta"]
    assert first_delta["role"] == "assistant"
    assert first_delta["content"] is None
    [opening] = first_delta["tool_calls"]
    assert opening["index"] == 0
    assert opening["id"].startswith("call_")
    assert opening["type"] == "function"
    assert opening["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [chunk["choices"][0]["delta"]["tool_calls"][0] for chunk in chunks[1:-1]]
    assert all(set(fragment) == {"index", "function"} for fragment in fragments)
    assert (
        "".join(fragment["function"]["arguments"] for fragment in fragments) == expected_call["function"]["arguments"]
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_parallel_tool_calls_come_in_one_message_with_an_index_per_call(client: httpx.Client) -> None:
    tools = [WEATHER_TOOL, CLOCK_TOOL]
    body = chat(client, messages=WEATHER_AND_TIME_TURN, tools=tools).json()
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [call["function"]["name"] for call in calls] == ["get_weather", "get_time"]
    assert len({call["id"] for call in calls}) == 2
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    chunks, _ = openai_stream_events(client, messages=WEATHER_AND_TIME_TURN, tools=tools)
    # Accumulated by index as the SDKs do: the opening fragment of a call has its id and name, the rest arguments.
    streamed: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for fragment in chunk["choices"][0]["delta"].get("tool_calls") or ():
            call = streamed.setdefault(fragment["index"], {"id": "", "name": "", "arguments": ""})
            call["id"] += fragment.get("id", "")
            call["name"] += fragment["function"].get("name", "")
            call["arguments"] += fragment["function"]["arguments"]
    assert sorted(streamed) == [0, 1]
    assert [(streamed[i]["name"], streamed[i]["arguments"]) for i in (0, 1)] == [
        (call["function"]["name"], call["function"]["arguments"]) for call in calls
    ]
    assert all(streamed[i]["id"].startswith("call_") for i in (0, 1))
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    one_at_a_time = chat(client, messages=WEATHER_AND_TIME_TURN, tools=tools, parallel_tool_calls=False).json()
    assert [call["function"]["name"] for call in one_at_a_time["choices"][0]["message"]["tool_calls"]] == [
        "get_weather"
    ]
    # Each call's name and arguments are billed once, however they are carried.
    single = chat(client, messages=WEATHER_TURN, tools=tools).json()["usage"]["completion_tokens"]
    clock = chat(
        client, messages=WEATHER_TURN, tools=tools, tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    assert body["usage"]["completion_tokens"] == single + clock.json()["usage"]["completion_tokens"]


def test_anthropic_parallel_tool_use_blocks_stream_like_the_answer(client: httpx.Client) -> None:
    tools = [_anthropic_tool(WEATHER_TOOL), _anthropic_tool(CLOCK_TOOL)]
    request = {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": WEATHER_AND_TIME_TURN, "tools": tools}
    body = client.post("/v1/messages", json=request).json()
    assert body["stop_reason"] == "tool_use"
    assert [(block["type"], block["name"]) for block in body["content"]] == [
        ("tool_use", "get_weather"),
        ("tool_use", "get_time"),
    ]
    events = anthropic_stream_events(client, **request)
    starts = [data for name, data in events if name == "content_block_start"]
    assert [(start["index"], start["content_block"]["name"]) for start in starts] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    assert [data["index"] for name, data in events if name == "content_block_stop"] == [0, 1]
    for index, block in enumerate(body["content"]):
        partial = "".join(
            data["delta"]["partial_json"]
            for name, data in events
            if name == "content_block_delta" and data["index"] == index
        )
        assert json.loads(partial) == block["input"]
    assert events[-2][1]["usage"] == {"output_tokens": body["usage"]["output_tokens"]}
    single = {**request, "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}
    assert [block["name"] for block in client.post("/v1/messages", json=single).json()["content"]] == ["get_weather"]


@pytest.mark.parametrize(
    ("turn", "tools", "called"),
    [
        (
            "What's the weather in Paris right now? Use the get_weather tool.",
            ["get_weather", "get_time"],
            ["get_weather"],
        ),
        ("Hi there! The codeword is PAPAYA-42. Please reply with a short greeting.", ["get_weather"], []),
        ("Tell me about your opening hours in detail, please.", ["get_weather"], []),
        (
            "Use get_weather for Paris and get_time for Paris, both at once.",
            ["get_weather", "get_time"],
            ["get_weather", "get_time"],
        ),
        ("What time do you open tomorrow?", ["getOpeningHours"], ["getOpeningHours"]),
        ("I'd like to reschedule my bookings", ["bookAppointment", "take_payment"], ["bookAppointment"]),
        ("Can you help me with something?", ["get_weather", "take_payment"], []),
    ],
)
def test_a_tool_is_asked_for_when_the_turn_shares_a_content_word_with_it(
    turn: str, tools: list[str], called: list[str]
) -> None:
    descriptions = {
        "get_weather": "Get the current weather for a city.",
        "get_time": "Get the local time in a city.",
        "getOpeningHours": None,
        "bookAppointment": "Schedule a booking for a patient.",
        "take_payment": "Charge the caller's card.",
    }
    offer = ToolOffer(tools=[ToolSpec(name, None, descriptions[name]) for name in tools])
    assert [tool.name for tool in offer.calls_for(turn)] == called


def test_tool_offer_modes_parallelism_and_tool_results() -> None:
    tools = [ToolSpec("get_weather", None, "Current weather for a city."), ToolSpec("get_time", None, None)]
    asks_both = "Weather and time in Oslo?"
    assert [t.name for t in ToolOffer(tools).calls_for(asks_both)] == ["get_weather", "get_time"]
    assert [t.name for t in ToolOffer(tools, parallel=False).calls_for(asks_both)] == ["get_weather"]
    assert ToolOffer(tools, mode=ToolMode.NONE).calls_for(asks_both) == []
    assert ToolOffer(tools, answers_tool_result=True).calls_for(asks_both) == []
    assert ToolOffer(tools, mode=ToolMode.REQUIRED, answers_tool_result=True).calls_for(asks_both) == []
    assert [t.name for t in ToolOffer(tools, mode=ToolMode.REQUIRED).calls_for("Hello!")] == ["get_weather"]
    assert [t.name for t in ToolOffer(tools, forced_name="get_time").calls_for("Hello!")] == ["get_time"]
    assert ToolOffer([]).calls_for(asks_both) == []
    # Identifiers split at underscores and camelCase; plurals, -ing and -ed fold; stop words never match.
    assert content_stems("getOpeningHours booking_dates") == {"open", "hour", "book", "dat"}
    assert content_stems("What's the current time? Please use the tool.") == {"tim"}
    # Caller text is cut before it is scanned: a huge turn costs no more than its first few thousand characters.
    assert content_stems("weather " * 1_000 + "payment") == {"weather"}


def test_extra_openai_fields_are_accepted_and_recorded(client: httpx.Client) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": None},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Summarise the routing policy in one line."}],
            },
        ],
        "metadata": {"team": "routing"},
        "user": "user-1",
        "service_tier": "auto",
        "prompt_cache_key": "key-1",
        "reasoning_effort": "low",
        "parallel_tool_calls": False,
        "response_format": {"type": "text"},
        "stop": ["\n\n"],
        "temperature": 0.2,
    }
    response = client.post("/v1/chat/completions", json=body, headers={"x-switchboard-tier": "standard"})
    assert response.status_code == 200
    as_string = chat(client, model="gpt-4o").json()
    # Content parts tokenise like the equivalent string; the null system message costs only its overhead.
    assert response.json()["usage"]["prompt_tokens"] == as_string["usage"]["prompt_tokens"] + 3
    assert response.json()["choices"][0]["message"]["content"] == as_string["choices"][0]["message"]["content"]
    client.post("/v1/chat/completions", json=body, headers={"x-switchboard-tier": "standard"})
    seen = stats(client)
    assert seen["last_request"] == body
    assert seen["last_headers"]["x-switchboard-tier"] == "standard"


def test_tool_definitions_count_as_prompt_tokens(client: httpx.Client) -> None:
    plain = chat(client, tool_choice="none").json()["usage"]["prompt_tokens"]
    with_tools = chat(client, tools=[WEATHER_TOOL], tool_choice="none").json()["usage"]["prompt_tokens"]
    assert with_tools > plain + 20


def test_malformed_requests_get_openai_400s(client: httpx.Client) -> None:
    bad_json = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    error = bad_json.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    for missing in ("model", "messages"):
        body = {"model": "gpt-4o-mini", "messages": USER_TURN}
        del body[missing]
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == missing
    empty = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    assert empty.status_code == 400
    anthropic = client.post("/v1/messages", json={"model": "claude-sonnet-4-5", "messages": USER_TURN})
    assert anthropic.status_code == 400
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "invalid_request_error"


def test_models_endpoint_lists_configured_models(client: httpx.Client, sdk: openai.OpenAI) -> None:
    listed = [model.id for model in sdk.models.list()]
    assert listed == ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"]
    assert client.get("/v1/nothing-here").status_code == 404


def test_anthropic_non_stream_answer(client: httpx.Client) -> None:
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief.", "messages": USER_TURN}
    body = client.post("/v1/messages", json=request).json()
    assert body["id"].startswith("msg_")
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", "claude-sonnet-4-5")
    [block] = body["content"]
    assert block["type"] == "text"
    assert block["text"].startswith("Simulated reply from claude-sonnet-4-5.")
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    usage = body["usage"]
    assert usage["output_tokens"] == 24
    assert usage["cache_creation_input_tokens"] == 0
    total_prompt = usage["input_tokens"] + usage["cache_read_input_tokens"]
    assert usage["cache_read_input_tokens"] == int(total_prompt * 0.25) > 0
    capped = client.post("/v1/messages", json={**request, "max_tokens": 4}).json()
    assert (capped["stop_reason"], capped["usage"]["output_tokens"]) == ("max_tokens", 4)


def test_anthropic_stream_event_sequence(client: httpx.Client) -> None:
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER_TURN}
    expected = client.post("/v1/messages", json=request).json()
    events = anthropic_stream_events(client, **request)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 24,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"]) == ([], None)
    assert start["usage"]["input_tokens"] == expected["usage"]["input_tokens"]
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == expected["content"][0]["text"]
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2][1]["usage"] == {"output_tokens": 24}


def test_anthropic_tool_use_round_trip(client: httpx.Client) -> None:
    tool = _anthropic_tool(WEATHER_TOOL)
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": WEATHER_TURN, "tools": [tool]}
    body = client.post("/v1/messages", json=request).json()
    assert body["stop_reason"] == "tool_use"
    [use] = body["content"]
    assert use["type"] == "tool_use"
    assert use["id"].startswith("toolu_")
    jsonschema.validate(use["input"], tool["input_schema"])
    events = anthropic_stream_events(client, **request)
    assert events[1][1]["content_block"]["type"] == "tool_use"
    partial = "".join(data["delta"]["partial_json"] for name, data in events if name == "content_block_delta")
    assert json.loads(partial) == use["input"]
    result = {"type": "tool_result", "tool_use_id": use["id"], "content": "Sunny"}
    follow_up = [*WEATHER_TURN, {"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
    answer = client.post("/v1/messages", json={**request, "messages": follow_up}).json()
    assert answer["stop_reason"] == "end_turn"
    assert answer["content"][0]["type"] == "text"


def _anthropic_tool(openai_tool: dict[str, Any]) -> dict[str, Any]:
    function = openai_tool["function"]
    tool = {"name": function["name"], "input_schema": function["parameters"]}
    if "description" in function:
        tool["description"] = function["description"]
    return tool


def test_rate_limit_fault(client: httpx.Client, sdk: openai.OpenAI) -> None:
    set_behaviour(client, "limited", rate_429=1, retry_after_seconds=2)
    response = chat(client, model="limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="limited", messages=USER_TURN)
    anthropic = client.post("/v1/messages", json={"model": "limited", "max_tokens": 10, "messages": USER_TURN})
    assert anthropic.status_code == 429
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert stats(client)["faults"][FaultKind.RATE_LIMIT] == 3


def test_server_error_fault(client: httpx.Client) -> None:
    set_behaviour(client, "broken", rate_500=1)
    response = chat(client, model="broken", stream=True)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    anthropic = client.post("/v1/messages", json={"model": "broken", "max_tokens": 10, "messages": USER_TURN})
    assert (anthropic.status_code, anthropic.json()["error"]["type"]) == (500, "api_error")


def test_timeout_fault_hangs_then_answers(client: httpx.Client) -> None:
    set_behaviour(client, "hanging", rate_timeout=1, timeout_hang_seconds=0.3)
    started = time.perf_counter()
    response = chat(client, model="hanging")
    assert time.perf_counter() - started >= 0.3
    assert response.status_code == 200
    assert response.json()["choices"][0]["finish_reason"] == "stop"
    assert stats(client)["faults"][FaultKind.TIMEOUT] == 1


def test_timeout_fault_stops_hanging_when_the_client_leaves(client: httpx.Client) -> None:
    set_behaviour(client, "hanging-long", rate_timeout=1, timeout_hang_seconds=30)
    body = {"model": "hanging-long", "messages": USER_TURN}
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=body, timeout=0.2)
    seen = wait_for(lambda current: current["requests_cancelled"] == 1, client)
    assert seen["requests_cancelled"] == 1


def test_dropped_stream_breaks_in_the_client(client: httpx.Client, sdk: openai.OpenAI) -> None:
    set_behaviour(client, "flaky", rate_drop=1, drop_after_chunks=2)
    received: list[str] = []
    body = {"model": "flaky", "messages": USER_TURN, "stream": True}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        received.extend(response.iter_lines())
    assert not any("[DONE]" in line for line in received)
    with pytest.raises(openai.APIConnectionError):
        for _ in sdk.chat.completions.create(model="flaky", messages=USER_TURN, stream=True):
            pass
    seen = stats(client)
    assert seen["faults"][FaultKind.DROP] == 2
    assert (seen["streams_completed"], seen["streams_cancelled"]) == (0, 0)


def test_dropped_non_stream_request_gets_no_response(client: httpx.Client) -> None:
    set_behaviour(client, "flaky-plain", rate_drop=1)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        chat(client, model="flaky-plain")
    anthropic_body = {"model": "flaky-plain", "max_tokens": 10, "messages": USER_TURN, "stream": True}
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/messages", json=anthropic_body)


def test_seeded_faults_repeat_after_a_reset(client: httpx.Client) -> None:
    set_behaviour(client, "unreliable", rate_429=0.3, rate_500=0.2)

    def statuses() -> list[int]:
        client.post("/_sim/reset").raise_for_status()
        return [chat(client, model="unreliable").status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert {200, 429, 500} <= set(first)


def test_fault_injectors_with_the_same_seed_agree() -> None:
    behaviour = ModelBehaviour(
        rate_429=0.2,
        rate_500=0.2,
        rate_timeout=0.15,
        rate_drop=0.1,
        rate_401=0.1,
        rate_slow_first_token=0.1,
        rate_stall=0.1,
    )
    left, right = FaultInjector(seed=3), FaultInjector(seed=3)
    draws = [left.draw(behaviour) for _ in range(200)]
    assert draws == [right.draw(behaviour) for _ in range(200)]
    assert set(draws) == {None, *FaultKind}


def test_runtime_behaviour_change(client: httpx.Client) -> None:
    set_behaviour(client, "gpt-4o-mini", output_tokens=3)
    try:
        assert chat(client).json()["usage"]["completion_tokens"] == 3
    finally:
        set_behaviour(client, "gpt-4o-mini")
    assert chat(client).json()["usage"]["completion_tokens"] == 24
    invalid = client.put("/_sim/models/gpt-4o-mini", json={"rate_429": 2})
    assert invalid.status_code == 400
    assert invalid.json()["error"]["param"] == "rate_429"


def test_streams_are_paced_by_ttft_and_tokens_per_second(client: httpx.Client) -> None:
    set_behaviour(client, "paced", ttft_ms=200, tokens_per_second=50, output_tokens=10)
    body = {"model": "paced", "messages": USER_TURN, "stream": True}
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        next(lines)
        first_byte = time.perf_counter() - started
        remaining = list(lines)
    total = time.perf_counter() - started
    assert 0.2 <= first_byte < 0.6
    assert total >= 0.2 + 9 / 50
    assert remaining[-2] == "data: [DONE]"
    started = time.perf_counter()
    answer = chat(client, model="paced")
    # A non-stream answer waits for the whole generation, like a real upstream.
    assert time.perf_counter() - started >= 0.2 + 10 / 50
    assert answer.json()["usage"]["completion_tokens"] == 10


def test_slow_first_tokens_and_mid_stream_stalls_are_injected(client: httpx.Client) -> None:
    set_behaviour(client, "slow-start", rate_slow_first_token=1.0, slow_first_token_ms=300)
    started = time.perf_counter()
    assert chat(client, model="slow-start").status_code == 200
    assert time.perf_counter() - started >= 0.3
    set_behaviour(client, "stalling", rate_stall=1.0, stall_after_chunks=3, stall_ms=300, output_tokens=10)
    body = {"model": "stalling", "messages": USER_TURN, "stream": True}
    arrivals = []
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter() - started)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # An instant answer but for one silence of the stall's length after the third event, then the rest of it.
    assert arrivals[-1] >= 0.3 and gaps.index(max(gaps)) == 2
    assert stats(client)["faults"]["stall"] == 1 and stats(client)["faults"]["slow_first_token"] == 1


def test_cancelled_stream_is_counted_within_a_second(client: httpx.Client) -> None:
    set_behaviour(client, "slow", tokens_per_second=20, output_tokens=400)
    body = {"model": "slow", "messages": USER_TURN, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    seen = wait_for(lambda current: current["streams_cancelled"] == 1, client)
    assert seen["streams_cancelled"] == 1
    assert seen["streams_completed"] == 0
    [stop_seconds] = seen["cancelled_stream_stop_seconds"]
    assert 0 <= stop_seconds < 0.1


def test_upstream_without_usage_or_wildcard() -> None:
    settings = SimulatorSettings(models={"only-model": ModelBehaviour()}, usage_in_stream=False)
    with SimulatorServer(settings) as server, httpx.Client(base_url=server.base_url) as client:
        chunks, last_line = openai_stream_events(client, model="only-model", stream_options={"include_usage": True})
        assert last_line == "[DONE]"
        assert all("usage" not in chunk for chunk in chunks)
        unknown = chat(client, model="gpt-4o-mini")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "model_not_found"


def test_example_arguments_satisfy_json_schemas() -> None:
    schemas: list[dict[str, Any]] = [
        {"type": "string", "format": "date-time"},
        {"type": "string", "minLength": 12},
        {"type": "integer", "minimum": 10, "maximum": 20},
        {"type": "integer", "exclusiveMinimum": 10},
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        {"type": "integer", "minimum": 3, "multipleOf": 5},
        {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 2},
        {"anyOf": [{"type": "null"}, {"type": "integer"}]},
        {"type": "boolean"},
        {"const": "fixed"},
        {
            "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
            "type": "object",
            "properties": {
                "at": {"$ref": "#/$defs/Point"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["at", "tags"],
            "additionalProperties": False,
        },
        {"allOf": [{"type": "object", "required": ["a"]}, {"type": "object", "required": ["b"]}]},
    ]
    for schema in schemas:
        jsonschema.validate(example_for_schema(schema), schema, cls=jsonschema.Draft202012Validator)
    draft_4 = {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    jsonschema.validate(example_for_schema(draft_4), draft_4, cls=jsonschema.Draft4Validator)
    assert example_for_schema(None) == {}


def test_pieces_rebuild_text_and_count_as_tokens() -> None:
    text = 'Hello, world! {"key": "two words "}  '
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert count_tokens(text) == len([piece for piece in pieces if piece.strip()])


def test_settings_from_yaml_and_defaults(tmp_path: Path) -> None:
    config = tmp_path / "simulator.yaml"
    config.write_text("seed: 3\nusage_in_stream: false\nmodels:\n  small:\n    ttft_ms: 10\n    rate_429: 0.5\n")
    settings = SimulatorSettings.from_yaml(config)
    assert (settings.seed, settings.usage_in_stream) == (3, False)
    assert settings.behaviour_for("small") == ModelBehaviour(ttft_ms=10, rate_429=0.5)
    assert settings.behaviour_for("unknown") is None
    config.write_text("models:\n  small:\n    ttft: 10\n")
    with pytest.raises(ValidationError):
        SimulatorSettings.from_yaml(config)
    with pytest.raises(ValidationError, match="at most one fault"):
        ModelBehaviour(rate_429=0.6, rate_drop=0.6)
    default = SimulatorSettings.default()
    assert default.served_model_names() == ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"]
    mini = default.models["gpt-4o-mini"]
    assert (mini.ttft_ms, mini.tokens_per_second) == (150, 120)
    assert default.behaviour_for("anything-else") is not None
    instant = SimulatorSettings.instant()
    assert set(instant.models) == set(default.models)
    assert all(behaviour == ModelBehaviour() for behaviour in instant.models.values())


def test_simulate_command_serves_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "simulator.yaml"
    config.write_text("models:\n  cli-model: {}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "from router.simulator.cli import simulate; simulate()",
        "--port",
        str(port),
        "--config",
        str(config),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                listed = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        assert [model["id"] for model in listed["data"]] == ["cli-model"]
    finally:
        process.terminate()
        _, log = process.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/v1" in log
    assert "cli-model: ttft 0 ms" in log
