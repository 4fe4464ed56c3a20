"""One HTTP exchange over raw ASGI: body reading, responses, client-disconnect watching and aborts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
# After an abort the server notices the closed socket on its next loop turn; waiting for that keeps
# it from reporting an unfinished response, without ever blocking a handler for long.
_ABORT_SETTLE_SECONDS = 1.0


class SimulatedConnectionDrop(ConnectionError):
    """Raised to break a connection on ASGI servers whose transport the simulator cannot reach."""


class ClientConnection:
    """The client side of one request, as the handler sees it."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._watcher: asyncio.Future[None] | None = None
        self.disconnected_at: float | None = None

    async def read_body(self) -> bytes:
        chunks = []
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected_at = time.perf_counter()
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @property
    def disconnected(self) -> bool:
        return self.disconnected_at is not None

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the client leaves first; True when it has left."""
        if seconds > 0 and not self.disconnected:
            await asyncio.wait((self._ensure_watcher(),), timeout=seconds)
        return self.disconnected

    def _ensure_watcher(self) -> asyncio.Future[None]:
        # Created lazily: instant answers never wait, so they never pay for a watcher task.
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch_for_disconnect())
        return self._watcher

    async def _watch_for_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.disconnected_at = time.perf_counter()

    async def respond(self, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = JSON_HEADERS) -> None:
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await self._send({"type": "http.response.body", "body": body})

    async def start_stream(self, headers: Headers = SSE_HEADERS) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    async def send_chunk(self, body: bytes, *, last: bool = False) -> None:
        await self._send({"type": "http.response.body", "body": body, "more_body": not last})

    async def abort(self) -> None:
        """Close the connection abruptly: no response, or a stream cut without its proper end."""
        # uvicorn hands its per-request cycle's bound `send`; its transport is the only way to reset a
        # connection, because ASGI itself can only end responses cleanly.
        transport = getattr(getattr(self._send, "__self__", None), "transport", None)
        if transport is None:
            raise SimulatedConnectionDrop("simulated connection drop")
        transport.abort()
        await self.pause(_ABORT_SETTLE_SECONDS)

    def close(self) -> None:
        """Stop watching the client; call once the handler is done."""
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
