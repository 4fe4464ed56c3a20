"""Helpers of the edge-hardening tests: ledger rows by request id, and a module-scoped gateway."""

from __future__ import annotations

import time
from typing import Any

from router.accounting.ledger import LedgerRecord
from tests.conftest import GatewayServer

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "What time do you open tomorrow?"}]


def ledger_rows(gateway: GatewayServer, tenant: str, timeout_s: float = 10.0) -> dict[str, LedgerRecord]:
    """The tenant's ledger rows by request id, once every queued row has been written."""
    ledger = gateway.services.recorder.ledger
    deadline = time.monotonic() + timeout_s
    while ledger.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    return {row.request_id: row for row in gateway.call(ledger.sink.query(tenant))}


def nested(depth: int, leaf: Any = "leaf") -> Any:
    """``depth`` objects inside each other (built iteratively: the depths tested exceed Python's recursion limit)."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value
