"""The clients voice teams use, unmodified, against ``switchboard serve`` on its embedded default.

Pipecat (``OpenAILLMService`` in a real pipeline), LiveKit Agents (``openai.LLM``), LangChain (``ChatOpenAI``),
LiteLLM as a client and the OpenAI SDKs for Node and Python each play one call, with ``model: auto``: a streamed
greeting, a second turn on the same context, a tool round trip through the client's own tool machinery, and a
barge-in (the client leaves the stream after its first words, then speaks again). The SDKs play it again on named
tiers, frontier included (litellm and the Anthropic wire behind the gateway). Each client runs in its own cached
environment (tests/clients/envs.py; the Python SDK is a dev dependency) and reports what it observed
(tests/clients/drivers); this module judges that, and holds it to the gateway's ledger: every request recorded
once, the cancelled turn as a 499 with the tokens it produced, every other turn priced from usage the gateway
obtained from its upstream, even for clients that never ask for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients import envs
from tests.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e

DRIVERS = Path(__file__).resolve().parent / "drivers"
TENANT = "client-tests"
# What the embedded simulator's text answers start with: proof the words came from the model through the gateway.
SIMULATED = "Simulated reply from "
RUN_TIMEOUT_SECONDS = 240
# Requests each driver sends, in order: the four common scenarios (greeting, second turn, tool call and its
# follow-up, the interrupted answer and the turn after it) and then the client's own extras.
COMMON_REQUESTS = 6
BARGE_IN_TURN = 4
EXTRA_REQUESTS = {"pipecat": 0, "livekit": 1, "langchain": 2, "litellm": 1, "openai-node": 4, "openai-python": 1}
# The SDKs also play the call on named tiers: frontier answers through litellm and the Anthropic wire.
PYTHON_SDK = "openai-python"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """``python -m router serve`` with no configuration at all: the embedded default a newcomer runs."""
    workdir = tmp_path_factory.mktemp("clients")
    with GatewayProcess({"SWITCHBOARD_DATA_DIR": str(workdir / "data")}, log=workdir / "gateway.log") as process:
        yield process


def _play(client: str, gateway: GatewayProcess, model: str = "auto") -> tuple[dict[str, dict[str, Any]], str]:
    """Run ``client``'s driver in its environment; its observations by scenario and the call id it used."""
    call_id = f"{client}-{model}-{uuid.uuid4().hex[:12]}"
    settings = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "CLIENT_BASE_URL": f"{gateway.base_url}/v1",
        "CLIENT_API_KEY": "sk-client-tests",
        "CLIENT_MODEL": model,
        "CLIENT_CALL_ID": call_id,
        "CLIENT_TENANT": TENANT,
        "CLIENT_TIMEOUT": "30",
    }
    if client == PYTHON_SDK:  # the project's own dev dependency: this interpreter
        command = [sys.executable, str(DRIVERS / "openai_python_driver.py")]
    elif client == envs.NODE_CLIENT:
        settings["CLIENT_NODE_MODULES"] = str(envs.ensure(client).node_modules)
        command = ["node", str(DRIVERS / "openai_node_driver.mjs")]
    else:
        command = [str(envs.ensure(client, sys.executable).python), str(DRIVERS / f"{client}_driver.py")]
    finished = subprocess.run(
        command, env=settings, cwd=DRIVERS, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    observed = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    output = f"{finished.stdout[-2000:]}\n{finished.stderr[-3000:]}"
    assert observed and observed[-1]["scenario"] == "done", f"{client} stopped (rc {finished.returncode}):\n{output}"
    errors = [o for o in observed if "error" in o]
    assert errors == [], f"{client} raised:\n" + "\n".join(f"{o['scenario']}: {o['error']}" for o in errors)
    return {o["scenario"]: o for o in observed}, call_id


def _ledger(gateway: GatewayProcess, call_id: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.base_url}/v1/calls/{call_id}", headers={"X-Tenant": TENANT}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _check_the_call(
    client: str, observed: dict[str, dict[str, Any]], call: dict[str, Any], tier: str | None = None
) -> list[dict[str, Any]]:
    """What every client must see, and what the ledger must say about it; returns the ledger's turns."""
    assert observed["stream"]["text"].startswith(SIMULATED) and observed["stream"]["chunks"] > 1
    assert observed["multi_turn"]["text"].startswith(SIMULATED)
    tool_call = observed["tool_call"]
    assert tool_call["name"] == "get_weather"
    arguments = tool_call["arguments"]
    assert "location" in (json.loads(arguments) if isinstance(arguments, str) else arguments)
    assert observed["tool_followup"]["text"].startswith(SIMULATED) and observed["tool_followup"]["tool_calls"] == 0
    barge_in = observed["barge_in"]
    assert barge_in["first_text"] and barge_in["next_text"].startswith(SIMULATED)

    turns = call["turns"]
    assert len(turns) == COMMON_REQUESTS + EXTRA_REQUESTS[client], [t["status"] for t in turns]
    if tier is not None:
        assert {t["tier"] for t in turns} == {tier}
    cancelled = turns[BARGE_IN_TURN]
    # The barge-in: recorded as the client closing the request, billed for the tokens produced before it did.
    assert (cancelled["status"], cancelled["interrupted"]) == (499, True)
    assert cancelled["completion_tokens"] > 0 and cancelled["cost_usd"] > 0
    answered = [t for i, t in enumerate(turns) if i != BARGE_IN_TURN]
    assert [t["status"] for t in answered] == [200] * len(answered)
    # Usage came from the upstream for every answered turn (LangChain never asks for it; the gateway does).
    assert [t for t in answered if t["usage_estimated"] or t["completion_tokens"] == 0 or t["cost_usd"] <= 0] == []
    # The second turn carried the first one's context.
    assert turns[1]["prompt_tokens"] > turns[0]["prompt_tokens"]
    # The tool result went back: the follow-up prompt holds the call and its result.
    assert turns[3]["prompt_tokens"] > turns[2]["prompt_tokens"]
    assert call["totals"]["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in turns))
    return turns


def test_pipecat_openai_llm_service_in_a_pipeline(gateway: GatewayProcess) -> None:
    scenarios, call_id = _play("pipecat", gateway)
    _check_the_call("pipecat", scenarios, _ledger(gateway, call_id))
    # Pipecat's own loop ran the tool and put its result in the context before asking again.
    assert "tool" in scenarios["tool_followup"]["roles"]


def test_livekit_agents_openai_llm(gateway: GatewayProcess) -> None:
    scenarios, call_id = _play("livekit", gateway)
    turns = _check_the_call("livekit", scenarios, _ledger(gateway, call_id))
    assert scenarios["stream"]["total_tokens"] == turns[0]["prompt_tokens"] + turns[0]["completion_tokens"]
    # The options production agents set (strict tools, parallel_tool_calls=False, user, service_tier, ...).
    assert scenarios["tuned_options"]["tool_calls"] == ["get_weather"]


def test_langchain_chat_openai(gateway: GatewayProcess) -> None:
    scenarios, call_id = _play("langchain", gateway)
    turns = _check_the_call("langchain", scenarios, _ledger(gateway, call_id))
    non_stream, metered = turns[COMMON_REQUESTS], turns[COMMON_REQUESTS + 1]
    assert scenarios["non_stream"]["text"].startswith(SIMULATED)
    assert scenarios["non_stream"]["total_tokens"] == non_stream["prompt_tokens"] + non_stream["completion_tokens"]
    assert scenarios["stream_usage"]["total_tokens"] == metered["prompt_tokens"] + metered["completion_tokens"]


def test_litellm_as_a_client(gateway: GatewayProcess) -> None:
    scenarios, call_id = _play("litellm", gateway)
    turns = _check_the_call("litellm", scenarios, _ledger(gateway, call_id))
    assert scenarios["stream"]["total_tokens"] == turns[0]["prompt_tokens"] + turns[0]["completion_tokens"]
    non_stream = turns[COMMON_REQUESTS]
    assert scenarios["non_stream"]["text"].startswith(SIMULATED)
    assert scenarios["non_stream"]["total_tokens"] == non_stream["prompt_tokens"] + non_stream["completion_tokens"]


@pytest.mark.parametrize("model", ["auto", "frontier"])
def test_openai_node_sdk(gateway: GatewayProcess, model: str) -> None:
    scenarios, call_id = _play(envs.NODE_CLIENT, gateway, model)
    tier = None if model == "auto" else model
    turns = _check_the_call(envs.NODE_CLIENT, scenarios, _ledger(gateway, call_id), tier)
    assert scenarios["stream"]["finish"] == "stop"
    assert scenarios["stream"]["total_tokens"] == turns[0]["prompt_tokens"] + turns[0]["completion_tokens"]
    assert scenarios["tool_call"]["finish"] == "tool_calls" and scenarios["tool_call"]["id"]
    parallel = scenarios["parallel_tool_calls"]
    assert parallel["names"] == ["get_weather", "get_local_time"] and len(set(parallel["ids"])) == 2
    assert [set(arguments) for arguments in parallel["arguments"]] == [{"location"}, {"city"}]
    # The SDK's own tool loop: a tool call, the tool run by the SDK, then the answer.
    assert scenarios["run_tools"]["completions"] == 2 and scenarios["run_tools"]["text"].startswith(SIMULATED)
    non_stream = turns[-1]
    assert scenarios["non_stream"]["total_tokens"] == non_stream["prompt_tokens"] + non_stream["completion_tokens"]


@pytest.mark.parametrize("model", ["auto", "small", "standard", "frontier"])
def test_openai_python_sdk(gateway: GatewayProcess, model: str) -> None:
    scenarios, call_id = _play(PYTHON_SDK, gateway, model)
    tier = None if model == "auto" else model
    turns = _check_the_call(PYTHON_SDK, scenarios, _ledger(gateway, call_id), tier)
    assert scenarios["stream"]["finish"] == "stop"
    assert scenarios["stream"]["total_tokens"] == turns[0]["prompt_tokens"] + turns[0]["completion_tokens"]
    non_stream = turns[COMMON_REQUESTS]
    assert scenarios["non_stream"]["text"].startswith(SIMULATED)
    assert scenarios["non_stream"]["total_tokens"] == non_stream["prompt_tokens"] + non_stream["completion_tokens"]
