"""Issue 11, item 13: request scalars are strictly typed, as OpenAI's API is: no string-to-bool or bool-to-int
coercion; a wrong type is a 400 naming the field (and never starts a stream)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from router.schemas import ChatCompletionRequest
from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway
from tests.security.edge import CHAT, MESSAGES, ledger_rows

LAX_VALUES = [
    ("stream", "yes"),
    ("stream", 1),
    ("n", "2"),
    ("n", True),
    ("n", 2.5),
    ("max_tokens", True),
    ("max_tokens", "100"),
    ("max_completion_tokens", "100"),
    ("temperature", "1"),
    ("temperature", True),
    ("top_p", "0.5"),
    ("user", 42),
    ("model", 7),
]


@pytest.mark.parametrize(("field", "value"), LAX_VALUES)
def test_lax_values_do_not_validate(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate({"model": "auto", "messages": MESSAGES, field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def test_exact_types_and_integral_floats_validate() -> None:
    request = ChatCompletionRequest.model_validate(
        {"model": "auto", "messages": MESSAGES, "stream": True, "n": 2.0, "max_tokens": 5, "temperature": 1, "top_p": 1}
    )
    assert (request.stream, request.n, request.temperature) == (True, 2, 1.0)  # 2.0 is an integer in JSON Schema
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(
            {"model": "auto", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": "true"}}
        )


@pytest.fixture
def server(tmp_path: Path, simulator: SimulatorServer) -> Iterator[GatewayServer]:
    with make_gateway(tmp_path, gateway_config(simulator.base_url)) as gateway:
        yield gateway


@pytest.mark.e2e
def test_the_gateway_answers_lax_values_with_400s_naming_the_field(server: GatewayServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for field, value in LAX_VALUES:
            body = {"model": "auto", "messages": MESSAGES, field: value}
            response = client.post(CHAT, json=body, headers={"x-tenant": "strict"})
            assert response.status_code == 400, (field, value, response.text)
            assert response.headers["content-type"] == "application/json"  # "stream": "yes" started no stream
            assert response.json()["error"]["param"] == field
            assert ledger_rows(server, "strict")[response.headers["x-switchboard-request-id"]].status == 400
