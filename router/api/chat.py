"""``POST /v1/chat/completions``: parse, hand to the gateway, shape the answer (stream or not)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema
from starlette.responses import Response, StreamingResponse

from router import headers as H
from router.api.deps import ServicesDep
from router.config import Limits
from router.errors import (
    GatewayError,
    InvalidRequest,
    RequestTooLarge,
    error_response,
    error_responses,
    validation_error,
)
from router.gateway import Caller
from router.providers.streaming import relay_stream
from router.schemas import ChatCompletionRequest

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


def _parse(raw: bytes, max_bytes: int) -> tuple[dict[str, Any], ChatCompletionRequest]:
    if len(raw) > max_bytes:
        raise RequestTooLarge(f"the request body exceeds {max_bytes} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    try:
        return body, ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from exc


@router.post(
    "/v1/chat/completions",
    summary="Create a chat completion (OpenAI-compatible), routed by the policy",
    responses={
        200: {
            "description": "chat.completion, or an SSE stream of chat.completion.chunk",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
        **error_responses(400, 401, 403, 404, 413, 429, 502, 503, 504),
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
        caller = await services.auth.caller(request.headers)
        body, parsed = _parse(await request.body(), gateway.config.limits.max_body_bytes)
        turn = await gateway.prepare(request_id, started, body, parsed, caller, request.headers)
        if turn.stream:
            opened, headers = await gateway.open_stream(turn)
            return StreamingResponse(
                relay_stream(gateway, turn, opened),
                media_type="text/event-stream",
                headers={**STREAM_HEADERS, **headers},
            )
        answer, headers = await gateway.complete(turn)
        return Response(orjson.dumps(answer), media_type="application/json", headers=headers)
    except GatewayError as error:
        if turn is None:  # a prepared turn's failure was recorded with its decision by the gateway
            gateway.record_rejection(request_id, started, caller, body, request.headers, error)
        return error_response(error, {H.REQUEST_ID: request_id})
