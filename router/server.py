"""How the gateway is served: uvicorn with the bounds on request heads it lacks.

uvicorn's httptools protocol neither limits the size of a request's line and headers nor the time a client takes to
send them (its h11 protocol caps a head at 16 KiB but answers that with a plain-text 400, and has no deadline
either), so one slow client per connection (slowloris) can hold sockets open forever and an 8 MB header reaches
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
    """uvicorn's httptools protocol with a size limit and a deadline on each request head.

    The size is measured twice: exactly, from the parsed request line and headers, before the app is called; and
    roughly, from the bytes received while a head is incomplete, so a head that never ends is not buffered past
    the limit either. Once a request is refused the connection reads nothing more.
    """

    def __init__(self, *args: Any, head_limits: HeadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limits = head_limits
        self._awaiting_head = True
        self._head_bytes = 0  # received while the head is incomplete
        self._head_size = 0  # of the parsed request line and headers
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > self._head_limits.max_bytes:
            self._refuse_oversized_head()

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._head_size = 0
        if self._head_deadline is None:  # the first request's deadline runs from the connection
            self._arm_head_deadline()

    def on_url(self, url: bytes) -> None:
        if not self._refused:
            self._head_size += len(url)
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._refused:
            self._head_size += len(name) + len(value) + 4  # ": " and CRLF
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        if self._head_size > self._head_limits.max_bytes:
            self._refuse_oversized_head()
            return
        self._awaiting_head = False
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._awaiting_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self._head_limits.timeout_seconds, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._head_bytes == 0 or (self.cycle is not None and not self.cycle.response_complete):
            self._refused = True
            self.transport.close()  # nothing was asked, or an answer is still being written: no room for ours
            return
        seconds = self._head_limits.timeout_seconds
        self._refuse(RequestTimeout(f"the request line and headers took longer than {seconds:g} s"))

    def _refuse_oversized_head(self) -> None:
        self._refuse(HeadersTooLarge(f"the request line and headers exceed {self._head_limits.max_bytes} bytes"))

    def _refuse(self, error: GatewayError) -> None:
        """Answer in OpenAI's error shape straight on the socket (no app has the request yet) and close."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm_head_deadline()
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


# With several workers uvicorn's parent pings each one and kills it after this many seconds without an answer. Its
# default, 5 s, is shorter than a worker's imports take on a busy 2-core machine (the answering thread waits for the
# interpreter lock meanwhile): workers were killed and restarted in a loop for a minute before one came up.
WORKER_HEALTHCHECK_SECONDS = 60


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options for the gateway: the guarded protocol, the keep-alive bound, the worker health check."""
    limits = HeadLimits(max_bytes=settings.max_header_bytes, timeout_seconds=settings.header_timeout_seconds)
    return {
        "http": functools.partial(GuardedHttpToolsProtocol, head_limits=limits),
        "timeout_keep_alive": settings.keep_alive_seconds,
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
