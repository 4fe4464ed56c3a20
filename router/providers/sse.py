"""Server-sent events decoded as the WHATWG HTML standard specifies ("Interpreting an event stream"), from bytes.

Lines end in CRLF, LF or CR (a CR at the end of one network chunk and an LF at the start of the next are one line
end); a blank line dispatches the event; ``:`` starts a comment; a field's value loses one leading space; ``data``
lines join with LF; an event with no data is not dispatched; what is left when the stream ends is discarded. No
line length limit is inherited from the transport: the only limit is ``max_event_bytes`` over the whole event,
checked as bytes arrive, so an oversized event costs at most that much memory and fails as ``EventTooLarge``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass

# Far above any real chat-completion delta (a few hundred bytes; a whole tool call's arguments are rarely 100 KB).
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
_BOM = "\ufeff".encode()


class EventTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"a server-sent event exceeded {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed it bytes as they arrive; it yields each complete event."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = bytearray()  # the bytes of the line being received
        self._event_bytes = 0  # bytes of the complete lines of the event being received
        self._skip_lf = False  # the last chunk ended in CR: an LF that starts the next one ends no line
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> Iterator[ServerSentEvent]:
        if not self._started and chunk:
            if len(self._buffer) + len(chunk) < len(_BOM) and _BOM.startswith(bytes(self._buffer) + chunk):
                self._buffer += chunk
                return
            chunk, self._buffer, self._started = bytes(self._buffer) + chunk, bytearray(), True
            chunk = chunk.removeprefix(_BOM)
        start = 0
        if self._skip_lf and chunk[:1] == b"\n":
            start = 1
        self._skip_lf = False
        size = len(chunk)
        while start < size:
            cr, lf = chunk.find(b"\r", start), chunk.find(b"\n", start)
            end = min(cr, lf) if cr >= 0 and lf >= 0 else max(cr, lf)
            if end < 0:
                self._grow(len(chunk) - start)
                self._buffer += chunk[start:]
                return
            self._grow(end - start)
            self._buffer += chunk[start:end]
            line, self._buffer = bytes(self._buffer), bytearray()
            start = end + 1
            if chunk[end : end + 1] == b"\r":
                if start < size and chunk[start : start + 1] == b"\n":
                    start += 1
                elif start == size:
                    self._skip_lf = True
            event = self._line(line)
            if event is not None:
                yield event

    def _grow(self, more: int) -> None:
        if self._event_bytes + len(self._buffer) + more > self._max:
            raise EventTooLarge(self._max)

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        self._event_bytes += len(raw) + 1
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event, self._event_bytes = [], "", 0
        if not data:
            return None
        return ServerSentEvent(data="\n".join(data), event=event or "message", id=self._id, retry=self._retry)


async def decode_events(
    chunks: AsyncIterable[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> AsyncIterator[ServerSentEvent]:
    """The events of a byte stream (``EventTooLarge`` once one passes ``max_event_bytes``)."""
    decoder = SSEDecoder(max_event_bytes)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
