"""Issue 11, item 5: every malformed body is a 400 in OpenAI's shape naming the field, with a ledger row; nothing
is ever a plain-text 500 or a reset connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from router.api.chat import _too_deep
from router.api.guards import LastResortErrors
from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.security.edge import CHAT, MESSAGES, ledger_rows

TENANT = "malformed"


def deep_json(depth: int) -> str:
    """``depth`` nested objects as JSON text (json.dumps would hit Python's recursion limit first)."""
    return '{"a":' * depth + '"leaf"' + "}" * depth


def body_with(field: str, raw_value: str) -> bytes:
    return ('{"model": "auto", "messages": ' + json.dumps(MESSAGES) + f', "{field}": {raw_value}}}').encode()


def assistant_tool_call(function: object) -> bytes:
    messages = [
        *MESSAGES,
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": function}]},
    ]
    return json.dumps({"model": "auto", "messages": messages}).encode()


MALFORMED = {
    # orjson parses these, then cannot write them back (its writer stops at 255 levels).
    "metadata 256 deep": (body_with("metadata", deep_json(256)), "metadata"),
    "metadata 1000 deep": (body_with("metadata", deep_json(1000)), "metadata"),
    "tool schema 300 deep": (
        body_with("tools", '[{"type": "function", "function": {"name": "f", "parameters": ' + deep_json(300) + "}}]"),
        "tools",
    ),
    "unknown field 500 deep": (body_with("extra_thing", deep_json(500)), "extra_thing"),
    "tool_calls function as a string": (assistant_tool_call("get_weather"), "messages[1].tool_calls[0].function"),
    "tool_calls function as a list": (assistant_tool_call(["get_weather", "{}"]), "messages[1].tool_calls[0].function"),
    "tool_calls item as a string": (
        json.dumps({"model": "auto", "messages": [*MESSAGES, {"role": "assistant", "tool_calls": ["x"]}]}).encode(),
        "messages[1].tool_calls[0]",
    ),
    "tool_calls function arguments as an object": (
        assistant_tool_call({"name": "f", "arguments": {"day": "monday"}}),
        "messages[1].tool_calls[0].function.arguments",
    ),
}


@pytest.fixture
def server(tmp_path: Path, simulator: SimulatorServer) -> Iterator[GatewayServer]:
    with make_gateway(tmp_path, gateway_config(simulator.base_url)) as gateway:
        yield gateway


@pytest.mark.e2e
def test_malformed_bodies_are_400s_naming_the_field_each_with_a_ledger_row(server: GatewayServer) -> None:
    request_ids = {}
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for name, (body, field) in MALFORMED.items():
            response = client.post(CHAT, content=body, headers={"content-type": "application/json", "x-tenant": TENANT})
            assert response.status_code == 400, (name, response.text[:300])
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and error["param"] == field, (name, error)
            request_ids[name] = response.headers["x-switchboard-request-id"]
        # The gateway still serves after all of them.
        assert client.post(CHAT, json={"model": "auto", "messages": MESSAGES}).status_code == 200
    rows = ledger_rows(server, TENANT)
    for name, request_id in request_ids.items():
        assert request_id in rows, f"no ledger row for {name}"
        assert rows[request_id].status == 400


@pytest.mark.e2e
def test_an_unforeseen_failure_is_a_json_500_with_a_ledger_row(server: GatewayServer) -> None:
    gateway = server.services.gateway

    async def broken_prepare(*_: object, **__: object) -> None:
        raise RuntimeError("a bug the gateway did not foresee")

    gateway.prepare = broken_prepare  # type: ignore[method-assign]
    response = httpx.post(
        f"{server.base_url}{CHAT}", json={"model": "auto", "messages": MESSAGES}, headers={"x-tenant": TENANT}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    assert "a bug" not in error["message"]  # internals stay in the log
    row = ledger_rows(server, TENANT)[response.headers["x-switchboard-request-id"]]
    assert row.status == 500 and row.error_type == "internal_error"


async def test_last_resort_turns_any_route_exception_into_openai_json() -> None:
    async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
        raise KeyError("boom")

    transport = httpx.ASGITransport(app=LastResortErrors(failing_app))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/v1/models")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"


def test_nesting_is_measured_iteratively_and_names_the_top_level_field() -> None:
    deep: object = "leaf"
    for _ in range(5000):  # far past Python's recursion limit
        deep = [deep]
    assert _too_deep({"model": "auto", "metadata": {"x": deep}}, 64) == "metadata"
    assert _too_deep({"tools": [{"a": {"b": [1, 2, {"c": None}]}}]}, 64) is None
    # The body is level 1: a field holding 63 nested containers is exactly at the limit of 64.
    at_limit: object = "leaf"
    for _ in range(63):
        at_limit = {"a": at_limit}
    assert _too_deep({"metadata": at_limit}, 64) is None
    assert _too_deep({"metadata": {"a": at_limit}}, 64) == "metadata"
