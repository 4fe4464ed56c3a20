"""The simulator as a raw ASGI application: routing, faults, pacing and the ``/_sim`` control API.

Raw ASGI rather than a framework because the simulator is the "direct" baseline of the gateway's
benchmarks: an instant answer must cost little more than JSON encoding.
"""

from __future__ import annotations

import asyncio
import time
from enum import Enum
from typing import Any

import orjson
from pydantic import ValidationError

from router.simulator.anthropic_wire import AnthropicMessagesFormat
from router.simulator.connection import ClientConnection, Message, Receive, Send
from router.simulator.faults import FaultInjector, FaultKind
from router.simulator.openai_wire import OpenAIChatFormat, openai_error_body
from router.simulator.settings import ModelBehaviour, SimulatorSettings
from router.simulator.stats import SimulatorStats
from router.simulator.streaming import SseFrame
from router.simulator.wire import GenerationRequest, RequestProblem, WireFormat

MODELS_PATH = "/v1/models"
STATS_PATH = "/_sim/stats"
RESET_PATH = "/_sim/reset"
MODEL_BEHAVIOUR_PREFIX = "/_sim/models/"
# Named by an auth failure, as real providers name the account a rejected key belongs to.
SIMULATED_ORGANIZATION = "org-switchboard-simulated"

_UNPARSABLE_JSON = RequestProblem(
    message="We could not parse the JSON body of your request. Make sure the body is valid JSON."
)


