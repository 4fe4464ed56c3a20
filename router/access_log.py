"""The access log: one structured line per HTTP request, on the ``switchboard.access`` logger at INFO.

Every request gets its method, path (never the query string), status and latency. A chat turn adds what the
ledger recorded for it — request id, tenant, agent, call id, the model asked for, tier, deployment, rule, cost,
fallbacks, error type — taken from the very record the recorder commits (:func:`note_ledger_record`), so the log
and the ledger agree, including the 499 of a caller who hung up mid-stream. Nothing a caller wrote (messages,
tools, bodies, headers, caller ids) is logged. ``SWITCHBOARD_ACCESS_LOG=false`` turns it off, as does a log level
above ``info``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from router.accounting.ledger import LedgerRecord

logger = logging.getLogger("switchboard.access")

CLIENT_CLOSED_REQUEST = 499
MAX_PATH_CHARS = 256  # a path is caller-chosen; the log keeps its head
# What a turn's ledger record adds to its line; names are the record's (and never clash with logging's own).
LEDGER_FIELDS = (
    "request_id",
    "tenant",
    "agent",
    "call_id",
    "requested_model",
    "tier",
    "deployment",
    "rule",
    "policy_version",
    "status",
    "error_type",
    "cost_usd",
    "fallbacks",
    "stream",
)

# The fields of the request being answered, set by the middleware for the request's task (and the tasks it starts).
_current_entry: ContextVar[dict[str, Any] | None] = ContextVar("switchboard_access_entry", default=None)


def note_ledger_record(record: LedgerRecord) -> None:
    """Put a turn's ledger record on the access line of the request being answered (if one is being logged)."""
    entry = _current_entry.get()
    if entry is not None:
        entry.update({name: getattr(record, name) for name in LEDGER_FIELDS})


class AccessLog:
    """ASGI middleware writing the access line once the answer has been sent (or the request failed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        entry: dict[str, Any] = {}
        token = _current_entry.set(entry)
        http_status: int | None = None

        async def noting_status(message: Message) -> None:
            nonlocal http_status
            if message["type"] == "http.response.start":
                http_status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except asyncio.CancelledError:
            http_status = http_status or CLIENT_CLOSED_REQUEST
            raise
        except Exception:
            http_status = http_status or 500
            raise
        finally:
            _current_entry.reset(token)
            self._write(scope, http_status, entry, time.perf_counter() - started)

    @staticmethod
    def _write(scope: Scope, http_status: int | None, entry: dict[str, Any], seconds: float) -> None:
        method, path = scope.get("method", ""), scope.get("path", "")[:MAX_PATH_CHARS]
        status = entry.pop("status", None) or http_status or CLIENT_CLOSED_REQUEST
        latency_ms = round(seconds * 1000, 1)
        fields = {"event": "access", "method": method, "path": path, "status": status, "latency_ms": latency_ms}
        if http_status is not None and http_status != status:
            fields["http_status"] = http_status  # a stream that started 200 and ended otherwise
        fields.update({name: value for name, value in entry.items() if value is not None})
        logger.info("%s %s %s %.0f ms", method, path, status, latency_ms, extra=fields)
