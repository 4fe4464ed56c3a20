"""Streaming time to first token: sequential streamed requests from one keep-alive client, timed to the first
chunk that carries answer text."""

from __future__ import annotations

import statistics
import time

import httpx
import orjson
from pydantic import BaseModel

from bench.caller_turns import TextMode, chat_body, turn_text

DATA_PREFIX = "data: "
DONE_EVENT = "data: [DONE]"
WARM_UP_REQUESTS = 5


class StreamWithoutText(RuntimeError):
    """A stream ended without any chunk carrying answer text."""


class TtftRun(BaseModel):
    requests: int
    p50_ms: float
    p99_ms: float
    mean_ms: float


def _carries_text(line: str) -> bool:
    if not line.startswith(DATA_PREFIX) or line == DONE_EVENT:
        return False
    chunk = orjson.loads(line.removeprefix(DATA_PREFIX))
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices") or ())


async def _first_token_seconds(client: httpx.AsyncClient, url: str, body: bytes) -> float:
    started = time.perf_counter()
    first: float | None = None
    async with client.stream("POST", url, content=body) as response:
        response.raise_for_status()
        # Read to the end even after the first token, so the connection goes back to the pool reusable.
        async for line in response.aiter_lines():
            if first is None and _carries_text(line):
                first = time.perf_counter() - started
    if first is None:
        raise StreamWithoutText(f"{url} streamed no answer text")
    return first


def _percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile, as wrk reports them."""
    rank = max(1, round(share * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def measure_ttft(
    url: str, *, model: str, text_mode: TextMode, token: str, requests: int, first_reference: int
) -> TtftRun:
    """Time ``requests`` sequential streamed chat completions (after a few untimed warm-up ones)."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    timings: list[float] = []
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(10.0)) as client:
        for index in range(WARM_UP_REQUESTS + requests):
            body = chat_body(model, turn_text(text_mode, first_reference + index), stream=True)
            seconds = await _first_token_seconds(client, url, body)
            if index >= WARM_UP_REQUESTS:
                timings.append(seconds * 1000)
    timings.sort()
    return TtftRun(
        requests=len(timings),
        p50_ms=statistics.median(timings),
        p99_ms=_percentile(timings, 0.99),
        mean_ms=statistics.fmean(timings),
    )
