"""The SSE relay: forward chunks as OpenAI sends them, capture usage, price the turn, survive barge-in.

Usage is always requested upstream; the extra usage chunk is stripped when the client did not ask for it, and
carries the gateway's cost fields when it did. A client that hangs up cancels the upstream request; the tokens
produced so far are still recorded. The turn's record is durable before the final ``data: [DONE]`` is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from router.accounting.tokens import completion_text
from router.accounting.usage import Usage
from router.errors import GatewayError
from router.gateway import Gateway
from router.providers.base import ProviderError
from router.providers.chain import OpenStream
from router.types import Outcome, Turn

DONE = b"data: [DONE]\n\n"


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


async def relay_stream(gateway: Gateway, turn: Turn, opened: OpenStream) -> AsyncIterator[bytes]:
    outcome = Outcome(deployment=opened.deployment, attempts=opened.attempts)
    outcome.ttft_ms = (time.perf_counter() - turn.started) * 1000
    produced: list[str] = []
    reported: Usage | None = None
    deployment = opened.deployment

    def prepare(chunk: dict[str, Any]) -> bytes | None:
        nonlocal reported
        usage = Usage.from_openai(chunk.get("usage"))
        if usage is not None:
            reported = usage
        produced.append(completion_text(chunk.get("choices"), "delta"))
        if chunk.get("choices"):
            if not turn.include_usage:
                chunk.pop("usage", None)
            return sse(chunk)
        if usage is None:
            return sse(chunk)  # a choices-less chunk without usage (rare): pass through
        if not turn.include_usage:
            return None
        cost, baseline = gateway.accountant.price(deployment, usage)
        chunk["switchboard"] = _cost_fields(turn, cost, baseline)
        return sse(chunk)

    finished = False

    async def finish() -> GatewayError | None:
        """Account for the turn once; the error to send instead of ``[DONE]`` if its record is not durable."""
        nonlocal finished
        finished = True
        await opened.rest.aclose()  # type: ignore[attr-defined]
        usage = gateway.usage_for_stream(turn, reported, "".join(produced))
        outcome.usage = usage
        outcome.cost_usd, outcome.baseline_cost_usd = gateway.accountant.price(deployment, usage)
        outcome.total_ms = (time.perf_counter() - turn.started) * 1000
        try:
            await gateway.finish(turn, outcome)
        except GatewayError as error:
            return error
        return None

    try:
        first = prepare(opened.first_chunk)
        if first is not None:
            yield first
        async with asyncio.timeout_at(_loop_deadline(opened.deadline)):
            async for chunk in opened.rest:
                event = prepare(chunk)
                if event is not None:
                    yield event
        failed = await finish()
        yield DONE if failed is None else sse(failed.body())
    except (ProviderError, TimeoutError) as exc:
        # Committed to this deployment: no failover after the first byte, a clean error event instead.
        outcome.status = 502 if isinstance(exc, ProviderError) else 504
        outcome.error_type = "upstream_stream_error"
        message = exc.message if isinstance(exc, ProviderError) else "the upstream stream exceeded its total timeout"
        failed = None if finished else await finish()
        yield sse(
            {
                "error": {
                    "message": message,
                    "type": "upstream_error",
                    "param": None,
                    "code": "stream_interrupted",
                }
            }
        )
        if failed is None:
            yield DONE
    except (asyncio.CancelledError, GeneratorExit):
        outcome.interrupted = True
        outcome.status = 499  # client closed request (nginx's convention)
        outcome.error_type = "client_disconnected"
        raise
    except Exception:
        # Anything else broke the stream half-way: its record must say so, never 200.
        outcome.status, outcome.error_type = 500, "internal_error"
        raise
    finally:
        if not finished:
            await finish()


def _cost_fields(turn: Turn, cost: float, baseline: float) -> dict[str, Any]:
    return {
        "request_id": turn.request_id,
        "cost_usd": round(cost, 10),
        "baseline_cost_usd": round(baseline, 10),
        "savings_usd": round(baseline - cost, 10),
    }


def _loop_deadline(monotonic_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
