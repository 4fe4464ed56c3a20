"""Drive a running gateway with a traffic log: each call's turns in order, calls side by side.

This is how sample traffic reaches the ledger, the metrics and the dashboards (``switchboard traffic send``), and how
a team rehearses a policy against the simulator before real callers do.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from router import headers as H
from router.traffic.log import TrafficRecord

DEFAULT_CONCURRENCY = 32


@dataclass
class SendSummary:
    """What was sent so far; ``planned_*`` is the whole log."""

    planned_turns: int = 0
    planned_calls: int = 0
    requests: int = 0  # turns answered or failed
    calls: int = 0  # calls whose last turn is done
    statuses: dict[int, int] = field(default_factory=dict)
    no_response: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0

    @property
    def failed(self) -> int:
        return self.no_response + sum(count for status, count in self.statuses.items() if status != 200)


ProgressCallback = Callable[[SendSummary], None]


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
    try:
        status = await _post_turn(client, body, headers, summary)
    except httpx.HTTPError:
        # A gateway that is down or too slow fails this turn, not the run: the summary says how many.
        summary.no_response += 1
    else:
        summary.statuses[status] = summary.statuses.get(status, 0) + 1
    summary.requests += 1


async def _post_turn(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str], summary: SendSummary
) -> int:
    """Send one turn, add the cost the gateway billed for it to ``summary`` and return its status."""
    if not body.get("stream"):
        response = await client.post("/v1/chat/completions", json=body, headers=headers)
        if response.status_code == 200:
            summary.cost_usd += float(response.headers.get(H.COST_USD, 0))
            summary.baseline_cost_usd += float(response.headers.get(H.BASELINE_COST_USD, 0))
        return response.status_code
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
        return status


async def send_traffic(
    records: Iterable[TrafficRecord],
    base_url: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    stream_every: int = 3,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    progress: ProgressCallback | None = None,
) -> SendSummary:
    """Send every turn once, ``concurrency`` calls at a time, each call's turns strictly in order.

    ``stream_every`` > 0 streams every n-th turn of the log (with usage, to read its cost), counted in log order so
    the same log streams the same turns whatever the concurrency. ``progress`` is called after every turn.
    """
    turns = list(records)
    calls = group_calls(turns)
    # Every n-th turn of the log (the list keeps each record alive, so their ids stay unique).
    streamed = {id(record) for record in turns[stream_every - 1 :: stream_every]} if stream_every > 0 else set()
    summary = SendSummary(planned_turns=len(turns), planned_calls=len(calls))
    queue: asyncio.Queue[list[TrafficRecord]] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits, headers=auth) as client:

        async def worker() -> None:
            while not queue.empty():
                call = queue.get_nowait()
                for index, record in enumerate(call):
                    last_turn = index == len(call) - 1
                    body, headers = request_of(record, last_turn=last_turn, stream=id(record) in streamed)
                    await _send_turn(client, body, headers, summary)
                    summary.calls += last_turn
                    if progress is not None:
                        progress(summary)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary
