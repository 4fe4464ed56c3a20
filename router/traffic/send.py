"""Drive a running gateway with a traffic log: each call's turns in order, calls side by side.

This is how sample traffic reaches the ledger, the metrics and the dashboards (``switchboard traffic send``), and how
a team rehearses a policy against the simulator before real callers do.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from router import headers as H
from router.traffic.log import TrafficRecord


@dataclass
class SendSummary:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)


def group_calls(records: Iterable[TrafficRecord]) -> list[list[TrafficRecord]]:
    """Turns grouped by call, in log order (a turn without a call id is a call of its own)."""
    calls: OrderedDict[tuple[str, str], list[TrafficRecord]] = OrderedDict()
    for record in records:
        key = (record.tenant, record.call_id or record.request_id)
        calls.setdefault(key, []).append(record)
    return list(calls.values())


def request_of(record: TrafficRecord, *, last_turn: bool, stream: bool) -> tuple[dict[str, Any], dict[str, str]]:
    voice = record.metadata.voice.model_dump(exclude_none=True) if record.metadata.voice else {}
    if last_turn:
        voice["call_ended"] = True
    metadata: dict[str, Any] = {"voice": voice}
    body: dict[str, Any] = {"model": record.requested_model, "messages": record.chat_messages, "metadata": metadata}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    headers = {H.TENANT: record.tenant}
    for name, value in ((H.AGENT, record.agent), (H.CALL_ID, record.call_id), (H.CALLER_ID, record.caller_id)):
        if value:
            headers[name] = value
    return body, headers


async def _send_turn(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str], summary: SendSummary
) -> None:
    summary.requests += 1
    if not body.get("stream"):
        response = await client.post("/v1/chat/completions", json=body, headers=headers)
        summary.statuses[response.status_code] = summary.statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            summary.cost_usd += float(response.headers.get(H.COST_USD, 0))
            summary.baseline_cost_usd += float(response.headers.get(H.BASELINE_COST_USD, 0))
        return
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        status = response.status_code
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = orjson.loads(line[len("data: ") :])
            if "error" in event:
                status = 502
            costs = event.get("switchboard")
            if costs:
                summary.cost_usd += costs["cost_usd"]
                summary.baseline_cost_usd += costs["baseline_cost_usd"]
        summary.statuses[status] = summary.statuses.get(status, 0) + 1


async def send_traffic(
    records: Iterable[TrafficRecord],
    base_url: str,
    *,
    concurrency: int = 8,
    stream_every: int = 3,
    api_key: str | None = None,
    timeout_s: float = 60.0,
) -> SendSummary:
    """Send every turn once; ``stream_every`` > 0 streams every n-th turn (with usage, to read its cost)."""
    summary = SendSummary()
    calls = group_calls(records)
    queue: asyncio.Queue[list[TrafficRecord]] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits, headers=auth) as client:
        sent = 0

        async def worker() -> None:
            nonlocal sent
            while not queue.empty():
                call = queue.get_nowait()
                for index, record in enumerate(call):
                    sent += 1
                    stream = stream_every > 0 and sent % stream_every == 0
                    body, headers = request_of(record, last_turn=index == len(call) - 1, stream=stream)
                    await _send_turn(client, body, headers, summary)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary
