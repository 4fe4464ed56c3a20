"""Every error the gateway returns, in OpenAI's error shape, from one place.

Handlers raise a :class:`GatewayError`; :func:`install_error_handlers` turns it (and FastAPI's own validation and
HTTP errors) into ``{"error": {"message", "type", "param", "code"}}`` with the right status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape, the body of every non-2xx answer."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers an endpoint can give."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


class GatewayError(Exception):
    """An error with an HTTP status and an OpenAI error type."""

    status_code = 500
    error_type = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())


class InvalidRequest(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status_code = 403
    error_type = "permission_error"
    default_code = "model_not_allowed"


class NotFound(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class RequestTooLarge(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTimeout(GatewayError):
    """The request body did not arrive within the body deadline (slow or stalled client)."""

    status_code = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class HeadersTooLarge(GatewayError):
    status_code = 431
    error_type = "invalid_request_error"
    default_code = "request_headers_too_large"


class ClientClosedRequest(GatewayError):
    """The client hung up before its answer (nginx's 499); nobody reads this answer, the ledger does."""

    status_code = 499
    error_type = "client_disconnected"
    default_code = "client_disconnected"


class InternalError(GatewayError):
    """A failure the gateway did not foresee: still OpenAI's JSON shape, never a plain-text 500."""

    default_code = "internal_error"


class RateLimited(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExhausted(RateLimited):
    default_code = "budget_exceeded"


class UpstreamError(GatewayError):
    """Every deployment of the chain failed; the status tells how (502 error, 503 unavailable, 504 timeout)."""

    error_type = "upstream_error"

    def __init__(self, message: str, *, status_code: int = 502, code: str | None = None) -> None:
        super().__init__(message, code=code or "upstream_failed")
        self.status_code = status_code


def error_response(error: GatewayError, extra_headers: dict[str, str] | None = None) -> Response:
    headers = {**error.headers, **(extra_headers or {})}
    return Response(
        error.body_bytes(),
        status_code=error.status_code,
        media_type="application/json",
        headers=headers,
    )


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    dotted = ""
    for part in parts:
        dotted += f"[{part}]" if part.isdigit() else (f".{part}" if dotted else part)
    return dotted


def validation_error(exc_errors: Sequence[Mapping[str, Any]]) -> InvalidRequest:
    """The first pydantic error, named by its field path as OpenAI does (``messages[0].role``)."""
    first = exc_errors[0]
    param = _location(tuple(first.get("loc", ())))
    message = f"Invalid value for '{param}': {first.get('msg', 'invalid')}" if param else first.get("msg", "")
    return InvalidRequest(message, param=param or None, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    async def on_gateway_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(list(exc.errors())))

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error_class = {
            401: AuthenticationError,
            403: PermissionDenied,
            404: NotFound,
            413: RequestTooLarge,
        }.get(exc.status_code, InvalidRequest)
        error = error_class(str(exc.detail))
        error.status_code = exc.status_code
        return error_response(error)

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
