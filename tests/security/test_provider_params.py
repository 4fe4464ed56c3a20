"""No request field can move a provider key: only OpenAI's chat-completions parameters reach an upstream, on both
provider paths, and endpoint, credential and header fields from a request go nowhere (issue 11, item 2)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from router.background import BackgroundServer
from router.providers.params import OPENAI_CHAT_PARAMS
from router.simulator import SimulatorServer
from tests.conftest import make_gateway
from tests.test_gateway_e2e import MESSAGES, sim_stats

OPERATOR_KEY = "sk-ant-operator-0b9e4f7c1d2a"

# Fields that say where a request goes, how it authenticates or which provider it is: never a caller's to set.
ENDPOINT_AND_CREDENTIAL_FIELDS = (
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "extra_headers",
    "extra_query",
    "extra_body",
    "custom_llm_provider",
    "headers",
    "timeout",
    "organization",
    "mock_response",
    "num_retries",
    "aws_access_key_id",
    "aws_region_name",
    "vertex_project",
    "vertex_credentials",
    "azure_ad_token",
    "litellm_params",
    "litellm_metadata",
)


class CaptureApp:
    """Records every request reaching it (and answers 500)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.seen.append({"path": scope["path"], "headers": headers, "body": body})
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"captured"})


class CaptureServer(BackgroundServer):
    """A real HTTP server on 127.0.0.1 recording what reaches it: where a leaked key would land."""

    def __init__(self) -> None:
        self.capture = CaptureApp()
        super().__init__(self.capture, name="capture")

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self.capture.seen


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


def redirect_fields(capture_url: str) -> dict[str, Any]:
    """The attack as found: a body naming its own endpoint and headers."""
    return {"api_base": capture_url, "base_url": capture_url, "extra_headers": {"x-injected": "1"}}


def hostile_fields(capture_url: str) -> dict[str, Any]:
    """Every way a body could try to redirect a request or add to what the upstream receives."""
    fields: dict[str, Any] = {name: f"{capture_url}/v1" for name in ENDPOINT_AND_CREDENTIAL_FIELDS}
    fields.update(
        api_key="sk-attacker",
        custom_llm_provider="openai",
        extra_headers={"x-injected": "1", "authorization": "Bearer sk-attacker"},
        headers={"x-injected": "1"},
        extra_body={"injected": True},
        timeout=0.001,
        mock_response="forged answer",
        num_retries=5,
        custom_vendor_field={"a": 1},
    )
    return fields


def test_the_allow_list_holds_every_openai_parameter_and_nothing_that_routes() -> None:
    sdk_params = CompletionCreateParamsBase.__required_keys__ | CompletionCreateParamsBase.__optional_keys__
    missing = sorted(sdk_params - OPENAI_CHAT_PARAMS)
    assert not missing, f"OpenAI parameters to review for the allow-list: {missing}"
    assert not OPENAI_CHAT_PARAMS & set(ENDPOINT_AND_CREDENTIAL_FIELDS)
    assert not [p for p in OPENAI_CHAT_PARAMS if p.startswith(("aws_", "vertex_", "azure_", "litellm_", "api_"))]


@pytest.mark.e2e
def test_no_request_field_sends_the_provider_key_elsewhere_through_litellm(
    tmp_path: Path, simulator: SimulatorServer, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The production shape: an Anthropic deployment with no api_base, its key in an environment variable. Its
    # default endpoint is redirected to the simulator through litellm's own variable, so no request leaves the host.
    monkeypatch.setenv("SB_TEST_ANTHROPIC_KEY", OPERATOR_KEY)
    monkeypatch.setenv("ANTHROPIC_API_BASE", simulator.base_url)
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: one-tier\ndefault: frontier\n")
    config = {
        "deployments": [
            {"name": "claude", "model": "anthropic/claude-sonnet-4-5", "api_key_env": "SB_TEST_ANTHROPIC_KEY"}
        ],
        "tiers": {"frontier": ["claude"]},
        "policy": str(policy),
        "fallback": {"retries": 0},
    }
    with make_gateway(tmp_path, config) as gateway:
        url = f"{gateway.base_url}/v1/chat/completions"
        for model in ("auto", "frontier", "claude"):
            for fields, stream in itertools.product((redirect_fields, hostile_fields), (False, True)):
                body = {**fields(capture.base_url), "model": model, "messages": MESSAGES, "stream": stream}
                answer = httpx.post(url, content=orjson.dumps(body), headers={"content-type": "application/json"})
                assert capture.seen == [], "the operator's key reached the caller's URL"
                assert answer.status_code == 200, (model, stream, answer.text)
                assert "forged answer" not in answer.text
                seen = sim_stats(simulator)
                assert seen["last_headers"]["x-api-key"] == OPERATOR_KEY  # the configured upstream, its own key
                assert "x-injected" not in seen["last_headers"]
                assert "injected" not in seen["last_request"]
                assert seen["requests_by_endpoint"].get("/v1/messages")
    assert sim_stats(simulator)["requests_by_endpoint"]["/v1/messages"] == 12


@pytest.mark.e2e
def test_the_fast_path_forwards_only_openai_parameters(
    tmp_path: Path, simulator: SimulatorServer, capture: CaptureServer
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: one-tier\ndefault: small\n")
    config = {
        "deployments": [{"name": "mini", "model": "openai/gpt-4o-mini", "api_base": f"{simulator.base_url}/v1"}],
        "tiers": {"small": ["mini"]},
        "policy": str(policy),
    }
    openai_params = {"seed": 7, "stop": ["\n\n"], "logit_bias": {"1": -5}, "service_tier": "auto", "user": "u-1"}
    with make_gateway(tmp_path, config) as gateway:
        url = f"{gateway.base_url}/v1/chat/completions"
        for model in ("auto", "small", "mini"):
            body = {**hostile_fields(capture.base_url), **openai_params, "model": model, "messages": MESSAGES}
            answer = httpx.post(url, content=orjson.dumps(body), headers={"content-type": "application/json"})
            assert capture.seen == []
            assert answer.status_code == 200, answer.text
            seen = sim_stats(simulator)
            sent = seen["last_request"]
            assert set(sent) <= OPENAI_CHAT_PARAMS, sorted(set(sent) - OPENAI_CHAT_PARAMS)
            assert {k: sent[k] for k in openai_params} == openai_params  # real parameters still arrive
            assert "x-injected" not in seen["last_headers"]
            assert seen["last_headers"].get("authorization") != "Bearer sk-attacker"
