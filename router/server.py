"""How the gateway is served: uvicorn with the bounds on request heads it lacks.

uvicorn's httptools protocol neither limits the size of a request's line and headers nor the time a client takes to
send them, so one slow client per connection (slowloris) can hold sockets open forever and an 8 MB header reaches
the app. :class:`GuardedHttpToolsProtocol` adds both: a head larger than ``max_header_bytes`` is answered 431 and a
head not complete ``header_timeout_seconds`` after the connection opened (or after the first byte of a keep-alive
request) is answered 408, and the connection is closed either way. Idle keep-alive connections close after
``keep_alive_seconds`` (uvicorn's own timer); slow bodies are bounded by the app (:mod:`router.api.guards`).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from router.errors import GatewayError, HeadersTooLarge, RequestTimeout
from router.settings import Settings


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_bytes: int
    timeout_seconds: float


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size limit and a deadline on each request head."""

    def __init__(self, *args: Any, head_limits: HeadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limits = head_limits
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing, so a head that ends within this read passes whatever body bytes follow it.
        if self._awaiting_head and self._head_bytes > self._head_limits.max_bytes:
            self._refuse(HeadersTooLarge(f"the request line and headers exceed {self._head_limits.max_bytes} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_deadline is None:  # the first request's deadline runs from the connection
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head, self._head_bytes = True, 0

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self._head_limits.timeout_seconds, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._head_bytes == 0 or (self.cycle is not None and not self.cycle.response_complete):
            self.transport.close()  # nothing was asked, or an answer is still being written: no room for ours
            return
        seconds = self._head_limits.timeout_seconds
        self._refuse(RequestTimeout(f"the request line and headers took longer than {seconds:g} s"))

    def _refuse(self, error: GatewayError) -> None:
        """Answer in OpenAI's error shape straight on the socket (no app has the request yet) and close."""
        if self.transport.is_closing():
            return
        body = error.body_bytes()
        self.transport.write(
            b"".join(
                (
                    STATUS_LINE[error.status_code],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                )
            )
        )
        self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options for the gateway: the guarded protocol and the keep-alive bound."""
    limits = HeadLimits(max_bytes=settings.max_header_bytes, timeout_seconds=settings.header_timeout_seconds)
    return {
        "http": functools.partial(GuardedHttpToolsProtocol, head_limits=limits),
        "timeout_keep_alive": settings.keep_alive_seconds,
    }