class _StreamOutcome(Enum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DROPPED = "dropped"


class SimulatorApp:
    """ASGI callable serving OpenAI chat completions, Anthropic messages and the control API.

    It copies the settings it is given: runtime changes through ``PUT /_sim/models/{name}`` stay
    inside the app (readable as ``app.settings``).
    """

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings.model_copy(deep=True)
        self.stats = SimulatorStats()
        self._faults = FaultInjector(settings.seed)
        self._formats: dict[str, WireFormat[Any]] = {
            wire.endpoint: wire for wire in (OpenAIChatFormat(), AnthropicMessagesFormat())
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        connection = ClientConnection(receive, send)
        try:
            await self._route(scope, connection)
        finally:
            connection.close()

    async def _route(self, scope: dict[str, Any], connection: ClientConnection) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        wire = self._formats.get(path)
        if wire is not None:
            if method != "POST":
                await _respond_openai_error(connection, 405, f"Use POST for {path}.")
                return
            await self._generate(wire, _decode_headers(scope), connection)
        elif path == MODELS_PATH and method == "GET":
            self.stats.record_request(MODELS_PATH, _decode_headers(scope))
            await connection.respond(200, self._model_list())
        elif path == STATS_PATH and method == "GET":
            await connection.respond(200, orjson.dumps(self.stats.model_dump()))
        elif path == RESET_PATH and method == "POST":
            self.stats = SimulatorStats()
            self._faults.restart()
            await connection.respond(200, orjson.dumps(self.stats.model_dump()))
        elif path.startswith(MODEL_BEHAVIOUR_PREFIX) and method == "PUT":
            await self._set_behaviour(path.removeprefix(MODEL_BEHAVIOUR_PREFIX), connection)
        else:
            await _respond_openai_error(connection, 404, f"Unknown request URL: {method} {path}.", code="unknown_url")

    async def _generate(self, wire: WireFormat[Any], headers: dict[str, str], connection: ClientConnection) -> None:
        self.stats.record_request(wire.endpoint, headers)
        body = await connection.read_body()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            await connection.respond(400, wire.error_body(400, _UNPARSABLE_JSON))
            return
        try:
            request: GenerationRequest = wire.parse(document)
        except ValidationError as error:
            await connection.respond(400, wire.error_body(400, RequestProblem.from_validation_error(error)))
            return
        self.stats.record_body(request.model, document)
        behaviour = self.settings.behaviour_for(request.model)
        if behaviour is None:
            problem = RequestProblem(
                message=f"The model `{request.model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
            await connection.respond(404, wire.error_body(404, problem))
            return
        fault = self._faults.draw(behaviour)
        if fault is not None:
            self.stats.record_fault(fault)
        if fault is FaultKind.RATE_LIMIT:
            await _respond_rate_limited(connection, wire, request.model, behaviour)
            return
        if fault is FaultKind.SERVER_ERROR:
            problem = RequestProblem(message="The server had an error while processing your request (simulated).")
            await connection.respond(500, wire.error_body(500, problem))
            return
        if fault is FaultKind.AUTH_FAILURE:
            await _respond_auth_failure(connection, wire, headers)
            return
        hang_seconds = behaviour.timeout_hang_seconds if fault is FaultKind.TIMEOUT else 0.0
        ttft_ms = behaviour.slow_first_token_ms if fault is FaultKind.SLOW_FIRST_TOKEN else behaviour.ttft_ms
        first_byte_delay = hang_seconds + ttft_ms / 1000
        if request.stream:
            await self._stream(
                wire,
                request,
                behaviour,
                connection,
                first_byte_delay,
                drop=fault is FaultKind.DROP,
                stall=fault is FaultKind.STALL,
            )
        else:
            await self._answer(wire, request, behaviour, connection, first_byte_delay, drop=fault is FaultKind.DROP)

    async def _answer(
        self,
        wire: WireFormat[Any],
        request: GenerationRequest,
        behaviour: ModelBehaviour,
        connection: ClientConnection,
        first_byte_delay: float,
        *,
        drop: bool,
    ) -> None:
        answer = wire.answer(request, behaviour)
        delay = first_byte_delay
        # A non-stream answer arrives once all of it is generated, as from a real upstream.
        if behaviour.tokens_per_second:
            delay += answer.generated_tokens / behaviour.tokens_per_second
        if await connection.pause(delay):
            self._record_cancelled(connection, stream=False)
        elif drop:
            await connection.abort()
        else:
            await connection.respond(200, answer.body)

    async def _stream(
        self,
        wire: WireFormat[Any],
        request: GenerationRequest,
        behaviour: ModelBehaviour,
        connection: ClientConnection,
        first_byte_delay: float,
        *,
        drop: bool,
        stall: bool = False,
    ) -> None:
        if await connection.pause(first_byte_delay):
            self._record_cancelled(connection, stream=True)
            return
        frames = wire.stream_frames(request, behaviour, self.settings.usage_in_stream)
        if behaviour.oversized_event_bytes:
            frames = _with_oversized_event(frames, behaviour)
        # A dropped stream always stops before its last event, so it can never look complete.
        drop_at = min(behaviour.drop_after_chunks, len(frames) - 1) if drop else None
        # A stall happens mid-answer: after the first events, before the last.
        stall_at = (min(behaviour.stall_after_chunks, len(frames) - 1), behaviour.stall_ms / 1000) if stall else None
        outcome = await _send_stream(connection, frames, behaviour.tokens_per_second, drop_at, stall_at)
        if outcome is _StreamOutcome.COMPLETED:
            self.stats.record_stream_completed()
        elif outcome is _StreamOutcome.CANCELLED:
            self._record_cancelled(connection, stream=True)

    def _record_cancelled(self, connection: ClientConnection, *, stream: bool) -> None:
        assert connection.disconnected_at is not None
        self.stats.record_cancelled(stream=stream, stop_seconds=time.perf_counter() - connection.disconnected_at)

    def _model_list(self) -> bytes:
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "switchboard-simulator"}
            for name in self.settings.served_model_names()
        ]
        return orjson.dumps({"object": "list", "data": models})

    async def _set_behaviour(self, model: str, connection: ClientConnection) -> None:
        body = await connection.read_body()
        try:
            behaviour = ModelBehaviour.model_validate_json(body)
        except ValidationError as error:
            await connection.respond(400, openai_error_body(400, RequestProblem.from_validation_error(error)))
            return
        self.settings.models[model] = behaviour
        await connection.respond(200, behaviour.model_dump_json().encode())


def create_simulator_app(settings: SimulatorSettings) -> SimulatorApp:
    """The simulator's ASGI app, serving ``settings`` (copied, so later edits do not leak in)."""
    return SimulatorApp(settings)


def _with_oversized_event(frames: list[SseFrame], behaviour: ModelBehaviour) -> list[SseFrame]:
    """The stream with one content event of ``oversized_event_bytes`` bytes after ``drop_after_chunks`` events."""
    at = min(behaviour.drop_after_chunks, len(frames) - 1)
    padding = "x" * behaviour.oversized_event_bytes
    event = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": padding}}]}
    return [*frames[:at], SseFrame(b"data: " + orjson.dumps(event) + b"\n\n"), *frames[at:]]


async def _send_stream(
    connection: ClientConnection,
    frames: list[SseFrame],
    tokens_per_second: float | None,
    drop_at: int | None,
    stall_at: tuple[int, float] | None = None,
) -> _StreamOutcome:
    """Send ``frames`` on the token clock, coalescing every event that is already due into one write; a stall
    (position, seconds) holds the stream silent there and then resumes the clock where it stopped."""
    await connection.start_stream()
    interval = 1 / tokens_per_second if tokens_per_second else 0.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    pending: list[bytes] = []
    for position, frame in enumerate(frames):
        if position == drop_at:
            await connection.send_chunk(b"".join(pending))
            await connection.abort()
            return _StreamOutcome.DROPPED
        if stall_at is not None and position == stall_at[0]:
            await connection.send_chunk(b"".join(pending))
            pending = []
            if await connection.pause(stall_at[1]):
                return _StreamOutcome.CANCELLED
            started += stall_at[1]
        delay = started + frame.token_index * interval - loop.time() if interval and frame.token_index else 0.0
        if delay > 0:
            await connection.send_chunk(b"".join(pending))
            pending = []
            if await connection.pause(delay):
                return _StreamOutcome.CANCELLED
        pending.append(frame.data)
    if connection.disconnected:
        return _StreamOutcome.CANCELLED
    await connection.send_chunk(b"".join(pending), last=True)
    return _StreamOutcome.COMPLETED


async def _respond_rate_limited(
    connection: ClientConnection, wire: WireFormat[Any], model: str, behaviour: ModelBehaviour
) -> None:
    seconds = behaviour.retry_after_seconds
    problem = RequestProblem(
        message=f"Rate limit reached for {model} (simulated). Please try again in {seconds:g}s.",
        code="rate_limit_exceeded",
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"retry-after", f"{seconds:g}".encode()),
        (b"retry-after-ms", str(round(seconds * 1000)).encode()),
    ]
    await connection.respond(429, wire.error_body(429, problem), headers)


async def _respond_auth_failure(connection: ClientConnection, wire: WireFormat[Any], headers: dict[str, str]) -> None:
    """What a provider answers a revoked or wrong key: its suffix and the organisation, as OpenAI's 401 does."""
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    key = headers.get("x-api-key") or (bearer if scheme.lower() == "bearer" else "")
    problem = RequestProblem(
        message=f"Incorrect API key provided: {key[:3]}********{key[-4:]} for organization {SIMULATED_ORGANIZATION}. "
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )
    response_headers = [
        (b"content-type", b"application/json"),
        (b"openai-organization", SIMULATED_ORGANIZATION.encode()),
    ]
    await connection.respond(401, wire.error_body(401, problem), response_headers)


async def _respond_openai_error(
    connection: ClientConnection, status: int, message: str, code: str | None = None
) -> None:
    await connection.respond(status, openai_error_body(status, RequestProblem(message=message, code=code)))


async def _run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _decode_headers(scope: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers
