"""``POST /v1/chat/completions``: parse, hand to the gateway, shape the answer (stream or not)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from router import headers as H
from router.api.deps import ServicesDep, get_caller
from router.config import Limits
from router.errors import (
    ClientClosedRequest,
    GatewayError,
    InternalError,
    InvalidRequest,
    RequestTooLarge,
    error_response,
    error_responses,
    validation_error,
)
from router.relay import relay_stream
from router.schemas import ChatCompletionRequest
from router.types import Caller, Outcome

logger = logging.getLogger(__name__)
router = APIRouter()
COMPONENTS = "#/components/schemas/"


def request_schemas(limits: Limits) -> dict[str, Any]:
    """The request models' JSON schemas for the OpenAPI components, with this gateway's configured limits.

    The body is parsed by hand (for speed and exact pass-through), so FastAPI cannot document it by itself.
    """
    _, definitions = models_json_schema([(ChatCompletionRequest, "validation")], ref_template=COMPONENTS + "{model}")
    schemas: dict[str, Any] = definitions["$defs"]
    request = schemas["ChatCompletionRequest"]["properties"]
    request["messages"]["maxItems"] = limits.max_messages
    for name, maximum in (
        ("n", limits.max_n),
        ("max_tokens", limits.max_tokens),
        ("max_completion_tokens", limits.max_tokens),
    ):
        integer = next(option for option in request[name]["anyOf"] if option.get("type") == "integer")
        integer["maximum"] = maximum
    content = next(o for o in schemas["Message"]["properties"]["content"]["anyOf"] if o.get("type") == "string")
    content["maxLength"] = limits.max_content_chars
    return schemas


STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# Bodies above this are parsed and validated on a worker thread, so a 4 MB body does not hold the event loop.
PARSE_OFF_LOOP_BYTES = 64 * 1024
T = TypeVar("T")


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``max_bytes`` (declared or counted), not after."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLarge(f"the request body exceeds {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestTooLarge(f"the request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_deep(body: dict[str, Any], max_depth: int) -> str | None:
    """The top-level field under which arrays and objects nest deeper than ``max_depth`` (the body is level 1).

    Iterative: a body nested a thousand levels deep must not exhaust the stack of whatever walks it next.
    """
    pending: list[tuple[Any, int, str]] = [(value, 2, name) for name, value in body.items()]
    while pending:
        node, depth, field = pending.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return field
        pending.extend((child, depth + 1, field) for child in children if isinstance(child, dict | list))
    return None


def _parse(raw: bytes, limits: Limits) -> tuple[dict[str, Any], ChatCompletionRequest]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    too_deep = _too_deep(body, limits.max_json_depth)
    if too_deep is not None:
        raise InvalidRequest(
            f"'{too_deep}' nests arrays and objects deeper than {limits.max_json_depth} levels",
            param=too_deep,
            code="nesting_too_deep",
        )
    try:
        return body, ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from exc


async def _read_request(request: Request, limits: Limits) -> tuple[dict[str, Any], ChatCompletionRequest]:
    raw = await _read_body(request, limits.max_body_bytes)
    if len(raw) > PARSE_OFF_LOOP_BYTES:
        return await asyncio.to_thread(_parse, raw, limits)
    return _parse(raw, limits)


async def _client_hung_up(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read: only a disconnect can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_hung_up(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, or ``ClientClosedRequest`` once the client has hung up and ``work`` was cancelled (which
    cancels the upstream request too: nobody would read its answer)."""
    answer = asyncio.ensure_future(work)
    hang_up = asyncio.ensure_future(_client_hung_up(request))
    try:
        await asyncio.wait((answer, hang_up), return_when=asyncio.FIRST_COMPLETED)
        if not answer.done() and hang_up.exception() is not None:  # the client cannot be watched: just wait
            await asyncio.wait((answer,))
    finally:
        hang_up.cancel()
        if not answer.done():
            answer.cancel()
            await asyncio.wait((answer,))
    if answer.cancelled():
        raise ClientClosedRequest("the client closed the connection before the answer")
    return answer.result()


@router.post(
    "/v1/chat/completions",
    summary="Create a chat completion (OpenAI-compatible), routed by the policy",
    responses={
        200: {
            "description": "chat.completion, or an SSE stream of chat.completion.chunk",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
        **error_responses(400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"{COMPONENTS}ChatCompletionRequest"}}},
        }
    },
)
async def chat_completions(request: Request, services: ServicesDep) -> Response:
    started = time.perf_counter()
    request_id = f"req_{uuid.uuid4().hex}"
    gateway = services.gateway
    caller: Caller | None = None
    body: dict[str, Any] | None = None
    turn = None
    try:
        try:
            caller = await get_caller(request)
            body, parsed = await _read_request(request, gateway.config.limits)
            turn = await gateway.prepare(request_id, started, body, parsed, caller, request.headers)
            if turn.stream:
                opened, headers = await _unless_hung_up(request, gateway.open_stream(turn))
                return StreamingResponse(
                    relay_stream(gateway, turn, opened),
                    media_type="text/event-stream",
                    headers={**STREAM_HEADERS, **headers},
                )
            answer, headers = await _unless_hung_up(request, gateway.complete(turn))
            return Response(orjson.dumps(answer), media_type="application/json", headers=headers)
        except ClientDisconnect as exc:
            raise ClientClosedRequest("the client closed the connection while sending the body") from exc
        except GatewayError:
            raise
        except Exception as exc:
            logger.exception("unexpected error answering %s", request_id)
            raise InternalError("the gateway failed unexpectedly; the error was logged") from exc
    except GatewayError as error:
        if turn is None:
            gateway.record_rejection(request_id, started, caller, body, request.headers, error)
        elif isinstance(error, ClientClosedRequest):  # cancelled mid-call: the gateway recorded nothing yet
            total_ms = (time.perf_counter() - started) * 1000
            outcome = Outcome(status=error.status_code, error_type=error.code, interrupted=True, total_ms=total_ms)
            await gateway.finish(turn, outcome)
        # any other failure of a prepared turn was recorded with its decision by the gateway
        return error_response(error, {H.REQUEST_ID: request_id})
