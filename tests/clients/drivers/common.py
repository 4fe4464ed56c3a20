"""What every Python client driver shares: where the gateway is, the conversation, and how to report.

A driver runs inside its client's own venv (tests/clients/envs.py), so it imports nothing of the project. It
plays the turns a voice agent plays, the way that client's users write them, and prints one JSON line per
scenario with what the client observed; tests/clients/test_clients_e2e.py judges them, with the gateway's ledger.

Environment (set by the test): CLIENT_BASE_URL (with /v1), CLIENT_API_KEY, CLIENT_MODEL, CLIENT_CALL_ID,
CLIENT_TENANT, CLIENT_TIMEOUT (seconds per request).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

BASE_URL = os.environ["CLIENT_BASE_URL"].rstrip("/")
API_KEY = os.environ.get("CLIENT_API_KEY", "sk-client-tests")
MODEL = os.environ.get("CLIENT_MODEL", "auto")
TIMEOUT = float(os.environ.get("CLIENT_TIMEOUT", "30"))
# Every request of one driver belongs to one call of one tenant, so the test can read it back from the ledger.
HEADERS = {"X-Call-Id": os.environ["CLIENT_CALL_ID"], "X-Tenant": os.environ["CLIENT_TENANT"]}

SYSTEM = "You are a concise voice assistant for Acme Dental. Answer in one short sentence."
GREETING = "Hi there! The codeword is PAPAYA-42. Please reply with a short greeting."
FOLLOW_UP = "What is the codeword I told you earlier? Answer with just the codeword."
TOOL_TURN = "What's the weather in Paris right now?"
LONG_TURN = "Tell me about your opening hours in detail, please."
AFTER_BARGE_IN = "Sorry, never mind. Just say goodbye."
TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "Get the current weather for a city."
TOOL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location"],
}
TOOL_RESULT = {"location": "Paris", "temperature_c": 21, "condition": "sunny"}


def openai_tool() -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "parameters": TOOL_PARAMETERS},
    }


def assistant_calling(calls: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The assistant message of tool calls ``(id, name, arguments)``, without a content key, as most clients send it."""
    return {
        "role": "assistant",
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in calls
        ],
    }


def tool_results(call_ids: list[str]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": call_id, "content": json.dumps(TOOL_RESULT)} for call_id in call_ids]


def report(scenario: str, **observed: Any) -> None:
    print(json.dumps({"scenario": scenario, **observed}, default=str), flush=True)


async def play_in_order(scenarios: Sequence[tuple[str, Callable[[], Awaitable[None]]]]) -> None:
    """Play each scenario in turn; a client exception is reported as that scenario's error and the next one still
    runs. The closing ``done`` line tells the test the driver got through all of them."""
    for name, play in scenarios:
        try:
            await play()
        except Exception as exc:  # whatever the client raises is the observation
            report(name, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc(limit=4))
    report("done")
