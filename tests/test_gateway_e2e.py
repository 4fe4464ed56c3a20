"""The gateway end to end: the real openai SDK against a real gateway in front of the provider simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from router.settings import Settings
from router.simulator import ModelBehaviour, SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway

MESSAGES = [{"role": "user", "content": "What time do you open tomorrow?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_opening_hours",
        "description": "Opening hours of a clinic on a day",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"day": {"type": "string"}, "location": {"type": ["string", "null"]}},
            "required": ["day", "location"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def set_behaviour(simulator: SimulatorServer, model: str, **behaviour: float) -> None:
    response = httpx.put(f"{simulator.base_url}/_sim/models/{model}", json=ModelBehaviour(**behaviour).model_dump())
    response.raise_for_status()


def sim_stats(simulator: SimulatorServer) -> dict:
    return httpx.get(f"{simulator.base_url}/_sim/stats").json()


def test_non_stream_answer_and_decision_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    headers = raw.headers
    assert headers["x-switchboard-request-id"].startswith("req_")
    assert headers["x-switchboard-tier"] == "standard"  # classifier off: the policy's default
    assert headers["x-switchboard-rule"] == "default"
    assert headers["x-switchboard-model"] == "openai/gpt-4o"
    assert headers["x-switchboard-fallbacks"] == "0"
    assert float(headers["x-switchboard-cost-usd"]) > 0


def test_raw_body_keeps_openai_required_nulls(gateway: GatewayServer) -> None:
    body = httpx.post(f"{gateway.base_url}/v1/chat/completions", json={"model": "small", "messages": MESSAGES}).json()
    choice = body["choices"][0]
    assert "logprobs" in choice and choice["logprobs"] is None
    assert "refusal" in choice["message"] and choice["message"]["refusal"] is None


def test_stream_reassembles_to_the_same_text_with_usage_when_asked(client: openai.OpenAI) -> None:
    expected = client.chat.completions.create(model="small", messages=MESSAGES).choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="small", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2] if c.choices)
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens > 0
    extra = usage_chunk.model_extra or {}
    assert extra["switchboard"]["cost_usd"] > 0


def test_stream_without_include_usage_gets_no_usage_chunk(
    client: openai.OpenAI, simulator: SimulatorServer, gateway: GatewayServer
) -> None:
    chunks = list(client.chat.completions.create(model="small", messages=MESSAGES, stream=True))
    assert chunks and all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    # ...but the gateway asked the upstream for usage anyway, to price the turn.
    assert sim_stats(simulator)["last_request"]["stream_options"] == {"include_usage": True}


def test_tool_call_round_trip(client: openai.OpenAI) -> None:
    # The turn asks for the tool in words ("open" / "Opening hours"), so the simulated model calls it unforced.
    first = client.chat.completions.create(model="auto", messages=MESSAGES, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_opening_hours"
    assert set(json.loads(call.function.arguments)) == {"day", "location"}
    # An assistant message with tool_calls and no content key at all, as Pipecat and LiveKit send it.
    assistant = {"role": "assistant", "tool_calls": [call.model_dump(exclude_none=True)]}
    tool_result = {"role": "tool", "tool_call_id": call.id, "content": "9am to 5pm"}
    second = client.chat.completions.create(
        model="auto", messages=[*MESSAGES, assistant, tool_result], tools=[WEATHER_TOOL], tool_choice="auto"
    )
    assert second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"


def test_openai_fields_are_forwarded_and_others_dropped(client: openai.OpenAI, simulator: SimulatorServer) -> None:
    client.chat.completions.create(
        model="small",
        messages=MESSAGES,
        extra_body={
            "prompt_cache_key": "clinic-42",
            "safety_identifier": "u-1",
            "custom_vendor_field": {"a": 1},
        },
        metadata={"team": "voice", "voice": {"asr_confidence": 0.9}},
    )
    sent = sim_stats(simulator)["last_request"]
    assert sent["prompt_cache_key"] == "clinic-42"
    assert sent["safety_identifier"] == "u-1"
    assert "custom_vendor_field" not in sent  # not an OpenAI parameter: vendor fields go in a deployment's extra_body
    assert sent["metadata"] == {"team": "voice"}  # gateway-addressed metadata stays with the gateway
    assert sent["model"] == "gpt-4o-mini"


def test_explicit_deployment_and_tier(client: openai.OpenAI) -> None:
    pinned = client.chat.completions.with_raw_response.create(model="frontier-a", messages=MESSAGES)
    assert pinned.headers["x-switchboard-deployment"] == "frontier-a"
    assert pinned.headers["x-switchboard-rule"] == "pinned-deployment"
    tier = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES)
    assert tier.headers["x-switchboard-tier"] == "small"
    assert tier.headers["x-switchboard-rule"] == "requested-tier"


def test_models_lists_auto_tiers_and_deployments(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[:4] == ["auto", "small", "standard", "frontier"]
    assert {"small-a", "small-b", "standard-a", "frontier-a"} <= set(ids)


def test_unknown_model_is_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-17-ultra", messages=MESSAGES)
    error = caught.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "gpt-17-ultra" in error["message"]


def test_malformed_json_and_schema_errors_are_400_naming_the_field(gateway: GatewayServer) -> None:
    url = f"{gateway.base_url}/v1/chat/completions"
    broken = httpx.post(url, content=b'{"model": "auto", "messages": [', headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["error"]["type"] == "invalid_request_error"
    assert broken.json()["error"]["code"] == "invalid_json"
    bad_role = httpx.post(url, json={"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]})
    assert bad_role.status_code == 400
    assert bad_role.json()["error"]["param"] == "messages[0].role"
    no_messages = httpx.post(url, json={"model": "auto"})
    assert no_messages.status_code == 400 and no_messages.json()["error"]["param"] == "messages"


def test_body_over_the_limit_is_413(tmp_path: Path, simulator: SimulatorServer) -> None:
    config = gateway_config(simulator.base_url, limits={"max_body_bytes": 2000})
    with make_gateway(tmp_path, config) as server:
        response = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "x" * 5000}]},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("fault", ["rate_500", "rate_429", "rate_drop"])
def test_failed_first_deployment_falls_back_to_the_next(
    client: openai.OpenAI, simulator: SimulatorServer, fault: str
) -> None:
    set_behaviour(simulator, "gpt-4o-mini", **{fault: 1.0})
    raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES)
    assert raw.headers["x-switchboard-deployment"] == "small-b"
    assert raw.headers["x-switchboard-fallbacks"] == "1"
    assert raw.parse().choices[0].message.content


def test_timeouts_fall_back_within_the_deployment_timeout(client: openai.OpenAI, simulator: SimulatorServer) -> None:
    set_behaviour(simulator, "gpt-4o-mini", rate_timeout=1.0, timeout_hang_seconds=30)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES, stream=True)
    assert raw.headers["x-switchboard-deployment"] == "small-b"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)


def test_rate_limited_deployment_is_parked_for_its_retry_after(
    client: openai.OpenAI, simulator: SimulatorServer
) -> None:
    set_behaviour(simulator, "gpt-4o-mini", rate_429=1.0, retry_after_seconds=30)
    client.chat.completions.create(model="small", messages=MESSAGES)
    before = sim_stats(simulator)["requests_by_model"].get("gpt-4o-mini", 0)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES)
    assert raw.headers["x-switchboard-deployment"] == "small-b"
    assert raw.headers["x-switchboard-fallbacks"] == "0"  # parked, so not even tried
    assert sim_stats(simulator)["requests_by_model"].get("gpt-4o-mini", 0) == before


def test_every_deployment_failing_is_a_5xx_in_openai_shape(tmp_path: Path, simulator: SimulatorServer) -> None:
    config = gateway_config(simulator.base_url, fallback={"next_tier_up": False})
    for model in ("gpt-4o-mini", "gpt-4.1-mini"):
        set_behaviour(simulator, model, rate_500=1.0)
    with (
        make_gateway(tmp_path, config) as server,
        openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="small", messages=MESSAGES)
        assert caught.value.status_code == 502
        assert caught.value.body["type"] == "upstream_error"
        for model in ("gpt-4o-mini", "gpt-4.1-mini"):
            set_behaviour(simulator, model, rate_429=1.0, retry_after_seconds=7)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="small", messages=MESSAGES)
        assert caught.value.status_code == 503
        assert caught.value.response.headers["retry-after"] == "7"


def test_next_tier_up_answers_when_a_whole_tier_fails(client: openai.OpenAI, simulator: SimulatorServer) -> None:
    for model in ("gpt-4o-mini", "gpt-4.1-mini"):
        set_behaviour(simulator, model, rate_500=1.0)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES)
    assert raw.headers["x-switchboard-deployment"] == "standard-a"
    assert raw.headers["x-switchboard-fallbacks"] == "2"


def test_stream_dropped_mid_way_ends_with_an_error_event(client: openai.OpenAI, simulator: SimulatorServer) -> None:
    for model in ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "gpt-4.1"):
        set_behaviour(simulator, model, rate_drop=1.0, drop_after_chunks=3, output_tokens=40)
    stream = client.chat.completions.create(model="small", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert received, "the first chunks were relayed before the drop"
    assert "stream" in str(caught.value.message).lower()


def test_health_and_readiness(gateway: GatewayServer) -> None:
    assert httpx.get(f"{gateway.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.base_url}/readyz").json()
    assert ready["status"] == "ready" and ready["policy_version"].startswith("default@")


def test_call_cost_endpoint_sums_the_turns_of_one_call_for_its_tenant_only(
    client: openai.OpenAI, gateway: GatewayServer
) -> None:
    costs = []
    for turn in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="small" if turn < 2 else "frontier",
            messages=MESSAGES,
            extra_headers={"X-Call-Id": "call-7", "X-Tenant": "clinic"},
        )
        costs.append(float(raw.headers["x-switchboard-cost-usd"]))
    # A streamed turn whose call id comes from metadata.call_id counts too.
    list(
        client.chat.completions.create(
            model="small",
            messages=MESSAGES,
            stream=True,
            metadata={"call_id": "call-7"},
            extra_headers={"X-Tenant": "clinic"},
        )
    )
    call = httpx.get(f"{gateway.base_url}/v1/calls/call-7", headers={"X-Tenant": "clinic"}).json()
    assert call["totals"]["turns"] == 4
    assert [t["tier"] for t in call["turns"]] == ["small", "small", "frontier", "small"]
    assert call["totals"]["cost_usd"] == pytest.approx(sum(costs) + call["turns"][3]["cost_usd"], abs=1e-7)
    assert call["turns"][3]["cost_usd"] > 0  # a streamed answer is never recorded at $0
    assert call["totals"]["savings_usd"] == pytest.approx(
        call["totals"]["baseline_cost_usd"] - call["totals"]["cost_usd"]
    )
    other = httpx.get(f"{gateway.base_url}/v1/calls/call-7", headers={"X-Tenant": "bank"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "call_not_found"


@pytest.mark.e2e
def test_voice_turns_with_tools_get_text_or_parallel_calls_on_every_tier_of_the_embedded_default(
    tmp_path: Path,
) -> None:
    # Pipecat and LiveKit offer their tools on every turn: a greeting must come back as words, and a turn asking for
    # two tools as two calls accumulated by index, through each tier's real path (frontier speaks Anthropic).
    clock_tool = {
        "type": "function",
        "function": {
            "name": "get_local_time",
            "description": "Local time in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    tools = [WEATHER_TOOL, clock_tool]
    greeting = [{"role": "user", "content": "Hi there! Please reply with a short greeting."}]
    both = [{"role": "user", "content": "When do you open tomorrow, and what is the local time there now?"}]
    with (
        GatewayServer(Settings(data_dir=tmp_path / "data", classifier="off")) as gateway,
        openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client,
    ):
        for tier in ("small", "standard", "frontier"):
            text = "".join(
                chunk.choices[0].delta.content or ""
                for chunk in client.chat.completions.create(model=tier, messages=greeting, tools=tools, stream=True)
                if chunk.choices
            )
            assert text.startswith("Simulated reply from"), tier
            calls: dict[int, list[str]] = {}
            for chunk in client.chat.completions.create(model=tier, messages=both, tools=tools, stream=True):
                for fragment in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    call = calls.setdefault(fragment.index, ["", ""])
                    call[0] += (fragment.function and fragment.function.name) or ""
                    call[1] += (fragment.function and fragment.function.arguments) or ""
            assert [(name, set(json.loads(arguments))) for name, arguments in calls.values()] == [
                ("get_opening_hours", {"day", "location"}),
                ("get_local_time", {"city"}),
            ], tier
