"""Provider simulator: a real HTTP server that answers like OpenAI and Anthropic, with no API keys.

Wire formats
    ``POST /v1/chat/completions`` speaks OpenAI chat completions: the full ``chat.completion`` object
    (``n`` choices, tool calls, ``usage`` with cached and reasoning token details) or, with
    ``stream: true``, ``chat.completion.chunk`` server-sent events ending in ``data: [DONE]``, with a
    ``choices: []`` usage chunk when ``stream_options.include_usage`` is set. ``POST /v1/messages``
    speaks Anthropic messages, streamed as ``message_start`` ... ``message_stop`` events.
    ``GET /v1/models`` lists the configured models. Answers are deterministic text, or tool calls
    whose arguments satisfy the tools' JSON schemas, so streamed and non-streamed answers match. Like
    a model, it calls tools only when ``tool_choice`` demands one or the last user text shares a
    content word with a tool's name or description (every such tool, in one message, when parallel
    calls are allowed), and answers a tool result in text.
    Streams send their first event after ``ttft_ms`` and then pace tokens at ``tokens_per_second``;
    a non-stream answer arrives once all its tokens would have been generated.

Fault model
    Each request draws at most one fault from its model's rates (seeded when ``seed`` is set):
    ``429`` with ``Retry-After``, ``500``, ``timeout`` (hang, then answer unless the client leaves)
    and ``drop`` (a stream cut after a few events, or a connection closed with no response; served
    in-process without uvicorn, the app raises ``SimulatedConnectionDrop`` instead), ``slow_first_token``
    (accepted, then silent for ``slow_first_token_ms`` before the answer) and ``stall`` (a stream silent
    for ``stall_ms`` after ``stall_after_chunks`` events, then resumed).

Control API
    ``GET /_sim/stats`` (counters, cancellations, last request and headers), ``POST /_sim/reset``
    and ``PUT /_sim/models/{name}`` (a new ``ModelBehaviour`` at runtime).
"""

from __future__ import annotations

from router.simulator.app import SimulatorApp, create_simulator_app
from router.simulator.connection import SimulatedConnectionDrop
from router.simulator.faults import FaultKind
from router.simulator.server import SimulatorServer
from router.simulator.settings import ModelBehaviour, SimulatorSettings
from router.simulator.stats import SimulatorStats

__all__ = [
    "FaultKind",
    "ModelBehaviour",
    "SimulatedConnectionDrop",
    "SimulatorApp",
    "SimulatorServer",
    "SimulatorSettings",
    "SimulatorStats",
    "create_simulator_app",
]
