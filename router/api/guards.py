"""ASGI middleware at the edge of the app: a deadline on request bodies, a token on the internal endpoints, and a
last resort that turns any unforeseen exception into OpenAI's JSON error instead of uvicorn's plain-text 500."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.auth import bearer_token
from router.errors import AuthenticationError, GatewayError, InternalError, RequestTimeout, error_response

logger = logging.getLogger(__name__)

INTERNAL_PATHS = frozenset({"/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class LastResortErrors:
    """Any exception that escapes the app becomes a JSON 500 in OpenAI's shape (when no answer was started)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise  # half an answer is out: only closing the connection can tell the client
            logger.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            response = error_response(InternalError("the gateway failed unexpectedly; the error was logged"))
            await response(scope, receive, send)


class BodyDeadline:
    """The whole request body must arrive within ``timeout_seconds`` of its headers; reading past that raises
    :class:`RequestTimeout`, and the answer is a 408 whatever the route made of the exception. An answer given before
    the body was read in full closes the connection, so a client trickling a body nobody reads cannot hold it open."""

    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        body_done = False
        timed_out: RequestTimeout | None = None
        replaced = False

        async def receive_by_deadline() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()  # only the disconnect is left to wait for, and that has no deadline
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = RequestTimeout(f"the request body took longer than {self.timeout_seconds:g} s")
                raise timed_out from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def closing_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and not body_done:
                if timed_out is not None and message["status"] != timed_out.status_code:
                    # A route that turned the timeout into something else (FastAPI's "error parsing the body" 400).
                    replaced = True
                    await error_response(timed_out, {"connection": "close"})(scope, receive, send)
                    return
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive_by_deadline, closing_send)


class InternalEndpoints:
    """``/metrics``, ``/docs`` and ``/openapi.json`` need one of ``tokens`` as a bearer token (when any is set)."""

    def __init__(self, app: ASGIApp, tokens: Collection[str]) -> None:
        self.app = app
        self.tokens = [token.encode() for token in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.tokens and scope["path"] in INTERNAL_PATHS and not self._allowed(scope):
            error: GatewayError = AuthenticationError("this endpoint needs the metrics token or the admin key")
            await error_response(error, {"www-authenticate": "Bearer"})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        token = (bearer_token(headers) or "").encode()
        # Every token is compared, so the time taken does not tell which one nearly matched.
        return any([hmac.compare_digest(token, expected) for expected in self.tokens])
