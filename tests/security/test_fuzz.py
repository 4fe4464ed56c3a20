"""Issue 11: fuzz ``POST /v1/chat/completions`` (bodies, headers, nesting) against a real gateway: no answer is a
5xx, every refusal is OpenAI's JSON error, and no request hangs.

Bounded in time: a few hundred examples in all (the ``*_EXAMPLES`` constants), each request with a 10 s timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.security.edge import CHAT, MESSAGES

pytestmark = pytest.mark.e2e

SCHEMA_EXAMPLES = 40  # per generation mode (schema-driven generation is the slow part)
FUZZ_EXAMPLES = 150  # per strategy below
REQUEST_TIMEOUT = 10.0  # a hang fails the test instead of stalling it
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
FIELDS = [
    "model", "messages", "stream", "stream_options", "n", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "tools", "tool_choice", "user", "metadata", "response_format", "stop", "seed", "logit_bias",
]  # fmt: skip
MESSAGE_FIELDS = ["role", "content", "name", "tool_calls", "tool_call_id"]
# Printable Latin-1 without surrounding blanks (what an HTTP header value can carry), and sizes from empty to far
# past every limit.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=200
).map(lambda value: value.strip(" \t"))
header_values = header_text | st.integers(0, 40_000).map(lambda n: "a" * n)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    with (
        SimulatorServer(SimulatorSettings(models={"*": ModelBehaviour(output_tokens=4)})) as simulator,
        make_gateway(tmp_path, gateway_config(simulator.base_url)) as gateway,
    ):
        yield gateway


@pytest.fixture(scope="module")
def client(server: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:
        yield client


def check(response: httpx.Response) -> None:
    """No 5xx; a refusal is OpenAI's JSON error shape; an answer is a completion or a stream."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
    elif response.headers["content-type"].startswith("application/json"):
        assert response.json()["object"] == "chat.completion"
    else:
        assert response.text.rstrip().endswith("data: [DONE]")


def post(client: httpx.Client, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {name: value.encode("latin-1") for name, value in (headers or {}).items()}
    return client.post(CHAT, content=body, headers={"content-type": b"application/json", **sent})


def chat_operation(server: GatewayServer) -> Any:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label == f"POST {CHAT}":
            return operation
    raise AssertionError("the OpenAPI schema has no chat completions operation")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schema_driven_bodies_never_get_a_5xx(server: GatewayServer, mode: GenerationMode) -> None:
    operation = chat_operation(server)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(FUZZ_SETTINGS, max_examples=SCHEMA_EXAMPLES)
    def run(case: schemathesis.Case) -> None:
        response = case.call(timeout=REQUEST_TIMEOUT)
        assert response.status_code < 500, (response.status_code, response.text[:500], case.body)

    run()


@FUZZ_SETTINGS
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_any_value_in_any_field(client: httpx.Client, field: str, value: Any) -> None:
    body = {"model": "auto", "messages": MESSAGES, field: value}
    check(post(client, json.dumps(body).encode()))


@FUZZ_SETTINGS
@given(field=st.sampled_from(MESSAGE_FIELDS), value=json_values, role=st.sampled_from(["user", "assistant", "tool"]))
def test_any_value_in_any_message_field(client: httpx.Client, field: str, value: Any, role: str) -> None:
    message = {"role": role, "content": "hello", field: value}
    check(post(client, json.dumps({"model": "auto", "messages": [*MESSAGES, message]}).encode()))


@FUZZ_SETTINGS
@given(
    field=st.sampled_from(["metadata", "tools", "messages", "response_format", "extra"]),
    depth=st.integers(1, 1500),
    opener=st.sampled_from(['{"a":', "[", '{"type":"object","properties":{"x":']),
)
def test_any_nesting_depth_in_any_field(client: httpx.Client, field: str, depth: int, opener: str) -> None:
    closer = {"[": "]", '{"a":': "}", '{"type":"object","properties":{"x":': "}}"}[opener]
    nested = opener * depth + "1" + closer * depth
    body = '{"model": "auto", "messages": ' + json.dumps(MESSAGES) + f', "{field}": {nested}}}'
    check(post(client, body.encode()))


@FUZZ_SETTINGS
@given(
    headers=st.dictionaries(
        st.sampled_from(["x-call-id", "x-caller-id", "x-tenant", "x-agent", "authorization", "x-anything"]),
        header_values,
        max_size=4,
    ),
    metadata=st.dictionaries(st.sampled_from(["call_id", "caller_id", "voice"]), json_values, max_size=3),
    user=st.none() | st.text(max_size=300),
)
def test_any_caller_headers_and_ids(
    client: httpx.Client, headers: dict[str, str], metadata: dict[str, Any], user: str | None
) -> None:
    body = {"model": "auto", "messages": MESSAGES, "metadata": metadata, **({"user": user} if user is not None else {})}
    check(post(client, json.dumps(body).encode(), headers))


@FUZZ_SETTINGS
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_a_body(client: httpx.Client, raw: bytes) -> None:
    check(post(client, raw))
